"""The serving API (FastAPI): predictions, segments, customers, campaigns, health and metrics.

``create_app()`` builds the application from :class:`~clv.api.settings.ApiSettings` and the
platform database; ``clv serve`` runs it under uvicorn. What it serves — the champion models,
the latest scores and the active segmentation — is loaded whole at start-up and swapped at once
when it changes (:mod:`clv.api.state`), so a new champion is served within the poll interval
without a restart.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Annotated, Any

import numpy as np
import pandas as pd
from fastapi import FastAPI, HTTPException, Path, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response

from clv.api.metrics import ApiMetrics
from clv.api.middleware import ApiKeyMiddleware, BodyLimitMiddleware, MetricsMiddleware
from clv.api.schemas import (
    BatchRequest,
    BatchResponse,
    CampaignOut,
    CustomerOut,
    Health,
    Prediction,
    PredictRequest,
    SegmentCustomer,
    SegmentCustomers,
    SegmentOut,
    SegmentsOut,
    SegmentSpell,
)
from clv.api.settings import ApiSettings
from clv.api.state import Serving, ServingState

__all__ = ["create_app"]

logger = logging.getLogger(__name__)


class _Error(HTTPException):
    """An error answered as ``{"detail": ...}``."""


_DETAIL = {
    "content": {
        "application/json": {
            "schema": {
                "type": "object",
                "properties": {"detail": {}},
                "required": ["detail"],
            }
        }
    }
}
_AUTH: dict[int | str, dict[str, Any]] = {401: {"description": "No or a wrong API key", **_DETAIL}}
_BODY: dict[int | str, dict[str, Any]] = {
    413: {"description": "Request body over CLV_API_MAX_BODY_BYTES", **_DETAIL},
    400: {"description": "Content-Length is not a number", **_DETAIL},
}
_NOT_FOUND: dict[int | str, dict[str, Any]] = {404: {"description": "Not found", **_DETAIL}}
_NO_MODEL: dict[int | str, dict[str, Any]] = {
    503: {"description": "No champion model is loaded yet, or still loading", **_DETAIL}
}
_LOADING: dict[int | str, dict[str, Any]] = {
    503: {"description": "Still loading what is served", **_DETAIL}
}


def _serving(request: Request) -> ServingState:
    state: ServingState | None = request.app.state.serving.state
    if state is None:
        raise _Error(503, "the service is still loading; try again shortly")
    return state


def _stored(customer_id: str, state: ServingState) -> Prediction | None:
    row = state.score_row(customer_id)
    if row is None:
        return None
    as_of = row.get("as_of")
    return Prediction(
        customer_id=customer_id,
        predicted_clv=float(row["predicted_clv"]),
        predicted_clv_lower=_float(row.get("predicted_clv_lower")),
        predicted_clv_upper=_float(row.get("predicted_clv_upper")),
        churn_probability=_float(row.get("churn_probability")),
        segment=state.segment_of(customer_id),
        model_version=None if row.get("model_version") is None else str(row["model_version"]),
        horizon_days=None if row.get("horizon_days") is None else int(row["horizon_days"]),
        as_of=None if as_of is None else pd.Timestamp(as_of).to_pydatetime(),
        source="stored",
    )


def _value(value: float | None) -> float:
    return np.nan if value is None else float(value)


def _float(value: Any) -> float | None:
    return None if value is None else float(value)


def _scored(requests: list[PredictRequest], state: ServingState) -> list[Prediction]:
    """Score customers described by their features with the champion, in one call."""
    models = state.models
    if models is None:
        raise _Error(503, "no champion model is loaded: promote one with `clv promote`")
    columns = models.feature_columns
    expected = set(columns)
    problems = []
    for number, item in enumerate(requests):
        given = set(item.features or {})
        missing, unknown = sorted(expected - given), sorted(given - expected)
        where = ["body", "features"] if len(requests) == 1 else ["body", "customers", number]
        if missing:
            problems.append({"loc": where, "msg": f"missing features: {', '.join(missing)}"})
        if unknown:
            problems.append({"loc": where, "msg": f"unknown features: {', '.join(unknown)}"})
    if problems:
        raise _Error(422, problems)
    matrix = np.array(
        [[_value(item.features[c]) for c in columns] for item in requests],  # type: ignore[index]
        dtype="float64",
    )
    frame = pd.DataFrame(matrix, columns=columns, index=[r.customer_id for r in requests])
    out = models.predict(frame)
    now = datetime.now(UTC)
    predictions = []
    rows = _records(out)
    for item, row in zip(requests, rows, strict=True):
        churn = row.get("churn_probability")
        predictions.append(
            Prediction(
                customer_id=item.customer_id,
                predicted_clv=float(row["predicted_clv"]),
                predicted_clv_lower=float(row["predicted_clv_lower"]),
                predicted_clv_upper=float(row["predicted_clv_upper"]),
                churn_probability=None if churn is None else float(churn),
                segment=state.segment_of(item.customer_id),
                model_version=models.spend_version,
                horizon_days=int(models.spend.horizon_days),
                as_of=now,
                source="scored",
            )
        )
    return predictions


def create_app(
    settings: ApiSettings | None = None, *, serving: Serving | None = None, start: bool = True
) -> FastAPI:
    """The API application.

    Parameters
    ----------
    settings : ApiSettings, optional
        Default: read from the ``CLV_API_*`` environment.
    serving : Serving, optional
        What is served (default: the configured platform database and registry).
    start : bool
        Load and start polling at start-up (the lifespan); tests may drive ``serving``.

    Raises
    ------
    ValueError
        When no API key is configured (``CLV_API_KEYS``).
    """
    from clv.store import Store

    settings = settings or ApiSettings()
    keys = [k.get_secret_value() for k in settings.keys]
    if not keys:
        raise ValueError(
            "no API key configured: set CLV_API_KEYS to one or more comma-separated keys"
        )
    if serving is None:
        from clv import tracking

        tracking.configure()
        serving = Serving(Store(), alias=settings.alias, poll_seconds=settings.poll_seconds)
    metrics = ApiMetrics()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if start:
            serving.start()
        try:
            yield
        finally:
            if start:
                serving.stop()

    app = FastAPI(
        title="CLV platform API",
        version="1.0.0",
        summary="Customer lifetime value, churn, segments and campaigns.",
        docs_url=None,
        redoc_url=None,
        lifespan=lifespan,
    )
    app.state.serving = serving
    app.state.settings = settings
    app.state.metrics = metrics

    @app.exception_handler(_Error)
    async def _error(request: Request, exc: _Error) -> JSONResponse:
        return JSONResponse({"detail": exc.detail}, status_code=exc.status_code)

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = [
            {"loc": list(e.get("loc", ())), "msg": str(e.get("msg")), "type": str(e.get("type"))}
            for e in exc.errors()
        ]
        return JSONResponse({"detail": errors}, status_code=422)

    @app.exception_handler(Exception)
    async def _crash(request: Request, exc: Exception) -> JSONResponse:
        logger.exception("%s %s failed", request.method, request.url.path)
        return JSONResponse({"detail": "internal error"}, status_code=500)

    @app.get(
        "/health", response_model=Health, response_model_exclude_none=True, tags=["operations"]
    )
    async def health() -> Health:
        """Liveness: the process answers."""
        return Health(status="ok")

    @app.get(
        "/ready",
        response_model=Health,
        responses={503: {"description": "Not ready (why in `reason`)", "model": Health}, **_AUTH},
        tags=["operations"],
    )
    def ready() -> Any:
        """Readiness: the champion is loaded and the platform database answers."""
        state = serving.state
        reason = None
        if state is None:
            reason = serving.last_error or "still loading"
        elif state.models is None:
            reason = "no champion model (promote one with `clv promote`)"
        else:
            try:
                serving.store.ping()
            except Exception as err:  # any driver error: not ready, and why
                reason = f"platform database unreachable: {type(err).__name__}"
        if reason is not None:
            return JSONResponse(
                Health(status="not ready", reason=reason).model_dump(), status_code=503
            )
        assert state is not None and state.models is not None
        return Health(
            status="ready",
            model_version=state.models.spend_version,
            churn_model_version=state.models.churn_version,
            features=state.models.feature_columns,
            scores_run=state.scores_run,
            segment_version=state.segment_version,
            reason=serving.last_error,
        )

    @app.get("/metrics", tags=["operations"], response_class=Response)
    async def prometheus() -> Response:
        """Prometheus metrics: requests and latencies per route, model version, predictions."""
        state = serving.state
        if state is not None and state.models is not None:
            metrics.serve_models(
                {"clv-spend": state.models.spend_version, "clv-churn": state.models.churn_version}
            )
        return Response(metrics.render(), media_type="text/plain; version=0.0.4; charset=utf-8")

    @app.post(
        "/predict/clv",
        response_model=Prediction,
        responses={**_AUTH, **_BODY, **_NOT_FOUND, **_NO_MODEL},
        tags=["predictions"],
    )
    async def predict(body: PredictRequest, request: Request) -> Prediction:
        """Predicted spend, its interval, churn probability and segment of one customer.

        Without ``features``: the customer's scores from the latest scoring run (404 when the
        run did not score it). With ``features``: scored now by the champion.
        """
        state = _serving(request)
        if body.features is None:
            found = _stored(body.customer_id, state)
            if found is None:
                raise _Error(
                    404,
                    f"customer {body.customer_id!r} has no stored scores; send its features to "
                    "score it on the fly",
                )
            prediction = found
        else:
            (prediction,) = _scored([body], state)
        metrics.observe_prediction(
            prediction.source, prediction.predicted_clv, prediction.churn_probability
        )
        return prediction

    @app.post(
        "/predict/clv/batch",
        response_model=BatchResponse,
        responses={**_AUTH, **_BODY, **_NO_MODEL},
        tags=["predictions"],
    )
    async def predict_batch(body: BatchRequest, request: Request) -> BatchResponse:
        """Predictions for up to ``CLV_API_MAX_BATCH`` customers, in request order."""
        if len(body.customers) > settings.max_batch:
            raise _Error(
                422,
                [
                    {
                        "loc": ["body", "customers"],
                        "msg": f"at most {settings.max_batch:,} customers per request "
                        f"(got {len(body.customers):,})",
                    }
                ],
            )
        state = _serving(request)
        with_features = [c for c in body.customers if c.features is not None]
        scored = iter(_scored(with_features, state) if with_features else [])
        predictions: list[Prediction] = []
        not_found: list[str] = []
        for item in body.customers:
            if item.features is not None:
                predictions.append(next(scored))
                continue
            found = _stored(item.customer_id, state)
            if found is None:
                not_found.append(item.customer_id)
            else:
                predictions.append(found)
        for p in predictions:
            metrics.observe_prediction(p.source, p.predicted_clv, p.churn_probability)
        return BatchResponse(predictions=predictions, not_found=not_found)

    @app.get(
        "/segments/active",
        response_model=SegmentsOut,
        responses={**_AUTH, **_NOT_FOUND, **_LOADING},
        tags=["segments"],
    )
    def segments_active(request: Request) -> SegmentsOut:
        """The active segmentation version: each segment's name, size and profile."""
        state = _serving(request)
        if state.segment_version is None:
            raise _Error(404, "no segmentation version is active: run and approve one")
        info = serving.store.version(state.segment_version)
        return SegmentsOut(
            version=info.version,
            method=info.method,
            n_customers=info.n_customers,
            activated_at=info.activated_at,
            segments=[
                SegmentOut(
                    name=str(r["name"]),
                    description=None if r["description"] is None else str(r["description"]),
                    size=int(r["size"]),
                    profile=_plain(r["profile"]),
                )
                for r in _records(state.segments)
            ],
        )

    @app.get(
        "/segments/{name}/customers",
        response_model=SegmentCustomers,
        responses={**_AUTH, **_NOT_FOUND, **_LOADING},
        tags=["segments"],
    )
    def segment_customers(
        request: Request,
        name: Annotated[str, Path(min_length=1, max_length=128)],
        limit: Annotated[int | None, Query(ge=1, le=100_000)] = None,
        after: Annotated[
            str | None,
            Query(min_length=1, max_length=128, description="The `next` of the previous page."),
        ] = None,
    ) -> SegmentCustomers:
        """A page of a segment's customers, by customer id, with their latest scores."""
        state = _serving(request)
        if state.segment_version is None or name not in set(state.segments["name"]):
            known = ", ".join(map(str, state.segments["name"])) or "none"
            raise _Error(404, f"no active segment {name!r} (active: {known})")
        size = min(limit or settings.page_size, settings.max_page_size)
        members = state.assignment[state.assignment == name].index
        start = 0 if after is None else int(members.searchsorted(after, side="right"))
        page = members[start : start + size]
        scores = state.scores.reindex(page)
        churn = (
            scores["churn_probability"]
            if "churn_probability" in scores
            else pd.Series(np.nan, index=page)
        )
        customers = [
            SegmentCustomer(
                customer_id=str(cid),
                predicted_clv=None if pd.isna(clv) else float(clv),
                churn_probability=None if pd.isna(p) else float(p),
            )
            for cid, clv, p in zip(page, scores["predicted_clv"], churn, strict=True)
        ]
        more = start + size < len(members)
        return SegmentCustomers(
            segment=name, customers=customers, next=str(page[-1]) if more and len(page) else None
        )

    @app.get(
        "/customers/{customer_id}",
        response_model=CustomerOut,
        responses={**_AUTH, **_NOT_FOUND, **_LOADING},
        tags=["customers"],
    )
    def customer(
        request: Request, customer_id: Annotated[str, Path(min_length=1, max_length=128)]
    ) -> CustomerOut:
        """A customer's latest scores, segment and segment history."""
        state = _serving(request)
        row = state.score_row(customer_id)
        history = serving.store.history(customer_id)
        if row is None and history.empty:
            raise _Error(404, f"no customer {customer_id!r} in the latest scores or segments")
        spells = [
            SegmentSpell(
                version=int(h["version"]),
                segment=str(h["name"]),
                valid_from=None if pd.isna(h["valid_from"]) else h["valid_from"].to_pydatetime(),
                valid_to=None if pd.isna(h["valid_to"]) else h["valid_to"].to_pydatetime(),
            )
            for h in _records(history)
        ]
        scores = None if row is None else {k: _json_value(v) for k, v in row.items()}
        return CustomerOut(
            customer_id=customer_id,
            scores=scores,
            segment=state.segment_of(customer_id),
            history=spells,
        )

    @app.get("/campaigns", response_model=list[CampaignOut], responses=_AUTH, tags=["campaigns"])
    def campaigns() -> list[CampaignOut]:
        """Every campaign, oldest first, with its status and counts."""
        return [_campaign(info) for info in serving.store.campaigns()]

    @app.get(
        "/campaigns/{campaign_id}",
        response_model=CampaignOut,
        responses={**_AUTH, **_NOT_FOUND},
        tags=["campaigns"],
    )
    def campaign(
        campaign_id: Annotated[str, Path(min_length=1, max_length=128)],
    ) -> CampaignOut:
        """One campaign: its plan summary, the outbox's state and its latest analysis."""
        from clv.store import StoreError

        store = serving.store
        try:
            info = store.campaign(campaign_id)
        except StoreError:
            raise _Error(404, f"no campaign {campaign_id!r}") from None
        return _campaign(
            info,
            summary=dict(info.summary or {}),
            outbox=store.outbox_counts(campaign_id),
            latest_analysis=store.latest_analysis(campaign_id),
        )

    # The last added runs first: metrics see every answer (401 and 413 included), CORS answers
    # preflights, keys are checked before a body is read, and the size cap before it is parsed.
    app.add_middleware(BodyLimitMiddleware, limit=settings.max_body_bytes)
    app.add_middleware(ApiKeyMiddleware, keys=keys)
    if settings.cors_origins:
        from starlette.middleware.cors import CORSMiddleware

        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.cors_origins,
            allow_methods=["GET", "POST"],
            allow_headers=["X-API-Key", "Content-Type"],
        )
    app.add_middleware(MetricsMiddleware, metrics=metrics)
    return app


def _campaign(info: Any, **extra: Any) -> CampaignOut:
    return CampaignOut(
        campaign_id=info.campaign_id,
        name=info.name,
        status=info.status,
        planned_at=info.planned_at,
        n_targeted=info.n_targeted,
        n_holdout=info.n_holdout,
        total_cost=float(info.total_cost),
        **{k: _plain(v) if isinstance(v, dict) else v for k, v in extra.items()},
    )


def _records(frame: pd.DataFrame) -> list[dict[str, Any]]:
    return [{str(k): v for k, v in r.items()} for r in frame.to_dict("records")]


def _json_value(value: Any) -> Any:
    if isinstance(value, pd.Timestamp):
        return value.isoformat()
    if isinstance(value, np.generic):
        return value.item()
    return value


def _plain(value: Any) -> Any:
    """JSON-safe: numpy scalars to Python, NaN and infinities to None."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not np.isfinite(value):
        return None
    if isinstance(value, pd.Timestamp | datetime):
        return value.isoformat()
    return value
