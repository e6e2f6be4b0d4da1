"""Who may be contacted, on which channel: consent, opt-outs, suppression and frequency caps.

Every customer of the audience ends up either eligible on at least one channel or excluded for
one reason, counted: the first that applies in the order of :data:`REASONS`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import numpy as np
import pandas as pd

from clv.campaigns.errors import CampaignError

__all__ = ["REASONS", "Eligibility", "eligibility"]

#: Why a customer is not contacted, in the order they are checked.
REASONS: tuple[str, ...] = (
    "no marketing opt-in",
    "suppressed",
    "frequency cap",
    "no reachable channel",
)


class Eligibility:
    """The result of :func:`eligibility`.

    Attributes
    ----------
    channels : DataFrame
        Boolean, indexed by ``customer_id``, one column per channel: may this customer be sent
        a message on it. Excluded customers have ``False`` everywhere.
    excluded : dict
        Reason → number of customers excluded for it (every reason present, zeros included).
    reason : Series
        Per customer, the reason they are excluded, or ``None`` for eligible ones.
    """

    def __init__(self, channels: pd.DataFrame, reason: pd.Series) -> None:
        self.channels = channels
        self.reason = reason
        counts = reason.value_counts()
        self.excluded = {r: int(counts.get(r, 0)) for r in REASONS}

    @property
    def eligible_ids(self) -> pd.Index:
        """Customers eligible on at least one channel."""
        return self.reason.index[self.reason.isna().to_numpy()]


def eligibility(
    audience: pd.DataFrame,
    channels: Iterable[str],
    *,
    contacts: pd.DataFrame | None = None,
    suppressed: Iterable[str] = (),
    history: pd.DataFrame | None = None,
    max_messages: int = 1,
    per_days: int = 7,
    now: pd.Timestamp | None = None,
    channel_kinds: Mapping[str, str] | None = None,
) -> Eligibility:
    """Decide, for each customer of the audience and each channel, whether a message may go.

    Parameters
    ----------
    audience : DataFrame
        ``customer_id`` and, when known, ``marketing_opt_in`` (missing → not opted in).
    channels : iterable of str
        The campaign's channel names.
    contacts : DataFrame, optional
        ``customer_id`` and per channel kind an address column (``email``, ``phone``,
        ``app_user_id``) and an optional ``opt_out_<kind>`` boolean. Without it every customer
        is reachable on every channel.
    suppressed : iterable of str
        Customer ids never to contact (complaints, legal holds, staff).
    history : DataFrame, optional
        Earlier messages: ``customer_id`` and ``sent_at``; a customer who already received
        ``max_messages`` in the ``per_days`` days before ``now`` is capped.
    max_messages, per_days : int
        The frequency cap.
    now : Timestamp, optional
        The send time the cap is checked at (default: now, UTC).
    channel_kinds : mapping, optional
        Channel name → kind (``email``, ``sms``, ``in_app``); a name is its own kind by default.

    Returns
    -------
    Eligibility
        Per-channel eligibility and the excluded customers counted by reason.
    """
    names = list(channels)
    if "customer_id" not in audience.columns:
        raise CampaignError("the audience needs a customer_id column")
    kinds = {name: (channel_kinds or {}).get(name, name) for name in names}
    ids = audience["customer_id"].astype(str)
    index = pd.Index(ids, name="customer_id")
    reason = pd.Series([None] * len(index), index=index, dtype=object)

    def exclude(mask: np.ndarray, why: str) -> None:
        fresh = mask & reason.isna().to_numpy()
        reason.iloc[np.flatnonzero(fresh)] = why

    if "marketing_opt_in" in audience.columns:
        opted = audience["marketing_opt_in"].fillna(False).astype(bool).to_numpy()
    else:
        opted = np.zeros(len(index), dtype=bool)
    exclude(~opted, "no marketing opt-in")
    exclude(ids.isin({str(s) for s in suppressed}).to_numpy(), "suppressed")
    if history is not None and len(history):
        if not {"customer_id", "sent_at"} <= set(history.columns):
            raise CampaignError("message history needs customer_id and sent_at columns")
        at = pd.Timestamp.now(tz="UTC").tz_localize(None) if now is None else pd.Timestamp(now)
        sent = pd.to_datetime(history["sent_at"], utc=True).dt.tz_localize(None)
        recent = history.loc[(sent > at - pd.Timedelta(days=per_days)).to_numpy()]
        counts = recent["customer_id"].astype(str).value_counts()
        capped = counts.reindex(ids.to_numpy(), fill_value=0).to_numpy() >= max_messages
        exclude(capped, "frequency cap")
    reachable = pd.DataFrame(True, index=index, columns=names)
    if contacts is not None:
        book = contacts.assign(customer_id=contacts["customer_id"].astype(str))
        book = book.drop_duplicates("customer_id").set_index("customer_id").reindex(index)
        address = {"email": "email", "sms": "phone", "in_app": "app_user_id"}
        for name in names:
            kind = kinds[name]
            column = address.get(kind)
            ok = np.ones(len(index), dtype=bool)
            if column is not None:
                if column not in book.columns:
                    raise CampaignError(
                        f"contacts lack column {column!r}, needed for channel {name!r} ({kind})"
                    )
                values = book[column]
                ok &= values.notna().to_numpy() & (values.astype(str).str.strip() != "").to_numpy()
            opt_out = f"opt_out_{kind}"
            if opt_out in book.columns:
                ok &= ~book[opt_out].fillna(False).astype(bool).to_numpy()
            reachable[name] = ok
    exclude(~np.asarray(reachable.to_numpy().any(axis=1), dtype=bool), "no reachable channel")
    allowed = reachable & reason.isna().to_numpy()[:, None]
    return Eligibility(allowed, reason)
