"""The serving API on a real champion: behaviour through httpx, and the OpenAPI schema fuzzed.

One world: the session's ``cli_champion`` (``tests/conftest.py``; shared with
``tests/e2e/test_image.py``): a real ``mlflow server``, generated data, a LightGBM champion trained,
promoted and used to score through the CLI (as a team would), and an approved segmentation. The
app runs in-process through Starlette's TestClient (httpx), with its lifespan: it loads the
champion, the scores and the segments, and polls them every second.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from fastapi.testclient import TestClient

from clv.api.app import create_app
from clv.api.settings import ApiSettings
from tests.conftest import _run_clv

KEY = "test-key-1"
OTHER_KEY = "second-key"
HEADERS = {"X-API-Key": KEY}


@pytest.fixture(scope="module")
def world(cli_champion: dict[str, Any]) -> dict[str, Any]:
    """A champion in a real registry, stored scores and an active segmentation (the session's)."""
    assert cli_champion["horizon_days"] == 90  # what the tests below ask and check
    return cli_champion


@pytest.fixture(scope="module")
def client(world: dict[str, Any]) -> Iterator[TestClient]:
    from clv.settings import get_settings

    patch = pytest.MonkeyPatch()
    for key in ("CLV_HOME", "MLFLOW_TRACKING_URI", "MLFLOW_HTTP_REQUEST_MAX_RETRIES", "NO_PROXY"):
        patch.setenv(key, world["env"][key])
    get_settings.cache_clear()
    settings = ApiSettings(
        keys=f"{KEY},{OTHER_KEY}",  # type: ignore[arg-type]
        poll_seconds=1.0,
        max_body_bytes=4096,
        max_batch=50,
    )
    try:
        with TestClient(create_app(settings), raise_server_exceptions=False) as test_client:
            yield test_client
    finally:
        patch.undo()
        get_settings.cache_clear()


def _scores(world: dict[str, Any]) -> pd.DataFrame:
    return pd.read_parquet(world["scores"]).set_index("customer_id")


def test_health_and_metrics_answer_without_a_key_and_everything_else_needs_one(
    client: TestClient,
) -> None:
    assert client.get("/health").json() == {"status": "ok"}
    assert client.get("/metrics").status_code == 200
    for method, path in [
        ("GET", "/ready"),
        ("GET", "/segments/active"),
        ("GET", "/campaigns"),
        ("GET", "/openapi.json"),
        ("POST", "/predict/clv"),
    ]:
        assert client.request(method, path).status_code == 401, path
        wrong = client.request(method, path, headers={"X-API-Key": "nope"})
        assert wrong.status_code == 401 and "X-API-Key" in wrong.json()["detail"]
    assert client.get("/ready", headers={"X-API-Key": OTHER_KEY}).status_code == 200


def test_ready_names_the_champion_and_the_features_it_reads(client: TestClient) -> None:
    ready = client.get("/ready", headers=HEADERS).json()
    assert ready["status"] == "ready" and ready["model_version"] == "1"
    assert ready["churn_model_version"] == "1" and ready["segment_version"] == 1
    assert "frequency" in ready["features"] or len(ready["features"]) > 10


def test_a_known_customer_gets_its_stored_scores_and_segment(
    client: TestClient, world: dict[str, Any]
) -> None:
    from clv.store import Store

    scores = _scores(world)
    customer = scores.index[3]
    body = client.post("/predict/clv", json={"customer_id": customer}, headers=HEADERS).json()
    assert body["source"] == "stored" and body["customer_id"] == customer
    row = scores.loc[customer]
    assert body["predicted_clv"] == pytest.approx(row["predicted_clv"])
    # The interval is of realised spend (zero-inflated): it need not contain the mean.
    assert 0 <= body["predicted_clv_lower"] <= body["predicted_clv_upper"]
    assert body["churn_probability"] == pytest.approx(row["churn_probability"])
    assert body["model_version"] == "1" and body["horizon_days"] == 90
    store = Store(f"sqlite:///{Path(world['env']['CLV_HOME']) / 'clv.db'}")
    assigned = store.assignments(1).set_index("customer_id")["name"]
    assert body["segment"] == assigned[customer]
    missing = client.post("/predict/clv", json={"customer_id": "nobody"}, headers=HEADERS)
    assert missing.status_code == 404 and "features" in missing.json()["detail"]


def _features(world: dict[str, Any], customer: str) -> dict[str, float | None]:
    from clv.data.io import read_table
    from clv.training.scoring import customer_features
    from clv.training.windows import end_of_day

    tx = read_table(str(world["data"] / "transactions.parquet"), "transactions")
    features = customer_features(
        tx, as_of=end_of_day(pd.Timestamp(tx["timestamp"].max())), horizon_days=90
    )
    row = features.loc[customer]
    # JSON has no NaN: a missing feature value travels as null.
    return {str(k): None if pd.isna(v) else float(v) for k, v in row.items()}


def test_features_scored_on_the_fly_give_what_batch_scoring_gave(
    client: TestClient, world: dict[str, Any]
) -> None:
    scores = _scores(world)
    customer = scores.index[7]
    features = _features(world, customer)
    ready = client.get("/ready", headers=HEADERS).json()
    features = {name: features[name] for name in ready["features"]}
    body = client.post(
        "/predict/clv", json={"customer_id": customer, "features": features}, headers=HEADERS
    ).json()
    assert body["source"] == "scored"
    assert body["predicted_clv"] == pytest.approx(scores.loc[customer, "predicted_clv"], rel=1e-6)
    assert body["churn_probability"] == pytest.approx(
        scores.loc[customer, "churn_probability"], rel=1e-6
    )


def test_bad_bodies_are_422_naming_the_field_and_never_a_500(
    client: TestClient, world: dict[str, Any]
) -> None:
    ready = client.get("/ready", headers=HEADERS).json()
    features = dict.fromkeys(ready["features"], 1.0)
    one = ready["features"][0]
    cases: list[tuple[Any, str]] = [
        ({"customer_id": "c", "features": {k: v for k, v in features.items() if k != one}}, one),
        ({"customer_id": "c", "features": {**features, "shoe_size": 1.0}}, "shoe_size"),
        ({"customer_id": "c", "surprise": 1}, "surprise"),
        ({"customer_id": "c", "features": {**features, one: "12"}}, one),
        ({"customer_id": "c", "features": {**features, one: True}}, one),
        ({"customer_id": 12}, "customer_id"),
        ({"customer_id": ""}, "customer_id"),
        ({}, "customer_id"),
    ]
    for payload, field in cases:
        response = client.post("/predict/clv", json=payload, headers=HEADERS)
        assert response.status_code == 422, (payload, response.text)
        assert field in response.text, (field, response.text)
    for constant in ("NaN", "Infinity", "-Infinity"):
        raw = json.dumps({"customer_id": "c", "features": features}).replace(
            f'"{one}": 1.0', f'"{one}": {constant}'
        )
        response = client.post(
            "/predict/clv", content=raw, headers={**HEADERS, "Content-Type": "application/json"}
        )
        assert response.status_code == 422 and one in response.text, response.text
    broken = client.post(
        "/predict/clv",
        content=b"{not json",
        headers={**HEADERS, "Content-Type": "application/json"},
    )
    assert broken.status_code == 422 and "Traceback" not in broken.text


def test_a_body_over_the_limit_is_413_before_it_is_parsed(client: TestClient) -> None:
    big = json.dumps({"customer_id": "c", "features": {f"f{i}": 1.0 for i in range(400)}})
    assert len(big) > 4096
    declared = client.post(
        "/predict/clv", content=big, headers={**HEADERS, "Content-Type": "application/json"}
    )
    assert declared.status_code == 413 and "4,096 bytes" in declared.json()["detail"]

    def chunks() -> Iterator[bytes]:  # no Content-Length: counted as it arrives
        for start in range(0, len(big), 1000):
            yield big[start : start + 1000].encode()

    streamed = client.post(
        "/predict/clv", content=chunks(), headers={**HEADERS, "Content-Type": "application/json"}
    )
    assert streamed.status_code == 413


def test_a_batch_answers_in_order_and_lists_the_unknown(
    client: TestClient, world: dict[str, Any]
) -> None:
    scores = _scores(world)
    known = list(scores.index[:3])
    ready = client.get("/ready", headers=HEADERS).json()
    features = _features(world, known[1])
    request = {
        "customers": [
            {"customer_id": known[0]},
            {"customer_id": "ghost"},
            {
                "customer_id": known[1],
                "features": {n: features[n] for n in ready["features"]},
            },
            {"customer_id": known[2]},
        ]
    }
    body = client.post("/predict/clv/batch", json=request, headers=HEADERS).json()
    assert [p["customer_id"] for p in body["predictions"]] == known
    assert [p["source"] for p in body["predictions"]] == ["stored", "scored", "stored"]
    assert body["not_found"] == ["ghost"]
    too_many = {"customers": [{"customer_id": f"c{i}"} for i in range(51)]}
    response = client.post("/predict/clv/batch", json=too_many, headers=HEADERS)
    assert response.status_code in (413, 422) and response.status_code != 500


def test_segments_are_listed_and_paged_through_every_member_once(
    client: TestClient, world: dict[str, Any]
) -> None:
    active = client.get("/segments/active", headers=HEADERS).json()
    assert active["version"] == 1
    sizes = {s["name"]: s["size"] for s in active["segments"]}
    assert sum(sizes.values()) == active["n_customers"]
    name = max(sizes, key=lambda n: sizes[n])
    seen: list[str] = []
    after = None
    pages = 0
    while True:
        params: dict[str, Any] = {"limit": 37}
        if after:
            params["after"] = after
        page = client.get(f"/segments/{name}/customers", params=params, headers=HEADERS).json()
        seen += [c["customer_id"] for c in page["customers"]]
        pages += 1
        after = page["next"]
        if after is None:
            break
    assert len(seen) == len(set(seen)) == sizes[name]
    assert pages == -(-sizes[name] // 37)
    unknown = client.get("/segments/no-such/customers", headers=HEADERS)
    assert unknown.status_code == 404 and name in unknown.json()["detail"]


def test_a_customer_has_scores_segment_and_history_and_an_unknown_one_is_404(
    client: TestClient, world: dict[str, Any]
) -> None:
    customer = _scores(world).index[0]
    body = client.get(f"/customers/{customer}", headers=HEADERS).json()
    assert body["scores"]["predicted_clv"] > 0 or body["scores"]["predicted_clv"] == 0
    assert body["segment"] == body["history"][-1]["segment"]
    assert body["history"][-1]["valid_to"] is None
    assert client.get("/customers/nobody", headers=HEADERS).status_code == 404
    assert client.get("/campaigns", headers=HEADERS).json() == []
    assert client.get("/campaigns/none-1234", headers=HEADERS).status_code == 404


def test_metrics_count_requests_per_route_and_show_the_model_version(client: TestClient) -> None:
    client.get("/ready", headers=HEADERS)
    text = client.get("/metrics").text
    assert 'clv_api_requests_total{method="GET",route="/ready",status="200"}' in text
    assert 'clv_api_model_version_info{model="clv-spend",version="1"} 1.0' in text
    assert "clv_api_request_duration_seconds_bucket" in text
    assert "clv_api_predicted_clv_bucket" in text


def test_errors_never_leak_a_traceback(client: TestClient) -> None:
    response = client.get("/segments/%00/customers", headers=HEADERS)
    assert response.status_code in (404, 422) and "Traceback" not in response.text


def test_openapi_schema_holds_for_generated_requests(
    client: TestClient,
) -> None:
    import schemathesis
    from hypothesis import HealthCheck, given, settings
    from schemathesis.core import NotSet

    schema = schemathesis.openapi.from_dict(client.get("/openapi.json", headers=HEADERS).json())
    failures: list[str] = []

    def check(operation: Any) -> None:
        documented = set(operation.definition.raw.get("responses", {}))

        @settings(
            max_examples=25,
            deadline=None,
            suppress_health_check=list(HealthCheck),
            database=None,
        )
        @given(case=operation.as_strategy())
        def run(case: Any) -> None:
            body = {} if isinstance(case.body, NotSet) else {"json": case.body}
            query = None if isinstance(case.query, NotSet) else case.query
            response = client.request(
                case.method, case.formatted_path, params=query, headers=HEADERS, **body
            )
            where = f"{case.method} {case.formatted_path}"
            if response.status_code >= 500:
                failures.append(f"{where}: {response.status_code} {response.text[:200]}")
            if str(response.status_code) not in documented:
                failures.append(f"{where}: {response.status_code} is not documented")

        run()

    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 10
    for operation in operations:
        check(operation)
    assert failures == []


def test_a_champion_promoted_while_serving_is_served_within_the_poll_interval(
    client: TestClient, world: dict[str, Any]
) -> None:
    from mlflow import MlflowClient

    registry = MlflowClient(tracking_uri=world["mlflow"], registry_uri=world["mlflow"])
    copied = registry.copy_model_version("models:/clv-spend/1", "clv-spend")
    try:
        _run_clv(world["env"], "promote", "--model", "clv-spend", "--version", str(copied.version),
             "--yes", "--force", "--reason", "a new champion while serving")  # fmt: skip
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            version = client.get("/ready", headers=HEADERS).json().get("model_version")
            if version == str(copied.version):
                break
            time.sleep(0.2)
        assert version == str(copied.version)
        customer = _scores(world).index[1]
        features = _features(world, customer)
        ready = client.get("/ready", headers=HEADERS).json()
        body = client.post(
            "/predict/clv",
            json={"customer_id": customer, "features": {n: features[n] for n in ready["features"]}},
            headers=HEADERS,
        ).json()
        assert body["model_version"] == str(copied.version)
        assert np.isfinite(body["predicted_clv"])
    finally:
        # The registry is the session's (cli_champion): version 1 is the champion again.
        _run_clv(world["env"], "promote", "--model", "clv-spend", "--version", "1", "--yes",
             "--force", "--reason", "the session's champion again")  # fmt: skip
