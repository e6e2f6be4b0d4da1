"""The API reference, ``docs/api.md``, generated from the app's own OpenAPI schema.

``python -m clv.api.docs > docs/api.md`` regenerates it; ``tests/unit/test_api_docs.py`` fails when
the file and the live schema disagree. Every path, method, parameter, body field, constraint and
response status comes from the schema, the settings table from :class:`ApiSettings`; only the
worked examples (:data:`EXAMPLES`) and the prose around them are written by hand, and the test
checks those against the schema too. The same schema always gives the same bytes.
"""

from __future__ import annotations

import inspect
import json
import re
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import TYPE_CHECKING, Any, cast
from urllib.parse import quote, urlencode

from clv.api.middleware import OPEN_PATHS
from clv.api.settings import ApiSettings

if TYPE_CHECKING:
    from clv.api.state import Serving

__all__ = ["EXAMPLES", "Example", "main", "openapi_schema", "render_api_markdown"]

#: Where ``clv serve`` listens by default; the examples call it there.
BASE_URL = "http://127.0.0.1:8000"
#: The command that regenerates ``docs/api.md``.
REGENERATE = "python -m clv.api.docs > docs/api.md"
#: Components FastAPI adds for its validation errors; the app answers them in its own shape
#: (``loc``, ``msg``, ``type`` only), described under "Errors" instead.
_FASTAPI_COMPONENTS = frozenset({"HTTPValidationError", "ValidationError"})
_METHODS = ("get", "put", "post", "delete", "patch", "head", "options", "trace")


@dataclass(frozen=True)
class Example:
    """A worked call of one endpoint: what is sent and what comes back.

    Attributes
    ----------
    response : Any
        The JSON answer (or, with ``text=True``, the text answer).
    path_params : dict of str to str
        Values of the path's ``{placeholders}``.
    query : dict of str to str
        Query parameters, in this order.
    body : Any
        The JSON request body; None sends none.
    status : int
        The answer's status.
    text : bool
        The answer is plain text, not JSON.
    note : str
        A sentence under the example (what it shows, what is shortened).
    """

    response: Any
    path_params: dict[str, str] = field(default_factory=dict)
    query: dict[str, str] = field(default_factory=dict)
    body: Any = None
    status: int = 200
    text: bool = False
    note: str = ""


_FEATURES_NOTE = (
    "The `features` here are shortened: send every name that `GET /ready` lists in `features` "
    "(a missing or unknown name is a 422 naming it); `null` is a missing value."
)

#: One worked example per endpoint, keyed by (method, path template) as in the schema.
EXAMPLES: dict[tuple[str, str], Example] = {
    ("get", "/health"): Example(response={"status": "ok"}),
    ("get", "/ready"): Example(
        response={
            "status": "ready",
            "model_version": "7",
            "churn_model_version": "5",
            "features": [
                "frequency",
                "recency",
                "T",
                "monetary_value",
                "days_since_last_purchase",
                "spend_90d",
                "gap_std",
                "eco_spend_share",
            ],
            "scores_run": 42,
            "segment_version": 3,
            "reason": None,
        },
        note=(
            "Shortened `features`. `reason` is set when the last reload failed and the previous "
            'state is still served. Not ready, it answers 503 with `"status": "not ready"`, '
            "the other fields null and `reason` saying why: `still loading`, the error of the "
            "failed first load, `no champion model (promote one with clv promote)` or "
            "`platform database unreachable: <error type>`."
        ),
    ),
    ("get", "/metrics"): Example(
        text=True,
        response=(
            "# HELP clv_api_requests_total Requests answered, by method, route template and "
            "status.\n"
            "# TYPE clv_api_requests_total counter\n"
            'clv_api_requests_total{method="POST",route="/predict/clv",status="200"} 1532.0\n'
            "# HELP clv_api_model_version_info 1 for the model version served, by model name.\n"
            "# TYPE clv_api_model_version_info gauge\n"
            'clv_api_model_version_info{model="clv-spend",version="7"} 1.0\n'
            'clv_api_model_version_info{model="clv-churn",version="5"} 1.0\n'
            "..."
        ),
        note=(
            "Prometheus text format (`text/plain; version=0.0.4`): `clv_api_requests_total`, "
            "`clv_api_request_duration_seconds`, `clv_api_model_version_info`, "
            "`clv_api_predicted_clv` and `clv_api_churn_probability`. Shortened."
        ),
    ),
    ("post", "/predict/clv"): Example(
        body={
            "customer_id": "C00001234",
            "features": {
                "frequency": 6.0,
                "recency": 210.0,
                "T": 340.0,
                "monetary_value": 48.5,
                "days_since_last_purchase": 130.0,
                "spend_90d": 0.0,
                "gap_std": None,
                "eco_spend_share": 0.25,
            },
        },
        response={
            "customer_id": "C00001234",
            "predicted_clv": 61.84,
            "predicted_clv_lower": 0.0,
            "predicted_clv_upper": 158.2,
            "churn_probability": 0.41,
            "segment": "high-value eco loyalists",
            "model_version": "7",
            "horizon_days": 90,
            "as_of": "2026-01-15T09:30:12.345678Z",
            "source": "scored",
        },
        note=(
            _FEATURES_NOTE + ' Without `features` (`{"customer_id": "C00001234"}`) the answer '
            'is the customer\'s row of the latest scoring run, with `source` "stored", or 404.'
        ),
    ),
    ("post", "/predict/clv/batch"): Example(
        body={
            "customers": [
                {"customer_id": "C00001234"},
                {"customer_id": "C00009999"},
                {
                    "customer_id": "NEW-77",
                    "features": {
                        "frequency": 0.0,
                        "recency": 0.0,
                        "T": 12.0,
                        "monetary_value": 0.0,
                        "days_since_last_purchase": 12.0,
                        "spend_90d": 35.0,
                        "gap_std": None,
                        "eco_spend_share": 1.0,
                    },
                },
            ]
        },
        response={
            "predictions": [
                {
                    "customer_id": "C00001234",
                    "predicted_clv": 58.1,
                    "predicted_clv_lower": 0.0,
                    "predicted_clv_upper": 149.7,
                    "churn_probability": 0.44,
                    "segment": "high-value eco loyalists",
                    "model_version": "7",
                    "horizon_days": 90,
                    "as_of": "2025-12-31T23:59:59.999999",
                    "source": "stored",
                },
                {
                    "customer_id": "NEW-77",
                    "predicted_clv": 22.4,
                    "predicted_clv_lower": 0.0,
                    "predicted_clv_upper": 71.0,
                    "churn_probability": 0.63,
                    "segment": None,
                    "model_version": "7",
                    "horizon_days": 90,
                    "as_of": "2026-01-15T09:30:12.345678Z",
                    "source": "scored",
                },
            ],
            "not_found": ["C00009999"],
        },
        note=(
            "Known customers get their stored scores, customers with `features` are scored now "
            "(all of them in one model call); a known customer without stored scores is listed "
            "in `not_found` instead of failing the request. " + _FEATURES_NOTE
        ),
    ),
    ("get", "/segments/active"): Example(
        response={
            "version": 3,
            "method": "both",
            "n_customers": 98211,
            "activated_at": "2026-01-12T06:31:05Z",
            "segments": [
                {
                    "name": "high-value eco loyalists",
                    "description": "High predicted value, low churn risk, eco share well above "
                    "average.",
                    "size": 8123,
                    "profile": {
                        "predicted_clv": 412.5,
                        "churn_probability": 0.12,
                        "eco_spend_share": 0.61,
                    },
                },
                {
                    "name": "at-risk big spenders",
                    "description": None,
                    "size": 5340,
                    "profile": {
                        "predicted_clv": 208.0,
                        "churn_probability": 0.58,
                        "eco_spend_share": 0.09,
                    },
                },
            ],
        },
        note="Shortened to two segments and three profile values.",
    ),
    ("get", "/segments/{name}/customers"): Example(
        path_params={"name": "high-value eco loyalists"},
        query={"limit": "2", "after": "C00001200"},
        response={
            "segment": "high-value eco loyalists",
            "customers": [
                {"customer_id": "C00001234", "predicted_clv": 612.3, "churn_probability": 0.08},
                {"customer_id": "C00001301", "predicted_clv": 388.9, "churn_probability": None},
            ],
            "next": "C00001301",
        },
        note=(
            "Customers come in customer-id order; pass `next` as `after` for the following page "
            "(`next` is null on the last page). `limit` defaults to `CLV_API_PAGE_SIZE` and is "
            "capped at `CLV_API_MAX_PAGE_SIZE`."
        ),
    ),
    ("get", "/customers/{customer_id}"): Example(
        path_params={"customer_id": "C00001234"},
        response={
            "customer_id": "C00001234",
            "scores": {
                "predicted_clv": 58.1,
                "predicted_clv_lower": 0.0,
                "predicted_clv_upper": 149.7,
                "churn_probability": 0.44,
                "days_since_last_purchase": 130.0,
                "as_of": "2025-12-31T23:59:59.999999",
                "horizon_days": 90,
                "model_version": "7",
            },
            "segment": "high-value eco loyalists",
            "history": [
                {
                    "version": 2,
                    "segment": "steady regulars",
                    "valid_from": "2025-10-06T06:30:44Z",
                    "valid_to": "2026-01-12T06:31:05Z",
                },
                {
                    "version": 3,
                    "segment": "high-value eco loyalists",
                    "valid_from": "2026-01-12T06:31:05Z",
                    "valid_to": None,
                },
            ],
        },
        note=(
            "`scores` is the customer's row of the latest scoring run, shortened here (null when "
            "that run did not score it); `history` holds one spell per activated segmentation "
            "version."
        ),
    ),
    ("get", "/campaigns"): Example(
        response=[
            {
                "campaign_id": "spring-eco-2026",
                "name": "Spring eco range",
                "status": "sent",
                "planned_at": "2026-03-02T08:00:11Z",
                "n_targeted": 12000,
                "n_holdout": 1333,
                "total_cost": 1440.0,
                "summary": None,
                "outbox": None,
                "latest_analysis": None,
            }
        ],
        note=(
            "The list leaves `summary`, `outbox` and `latest_analysis` null: ask for one "
            "campaign to get them."
        ),
    ),
    ("get", "/campaigns/{campaign_id}"): Example(
        path_params={"campaign_id": "spring-eco-2026"},
        response={
            "campaign_id": "spring-eco-2026",
            "name": "Spring eco range",
            "status": "sent",
            "planned_at": "2026-03-02T08:00:11Z",
            "n_targeted": 12000,
            "n_holdout": 1333,
            "total_cost": 1440.0,
            "summary": {
                "audience": 40210,
                "eligible": 31877,
                "chosen": 13333,
                "groups": {"discount": 6000, "eco-story": 6000, "holdout": 1333},
                "channels": {"email": 10450, "sms": 1550},
                "total_cost": 1440.0,
                "budget": 1500.0,
                "expected_incremental_value": 5230.0,
            },
            "outbox": {"pending": 0, "sending": 0, "sent": 11987, "failed": 13, "dry_run": 0},
            "latest_analysis": {
                "campaign_id": "spring-eco-2026",
                "metric": "revenue",
                "cost": 1440.0,
                "incremental_revenue": {"estimate": 4810.5, "ci_low": 2210.0, "ci_high": 7411.0},
                "roi": {"estimate": 2.34, "ci_low": 0.53, "ci_high": 4.15},
                "winner": "eco-story",
                "analysed_at": "2026-04-01T09:00:40+00:00",
            },
        },
        note=(
            "`summary` (the plan's) and `latest_analysis` (`clv campaign analyze`'s result) are "
            "shortened; `outbox` counts the campaign's messages in each send status."
        ),
    ),
}


def openapi_schema() -> dict[str, Any]:
    """The API's OpenAPI schema, built without a model, a registry or a database.

    Returns
    -------
    dict
        ``create_app(...).openapi()`` of an app whose served state is empty and never loaded.
    """
    from pydantic import SecretStr

    from clv.api.app import create_app

    idle = cast("Serving", SimpleNamespace(state=None, last_error=None, store=None))
    app = create_app(ApiSettings(keys=[SecretStr("docs")]), serving=idle, start=False)
    return app.openapi()


def operations(schema: Mapping[str, Any]) -> list[tuple[str, str]]:
    """Every (method, path) of the schema, in the schema's order.

    Parameters
    ----------
    schema : mapping
        An OpenAPI document.

    Returns
    -------
    list of (str, str)
        Lower-case method and path template, e.g. ``("post", "/predict/clv")``.
    """
    return [
        (method, path)
        for path, item in schema.get("paths", {}).items()
        for method in _METHODS
        if method in item
    ]


def example_url(path: str, example: Example) -> str:
    """The URL an example calls: the path's placeholders filled in, the query appended.

    Parameters
    ----------
    path : str
        A path template of the schema, e.g. ``/segments/{name}/customers``.
    example : Example
        Its example.

    Returns
    -------
    str
        ``BASE_URL`` plus the filled-in, percent-encoded path and query.

    Raises
    ------
    ValueError
        When the example's path values do not match the template's placeholders.
    """
    wanted = set(re.findall(r"{([^}]+)}", path))
    if wanted != set(example.path_params):
        raise ValueError(
            f"the example of {path} gives path values for {sorted(example.path_params)}, "
            f"the path has {sorted(wanted)}"
        )
    filled = re.sub(r"{([^}]+)}", lambda m: quote(example.path_params[m[1]], safe=""), path)
    query = f"?{urlencode(example.query, quote_via=quote)}" if example.query else ""
    return f"{BASE_URL}{filled}{query}"


def render_api_markdown(schema: Mapping[str, Any]) -> str:
    """The API reference in Markdown, from the OpenAPI schema.

    Parameters
    ----------
    schema : mapping
        The app's OpenAPI document (:func:`openapi_schema`).

    Returns
    -------
    str
        ``docs/api.md``: endpoints (authentication, parameters, request body, responses, a
        worked ``curl`` example each), schemas, errors, settings and how a new champion is
        picked up. The same schema gives the same text.

    Raises
    ------
    ValueError
        When an endpoint of the schema has no example in :data:`EXAMPLES`, an example names an
        endpoint the schema does not have, or a setting has no description.
    """
    ops = operations(schema)
    missing = [f"{m.upper()} {p}" for m, p in ops if (m, p) not in EXAMPLES]
    stale = [f"{m.upper()} {p}" for m, p in EXAMPLES if (m, p) not in set(ops)]
    if missing or stale:
        raise ValueError(
            "clv.api.docs.EXAMPLES is out of step with the schema: "
            + "; ".join(
                part
                for part in (
                    f"no example for {', '.join(missing)}" if missing else "",
                    f"examples of endpoints that do not exist: {', '.join(stale)}" if stale else "",
                )
                if part
            )
        )
    components: dict[str, Any] = schema.get("components", {}).get("schemas", {})
    info = schema.get("info", {})
    out: list[str] = [
        f"# {info.get('title', 'API')} {info.get('version', '')}".rstrip(),
        "",
        "<!-- Generated by `clv/api/docs.py` from the app's OpenAPI schema: do not edit by hand.",
        f"     Regenerate with `{REGENERATE}`; tests/unit/test_api_docs.py checks it. -->",
        "",
    ]
    if info.get("summary"):
        out += [str(info["summary"]), ""]
    out += _intro()
    out += _contents(schema, ops)
    out += ["## Endpoints", ""]
    for method, path in ops:
        out += _operation(method, path, schema["paths"][path][method], components)
    out += _schemas(components)
    out += _errors()
    out += _settings()
    out += _reloading()
    return "\n".join(out).rstrip("\n") + "\n"


def _intro() -> list[str]:
    return [
        "`clv serve` runs this API with uvicorn (default `127.0.0.1:8000`; in Kubernetes the "
        "Service `http://clv-api.clv.svc`). Every endpoint except "
        + " and ".join(f"`{p}`" for p in sorted(OPEN_PATHS))
        + " needs an API key in the `X-API-Key` header: one of the comma-separated keys in "
        "`CLV_API_KEYS` (several keys let you rotate them). The examples read it from "
        "`CLV_API_KEY`:",
        "",
        "```bash",
        "export CLV_API_KEY=...   # one of the server's CLV_API_KEYS",
        "```",
        "",
        "Requests and answers are JSON. Request bodies are strict: an unknown field, a string "
        "or boolean where a number belongs, NaN or an infinity is a 422 that names it.",
        "",
    ]


def _contents(schema: Mapping[str, Any], ops: list[tuple[str, str]]) -> list[str]:
    lines = ["| method | path | what | API key |", "|---|---|---|---|"]
    for method, path in ops:
        op = schema["paths"][path][method]
        lead = _paragraphs(op.get("description", ""))[:1] or [op.get("summary", "")]
        lines.append(
            f"| `{method.upper()}` | [`{path}`](#{_anchor(method, path)}) | "
            f"{_cell(lead[0])} | {'no' if path in OPEN_PATHS else 'yes'} |"
        )
    return [*lines, ""]


def _anchor(method: str, path: str) -> str:
    """GitHub's anchor of the heading ``### `METHOD path```."""
    text = f"{method} {path}".lower()
    return re.sub(r"[^a-z0-9 _-]", "", text).replace(" ", "-")


def _operation(
    method: str, path: str, op: Mapping[str, Any], components: Mapping[str, Any]
) -> list[str]:
    example = EXAMPLES[(method, path)]
    paragraphs = _paragraphs(op.get("description", ""))
    out = [f"### `{method.upper()} {path}`", ""]
    for paragraph in paragraphs or [str(op.get("summary", ""))]:
        out += [paragraph, ""]
    auth = (
        "none (open, for probes and scrapers)"
        if path in OPEN_PATHS
        else "`X-API-Key` header (401 without a valid key)"
    )
    out += [
        f"- Authentication: {auth}",
        f"- Summary: {op.get('summary', '')}; operation id `{op.get('operationId', '')}`; "
        f"tag `{', '.join(op.get('tags', []))}`",
        "",
    ]
    out += _parameters(op.get("parameters", []))
    out += _request_body(op.get("requestBody"), components)
    out += _responses(op.get("responses", {}))
    out += _example(method, path, example)
    return out


def _parameters(parameters: list[Mapping[str, Any]]) -> list[str]:
    if not parameters:
        return ["Parameters: none.", ""]
    lines = [
        "Parameters:",
        "",
        "| name | in | type | required | constraints | description |",
        "|---|---|---|---|---|---|",
    ]
    for p in parameters:
        schema = p.get("schema", {})
        lines.append(
            f"| `{p['name']}` | {p['in']} | {_type(schema)} | "
            f"{'yes' if p.get('required') else 'no'} | {_cell(_constraints(schema)) or '–'} | "
            f"{_cell(_md(p.get('description') or schema.get('description') or '')) or '–'} |"
        )
    return [*lines, ""]


def _request_body(body: Mapping[str, Any] | None, components: Mapping[str, Any]) -> list[str]:
    if not body:
        return ["Request body: none.", ""]
    lines: list[str] = []
    for media, content in body.get("content", {}).items():
        schema = content.get("schema", {})
        name = _ref_name(schema)
        required = "required" if body.get("required") else "optional"
        lines += [f"Request body ({required}, `{media}`): {_type(schema)}", ""]
        if name is not None and name in components:
            lines += _fields(components[name])
    return lines


def _responses(responses: Mapping[str, Any]) -> list[str]:
    lines = ["Responses:", "", "| status | meaning | body |", "|---|---|---|"]
    for status in sorted(responses, key=_status_key):
        response = responses[status]
        bodies = [
            _body_type(content.get("schema", {}), str(media))
            for media, content in response.get("content", {}).items()
        ]
        lines.append(
            f"| {status} | {_cell(_md(response.get('description', '')))} | "
            f"{', '.join(bodies) or '–'} |"
        )
    return [*lines, ""]


def _status_key(status: str) -> tuple[int, str]:
    return (int(status), "") if status.isdigit() else (1000, status)


def _body_type(schema: Mapping[str, Any], media: str) -> str:
    name = _ref_name(schema)
    if name in _FASTAPI_COMPONENTS:
        return '[`{"detail": [...]}`](#errors)'
    if schema.get("type") == "object" and set(schema.get("properties", {})) == {"detail"}:
        return '[`{"detail": ...}`](#errors)'
    shown = _type(schema)
    return shown if media == "application/json" else f"{shown} (`{media}`)"


def _example(method: str, path: str, example: Example) -> list[str]:
    parts = ["curl -s"]
    if method != "get" and example.body is None:
        parts.append(f"-X {method.upper()}")
    if path not in OPEN_PATHS:
        parts.append('-H "X-API-Key: $CLV_API_KEY"')
    if example.body is not None:
        parts.append('-H "Content-Type: application/json"')
        parts.append(f"-d '{json.dumps(example.body, ensure_ascii=False)}'")
    parts.append(f'"{example_url(path, example)}"')
    one_line = " ".join(parts)
    command = one_line if len(one_line) <= 96 else " \\\n    ".join(parts)
    if example.text:
        answer = ["```text", str(example.response), "```"]
    else:
        answer = ["```json", json.dumps(example.response, indent=2, ensure_ascii=False), "```"]
    out = [
        "Example:",
        "",
        "```bash",
        command,
        "```",
        "",
        f"Answer ({example.status}):",
        "",
        *answer,
        "",
    ]
    if example.note:
        out += [example.note, ""]
    return out


def _schemas(components: Mapping[str, Any]) -> list[str]:
    out = [
        "## Schemas",
        "",
        "Request and response bodies (`clv/api/schemas.py`). Request bodies refuse unknown "
        "fields; a field marked required must be present, and may still be null when its type "
        "says so.",
        "",
    ]
    for name in sorted(components):
        if name in _FASTAPI_COMPONENTS:
            continue
        component = components[name]
        out += [f"### {name}", ""]
        if component.get("description"):
            out += [_md(str(component["description"])), ""]
        out += _fields(component)
    return out


def _fields(component: Mapping[str, Any]) -> list[str]:
    properties: Mapping[str, Any] = component.get("properties", {})
    required = set(component.get("required", []))
    lines = [
        "| field | type | required | constraints | description |",
        "|---|---|---|---|---|",
    ]
    for name, prop in properties.items():
        constraints = _cell(_constraints(prop)) or "–"
        description = _cell(_md(prop.get("description", ""))) or "–"
        lines.append(
            f"| `{name}` | {_type(prop)} | {'yes' if name in required else 'no'} | "
            f"{constraints} | {description} |"
        )
    extra = component.get("additionalProperties")
    if extra is False:
        lines.append("")
        lines.append("Other fields are refused (422).")
    return [*lines, ""]


def _ref_name(schema: Mapping[str, Any]) -> str | None:
    ref = schema.get("$ref")
    return None if ref is None else str(ref).rsplit("/", 1)[-1]


def _type(schema: Mapping[str, Any]) -> str:
    """A schema's type in words: ``integer or null``, ``array of [Prediction](#prediction)``."""
    name = _ref_name(schema)
    if name is not None:
        return f"[{name}](#{name.lower()})"
    if "anyOf" in schema:
        return " or ".join(_type(s) for s in schema["anyOf"])
    kind = schema.get("type")
    if kind == "array":
        return f"array of {_type(schema.get('items', {}))}"
    if kind == "object":
        values = schema.get("additionalProperties")
        if isinstance(values, Mapping) and values:
            return f"object {{name: {_type(values)}}}"
        return "object"
    if kind is None:
        return "any"
    if "format" in schema:
        return f"{kind} ({schema['format']})"
    return str(kind)


def _constraints(schema: Mapping[str, Any]) -> str:
    """What a value must satisfy beyond its type, in words."""
    parts: list[str] = []
    for branch in schema.get("anyOf", []):
        inner = _constraints(branch)
        if inner:
            parts.append(inner)
    low, high = schema.get("minLength"), schema.get("maxLength")
    if low is not None or high is not None:
        parts.append(_range(low, high, "characters"))
    if "pattern" in schema:
        pattern = str(schema["pattern"])
        if pattern == r"^[^\x00-\x1f\x7f]+$":
            parts.append("no control characters")
        else:
            parts.append(f"matches `{pattern}`")
    bounds = [
        f"{word} {_number(schema[key])}"
        for key, word in (
            ("minimum", "≥"),
            ("exclusiveMinimum", ">"),
            ("maximum", "≤"),
            ("exclusiveMaximum", "<"),
        )
        if key in schema
    ]
    if bounds:
        parts.append(", ".join(bounds))
    low, high = schema.get("minItems"), schema.get("maxItems")
    if low is not None or high is not None:
        parts.append(_range(low, high, "items"))
    low, high = schema.get("minProperties"), schema.get("maxProperties")
    if low is not None or high is not None:
        parts.append(_range(low, high, "entries"))
    names = schema.get("propertyNames")
    if isinstance(names, Mapping) and _constraints(names):
        parts.append(f"names: {_constraints(names)}")
    values = schema.get("additionalProperties")
    if isinstance(values, Mapping) and values:
        inner = _constraints(values)
        nullable = any(s.get("type") == "null" for s in values.get("anyOf", []))
        if inner or nullable:
            said = f"values: {inner}" if inner else "values"
            parts.append(f"{said}; null = missing value" if nullable else said)
    return "; ".join(parts)


def _range(low: Any, high: Any, unit: str) -> str:
    if low is not None and high is not None:
        return f"{_number(low)}–{_number(high)} {unit}"
    value, word = (low, "at least") if low is not None else (high, "at most")
    return f"{word} {_number(value)} {unit.removesuffix('s') if value == 1 else unit}"


def _number(value: Any) -> str:
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return f"{value:,}" if isinstance(value, int) else str(value)


def _md(text: str) -> str:
    """reStructuredText literals (````x````) as Markdown code (`` `x` ``)."""
    return text.replace("``", "`")


def _cell(text: str) -> str:
    """Text fit for one table cell: one line, pipes escaped."""
    return " ".join(text.split()).replace("|", "\\|")


def _paragraphs(text: str) -> list[str]:
    return [" ".join(p.split()) for p in _md(text).split("\n\n") if p.strip()]


def _errors() -> list[str]:
    return [
        "## Errors",
        "",
        "Every error answer is JSON with one key, `detail`: a sentence, or for a 422 a list of "
        'problems, each with `loc` (where: `["body", "customers", 2]`, '
        '`["query", "limit"]`), `msg` and, for schema violations, `type`.',
        "",
        "```json",
        '{"detail": "a valid API key is needed in the X-API-Key header"}',
        '{"detail": [{"loc": ["body", "features"], "msg": "missing features: gap_std, '
        'spend_90d"}]}',
        '{"detail": [{"loc": ["body", "customer_id"], "msg": "String should have at most 128 '
        'characters", "type": "string_too_long"}]}',
        "```",
        "",
        "| status | meaning |",
        "|---|---|",
        "| 400 | `Content-Length` is not a number. |",
        "| 401 | No `X-API-Key` header or not one of `CLV_API_KEYS` (with "
        "`WWW-Authenticate: APIKey`); checked before the body is read. |",
        "| 404 | No such customer, segment or campaign, no stored scores for the customer "
        "(`POST /predict/clv` without `features`), or no active segmentation version. "
        "`detail` names what is missing. |",
        "| 413 | The body is over `CLV_API_MAX_BODY_BYTES`: refused from `Content-Length` before "
        "it is read, or as soon as a body without one passes the limit. |",
        "| 422 | The request breaks the schema (a field, a type, a constraint), the features do "
        "not match the champion's (missing or unknown names), or a batch is over "
        "`CLV_API_MAX_BATCH`. |",
        "| 503 | Not ready: the service is still loading its first state (any endpoint reading "
        "it), no champion is promoted yet (predictions from `features`), or `GET /ready` says "
        "why in `reason`. Retry later. |",
        '| 500 | An unexpected failure: `{"detail": "internal error"}`; the traceback is in '
        "the server's log. |",
        "",
    ]


def _settings() -> list[str]:
    described = _attribute_docs(ApiSettings.__doc__ or "")
    prefix = str(ApiSettings.model_config.get("env_prefix", ""))
    lines = [
        "## Settings",
        "",
        "Read from the environment once, when the server starts (`clv/api/settings.py`); a "
        "bad value stops `clv serve` with a message naming the variable. The platform's "
        "settings (`CLV_DATABASE_URL`, `MLFLOW_TRACKING_URI`, ...) say where the scores, "
        "segments, campaigns and models are read from.",
        "",
        "| variable | type | default | constraints | meaning |",
        "|---|---|---|---|---|",
    ]
    rows: dict[str, list[str]] = {}  # one row per docstring entry (`a, b : int` is one)
    for name in ApiSettings.model_fields:
        if name not in described:
            raise ValueError(
                f"ApiSettings.{name} has no description in the class docstring's Attributes"
            )
        rows.setdefault(described[name][1], []).append(name)
    for text, names in rows.items():
        fields = [ApiSettings.model_fields[n] for n in names]
        variables = [f"{prefix}{n}".upper() for n in names]
        for variable in variables:
            text = re.sub(rf"^``{variable}``:\s*", "", text)
        text = text[:1].upper() + text[1:]
        defaults = [_default(f.get_default(call_default_factory=True)) for f in fields]
        bounds = [_bounds(f.metadata) or "–" for f in fields]
        shown = ", ".join(bounds) if any(b != "–" for b in bounds) else "–"
        lines.append(
            f"| {', '.join(f'`{v}`' for v in variables)} | {_cell(described[names[0]][0])} | "
            f"{', '.join(defaults)} | {_cell(shown)} | {_cell(_md(text))} |"
        )
    return [*lines, ""]


def _default(value: Any) -> str:
    if value is None or value == [] or value == "":
        return "(empty)"
    if isinstance(value, float) and value.is_integer():
        return f"`{int(value)}`"
    return f"`{value}`"


def _bounds(metadata: list[Any]) -> str:
    words = {"ge": "≥", "gt": ">", "le": "≤", "lt": "<"}
    parts = [
        f"{sign} {_number(getattr(item, key))}"
        for item in metadata
        for key, sign in words.items()
        if getattr(item, key, None) is not None
    ]
    return ", ".join(parts)


def _attribute_docs(doc: str) -> dict[str, tuple[str, str]]:
    """Name → (type, description) from a numpy docstring's Attributes section."""
    text = inspect.cleandoc(doc)
    found = re.search(r"^Attributes\n-+\n(.*?)(?:\n\S[^\n]*\n-+\n|\Z)", text, re.M | re.S)
    if found is None:
        return {}
    entries: dict[str, tuple[str, str]] = {}
    names: list[str] = []
    kind = ""
    body: list[str] = []

    def close() -> None:
        for name in names:
            entries[name] = (kind, " ".join(body))

    for line in found[1].splitlines():
        if line and not line.startswith(" "):
            close()
            head, _, kind = line.partition(" : ")
            names = [n.strip() for n in head.split(",")]
            body = []
        elif line.strip():
            body.append(line.strip())
    close()
    return entries


def _reloading() -> list[str]:
    fields = ApiSettings.model_fields
    poll = fields["poll_seconds"].get_default(call_default_factory=True)
    alias = fields["alias"].get_default(call_default_factory=True)
    return [
        "## How a new champion, new scores and a new segmentation are picked up",
        "",
        f"Each server process checks, every `CLV_API_POLL_SECONDS` (default {_number(poll)} "
        "s), whether the registry alias it serves (`CLV_API_ALIAS`, default "
        f"`{alias}`) points at another version of `clv-spend` or `clv-churn`, whether a newer "
        "scoring run was stored in the platform database, and whether another segmentation "
        "version was activated. When one of them changed it loads a complete new state beside "
        "the old one (the models are downloaded and their SHA-256 checked, the scores and "
        "segments read whole) and swaps it in with one assignment: a request sees the old "
        "state or the new one, never a mix. Nothing restarts.",
        "",
        "So after `clv promote` (or a scoring or segmentation run), every process serves the "
        "new version within one poll interval; `GET /ready` and the "
        "`clv_api_model_version_info` metric show which version each one serves. Rolling back "
        "is promoting the previous version: it is picked up the same way. A reload that fails "
        "(registry or database unreachable, a file whose checksum does not match) keeps the "
        "old state in service and is reported in `reason` of `GET /ready`; the next poll tries "
        "again.",
        "",
    ]


def main() -> None:
    """Print the API reference (UTF-8) to standard output.

    ``python -m clv.api.docs > docs/api.md`` regenerates ``docs/api.md``.
    """
    text = render_api_markdown(openapi_schema())
    sys.stdout.buffer.write(text.encode("utf-8"))
    sys.stdout.flush()


if __name__ == "__main__":
    main()
