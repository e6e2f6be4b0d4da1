"""Who to contact, through which channel, under a budget: targeting by expected incremental value.

For each customer and channel the expected incremental value is ``uplift(segment, channel) ×
value(customer) − cost(channel)``: the relative uplift a message causes (measured on earlier
campaigns, preferably on the number of orders, and shrunk towards a meta-regression on the
segments' covariates; a configured prior where nothing was measured) times the value at stake
(the champion's predicted CLV times the margin), less what the message costs. Customers who
would buy anyway (large value, no uplift) are not worth a message; "highest CLV first" pays for
exactly those.

Selection is greedy by net value per unit of cost, one channel per customer (the one with the
best ratio), until the budget is spent; a candidate whose net value is not positive is never
sent. The two baselines a benchmark compares with — highest CLV first and random — use each
customer's cheapest channel and the same budget.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

import numpy as np
import pandas as pd

from clv.campaigns.errors import CampaignError

__all__ = [
    "STRATEGIES",
    "UPLIFT_COVARIATES",
    "UPLIFT_METRICS",
    "MetaRegression",
    "Tau2Method",
    "candidates",
    "measured_for_targeting",
    "meta_regression",
    "segment_covariates",
    "select_under_budget",
    "shrink_uplift",
]

Strategy = Literal["incremental", "highest_clv", "random"]
Tau2Method = Literal["bayes", "reml", "dl"]
STRATEGIES: tuple[str, ...] = ("incremental", "highest_clv", "random")
#: Columns of the frame :func:`shrink_uplift` reads (measured results of earlier campaigns).
MEASURED_COLUMNS = ("segment", "channel", "uplift", "standard_error")
#: Which measured metric the targeting reads, in order of preference per (segment, channel):
#: the relative uplift in orders (a message changes how often people buy; the count is far less
#: noisy than the revenue), else the relative revenue uplift.
UPLIFT_METRICS: tuple[str, ...] = ("orders", "revenue")
#: Segment covariates of the meta-regression, from the plan's customers: the segment's mean
#: churn probability and mean ``log(1 + predicted_clv)`` (see :func:`segment_covariates`).
UPLIFT_COVARIATES: tuple[str, ...] = ("churn_probability", "predicted_clv")


def measured_for_targeting(
    measured: pd.DataFrame | None, metrics: tuple[str, ...] = UPLIFT_METRICS
) -> pd.DataFrame | None:
    """The measured rows the targeting uses: per (segment, channel), the first metric present.

    Parameters
    ----------
    measured : DataFrame or None
        Measured uplift rows; a frame without a ``metric`` column (e.g.
        :meth:`clv.store.Store.measured_uplift`, which reads one metric) is used as it is.
    metrics : tuple of str
        Metrics in order of preference (default :data:`UPLIFT_METRICS`); rows of other
        metrics are left out.

    Returns
    -------
    DataFrame or None
        The chosen rows, or ``measured`` itself when it has no ``metric`` column.
    """
    if measured is None or "metric" not in measured.columns:
        return measured
    rank = measured["metric"].map({m: i for i, m in enumerate(metrics)})
    frame = measured.assign(_rank=rank)[rank.notna()]
    if "standard_error" in frame.columns:
        frame = frame[frame["standard_error"] > 0]
    frame = frame.sort_values("_rank", kind="stable")
    frame = frame.drop_duplicates(["segment", "channel"], keep="first")
    return frame.drop(columns="_rank").sort_index()


def segment_covariates(
    customers: pd.DataFrame, columns: tuple[str, ...] = UPLIFT_COVARIATES
) -> pd.DataFrame:
    """Per segment, the mean of each covariate column over its customers.

    ``predicted_clv`` enters as ``log(1 + max(predicted_clv, 0))`` (its spread across segments
    is multiplicative). A column the customers lack, or that is missing for every customer of
    some segment, is left out: the meta-regression then uses the others (or none).

    Parameters
    ----------
    customers : DataFrame
        ``segment`` and the covariate columns, one row per customer.
    columns : tuple of str
        The covariates (default :data:`UPLIFT_COVARIATES`).

    Returns
    -------
    DataFrame
        Indexed by segment, one float column per covariate kept.
    """
    if "segment" not in customers.columns:
        raise CampaignError("customers lack column segment")
    out: dict[str, pd.Series] = {}
    for column in columns:
        if column not in customers.columns:
            continue
        values = pd.to_numeric(customers[column], errors="coerce").astype(float)
        if column == "predicted_clv":
            values = pd.Series(np.log1p(values.clip(lower=0)), index=customers.index)
        means = values.where(np.isfinite(values)).groupby(customers["segment"].astype(str)).mean()
        if means.notna().all():
            out[column] = means
    index = pd.Index(sorted(set(customers["segment"].astype(str))), name="segment")
    return pd.DataFrame(out, index=index).reindex(index)


def shrink_uplift(
    measured: pd.DataFrame | None,
    segments: list[str],
    channels: list[str],
    *,
    prior_rate: float,
    prior_sd: float,
    covariates: pd.DataFrame | None = None,
    tau2_method: Tau2Method = "dl",
) -> pd.DataFrame:
    """Relative uplift per (segment, channel): measured estimates shrunk by their precision.

    Without ``covariates``, for each channel the measured segment estimates ``u_s ± se_s`` are
    pooled into a global estimate (precision-weighted, itself shrunk towards ``prior_rate``
    with ``prior_sd``), the between-segment spread ``τ²`` is estimated by DerSimonian–Laird's
    method of moments (at least ``(prior_sd / 2)²``), and each segment's estimate becomes
    ``w u_s + (1 − w) global`` with ``w = τ² / (τ² + se_s²)``: a precise measurement keeps its
    value, a noisy one moves towards the global estimate. Segments never measured on a channel
    get the channel's global estimate (the prior when the channel was never measured).

    With ``covariates`` (segment-level numbers known at planning time, e.g. the segment's mean
    churn probability) or another ``tau2_method``, the global estimate becomes a mixed-effects
    meta-regression (:func:`meta_regression`): each segment is shrunk towards ``x_s β``, the
    prediction of a weighted regression of the measured estimates on the covariates (its
    intercept shrunk towards ``prior_rate`` with ``prior_sd``), by the residual spread ``τ²``
    (estimated, or integrated over its posterior with ``bayes``). Segments never measured get
    the regression's prediction (``source`` ``regression``), their covariates clipped to the
    range of the measured segments' (no extrapolation). A channel with fewer measured segments
    than the number of covariates + 2, or whose covariates do not vary over them, is fitted
    without covariates (one global estimate, ``source`` ``channel`` for the unmeasured).
    Without covariates and with ``dl`` (the defaults) the result is exactly the shrinkage
    towards one global estimate described above.

    Parameters
    ----------
    measured : DataFrame or None
        Columns :data:`MEASURED_COLUMNS`; ``None`` or empty when nothing was measured yet.
    segments, channels : list of str
        The cells to fill.
    prior_rate, prior_sd : float
        The configured prior relative uplift and its standard deviation.
    covariates : DataFrame, optional
        Indexed by segment name, one numeric column per covariate, a finite value for every
        segment in ``segments``; ``None`` or no columns: the global estimate.
    tau2_method : {"dl", "reml", "bayes"}
        How the between-segment spread is found (see :func:`meta_regression`).

    Returns
    -------
    DataFrame
        ``segment``, ``channel``, ``uplift``, ``source`` (``measured``, ``regression``,
        ``channel`` or ``prior``), one row per cell.

    Raises
    ------
    CampaignError
        When the prior's sd is not positive, ``measured`` lacks a column, or a covariate is
        missing, not numeric or not finite for a segment.
    """
    if not prior_sd > 0:
        raise CampaignError(f"the uplift prior's sd must be positive (got {prior_sd!r})")
    rows = []
    table = measured if measured is not None else pd.DataFrame(columns=list(MEASURED_COLUMNS))
    missing = [c for c in MEASURED_COLUMNS if c not in table.columns]
    if missing:
        raise CampaignError(f"measured uplift lacks column(s) {', '.join(missing)}")
    x_all = _covariate_matrix(covariates, segments)
    position = {segment: i for i, segment in enumerate(segments)}
    for channel in channels:
        usable = table[table["standard_error"] > 0]
        here = usable[usable["channel"] == channel]
        # A multi-channel campaign measured its segments over all its channels ("all"): that
        # measurement stands for each channel that has none of its own.
        pooled_rows = usable[
            (usable["channel"] == "all") & ~usable["segment"].isin(here["segment"])
        ]
        here = pd.concat([here, pooled_rows], ignore_index=True) if len(pooled_rows) else here
        u = here["uplift"].to_numpy(dtype=float)
        se2 = here["standard_error"].to_numpy(dtype=float) ** 2
        names = here["segment"].astype(str).tolist()
        if x_all is None and tau2_method == "dl":
            rows += _towards_global(segments, channel, names, u, se2, prior_rate, prior_sd)
            continue
        # The regression sees the measured segments whose covariates are known (the plan's).
        x_cells = x_all if x_all is not None else np.empty((len(segments), 0))
        inside = [i for i, name in enumerate(names) if name in position]
        x_inside = x_cells[[position[names[i]] for i in inside]]
        fit = meta_regression(
            u[inside],
            se2[inside],
            x_inside,
            prior_rate=prior_rate,
            prior_sd=prior_sd,
            tau2_method=tau2_method,
        )
        if fit is None:
            rows += [(segment, channel, prior_rate, "prior") for segment in segments]
            continue
        centre = fit.predict(x_cells)
        shrunk = dict(
            zip(
                [names[i] for i in inside],
                fit.shrink(u[inside], se2[inside], x_inside),
                strict=True,
            )
        )
        unmeasured = "regression" if fit.kept.any() else "channel"
        for i, segment in enumerate(segments):
            if segment in shrunk:
                rows.append((segment, channel, float(shrunk[segment]), "measured"))
            else:
                rows.append((segment, channel, float(centre[i]), unmeasured))
    return pd.DataFrame(rows, columns=["segment", "channel", "uplift", "source"])


def _towards_global(
    segments: list[str],
    channel: str,
    names: list[str],
    u: np.ndarray,
    se2: np.ndarray,
    prior_rate: float,
    prior_sd: float,
) -> list[tuple[str, str, float, str]]:
    """Each measured segment shrunk towards the channel's one global estimate (no covariates)."""
    rows = []
    if len(names):
        w = 1 / se2
        pooled = float((w * u).sum() / w.sum())
        pooled_var = float(1 / w.sum())
        # The channel's global estimate, itself shrunk towards the configured prior.
        k = prior_sd**2 / (prior_sd**2 + pooled_var)
        global_ = k * pooled + (1 - k) * prior_rate
        q = float((w * (u - pooled) ** 2).sum())
        c = float(w.sum() - (w**2).sum() / w.sum())
        tau2 = max((q - (len(u) - 1)) / c, 0.0) if c > 0 else 0.0
        tau2 = max(tau2, (prior_sd / 2) ** 2)
    else:
        global_ = prior_rate
    by_segment = dict(zip(names, zip(u, se2, strict=True), strict=True))
    for segment in segments:
        if segment in by_segment:
            u_s, se2_s = by_segment[segment]
            weight = tau2 / (tau2 + se2_s)
            rows.append((segment, channel, weight * u_s + (1 - weight) * global_, "measured"))
        else:
            source = "channel" if len(names) else "prior"
            rows.append((segment, channel, global_, source))
    return rows


@dataclass(frozen=True)
class MetaRegression:
    """A fitted mixed-effects meta-regression of segment estimates on segment covariates.

    ``τ²`` is either one estimate (``dl``, ``reml``: one row below, weight 1) or a grid over its
    posterior (``bayes``); everything the fit says is averaged over those rows.

    Attributes
    ----------
    tau2_grid : ndarray
        The values of ``τ²`` considered.
    posterior : ndarray
        The weight of each (summing to 1).
    coefficients : ndarray
        One row per ``τ²``: intercept (at the measured segments' mean covariates) and one slope
        per kept covariate, in units of the covariate's sd over the measured segments.
    kept : ndarray
        Boolean per covariate column: varied over the measured segments, so in the fit.
    centre, scale, low, high : ndarray
        Mean, sd, minimum and maximum of each kept covariate over the measured segments.
    """

    tau2_grid: np.ndarray
    posterior: np.ndarray
    coefficients: np.ndarray
    kept: np.ndarray
    centre: np.ndarray
    scale: np.ndarray
    low: np.ndarray
    high: np.ndarray

    @property
    def tau2(self) -> float:
        """The (posterior mean) residual between-segment variance."""
        return float(self.posterior @ self.tau2_grid)

    def _by_tau(self, x: np.ndarray) -> np.ndarray:
        kept = np.asarray(x, dtype=float).reshape(len(x), -1)[:, self.kept]
        z = (np.clip(kept, self.low, self.high) - self.centre) / self.scale
        design = np.column_stack([np.ones(len(z)), z])
        by_tau: np.ndarray = design @ self.coefficients.T  # segments × τ² values
        return by_tau

    def predict(self, x: np.ndarray) -> np.ndarray:
        """The regression's uplift ``x_s β`` per covariate row, clipped to the measured range.

        Parameters
        ----------
        x : ndarray
            One row per segment, one column per covariate (all columns of the fit's input).

        Returns
        -------
        ndarray
            One value per row.
        """
        prediction: np.ndarray = self._by_tau(x) @ self.posterior
        return prediction

    def shrink(self, uplift: np.ndarray, variance: np.ndarray, x: np.ndarray) -> np.ndarray:
        """Measured segments' uplift given the regression: ``w u_s + (1 − w) x_s β``.

        ``w = τ² / (τ² + se_s²)``, averaged over ``τ²``'s posterior.

        Parameters
        ----------
        uplift, variance : ndarray
            The segments' estimates and squared standard errors.
        x : ndarray
            Their covariate rows.

        Returns
        -------
        ndarray
            The posterior mean uplift per segment.
        """
        se2 = np.asarray(variance, dtype=float)[:, None]
        weight = self.tau2_grid[None, :] / (self.tau2_grid[None, :] + se2)
        u = np.asarray(uplift, dtype=float)[:, None]
        shrunk: np.ndarray = (weight * u + (1 - weight) * self._by_tau(x)) @ self.posterior
        return shrunk


def meta_regression(
    uplift: np.ndarray,
    variance: np.ndarray,
    covariates: np.ndarray,
    *,
    prior_rate: float,
    prior_sd: float,
    tau2_method: Tau2Method = "reml",
) -> MetaRegression | None:
    """Mixed-effects meta-regression: ``u_s = x_s β + b_s + e_s``, ``b_s ~ N(0, τ²)``.

    ``e_s ~ N(0, se_s²)`` is the measurement's error and ``b_s`` what the covariates do not
    explain. ``β`` is the weighted least-squares fit with weights ``1 / (se² + τ²)``, its
    intercept (the uplift at the measured segments' mean covariates) given a
    ``N(prior_rate, prior_sd²)`` prior, the slopes none. ``τ²``, the residual between-segment
    variance, is

    * ``dl``: estimated by the method of moments on the fixed-effect fit's residuals
      (DerSimonian–Laird generalised to meta-regression: ``τ² = (Q_E − (k − q)) / (Σ w −
      tr((XᵀWX)⁻¹ XᵀW²X))``, ``w = 1 / se²``, ``q`` coefficients), at least
      ``(prior_sd / 2)²`` as in :func:`shrink_uplift`;
    * ``reml``: estimated by restricted maximum likelihood, with the same floor;
    * ``bayes``: integrated over its posterior (a uniform prior on ``τ`` up to twice the range
      of the estimates plus the largest standard error, and the likelihood with ``β``
      integrated out), no floor. With a handful of segments ``τ²`` is poorly determined, and
      a point estimate at or near zero (which both estimators often give) pools every segment
      completely; the posterior keeps the larger values the data do not rule out.

    Covariates are centred and scaled by their mean and sd over the measured segments. One that
    does not vary over them is left out, and all are when fewer than their number + 2 segments
    were measured, or when they are collinear: the fit is then one global estimate.

    Parameters
    ----------
    uplift, variance : ndarray
        The measured estimates ``u_s`` and their squared standard errors ``se_s²`` (positive).
    covariates : ndarray
        One row per measured segment, one column per covariate (possibly none).
    prior_rate, prior_sd : float
        The prior on the intercept.
    tau2_method : {"reml", "dl", "bayes"}
        How ``τ²`` is found.

    Returns
    -------
    MetaRegression or None
        ``None`` when nothing was measured.
    """
    if tau2_method not in ("dl", "reml", "bayes"):
        raise CampaignError(f"tau2_method must be bayes, reml or dl (got {tau2_method!r})")
    u = np.asarray(uplift, dtype=float)
    se2 = np.asarray(variance, dtype=float)
    if len(u) == 0:
        return None
    x = np.asarray(covariates, dtype=float).reshape(len(u), -1)
    scale = x.std(axis=0)
    kept = scale > 1e-12 * np.maximum(np.abs(x).max(axis=0, initial=0.0), 1.0)
    if len(u) < int(kept.sum()) + 2:
        kept[:] = False
    design = _design(x, kept)
    if np.linalg.matrix_rank(design.T @ (design / se2[:, None])) < design.shape[1]:
        kept[:] = False  # collinear over the measured segments
        design = _design(x, kept)
    prior_precision = np.zeros((design.shape[1], design.shape[1]))
    prior_precision[0, 0] = 1 / prior_sd**2
    prior_mean = np.zeros(design.shape[1])
    prior_mean[0] = prior_rate
    model = _GaussianRegression(u, se2, design, prior_mean, prior_precision)
    if tau2_method == "bayes":
        # τ on a grid up to where the likelihood has long fallen off (see above).
        upper = 2.0 * float(np.ptp(u)) + float(np.sqrt(se2.max()))
        taus = np.linspace(0.0, upper, 201)
        log_like = np.array([model.log_likelihood(t * t) for t in taus])
        posterior = np.exp(log_like - log_like.max())
        grid = taus**2
        posterior = posterior / posterior.sum()
    else:
        tau2 = _tau2_moments(u, se2, design) if tau2_method == "dl" else model.reml_tau2()
        grid = np.array([max(tau2, (prior_sd / 2) ** 2)])
        posterior = np.ones(1)
    return MetaRegression(
        tau2_grid=grid,
        posterior=posterior,
        coefficients=np.array([model.coefficients(t2) for t2 in grid]),
        kept=kept,
        centre=x[:, kept].mean(axis=0),
        scale=scale[kept],
        low=x[:, kept].min(axis=0),
        high=x[:, kept].max(axis=0),
    )


def _design(x: np.ndarray, kept: np.ndarray) -> np.ndarray:
    z = (x[:, kept] - x[:, kept].mean(axis=0)) / x[:, kept].std(axis=0)
    return np.column_stack([np.ones(len(x)), z])


def _tau2_moments(u: np.ndarray, se2: np.ndarray, design: np.ndarray) -> float:
    """DerSimonian–Laird's τ², generalised to a regression on ``design``."""
    w = 1 / se2
    xtwx = design.T @ (design * w[:, None])
    beta = np.linalg.solve(xtwx, design.T @ (w * u))
    q_stat = float((w * (u - design @ beta) ** 2).sum())
    c = float(w.sum() - np.trace(np.linalg.solve(xtwx, design.T @ (design * (w**2)[:, None]))))
    df = len(u) - design.shape[1]
    return max((q_stat - df) / c, 0.0) if c > 0 and df > 0 else 0.0


@dataclass(frozen=True)
class _GaussianRegression:
    """``u ~ N(Xβ, diag(se² + τ²))`` with a Gaussian prior on β (zero precision: flat)."""

    u: np.ndarray
    se2: np.ndarray
    design: np.ndarray
    prior_mean: np.ndarray
    prior_precision: np.ndarray

    def _solve(self, tau2: float, prior: bool) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        v = self.se2 + tau2
        precision = self.design.T @ (self.design / v[:, None])
        rhs = self.design.T @ (self.u / v)
        if prior:
            precision = precision + self.prior_precision
            rhs = rhs + self.prior_precision @ self.prior_mean
        return v, precision, np.linalg.solve(precision, rhs)

    def coefficients(self, tau2: float) -> np.ndarray:
        """β's posterior mean given τ²."""
        return self._solve(tau2, prior=True)[2]

    def log_likelihood(self, tau2: float) -> float:
        """log p(u | τ²) with β integrated out over its prior (up to a constant)."""
        v, precision, beta = self._solve(tau2, prior=True)
        residual = self.u - self.design @ beta
        shift = beta - self.prior_mean
        _, log_det = np.linalg.slogdet(precision)
        quadratic = (residual**2 / v).sum() + shift @ self.prior_precision @ shift
        return -0.5 * float(np.log(v).sum() + log_det + quadratic)

    def reml_tau2(self) -> float:
        """τ² maximising the restricted likelihood (β flat): a grid on τ, then a bounded search."""
        if len(self.u) <= self.design.shape[1]:
            return 0.0  # no residual degree of freedom: the likelihood is flat in τ²

        def minus(tau: float) -> float:
            v, precision, beta = self._solve(tau * tau, prior=False)
            residual = self.u - self.design @ beta
            _, log_det = np.linalg.slogdet(precision)
            return 0.5 * float(np.log(v).sum() + log_det + (residual**2 / v).sum())

        upper = 2.0 * float(np.ptp(self.u)) + float(np.sqrt(self.se2.max()))
        grid = np.linspace(0.0, upper, 201)
        values = np.array([minus(t) for t in grid])
        best = int(np.argmin(values))
        if best == 0:
            return 0.0
        from scipy.optimize import minimize_scalar

        found = minimize_scalar(
            minus, bounds=(grid[best - 1], grid[min(best + 1, len(grid) - 1)]), method="bounded"
        )
        tau = float(found.x) if found.fun <= values[best] else float(grid[best])
        return tau * tau


def _covariate_matrix(covariates: pd.DataFrame | None, segments: list[str]) -> np.ndarray | None:
    """The covariates as a float matrix in the order of ``segments``; refuse bad input."""
    if covariates is None:
        return None
    if not isinstance(covariates, pd.DataFrame):
        raise CampaignError("segment covariates must be a DataFrame indexed by segment")
    if covariates.shape[1] == 0:
        return None
    table = covariates.set_axis(covariates.index.astype(str), axis=0)
    absent = [s for s in segments if s not in table.index]
    if absent:
        raise CampaignError(
            f"segment covariates lack segment(s) {', '.join(map(repr, absent[:5]))}"
        )
    table = table.loc[~table.index.duplicated(keep="last")].reindex(segments)
    for column in table.columns:
        if not pd.api.types.is_numeric_dtype(table[column]) or pd.api.types.is_bool_dtype(
            table[column]
        ):
            raise CampaignError(f"segment covariate {column!r} is not numeric")
        values = table[column].to_numpy(dtype=float)
        bad = ~np.isfinite(values)
        if bad.any():
            raise CampaignError(
                f"segment covariate {column!r} is not a finite number for segment "
                f"{segments[int(np.flatnonzero(bad)[0])]!r}"
            )
    return table.to_numpy(dtype=float)


def candidates(
    customers: pd.DataFrame,
    channel_costs: Mapping[str, float],
    uplift: pd.DataFrame,
    *,
    margin: float,
    eligible: pd.DataFrame | None = None,
    window_share: float = 1.0,
) -> pd.DataFrame:
    """Every eligible (customer, channel) pair with its expected incremental value and cost.

    The expected incremental value is ``uplift × margin × predicted CLV × window_share``: the
    uplift is relative to the spend in the attribution window, which is ``window_share`` (the
    window over the CLV horizon) of the predicted CLV.

    Parameters
    ----------
    customers : DataFrame
        ``customer_id``, ``segment`` and ``predicted_clv``.
    channel_costs : mapping
        Channel name → cost per message.
    uplift : DataFrame
        From :func:`shrink_uplift`.
    margin : float
        Share of revenue that is margin: the value at stake is ``margin × predicted_clv``.
    eligible : DataFrame, optional
        Boolean, indexed by customer id, one column per channel (see
        :func:`clv.campaigns.eligibility.eligibility`); all eligible when omitted.

    Returns
    -------
    DataFrame
        ``customer_id``, ``segment``, ``channel``, ``predicted_clv``,
        ``expected_incremental_value`` (margin, before cost), ``cost`` and ``net``.
    """
    needed = [c for c in ("customer_id", "segment", "predicted_clv") if c not in customers]
    if needed:
        raise CampaignError(f"customers lack column(s) {', '.join(needed)}")
    if not 0 < margin <= 1:
        raise CampaignError(f"margin must be in (0, 1] (got {margin!r})")
    frames = []
    lookup = uplift.set_index(["segment", "channel"])["uplift"]
    for channel, cost in channel_costs.items():
        part = customers[["customer_id", "segment", "predicted_clv"]].copy()
        if eligible is not None:
            if channel not in eligible.columns:
                raise CampaignError(f"no eligibility column for channel {channel!r}")
            allowed = eligible[channel].reindex(part["customer_id"].to_numpy(), fill_value=False)
            part = part[allowed.to_numpy(dtype=bool)]
        keys = pd.MultiIndex.from_arrays([part["segment"].astype(str), [channel] * len(part)])
        rate = lookup.reindex(keys).to_numpy(dtype=float)
        unknown = np.isnan(rate)
        if unknown.any():
            first = part["segment"].to_numpy()[np.flatnonzero(unknown)[0]]
            raise CampaignError(f"no uplift for segment {first!r} on channel {channel!r}")
        part["channel"] = channel
        spend = np.clip(part["predicted_clv"].to_numpy(dtype=float), 0.0, None) * window_share
        value = margin * spend
        part["expected_incremental_value"] = rate * value
        part["cost"] = float(cost)
        part["net"] = part["expected_incremental_value"] - part["cost"]
        frames.append(part)
    return pd.concat(frames, ignore_index=True)


def select_under_budget(
    pairs: pd.DataFrame,
    budget: float,
    *,
    strategy: Strategy = "incremental",
    seed: int = 0,
) -> pd.DataFrame:
    """Choose at most one channel per customer and customers until the budget is spent.

    Parameters
    ----------
    pairs : DataFrame
        From :func:`candidates`.
    budget : float
        Total cost allowed.
    strategy : {"incremental", "highest_clv", "random"}
        ``incremental``: each customer's channel with the best net value per cost, customers by
        that ratio, positive net value only. ``highest_clv``: each customer's cheapest channel,
        customers by predicted CLV. ``random``: cheapest channel, a seeded random order.
    seed : int
        For ``random`` (and ties).

    Returns
    -------
    DataFrame
        The chosen rows of ``pairs`` in selection order, with ``cumulative_cost``; their total
        cost is at most ``budget``.
    """
    if not (np.isfinite(budget) and budget >= 0):
        raise CampaignError(f"budget must be a non-negative number (got {budget!r})")
    if strategy not in STRATEGIES:
        raise CampaignError(f"strategy must be one of {', '.join(STRATEGIES)}")
    if pairs.empty:
        return pairs.assign(cumulative_cost=pd.Series(dtype=float))
    rng = np.random.default_rng(seed)
    frame = pairs.assign(_tie=rng.random(len(pairs)))
    if strategy == "incremental":
        cost = frame["cost"].to_numpy(dtype=float)
        with np.errstate(divide="ignore", invalid="ignore"):
            ratio = np.where(cost > 0, frame["net"].to_numpy() / cost, np.inf)
        frame = frame.assign(_ratio=np.where(frame["net"].to_numpy() > 0, ratio, -np.inf))
        frame = frame[frame["_ratio"] > -np.inf]
        frame = frame.sort_values(["_ratio", "net", "_tie"], ascending=[False, False, True])
        frame = frame.drop_duplicates("customer_id", keep="first")
    else:
        frame = frame.sort_values(["cost", "_tie"]).drop_duplicates("customer_id", keep="first")
        if strategy == "highest_clv":
            frame = frame.sort_values(["predicted_clv", "_tie"], ascending=[False, True])
        else:
            frame = frame.sort_values("_tie")
    chosen = _fill(frame["cost"].to_numpy(dtype=float), budget)
    out = frame.iloc[chosen].drop(columns=[c for c in ("_tie", "_ratio") if c in frame])
    return out.assign(cumulative_cost=out["cost"].cumsum().to_numpy()).reset_index(drop=True)


def _fill(costs: np.ndarray, budget: float) -> np.ndarray:
    """Positions taken in order while they fit; later cheaper ones fill what is left."""
    taken = np.zeros(len(costs), dtype=bool)
    left = budget
    start = 0
    while start < len(costs):
        rest = costs[start:]
        fits = np.cumsum(rest) <= left + 1e-9
        run = int(np.argmin(fits)) if not fits.all() else len(rest)
        taken[start : start + run] = True
        left -= float(rest[:run].sum())
        start += run
        if start >= len(costs):
            break
        # The next one does not fit: skip every candidate dearer than what is left.
        affordable = np.flatnonzero(costs[start:] <= left + 1e-9)
        if affordable.size == 0:
            break
        start += int(affordable[0])
    return np.flatnonzero(taken)
