"""``analyze``: one experiment's verdict from a table with one row per unit.

The frame is validated once, reduced to per-variant :class:`~clv.experiments.statistics.Moments`
in one pass, and every number after that comes from those moments. Each variant is compared with
the control; the winner rule is explicit (:func:`winner_rule` documents it) and the result is a
plain :class:`ExperimentResult` whose :meth:`~ExperimentResult.to_dict` is the JSON contract the
CLI, campaigns and the API share.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import pandas as pd
from scipy import stats

from clv.experiments.errors import ExperimentInputError
from clv.experiments.statistics import (
    CORRECTION_METHODS,
    DEFAULT_SEQUENTIAL_TUNING,
    Effect,
    Moments,
    adjust_p_values,
    bayesian_effect,
    confidence_sequence,
    cuped_adjust,
    cuped_theta,
    moments_by_group,
    pool,
    proportion_difference,
    ratio_moments,
    relative_lift,
    sample_ratio_p_value,
    welch,
)

__all__ = [
    "CORRECTIONS",
    "METHODS",
    "EffectSummary",
    "ExperimentResult",
    "GuardrailResult",
    "VariantResult",
    "analyze",
    "parse_shares",
]

Method = Literal["frequentist", "sequential", "bayesian"]
Correction = Literal["holm", "bh", "by", "bonferroni", "sidak", "holm-sidak", "hochberg", "none"]
MetricType = Literal["auto", "mean", "proportion"]
Kind = Literal["mean", "proportion", "ratio"]
METHODS: tuple[str, ...] = ("frequentist", "sequential", "bayesian")
CORRECTIONS: tuple[str, ...] = tuple(CORRECTION_METHODS)
_SHARE_TOLERANCE = 1e-6
#: Larger magnitudes would overflow the sums of squares; no real metric comes near it.
_MAX_ABS = 1e100
#: A covariate whose within-variant variance is below this share of its scale is constant.
_CONSTANT_TOLERANCE = 1e-12


@dataclass(frozen=True)
class EffectSummary:
    """An effect as reported: estimate, interval and p-value (``None`` when undefined)."""

    estimate: float | None
    ci_low: float | None
    ci_high: float | None
    p_value: float | None

    def to_dict(self) -> dict[str, float | None]:
        """The four numbers as a JSON-ready mapping."""
        return {
            "estimate": self.estimate,
            "ci_low": self.ci_low,
            "ci_high": self.ci_high,
            "p_value": self.p_value,
        }


_UNDEFINED = EffectSummary(None, None, None, None)


@dataclass(frozen=True)
class VariantResult:
    """One variant against the control on the primary metric."""

    variant: str
    n: int
    mean: float
    absolute: EffectSummary
    relative: EffectSummary
    p_value_adjusted: float
    significant: bool
    chance_to_win: float | None = None
    expected_loss: float | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready mapping (the ``variants`` entries of :meth:`ExperimentResult.to_dict`)."""
        return {
            "variant": self.variant,
            "n": self.n,
            "mean": self.mean,
            "absolute": self.absolute.to_dict(),
            "relative": self.relative.to_dict(),
            "p_value_adjusted": self.p_value_adjusted,
            "significant": self.significant,
            "chance_to_win": self.chance_to_win,
            "expected_loss": self.expected_loss,
        }


@dataclass(frozen=True)
class GuardrailResult:
    """One guardrail metric for one variant: whether it was significantly harmed."""

    metric: str
    variant: str
    better: Literal["higher", "lower"]
    relative: EffectSummary
    absolute: EffectSummary
    p_value_adjusted: float
    harmed: bool

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready mapping."""
        return {
            "metric": self.metric,
            "variant": self.variant,
            "better": self.better,
            "absolute": self.absolute.to_dict(),
            "relative": self.relative.to_dict(),
            "p_value_adjusted": self.p_value_adjusted,
            "harmed": self.harmed,
        }


@dataclass(frozen=True)
class ExperimentResult:
    """The analysis of one experiment on one primary metric.

    ``to_dict()`` is the contract (``clv experiment analyze --json`` prints exactly it). Its keys:
    ``metric``, ``metric_type`` ("mean", "proportion" or "ratio"), ``denominator`` (the ratio
    metric's denominator column or ``None``), ``control``, ``method``, ``alpha``,
    ``correction``, ``srm`` (``p_value``, ``mismatch``, ``threshold``, ``observed``,
    ``expected_shares``), ``variants`` (see :class:`VariantResult`), ``control_stats``
    (``n``, ``mean``), ``cuped`` (``theta``, ``variance_reduction``, ``covariate``) or ``None``,
    ``guardrails``, ``winner`` (a variant name or ``None``), ``reason`` and
    ``remaining_n_per_variant`` (fixed-horizon mode, no winner: more units per arm needed to
    detect the best variant's observed effect with 80% power; ``None`` otherwise).
    """

    metric: str
    metric_type: Kind
    control: str
    method: str
    alpha: float
    correction: str
    srm_p_value: float
    srm_mismatch: bool
    srm_threshold: float
    observed_counts: dict[str, int]
    expected_shares: dict[str, float]
    variants: list[VariantResult]
    control_n: int
    control_mean: float
    cuped: dict[str, Any] | None
    winner: str | None
    reason: str
    lower_is_better: bool = False
    guardrails: list[GuardrailResult] = field(default_factory=list)
    denominator: str | None = None
    remaining_n_per_variant: int | None = None

    def variant(self, name: str) -> VariantResult:
        """The result of one variant, by name."""
        for result in self.variants:
            if result.variant == name:
                return result
        raise KeyError(name)

    def to_dict(self) -> dict[str, Any]:
        """The result as plain JSON types (no NaN: undefined numbers are ``None``)."""
        return {
            "metric": self.metric,
            "metric_type": self.metric_type,
            "denominator": self.denominator,
            "lower_is_better": self.lower_is_better,
            "control": self.control,
            "method": self.method,
            "alpha": self.alpha,
            "correction": self.correction,
            "srm": {
                "p_value": self.srm_p_value,
                "mismatch": self.srm_mismatch,
                "threshold": self.srm_threshold,
                "observed": dict(self.observed_counts),
                "expected_shares": dict(self.expected_shares),
            },
            "variants": [v.to_dict() for v in self.variants],
            "control_stats": {"n": self.control_n, "mean": self.control_mean},
            "cuped": None if self.cuped is None else dict(self.cuped),
            "guardrails": [g.to_dict() for g in self.guardrails],
            "winner": self.winner,
            "reason": self.reason,
            "remaining_n_per_variant": self.remaining_n_per_variant,
        }


# --------------------------------------------------------------------------- validation


def parse_shares(text: str) -> dict[str, float]:
    """Parse ``control=0.5,treatment=0.5`` into a mapping.

    Parameters
    ----------
    text : str
        Comma-separated ``name=share`` pairs.

    Returns
    -------
    dict
        Variant name to share (not yet checked against the data).
    """
    shares: dict[str, float] = {}
    for part in text.split(","):
        if not part.strip():
            continue
        name, sep, value = part.partition("=")
        name = name.strip()
        if not sep or not name:
            raise ExperimentInputError(
                f"expected shares: {part.strip()!r} is not name=share (e.g. control=0.5)"
            )
        try:
            share = float(value)
        except ValueError:
            raise ExperimentInputError(
                f"expected shares: the share of {name!r}, {value.strip()!r}, is not a number"
            ) from None
        if name in shares:
            raise ExperimentInputError(f"expected shares: {name!r} is given twice")
        shares[name] = share
    if not shares:
        raise ExperimentInputError("expected shares: none given (e.g. control=0.5,treatment=0.5)")
    return shares


def _column(frame: pd.DataFrame, name: str, role: str) -> pd.Series:
    if name not in frame.columns:
        available = ", ".join(map(str, frame.columns[:20]))
        raise ExperimentInputError(
            f"{role} column {name!r} is not in the data (columns: {available})"
        )
    return frame[name]


def _numeric(frame: pd.DataFrame, name: str, role: str) -> np.ndarray:
    column = _column(frame, name, role)
    if pd.api.types.is_bool_dtype(column.dtype):
        values = column.to_numpy(dtype=float)
    elif pd.api.types.is_numeric_dtype(column.dtype):
        values = column.to_numpy(dtype=float, na_value=np.nan)
    else:
        converted = pd.to_numeric(column, errors="coerce")
        bad = converted.isna() & column.notna()
        if bad.any():
            position = int(np.flatnonzero(bad.to_numpy())[0])
            raise ExperimentInputError(
                f"row {position + 1}, {role} column {name!r}: "
                f"{column.iloc[position]!r} is not a number"
            )
        values = converted.to_numpy(dtype=float, na_value=np.nan)
    finite = np.isfinite(values)
    if finite.all() and values.size and np.abs(values).max() > _MAX_ABS:
        position = int(np.flatnonzero(np.abs(values) > _MAX_ABS)[0])
        raise ExperimentInputError(
            f"row {position + 1}, {role} column {name!r}: {values[position]:g} is too large to "
            f"analyse (|value| > {_MAX_ABS:g}); rescale the column (e.g. to thousands)"
        )
    if not finite.all():
        position = int(np.flatnonzero(~finite)[0])
        value = values[position]
        what = "missing (NaN)" if np.isnan(value) else f"{value} (not finite)"
        count = int((~finite).sum())
        raise ExperimentInputError(
            f"row {position + 1}, {role} column {name!r}: the value is {what}"
            + (f"; {count} rows in all" if count > 1 else "")
            + " — fill or drop those rows before analysing"
        )
    return values


def _variant_codes(frame: pd.DataFrame, variant_col: str) -> tuple[np.ndarray, list[str]]:
    column = _column(frame, variant_col, "variant")

    def refuse_missing(codes: np.ndarray) -> None:
        # Both factorize and categorical codes mark a missing value with -1: no separate isna
        # pass over (possibly ten million) Python strings.
        if codes.size and codes.min() < 0:
            position = int(np.flatnonzero(codes < 0)[0])
            raise ExperimentInputError(
                f"row {position + 1}, variant column {variant_col!r}: the variant is missing"
            )

    if isinstance(column.dtype, pd.CategoricalDtype):
        codes = column.cat.codes.to_numpy()
        refuse_missing(codes)
        names = [str(c) for c in column.cat.categories]
        used = np.bincount(codes, minlength=len(names)) > 0
        if not used.all():  # unused categories are not variants of this experiment
            remap = np.cumsum(used) - 1
            codes = remap[codes]
            names = [n for n, u in zip(names, used, strict=True) if u]
        return codes.astype(np.intp), names
    codes, uniques = pd.factorize(column, sort=True)
    refuse_missing(codes)
    names = [str(u) for u in uniques]
    if len(set(names)) != len(names):  # e.g. 1 and "1" in one column
        raise ExperimentInputError(
            f"variant column {variant_col!r}: two different values print as the same name"
        )
    return codes.astype(np.intp), names


def _check_scalar(alpha: float, correction: str, method: str, srm_threshold: float) -> None:
    if not (isinstance(alpha, numbers.Real) and 0 < float(alpha) < 1):
        raise ExperimentInputError(f"alpha must be between 0 and 1 (got {alpha!r})")
    if correction not in CORRECTIONS:
        raise ExperimentInputError(
            f"correction must be one of {', '.join(CORRECTIONS)} (got {correction!r})"
        )
    if method not in METHODS:
        raise ExperimentInputError(f"method must be one of {', '.join(METHODS)} (got {method!r})")
    if not (0 < srm_threshold < 1):
        raise ExperimentInputError(
            f"the SRM threshold must be between 0 and 1 (got {srm_threshold!r})"
        )


def _shares(expected: Mapping[str, float] | None, names: Sequence[str]) -> dict[str, float]:
    if expected is None:
        return {name: 1 / len(names) for name in names}
    shares = {str(k): v for k, v in expected.items()}
    for name, share in shares.items():
        if not (isinstance(share, int | float) and math.isfinite(share) and share > 0):
            raise ExperimentInputError(
                f"expected share of {name!r} must be a positive number (got {share!r})"
            )
    absent = [name for name in shares if name not in names]
    if absent:
        raise ExperimentInputError(
            f"expected shares name {', '.join(map(repr, absent))}, which the data has no rows "
            f"for (variants in the data: {', '.join(names)})"
        )
    unplanned = [name for name in names if name not in shares]
    if unplanned:
        raise ExperimentInputError(
            f"the data has variant(s) {', '.join(map(repr, unplanned))} with no expected share "
            f"(shares given for: {', '.join(shares)})"
        )
    total = sum(shares.values())
    if abs(total - 1) > _SHARE_TOLERANCE:
        raise ExperimentInputError(f"expected shares must sum to 1 (they sum to {total:g})")
    return {name: shares[name] / total for name in names}


def _metric_kind(values: np.ndarray, requested: str, name: str) -> Literal["mean", "proportion"]:
    binary = bool(np.isin(values, (0.0, 1.0)).all())
    if requested == "proportion":
        if not binary:
            raise ExperimentInputError(
                f"metric {name!r} is declared a proportion but has values other than 0 and 1"
            )
        return "proportion"
    if requested == "mean":
        return "mean"
    if requested != "auto":
        raise ExperimentInputError(
            f"metric type must be auto, mean or proportion (got {requested!r})"
        )
    return "proportion" if binary else "mean"


# --------------------------------------------------------------------------- analysis


@dataclass(frozen=True)
class _Comparison:
    absolute: Effect
    relative: Effect | None
    p_for_decision: float


def _proportion_moments(m: Moments) -> Moments:
    # Binomial variance p(1 - p), as the two-proportion tests use (not the n - 1 sample variance).
    return Moments(n=m.n, mean=m.mean, variance=m.mean * (1 - m.mean))


# A comparison without variance divides 0 by 0 on the way; _without_nan settles it.
@np.errstate(divide="ignore", invalid="ignore")
def _compare(
    control: Moments,
    treatment: Moments,
    *,
    kind: str,
    adjusted: bool,
    method: str,
    alpha: float,
    tuning: float,
) -> _Comparison:
    if kind == "proportion" and not adjusted:
        absolute = proportion_difference(control, treatment, alpha)
        c, t = _proportion_moments(control), _proportion_moments(treatment)
    else:
        absolute = welch(control, treatment, alpha)
        c, t = control, treatment
    relative: Effect | None = None
    # As gbstats: a lift relative to a control mean that is 0 or negative (net refunds) has no
    # meaning (its sign would contradict the difference's), so it is left undefined.
    if control.mean > 0:
        relative = relative_lift(c.mean, c.variance_of_mean, t.mean, t.variance_of_mean, alpha)
    if method == "sequential":
        n_total = control.n + treatment.n
        absolute = confidence_sequence(absolute, n_total, alpha, tuning)
        if relative is not None:
            relative = confidence_sequence(relative, n_total, alpha, tuning)
    absolute = _without_nan(absolute)
    relative = None if relative is None else _without_nan(relative)
    return _Comparison(absolute, relative, float(absolute.p_value))


def _without_nan(effect: Effect) -> Effect:
    """A comparison with no sampling variance at all is exact, not undefined.

    Two variants whose units all have the same value (no conversions in either, say, while a
    third variant has some) give a standard error of 0: the observed difference is the whole
    story, so the p-value is 1 when it is 0 and 0 otherwise, and the interval is the point.
    """
    se = float(effect.standard_error)
    values = (effect.estimate, effect.ci_low, effect.ci_high, effect.p_value)
    if se > 0 and all(math.isfinite(float(v)) for v in values):
        return effect
    estimate = float(effect.estimate)
    if se == 0 and math.isfinite(estimate):
        return Effect(estimate, 0.0, estimate, estimate, 1.0 if estimate == 0 else 0.0)
    raise ExperimentInputError(
        "the values are too extreme for a numerically sound test (an intermediate result "
        "overflowed); rescale the metric"
    )


def _summary(effect: Effect | None) -> EffectSummary:
    if effect is None:
        return _UNDEFINED
    return EffectSummary(
        float(effect.estimate), float(effect.ci_low), float(effect.ci_high), float(effect.p_value)
    )


def _check_variance(groups: Mapping[str, Moments], metric: str, kind: str) -> None:
    # Constant within every variant *and* the same everywhere: nothing to compare. Constant
    # within variants but different between them is an exact difference (see _without_nan).
    means = {float(m.mean) for m in groups.values()}
    if all(m.variance == 0 for m in groups.values()) and len(means) == 1:
        raise ExperimentInputError(
            f"metric {metric!r} is {means.pop():g} for every unit in every variant: "
            "there is nothing to compare"
        )


def analyze(
    frame: pd.DataFrame,
    metric: str = "revenue",
    variant_col: str = "variant",
    control: str = "control",
    covariate: str | None = None,
    method: Method = "frequentist",
    alpha: float = 0.05,
    correction: Correction = "holm",
    expected_shares: Mapping[str, float] | None = None,
    *,
    denominator: str | None = None,
    metric_type: MetricType = "auto",
    lower_is_better: bool = False,
    guardrails: Mapping[str, str] | Sequence[str] | None = None,
    unit_col: str | None = None,
    srm_threshold: float = 0.001,
    sequential_tuning: float = DEFAULT_SEQUENTIAL_TUNING,
    prior_mean: float = 0.0,
    prior_sd: float | None = None,
    chance_to_win_threshold: float = 0.95,
    power: float = 0.8,
) -> ExperimentResult:
    """Analyse an A/B(/n) test: every variant against the control on one primary metric.

    Parameters
    ----------
    frame : DataFrame
        One row per unit: its variant, the metric and optionally a pre-period covariate and
        guardrail metrics.
    metric : str
        The primary metric's column (revenue, orders, or a 0/1 conversion).
    variant_col : str
        The column holding each unit's variant name.
    control : str
        The control variant's name.
    covariate : str, optional
        A pre-period column (e.g. pre-period spend) for CUPED: ``y' = y - θ (x - x̄)`` with θ
        pooled over all units; the tests then run on ``y'``.
    method : {"frequentist", "sequential", "bayesian"}
        Fixed-horizon tests; always-valid confidence sequences (peek as often as you like); or
        a Gaussian-prior posterior on the relative effect (chance to win, expected loss).
    alpha : float
        Significance level (and ``1 - alpha`` is the interval's level).
    correction : str
        Adjustment of the p-values across variants: ``"holm"`` (default), ``"bh"``, ``"none"``
        or another of :data:`~clv.experiments.statistics.CORRECTION_METHODS`.
    expected_shares : mapping, optional
        The planned share of each variant, summing to 1 (equal shares when omitted); the sample
        ratio mismatch check compares the observed counts with them.
    denominator : str, optional
        Makes the metric a ratio of sums, ``Σ metric / Σ denominator`` per variant (revenue per
        order: ``metric="revenue", denominator="orders"``), with delta-method variances.
        Not combined with ``covariate``.
    metric_type : {"auto", "mean", "proportion"}
        ``auto`` treats a metric with only 0 and 1 as a proportion (two-proportion z-test).
    lower_is_better : bool
        The primary metric improves when it falls (e.g. a churn rate).
    guardrails : mapping or sequence, optional
        Metrics that must not be significantly harmed: ``{"unsubscribed": "lower"}`` names which
        direction is better; a plain list means higher is better for each.
    unit_col : str, optional
        The unit id column; when given, a unit that appears twice is an error.
    srm_threshold : float
        A sample ratio mismatch is flagged when its χ² p-value is below this.
    sequential_tuning : float
        The total sample size at which the confidence sequence is tightest (GrowthBook's n*).
    prior_mean, prior_sd : float
        Gaussian prior on the relative effect in Bayesian mode; ``prior_sd=None`` is flat.
    chance_to_win_threshold : float
        Bayesian mode: a variant is a winner (or a loser) when its chance to beat the control is
        at least this (or at most one minus this).
    power : float
        The power used for ``remaining_n_per_variant``.

    Returns
    -------
    ExperimentResult
        Per-variant effects, SRM, CUPED, guardrails, the winner (or ``None``) and the reason.

    Raises
    ------
    ExperimentInputError
        For input that cannot be analysed; the message names the column, row or variant.
    """
    if not isinstance(frame, pd.DataFrame):
        raise ExperimentInputError("the data must be a table (a pandas DataFrame)")
    _check_scalar(alpha, correction, method, srm_threshold)
    if not 0 < chance_to_win_threshold < 1:
        raise ExperimentInputError(
            f"chance_to_win_threshold must be between 0 and 1 (got {chance_to_win_threshold!r})"
        )
    if not math.isfinite(prior_mean):
        raise ExperimentInputError(f"prior_mean must be a finite number (got {prior_mean!r})")
    if not (isinstance(power, numbers.Real) and 0 < float(power) < 1):
        raise ExperimentInputError(f"power must be between 0 and 1 (got {power!r})")
    if prior_sd is not None and not (math.isfinite(prior_sd) and prior_sd > 0):
        raise ExperimentInputError(f"prior_sd must be positive (got {prior_sd!r})")
    if not (math.isfinite(sequential_tuning) and sequential_tuning > 0):
        raise ExperimentInputError(
            f"sequential_tuning must be positive (got {sequential_tuning!r})"
        )
    if len(frame) == 0:
        raise ExperimentInputError("the data has no rows")
    codes, names = _variant_codes(frame, variant_col)
    if control not in names:
        raise ExperimentInputError(
            f"control {control!r} is not a value of column {variant_col!r} "
            f"(variants: {', '.join(names[:20])})"
        )
    if len(names) < 2:
        raise ExperimentInputError(
            f"only one variant ({names[0]!r}) in column {variant_col!r}: "
            "an experiment needs a control and at least one treatment"
        )
    counts = np.bincount(codes, minlength=len(names))
    small = [f"{names[i]!r} ({counts[i]})" for i in range(len(names)) if counts[i] < 2]
    if small:
        raise ExperimentInputError(
            f"variant(s) {', '.join(small)} have fewer than 2 units: a variance cannot be estimated"
        )
    if unit_col is not None:
        units = _column(frame, unit_col, "unit")
        duplicated = units.duplicated().to_numpy()
        if duplicated.any():
            position = int(np.flatnonzero(duplicated)[0])
            raise ExperimentInputError(
                f"row {position + 1}, unit column {unit_col!r}: unit {units.iloc[position]!r} "
                "appears more than once (one row per unit)"
            )
    shares = _shares(expected_shares, names)
    guardrail_map = _guardrails(guardrails, metric)

    y = _numeric(frame, metric, "metric")
    kind: Kind
    x: np.ndarray | None
    if denominator is not None:
        if covariate is not None:
            raise ExperimentInputError(
                "CUPED is not available for a ratio metric: give a covariate or a denominator, "
                "not both"
            )
        kind = "ratio"
        x = _numeric(frame, denominator, "denominator")
    else:
        kind = _metric_kind(y, metric_type, metric)
        x = _numeric(frame, covariate, "covariate") if covariate is not None else None
    moments = dict(zip(names, moments_by_group(codes, len(names), y, x), strict=True))
    if kind == "ratio":
        empty = [n for n, m in moments.items() if not m.x_mean]
        if empty:
            raise ExperimentInputError(
                f"denominator {denominator!r} sums to 0 in variant(s) "
                f"{', '.join(map(repr, empty))}: the ratio is undefined there"
            )
        moments = {n: ratio_moments(m) for n, m in moments.items()}
    _check_variance(moments, metric, kind)

    srm_p = sample_ratio_p_value(counts, [shares[n] for n in names])
    mismatch = srm_p < srm_threshold

    cuped: dict[str, Any] | None = None
    analysed = moments
    if x is not None and kind != "ratio":
        everyone = pool(list(moments.values()))
        within_x = sum((m.n - 1) * float(m.x_variance or 0) for m in moments.values())
        within_x /= max(everyone.n - len(moments), 1)
        scale = float(everyone.x_mean or 0) ** 2 + float(everyone.x_variance or 0)
        if not within_x > _CONSTANT_TOLERANCE * scale:
            raise ExperimentInputError(
                f"covariate {covariate!r} has no variance within the variants (every unit of "
                "a variant has the same value): it cannot reduce variance; drop --covariate"
            )
        theta = cuped_theta(everyone)
        x_bar = float(everyone.x_mean or 0.0)
        analysed = {n: cuped_adjust(m, theta, x_bar) for n, m in moments.items()}
        within = sum((m.n - 1) * m.variance for m in moments.values())
        within_adjusted = sum((m.n - 1) * m.variance for m in analysed.values())
        cuped = {
            "covariate": covariate,
            "theta": float(theta),
            "variance_reduction": float(1 - within_adjusted / within) if within > 0 else 0.0,
        }

    treatments = [n for n in names if n != control]
    comparisons = {
        name: _compare(
            analysed[control],
            analysed[name],
            kind=kind,
            adjusted=cuped is not None,
            method=method,
            alpha=alpha,
            tuning=sequential_tuning,
        )
        for name in treatments
    }
    adjusted_p = adjust_p_values([comparisons[n].p_for_decision for n in treatments], correction)

    variants: list[VariantResult] = []
    for name, p_adj in zip(treatments, adjusted_p, strict=True):
        comparison = comparisons[name]
        chance = loss = None
        relative_summary = _summary(comparison.relative)
        if method == "bayesian":
            if comparison.relative is None:
                raise ExperimentInputError(
                    f"Bayesian analysis of {metric!r} needs a control mean above 0 "
                    "(the prior is on the relative effect); use --method frequentist"
                )
            posterior = bayesian_effect(
                float(comparison.relative.estimate),
                float(comparison.relative.standard_error),
                alpha,
                prior_mean=prior_mean,
                prior_sd=prior_sd,
                lower_is_better=lower_is_better,
            )
            chance, loss = float(posterior.chance_to_win), float(posterior.expected_loss)
            relative_summary = EffectSummary(
                float(posterior.mean),
                float(posterior.ci_low),
                float(posterior.ci_high),
                relative_summary.p_value,
            )
            significant = chance >= chance_to_win_threshold or chance <= 1 - chance_to_win_threshold
        else:
            significant = bool(p_adj < alpha)
        variants.append(
            VariantResult(
                variant=name,
                n=int(moments[name].n),
                mean=float(moments[name].mean),
                absolute=_summary(comparison.absolute),
                relative=relative_summary,
                p_value_adjusted=float(p_adj),
                significant=bool(significant),
                chance_to_win=chance,
                expected_loss=loss,
            )
        )

    guardrail_results = _guardrail_results(
        frame,
        codes,
        names,
        control,
        guardrail_map,
        method=method,
        alpha=alpha,
        correction=correction,
        tuning=sequential_tuning,
        chance_to_win_threshold=chance_to_win_threshold,
    )
    winner, reason, remaining = winner_rule(
        variants,
        comparisons,
        guardrail_results,
        metric=metric,
        method=method,
        alpha=alpha,
        correction=correction,
        lower_is_better=lower_is_better,
        srm_p_value=srm_p,
        srm_mismatch=mismatch,
        chance_to_win_threshold=chance_to_win_threshold,
        power=power,
        control_n=int(moments[control].n),
    )
    return ExperimentResult(
        metric=metric,
        metric_type=kind,
        denominator=denominator,
        control=control,
        method=method,
        alpha=float(alpha),
        correction=correction,
        srm_p_value=float(srm_p),
        srm_mismatch=bool(mismatch),
        srm_threshold=float(srm_threshold),
        observed_counts={n: int(c) for n, c in zip(names, counts, strict=True)},
        expected_shares=shares,
        variants=variants,
        control_n=int(moments[control].n),
        control_mean=float(moments[control].mean),
        cuped=cuped,
        winner=winner,
        reason=reason,
        lower_is_better=lower_is_better,
        guardrails=guardrail_results,
        remaining_n_per_variant=remaining,
    )


def _guardrails(
    guardrails: Mapping[str, str] | Sequence[str] | None, metric: str
) -> dict[str, Literal["higher", "lower"]]:
    if guardrails is None:
        return {}
    if isinstance(guardrails, str):
        guardrails = [guardrails]
    items = (
        guardrails.items()
        if isinstance(guardrails, Mapping)
        else ((g, "higher") for g in guardrails)
    )
    out: dict[str, Literal["higher", "lower"]] = {}
    for name, better in items:
        if better not in ("higher", "lower"):
            raise ExperimentInputError(
                f"guardrail {name!r}: say which direction is better, 'higher' or 'lower' "
                f"(got {better!r})"
            )
        if name == metric:
            raise ExperimentInputError(f"guardrail {name!r} is the primary metric")
        out[str(name)] = better  # type: ignore[assignment]
    return out


def _guardrail_results(
    frame: pd.DataFrame,
    codes: np.ndarray,
    names: list[str],
    control: str,
    guardrails: Mapping[str, Literal["higher", "lower"]],
    *,
    method: str,
    alpha: float,
    correction: str,
    tuning: float,
    chance_to_win_threshold: float,
) -> list[GuardrailResult]:
    results: list[GuardrailResult] = []
    treatments = [n for n in names if n != control]
    for metric, better in guardrails.items():
        y = _numeric(frame, metric, "guardrail")
        kind = _metric_kind(y, "auto", metric)
        moments = dict(zip(names, moments_by_group(codes, len(names), y), strict=True))
        flat = all(m.variance == 0 for m in moments.values()) and (
            len({float(m.mean) for m in moments.values()}) == 1
        )
        if flat:  # a constant guardrail cannot be harmed: nothing moved
            for name in treatments:
                results.append(
                    GuardrailResult(metric, name, better, _UNDEFINED, _UNDEFINED, 1.0, False)
                )
            continue
        comparisons = [
            _compare(
                moments[control],
                moments[name],
                kind=kind,
                adjusted=False,
                method=method,
                alpha=alpha,
                tuning=tuning,
            )
            for name in treatments
        ]
        adjusted = adjust_p_values([c.p_for_decision for c in comparisons], correction)
        for name, comparison, p_adj in zip(treatments, comparisons, adjusted, strict=True):
            estimate = float(comparison.absolute.estimate)
            worse = estimate < 0 if better == "higher" else estimate > 0
            if method == "bayesian" and comparison.relative is not None:
                posterior = bayesian_effect(
                    float(comparison.relative.estimate),
                    float(comparison.relative.standard_error),
                    alpha,
                    lower_is_better=better == "lower",
                )
                harmed = float(posterior.chance_to_win) <= 1 - chance_to_win_threshold
            else:
                harmed = worse and bool(p_adj < alpha)
            results.append(
                GuardrailResult(
                    metric,
                    name,
                    better,
                    _summary(comparison.relative),
                    _summary(comparison.absolute),
                    float(p_adj),
                    bool(harmed),
                )
            )
    return results


def _fmt_lift(summary: EffectSummary) -> str:
    if summary.estimate is None:
        return "relative lift undefined (control mean is 0)"
    return f"{summary.estimate:+.2%} (CI {summary.ci_low:+.2%} to {summary.ci_high:+.2%})"


def winner_rule(
    variants: Sequence[VariantResult],
    comparisons: Mapping[str, _Comparison],
    guardrails: Sequence[GuardrailResult],
    *,
    metric: str,
    method: str,
    alpha: float,
    correction: str,
    lower_is_better: bool,
    srm_p_value: float,
    srm_mismatch: bool,
    chance_to_win_threshold: float,
    power: float,
    control_n: int,
) -> tuple[str | None, str, int | None]:
    """The explicit winner rule; returns ``(winner or None, reason, remaining units per arm)``.

    In order:

    1. A sample ratio mismatch means the assignment is broken: no winner, whatever the metric.
    2. A *candidate* is a variant better than the control on the primary metric: significant
       after the correction (adjusted p < alpha; for the sequential method the always-valid
       p-value) in the better direction — in Bayesian mode, chance to beat the control of at
       least ``chance_to_win_threshold``.
    3. A candidate that significantly harms any guardrail metric is out.
    4. The winner is the remaining candidate with the best estimate (the candidates are not
       tested against each other).
    5. Otherwise "no winner yet", with the reason; in fixed-horizon (frequentist) mode, with
       the additional units per arm needed to detect the best variant's observed effect at
       the given power (Bonferroni-adjusted alpha when there are several variants).
    """
    if srm_mismatch:
        return (
            None,
            f"sample ratio mismatch: the variants' sizes do not match the planned shares "
            f"(χ² p = {srm_p_value:.2g}); the assignment or the data is broken, so no result "
            "can be trusted — find the cause before reading the metric",
            None,
        )
    sign = -1.0 if lower_is_better else 1.0
    direction = "lower" if lower_is_better else "higher"

    def score(v: VariantResult) -> float:
        # The direction a decision is made in: the posterior's in Bayesian mode (chance to win
        # above or below one half), the estimate's otherwise.
        if v.chance_to_win is not None:
            return v.chance_to_win - 0.5
        return sign * float(v.absolute.estimate or 0.0)

    better = [v for v in variants if v.significant and score(v) > 0]
    harmed = {g.variant: g for g in guardrails if g.harmed}
    candidates = [v for v in better if v.variant not in harmed]
    if candidates:
        best = max(candidates, key=score)
        return (
            best.variant,
            f"{best.variant!r} beats the control on {metric!r} ({direction} is better): "
            f"{_fmt_lift(best.relative)}"
            + (
                f", chance to win {best.chance_to_win:.1%}"
                if best.chance_to_win is not None
                else f", adjusted p = {best.p_value_adjusted:.3g} < {alpha:g}"
            )
            + (
                f"; no guardrail harmed ({len({g.metric for g in guardrails})} checked)"
                if guardrails
                else ""
            ),
            None,
        )
    if better:
        parts = [
            f"{v.variant!r} improves {metric!r} but harms guardrail {harmed[v.variant].metric!r} "
            f"({_fmt_lift(harmed[v.variant].relative)})"
            for v in better
        ]
        return None, "no winner: " + "; ".join(parts), None
    worse = [v for v in variants if v.significant and score(v) < 0]
    prefix = ""
    if worse:
        prefix = (
            "; ".join(f"{v.variant!r} is significantly worse than the control" for v in worse)
            + ". "
        )
    leader = max(variants, key=score)
    if method == "bayesian":
        return (
            None,
            prefix + f"no winner yet: the best variant, {leader.variant!r}, has a "
            f"{leader.chance_to_win:.1%} chance to beat the control "
            f"(a winner needs {chance_to_win_threshold:.0%})",
            None,
        )
    if method == "sequential":
        return (
            None,
            prefix + f"no winner yet: no variant is significantly {direction} than the control on "
            f"{metric!r} (smallest adjusted always-valid p = "
            f"{min(v.p_value_adjusted for v in variants):.3g}); the confidence sequence stays "
            "valid, so keep collecting and look again at any time",
            None,
        )
    remaining = _remaining(
        comparisons[leader.variant],
        leader,
        alpha=alpha,
        variants=len(variants),
        power=power,
        control_n=control_n,
        correction=correction,
        sign=sign,
    )
    text = (
        prefix + f"no winner yet: no variant is significantly {direction} than the control on "
        f"{metric!r} after {correction} correction (best: {leader.variant!r}, "
        f"{_fmt_lift(leader.relative)}, adjusted p = {leader.p_value_adjusted:.3g})"
    )
    if remaining is None:
        text += "; its observed effect is not in the wanted direction, so no sample size is given"
    else:
        text += (
            f"; about {remaining:,} more units per arm would detect its observed effect with "
            f"{power:.0%} power"
        )
    return None, text, remaining


def _remaining(
    comparison: _Comparison,
    leader: VariantResult,
    *,
    alpha: float,
    variants: int,
    power: float,
    control_n: int,
    correction: str,
    sign: float,
) -> int | None:
    estimate = float(comparison.absolute.estimate)
    se = float(comparison.absolute.standard_error)
    if sign * estimate <= 0 or se == 0:
        return None
    level = alpha / variants if correction != "none" and variants > 1 else alpha
    current = control_n + leader.n
    factor = 1.0
    for _ in range(4):  # t quantiles at the grown sample's degrees of freedom: a fixed point
        df = max(factor * current - 2, 1.0)
        z = stats.t.ppf(1 - level / 2, df) + stats.t.ppf(power, df)
        factor = max((z * se / abs(estimate)) ** 2, 1.0)
    # Both arms grow by the same factor; the larger arm's increase is the one to plan for.
    return math.ceil((factor - 1) * max(control_n, leader.n))
