"""The documentation names what the code enforces."""

from __future__ import annotations

from pathlib import Path

import pytest

from clv.data.contract import TABLES

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("kind", list(TABLES))
def test_data_contract_doc_names_every_column(kind: str) -> None:
    text = (ROOT / "docs" / "data_contract.md").read_text(encoding="utf-8")
    section = text.split(f"### {kind}", 1)[1].split("###", 1)[0]
    for column in TABLES[kind].columns:  # type: ignore[index]
        assert f"| `{column.name}` | {column.kind} | {'yes' if column.required else 'no'} |" in (
            section
        ), column.name


def test_readme_gives_the_two_commands_first() -> None:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    assert text.index("make demo") < text.index("clv generate")
    assert "make test" in text
