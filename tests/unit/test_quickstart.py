"""The README's Python quick start and examples/quickstart.ipynb run as written.

Both run with a smaller setting substituted into their text (fewer customers, one model family,
one Optuna trial), so that they finish in seconds; each substitution must find its text exactly
once, so the test fails when the README or the notebook drifts from the five-line API.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pandas as pd

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"
NOTEBOOK = ROOT / "examples" / "quickstart.ipynb"

#: Text of the quick start -> what the tests run instead.
SMALLER = {
    "clv.generate(customers=10_000, seed=7)": "clv.generate(customers=1_500, seed=7)",
    "clv.CLVPredictor(horizon_days=90)": (
        'clv.CLVPredictor(horizon_days=90, families=("lightgbm",), trials=1)'
    ),
}


def _smaller(code: str) -> str:
    for original, replacement in SMALLER.items():
        assert code.count(original) == 1, f"the quick start no longer contains {original!r}"
        code = code.replace(original, replacement)
    return code


def readme_quickstart() -> str:
    """The fenced python block under the README's "Quick start (Python)" heading."""
    text = README.read_text(encoding="utf-8")
    section = re.search(r"^## Quick start \(Python\)\n(.*?)(?=^## )", text, re.S | re.M)
    assert section, "README.md has no '## Quick start (Python)' section"
    block = re.search(r"```python\n(.*?)```", section.group(1), re.S)
    assert block, "the quick start section has no ```python block"
    return block.group(1)


def test_readme_quickstart_is_the_five_line_api() -> None:
    lines = [line for line in readme_quickstart().splitlines() if line.strip()]
    assert lines[0] == "import clv"
    assert len(lines) == 5


def test_readme_quickstart_runs_and_gives_scores_and_segments() -> None:
    namespace: dict[str, object] = {}
    exec(compile(_smaller(readme_quickstart()), str(README), "exec"), namespace)
    scores, segments = namespace["scores"], namespace["segments"]
    assert isinstance(scores, pd.DataFrame) and isinstance(segments, pd.DataFrame)
    for column in ("predicted_clv", "predicted_clv_lower", "predicted_clv_upper"):
        assert column in scores.columns
    assert scores["churn_probability"].between(0, 1).all()
    assert len(segments) == len(scores) and segments["segment"].notna().all()


def test_the_notebook_is_stored_without_outputs() -> None:
    notebook = json.loads(NOTEBOOK.read_text(encoding="utf-8"))
    code = [cell for cell in notebook["cells"] if cell["cell_type"] == "code"]
    assert code
    for cell in code:
        assert cell.get("outputs") == [], "strip the notebook's outputs before committing"
        assert cell.get("execution_count") is None, "strip the notebook's execution counts"


def test_the_notebook_runs_and_draws_its_lift_chart(tmp_path: Path) -> None:
    import nbformat
    from nbclient import NotebookClient

    notebook = nbformat.read(NOTEBOOK, as_version=4)
    sources = "\n".join(cell.source for cell in notebook.cells if cell.cell_type == "code")
    _smaller(sources)  # every substitution applies exactly once across the notebook
    for cell in notebook.cells:
        if cell.cell_type == "code":
            for original, replacement in SMALLER.items():
                cell.source = cell.source.replace(original, replacement)
    client = NotebookClient(
        notebook, timeout=300, kernel_name="python3", resources={"metadata": {"path": tmp_path}}
    )
    client.execute()
    outputs = [out for cell in notebook.cells if cell.cell_type == "code" for out in cell.outputs]
    assert not [out for out in outputs if out.output_type == "error"]
    assert any("image/png" in out.get("data", {}) for out in outputs), "no lift chart drawn"
    last = notebook.cells[-1].outputs[-1]["data"]["text/plain"]
    assert last == "True"  # the saved and loaded model scores exactly as the fitted one
