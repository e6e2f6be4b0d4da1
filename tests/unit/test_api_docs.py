"""docs/api.md is generated from the live app's OpenAPI schema and kept in step with it."""

from __future__ import annotations

import copy
import difflib
import json
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from pydantic import BaseModel, TypeAdapter

from clv.api import docs, schemas
from clv.api.app import create_app
from clv.api.middleware import OPEN_PATHS
from clv.api.settings import ApiSettings

ROOT = Path(__file__).resolve().parents[2]
API_MD = ROOT / "docs" / "api.md"
REGENERATE = "python -m clv.api.docs > docs/api.md"


@pytest.fixture(scope="module")
def schema() -> dict[str, Any]:
    """The schema of an app with nothing loaded: no model, registry or database."""
    idle = SimpleNamespace(state=None, last_error=None, store=None)
    app = create_app(ApiSettings(keys="x"), serving=idle, start=False)  # type: ignore[arg-type]
    return app.openapi()


@pytest.fixture(scope="module")
def text() -> str:
    return API_MD.read_text(encoding="utf-8")


def _section(text: str, method: str, path: str) -> str:
    heading = f"### `{method.upper()} {path}`"
    assert heading in text, f"docs/api.md has no section {heading}; run `{REGENERATE}`"
    return text.split(heading, 1)[1].split("\n### ", 1)[0]


def test_docs_api_md_is_the_generated_reference(schema: dict[str, Any]) -> None:
    expected = docs.render_api_markdown(schema).encode("utf-8")
    actual = API_MD.read_bytes()
    if actual != expected:
        diff = "".join(
            list(
                difflib.unified_diff(
                    actual.decode("utf-8", "replace").splitlines(keepends=True),
                    expected.decode("utf-8").splitlines(keepends=True),
                    "docs/api.md",
                    "generated",
                )
            )[:60]
        )
        pytest.fail(
            f"docs/api.md is out of step with the API's OpenAPI schema: run `{REGENERATE}`\n{diff}"
        )


def test_the_helper_builds_the_same_schema(schema: dict[str, Any]) -> None:
    assert docs.openapi_schema() == schema


def test_the_module_prints_the_reference() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "clv.api.docs"],
        cwd=ROOT,
        capture_output=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr.decode()
    assert done.stdout == API_MD.read_bytes(), f"run `{REGENERATE}`"


def test_rendering_is_deterministic(schema: dict[str, Any]) -> None:
    first = docs.render_api_markdown(schema)
    again = docs.render_api_markdown(json.loads(json.dumps(schema)))
    assert first == again == docs.render_api_markdown(copy.deepcopy(schema))


def test_every_path_and_method_of_the_schema_is_documented(
    schema: dict[str, Any], text: str
) -> None:
    operations = docs.operations(schema)
    assert len(operations) >= 10
    for method, path in operations:
        op = schema["paths"][path][method]
        section = _section(text, method, path)
        assert f"| `{method.upper()}` | [`{path}`]" in text, (method, path)
        first = op["description"].split("\n\n")[0].split()[0]
        assert first in section, (method, path)
        for status in op["responses"]:
            assert f"\n| {status} | " in section, (method, path, status)
        for parameter in op.get("parameters", []):
            assert f"| `{parameter['name']}` | {parameter['in']} |" in section


def test_the_api_key_is_required_everywhere_but_the_open_paths(
    schema: dict[str, Any], text: str
) -> None:
    assert {"/health", "/metrics"} == set(OPEN_PATHS)
    for method, path in docs.operations(schema):
        section = _section(text, method, path)
        keyed = '-H "X-API-Key: $CLV_API_KEY"' in section
        if path in OPEN_PATHS:
            assert not keyed and "Authentication: none" in section, path
        else:
            assert keyed and "Authentication: `X-API-Key` header" in section, path
            assert "401" in schema["paths"][path][method]["responses"], path


def test_every_endpoint_has_an_example_and_every_example_an_endpoint(
    schema: dict[str, Any],
) -> None:
    assert set(docs.EXAMPLES) == set(docs.operations(schema))


def test_a_missing_example_fails_the_rendering(
    schema: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    examples = dict(docs.EXAMPLES)
    del examples[("get", "/customers/{customer_id}")]
    monkeypatch.setattr(docs, "EXAMPLES", examples)
    with pytest.raises(ValueError, match=r"no example for GET /customers/\{customer_id\}"):
        docs.render_api_markdown(schema)


def test_an_example_of_a_path_that_does_not_exist_fails_the_rendering(
    schema: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    examples = {**docs.EXAMPLES, ("delete", "/customers"): docs.Example(response={})}
    monkeypatch.setattr(docs, "EXAMPLES", examples)
    with pytest.raises(ValueError, match="endpoints that do not exist: DELETE /customers"):
        docs.render_api_markdown(schema)


def _model(schema: dict[str, Any]) -> tuple[type[BaseModel], bool] | None:
    """The pydantic model behind a schema (and whether it is a list of them)."""
    if "$ref" in schema:
        return getattr(schemas, schema["$ref"].rsplit("/", 1)[-1]), False
    if schema.get("type") == "array" and "$ref" in schema.get("items", {}):
        return getattr(schemas, schema["items"]["$ref"].rsplit("/", 1)[-1]), True
    return None


@pytest.mark.parametrize(
    ("method", "path"), list(docs.EXAMPLES), ids=[f"{m} {p}" for m, p in docs.EXAMPLES]
)
def test_each_example_fits_the_schema(schema: dict[str, Any], method: str, path: str) -> None:
    example = docs.EXAMPLES[(method, path)]
    op = schema["paths"][path][method]
    url = docs.example_url(path, example)  # raises when the path values do not fit
    assert "{" not in url
    query = {p["name"] for p in op.get("parameters", []) if p["in"] == "query"}
    assert set(example.query) <= query
    body = op.get("requestBody")
    assert (example.body is None) == (body is None)
    if body is not None:
        found = _model(body["content"]["application/json"]["schema"])
        assert found is not None
        found[0].model_validate_json(json.dumps(example.body))
    content = op["responses"][str(example.status)].get("content", {})
    if example.text:
        assert isinstance(example.response, str)
        return
    found = _model(content["application/json"]["schema"])
    assert found is not None
    model, many = found
    answers = example.response if many else [example.response]
    TypeAdapter(list[model]).validate_json(json.dumps(answers))  # type: ignore[valid-type]
    for answer in answers:
        assert set(answer) <= set(model.model_fields), set(answer) - set(model.model_fields)


def test_body_constraints_are_spelt_out(text: str) -> None:
    section = text.split("### PredictRequest", 1)[1].split("\n### ", 1)[0]
    assert "| `customer_id` | string | yes | 1–128 characters; no control characters |" in section
    assert "at most 512 entries" in section
    assert "null = missing value" in section
    assert "Other fields are refused (422)." in section


def test_every_setting_is_documented_with_its_default(text: str) -> None:
    settings = text.split("## Settings", 1)[1].split("\n## ", 1)[0]
    for name, info in ApiSettings.model_fields.items():
        variable = f"CLV_API_{name.upper()}"
        (row,) = [line for line in settings.splitlines() if f"`{variable}`" in line]
        default = info.get_default(call_default_factory=True)
        if default not in (None, []):
            shown = int(default) if isinstance(default, float) else default
            assert f"`{shown}`" in row, (variable, row)
    assert "default 30 s" in text  # the poll interval, in the reloading section


def test_errors_are_explained(text: str) -> None:
    errors = text.split("## Errors", 1)[1].split("\n## ", 1)[0]
    assert '{"detail": ' in errors
    for status in (401, 404, 413, 422, 503):
        assert f"\n| {status} | " in errors, status
