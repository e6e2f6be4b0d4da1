"""Request and response bodies of the serving API: strict, so a bad request is a 422 naming it.

Unknown fields, strings or booleans where numbers belong, NaN and infinities are refused; ids are
non-empty, bounded text.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

__all__ = [
    "BatchRequest",
    "BatchResponse",
    "CampaignOut",
    "CustomerOut",
    "Health",
    "PredictRequest",
    "Prediction",
    "SegmentCustomers",
    "SegmentOut",
    "SegmentsOut",
]

CustomerId = Annotated[
    str, StringConstraints(min_length=1, max_length=128, pattern=r"^[^\x00-\x1f\x7f]+$")
]
FeatureValue = Annotated[float, Field(allow_inf_nan=False, ge=-1e12, le=1e12)]
FeatureName = Annotated[str, StringConstraints(min_length=1, max_length=128)]
Features = Annotated[dict[FeatureName, FeatureValue | None], Field(max_length=512)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


class PredictRequest(_Strict):
    """A customer to predict: known (its stored scores) or described by its features."""

    customer_id: CustomerId
    features: Features | None = Field(
        default=None,
        description=(
            "The customer's features (every feature the champion reads; see `GET /ready`; "
            "null for a missing value): scored on the fly by the champion. Without them, the "
            "customer's stored scores from the latest scoring run are returned."
        ),
    )


class Prediction(BaseModel):
    """Predicted spend over the horizon with its 80% interval, churn probability and segment."""

    customer_id: str
    predicted_clv: float
    predicted_clv_lower: float | None
    predicted_clv_upper: float | None
    churn_probability: float | None
    segment: str | None
    model_version: str | None
    horizon_days: int | None
    as_of: datetime | date | None
    source: Annotated[str, Field(description="`stored` (latest scoring run) or `scored` now")]


class BatchRequest(_Strict):
    """Up to ``CLV_API_MAX_BATCH`` customers."""

    customers: Annotated[list[PredictRequest], Field(min_length=1)]


class BatchResponse(BaseModel):
    """Predictions in request order, and the known-customer ids that have no stored scores."""

    predictions: list[Prediction]
    not_found: list[str]


class SegmentOut(BaseModel):
    """One segment of the active version."""

    name: str
    description: str | None
    size: int
    profile: dict[str, Any]


class SegmentsOut(BaseModel):
    """The active segmentation version and its segments."""

    version: int
    method: str
    n_customers: int
    activated_at: datetime | None
    segments: list[SegmentOut]


class SegmentCustomer(BaseModel):
    """A customer of a segment, with its latest scores."""

    customer_id: str
    predicted_clv: float | None
    churn_probability: float | None


class SegmentCustomers(BaseModel):
    """One page of a segment's customers; ``next`` is the cursor of the following page."""

    segment: str
    customers: list[SegmentCustomer]
    next: str | None


class SegmentSpell(BaseModel):
    """A customer's segment in one activated version."""

    version: int
    segment: str
    valid_from: datetime | None
    valid_to: datetime | None


class CustomerOut(BaseModel):
    """A customer's latest scores, segment and segment history."""

    customer_id: str
    scores: dict[str, Any] | None
    segment: str | None
    history: list[SegmentSpell]


class CampaignOut(BaseModel):
    """A campaign: its plan summary, send status and latest analysis."""

    campaign_id: str
    name: str
    status: str
    planned_at: datetime
    n_targeted: int
    n_holdout: int
    total_cost: float
    summary: dict[str, Any] | None = None
    outbox: dict[str, int] | None = None
    latest_analysis: dict[str, Any] | None = None


class Health(BaseModel):
    """Liveness or readiness."""

    status: str
    model_version: str | None = None
    churn_model_version: str | None = None
    features: list[str] | None = None
    scores_run: int | None = None
    segment_version: int | None = None
    reason: str | None = None
