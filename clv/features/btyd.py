"""BTYD-derived features: BG/NBD and Gamma-Gamma fitted on the training window only.

The models are fitted on the RFM summary as of the cut-off, so they never see a transaction after
it; their predictions over the horizon become features for the machine-learning models.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from clv.models.btyd import (
    BGNBDParams,
    GammaGammaParams,
    bgnbd_expected_purchases,
    bgnbd_probability_alive,
    bgnbd_probability_no_purchase,
    fit_bgnbd,
    fit_gamma_gamma,
    gamma_gamma_expected_spend,
)

BTYD_COLUMNS: tuple[str, ...] = (
    "btyd_expected_purchases",
    "btyd_p_alive",
    "btyd_expected_order_value",
    "btyd_expected_spend",
    "btyd_p_no_purchase",
)


@dataclass(frozen=True)
class BTYDFit:
    """Parameters fitted on one training window."""

    bgnbd: BGNBDParams
    gamma_gamma: GammaGammaParams


def fit_btyd(rfm: pd.DataFrame) -> BTYDFit:
    """Fit BG/NBD on all customers and Gamma-Gamma on repeat buyers with positive spend.

    Parameters
    ----------
    rfm : DataFrame
        Output of :func:`clv.features.rfm.rfm_features` (days).

    Returns
    -------
    BTYDFit
        The fitted parameters.
    """
    bg = fit_bgnbd(rfm["frequency"], rfm["recency"], rfm["T"])
    repeat = rfm[(rfm["frequency"] > 0) & (rfm["monetary_value"] > 0)]
    if len(repeat) < 2:
        raise ValueError(
            "Gamma-Gamma needs at least two customers with repeat purchases before the cut-off; "
            f"found {len(repeat)}. Use an earlier horizon or more history."
        )
    gg = fit_gamma_gamma(repeat["frequency"], repeat["monetary_value"])
    return BTYDFit(bg, gg)


def btyd_predict(rfm: pd.DataFrame, fit: BTYDFit, *, horizon_days: int) -> pd.DataFrame:
    """BG/NBD expected purchases, P(alive) and P(no purchase in the horizon), Gamma-Gamma
    order value, and expected spend (purchases times order value).

    Parameters
    ----------
    rfm : DataFrame
        RFM features (days), indexed by ``customer_id``.
    fit : BTYDFit
        Parameters from :func:`fit_btyd`.
    horizon_days : int
        Prediction horizon in days.

    Returns
    -------
    DataFrame
        Columns :data:`BTYD_COLUMNS`, same index as ``rfm``. Expected spend is never negative.
    """
    freq, rec, age = rfm["frequency"], rfm["recency"], rfm["T"]
    purchases = bgnbd_expected_purchases(fit.bgnbd, freq, rec, age, horizon_days)
    p_alive = bgnbd_probability_alive(fit.bgnbd, freq, rec, age)
    order_value = gamma_gamma_expected_spend(
        fit.gamma_gamma, freq, rfm["monetary_value"].clip(lower=0.0)
    )
    if not (np.isfinite(purchases).all() and np.isfinite(order_value).all()):
        raise ValueError(
            f"the BTYD fit is degenerate ({fit}); its predictions are not finite. This happens "
            "when the training window shows no variety in purchase behaviour (e.g. every "
            "customer bought the same number of times): use more history or skip BTYD features."
        )
    spend = np.maximum(np.asarray(purchases) * np.asarray(order_value), 0.0)
    return pd.DataFrame(
        {
            "btyd_expected_purchases": purchases,
            "btyd_p_alive": p_alive,
            "btyd_expected_order_value": order_value,
            "btyd_expected_spend": spend,
            "btyd_p_no_purchase": bgnbd_probability_no_purchase(
                fit.bgnbd, freq, rec, age, horizon_days
            ),
        },
        index=rfm.index,
    )
