"""Campaign engagement: what recipients did with a message (opened, clicked, converted, ...).

Events arrive two ways. A provider's export (CSV, Parquet or JSON lines, one event per row) is read
by :func:`read_events`; a webhook provider's callbacks carry the ``idempotency_key`` the message was
sent with (``Idempotency-Key``, email ``Message-ID``), which :func:`events_from_callbacks` and
:func:`read_callbacks` resolve to the campaign, customer and channel through the outbox. Both give
the same frame (:data:`EVENT_COLUMNS`), which :meth:`clv.store.Store.record_events` stores once per
``event_id``: the default id is a SHA-256 of the event's content, so ingesting a file (or a
callback) twice records it once.

:func:`engagement_summary` turns a campaign's events, plan and sent messages into rates per variant
and per channel: unique customers with each kind of event over the messages sent. Holdout
customers are never contacted, so an event of theirs is an anomaly, counted and left out.

Every problem with the input is a :class:`~clv.campaigns.errors.CampaignError` naming the file,
line (CSV: the header is line 1; JSON lines: the file's line) or row (Parquet, 1-based), the column
and what is wrong.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import re
from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from clv.campaigns.definition import HOLDOUT
from clv.campaigns.errors import CampaignError
from clv.store import CAMPAIGN_EVENT_COLUMNS, CAMPAIGN_EVENT_KINDS

if TYPE_CHECKING:
    from pathlib import Path

    from clv.store import Store

__all__ = [
    "EVENT_COLUMNS",
    "EVENT_KINDS",
    "RATES",
    "default_event_id",
    "engagement_summary",
    "events_from_callbacks",
    "read_callbacks",
    "read_events",
]

#: What a recipient (or their mail server) can do with a message, as a provider reports it.
EVENT_KINDS: tuple[str, ...] = CAMPAIGN_EVENT_KINDS
#: Columns of an events frame, as :func:`read_events` returns it and the store keeps it.
EVENT_COLUMNS: tuple[str, ...] = CAMPAIGN_EVENT_COLUMNS
#: Rate name → (numerator event kind, denominator): ``sent`` is the messages sent, otherwise
#: the unique customers with that event kind.
RATES: dict[str, tuple[str, str]] = {
    "delivery_rate": ("delivered", "sent"),
    "open_rate": ("open", "sent"),
    "click_rate": ("click", "sent"),
    "click_to_open": ("click", "open"),
    "conversion_rate": ("conversion", "sent"),
    "bounce_rate": ("bounce", "sent"),
    "unsubscribe_rate": ("unsubscribe", "sent"),
    "complaint_rate": ("complaint", "sent"),
}
_REQUIRED = ("customer_id", "channel", "event", "timestamp")
_TEXT_COLUMNS = ("event_id", "campaign_id", "customer_id", "channel", "event", "timestamp")
_MAX_EVENT_ID = 200
# A UTC offset (Z, +01:00, -0500, +01) after a time of day: the value is timezone-aware.
_OFFSET = re.compile(r":\d{2}(?:[.,]\d+)?\s*(?:[zZ]|[+-]\d{2}(?::?\d{2})?)$|[tT ]\d{2}\s*[zZ]$")


# --- event ids ------------------------------------------------------------------------------------


def default_event_id(
    campaign_id: str, customer_id: str, channel: str, event: str, occurred_at: pd.Timestamp
) -> str:
    """The id of an event that came without one: SHA-256 hex of its content.

    The same event (same campaign, customer, channel, kind and instant, in any time zone) always
    gets the same id, so a file or callback ingested twice is recorded once.

    Parameters
    ----------
    campaign_id, customer_id, channel, event : str
        What happened to which message.
    occurred_at : Timestamp
        When (timezone-aware, or naive UTC); compared to the microsecond, as stored.

    Returns
    -------
    str
        64 lowercase hex digits.
    """
    stamp = pd.Timestamp(occurred_at)
    stamp = stamp.tz_localize("UTC") if stamp.tzinfo is None else stamp.tz_convert("UTC")
    parts = [campaign_id, customer_id, channel, event, stamp.floor("us").isoformat()]
    return hashlib.sha256(json.dumps(parts).encode()).hexdigest()


def _default_ids(frame: pd.DataFrame) -> list[str]:
    return [
        default_event_id(c, cu, ch, e, t)
        for c, cu, ch, e, t in zip(
            frame["campaign_id"],
            frame["customer_id"],
            frame["channel"],
            frame["event"],
            frame["occurred_at"],
            strict=True,
        )
    ]


# --- reading files --------------------------------------------------------------------------------


def _places(name: str, kind: str, n: int, lines: Sequence[int] | None = None) -> list[str]:
    """Where each row is, for messages: ``events.csv line 3`` or ``events.parquet row 2``."""
    if lines is not None:
        return [f"{name} line {line}" for line in lines]
    if kind == "csv":
        return [f"{name} line {i + 2}" for i in range(n)]  # the header is line 1
    return [f"{name} row {i + 1}" for i in range(n)]


def _kind(name: str) -> str:
    lower = name.lower()
    if lower.endswith((".csv", ".csv.gz")):
        return "csv"
    if lower.endswith((".parquet", ".pq")):
        return "parquet"
    if lower.endswith((".jsonl", ".ndjson", ".json", ".jsonl.gz")):
        return "jsonl"
    raise CampaignError(
        f"{name}: events must be a .csv, .parquet or .jsonl (JSON lines) file; got {name!r}"
    )


def _json_lines(path: Path, name: str) -> tuple[list[Any], list[int]]:
    """Each non-blank line's JSON value, with its line number."""
    import gzip

    opener: Any = gzip.open if name.lower().endswith(".gz") else open
    records: list[Any] = []
    lines: list[int] = []
    try:
        with opener(path, "rt", encoding="utf-8") as fh:
            for number, line in enumerate(fh, start=1):
                if not line.strip():
                    continue
                try:
                    records.append(json.loads(line))
                except json.JSONDecodeError as err:
                    raise CampaignError(
                        f"{name} line {number}: not JSON ({err.msg} at character {err.pos + 1}); "
                        "a JSON-lines file holds one JSON object per line"
                    ) from None
                lines.append(number)
    except UnicodeDecodeError as err:
        raise CampaignError(f"{name}: not UTF-8 text ({err.reason})") from None
    return records, lines


def _objects(records: list[Any], places: list[str]) -> list[Mapping[str, Any]]:
    for record, place in zip(records, places, strict=True):
        if not isinstance(record, Mapping):
            raise CampaignError(
                f"{place}: a {type(record).__name__}, not a JSON object such as "
                '{"customer_id": "c1", "channel": "email", "event": "open", "timestamp": "..."}'
            )
    return records


def _read_file(uri: str | os.PathLike[str]) -> tuple[pd.DataFrame, list[str], str]:
    """The file's table (CSV: every column as text, NaN where empty), each row's place, and
    the file's name."""
    from clv.data.io import display_name, local_copy

    name = display_name(uri)
    kind = _kind(name)
    try:
        with local_copy(uri) as path:
            if path.stat().st_size == 0:
                raise CampaignError(
                    f"{name}: the file is empty; expected events with the columns "
                    f"{', '.join(_REQUIRED)} (and campaign_id, event_id, value)"
                )
            lines: list[int] | None = None
            if kind == "csv":
                frame = pd.read_csv(
                    path, dtype=str, keep_default_na=False, na_values=[""], skipinitialspace=True
                )
            elif kind == "parquet":
                frame = pd.read_parquet(path)
            else:
                records, lines = _json_lines(path, name)
                _objects(records, _places(name, kind, len(records), lines))
                frame = pd.DataFrame.from_records(records)
    except CampaignError:
        raise
    except FileNotFoundError as err:
        raise CampaignError(str(err)) from None
    except OSError as err:
        raise CampaignError(str(err) if name in str(err) else f"{name}: {err}") from None
    except (ValueError, TypeError) as err:
        raise CampaignError(f"{name}: cannot be read ({str(err).splitlines()[0]})") from None
    frame.columns = [str(c).strip() for c in frame.columns]
    if frame.empty:
        raise CampaignError(
            f"{name}: the file has no events (only a header, or no rows); expected the columns "
            f"{', '.join(_REQUIRED)}"
        )
    return frame.reset_index(drop=True), _places(name, kind, len(frame), lines), name


def read_events(path: str | os.PathLike[str], *, campaign_id: str | None = None) -> pd.DataFrame:
    """A provider's engagement events from a CSV, Parquet or JSON-lines file, validated.

    Parameters
    ----------
    path : str or path-like
        A local file or ``s3://`` object: ``.csv`` (``.csv.gz``), ``.parquet`` or ``.jsonl``
        (``.ndjson``, ``.json``: one object per line). Columns: ``customer_id``, ``channel``,
        ``event`` (one of :data:`EVENT_KINDS`, any case), ``timestamp`` (ISO 8601, with a UTC
        offset or naive UTC), and optionally ``campaign_id``, ``event_id`` and ``value`` (a
        conversion's value). Other columns are ignored.
    campaign_id : str, optional
        The campaign of rows without one (required when the file has no ``campaign_id``
        column); a row naming another campaign is refused.

    Returns
    -------
    DataFrame
        :data:`EVENT_COLUMNS`, one row per event: ``occurred_at`` ``datetime64[ns, UTC]``,
        ``value`` float64 (NaN when absent), the rest text. ``event_id`` is the file's, or
        :func:`default_event_id` where it has none; a row repeating an earlier one exactly is
        dropped.

    Raises
    ------
    CampaignError
        When the file cannot be read, is empty, lacks a column, or a row has a missing value, an
        unknown event kind, a time that is not ISO 8601, a value that is not a number, or an
        ``event_id`` of another event; the message names the file, line or row, and column.
    """
    raw, places, name = _read_file(path)
    return _validated(raw, places, name, campaign_id)


def _first(mask: np.ndarray | pd.Series, places: Sequence[str]) -> tuple[int, str]:
    """Index of the first True and how many more there are, as text."""
    hits = np.flatnonzero(np.asarray(mask, dtype=bool))
    more = f" (and {len(hits) - 1:,} more row(s))" if len(hits) > 1 else ""
    return int(hits[0]), more


def _validated(
    raw: pd.DataFrame, places: Sequence[str], name: str, campaign_id: str | None
) -> pd.DataFrame:
    required = list(_REQUIRED) + ([] if campaign_id is not None else ["campaign_id"])
    missing = [c for c in required if c not in raw.columns]
    if missing:
        hint = (
            "; give each row its campaign_id, or pass the campaign (--campaign)"
            if "campaign_id" in missing
            else ""
        )
        raise CampaignError(
            f"{name}: missing column(s) {', '.join(map(repr, missing))}; it has "
            f"{', '.join(map(repr, raw.columns))}{hint}"
        )
    frame = pd.DataFrame(index=raw.index)
    for column in _TEXT_COLUMNS:
        if column not in raw.columns:
            frame[column] = pd.Series([None] * len(raw), index=raw.index, dtype=object)
            continue
        frame[column] = raw[column].astype(object).map(_text)
    if campaign_id is not None:
        given = frame["campaign_id"]
        other = given.notna() & (given != campaign_id)
        if other.any():
            i, more = _first(other, places)
            raise CampaignError(
                f"{places[i]}, column 'campaign_id': {given.iloc[i]!r} is not the campaign "
                f"given ({campaign_id!r}){more}; ingest each campaign's events separately"
            )
        frame["campaign_id"] = given.fillna(campaign_id)
    for column in ("campaign_id", "customer_id", "channel", "event", "timestamp"):
        empty = frame[column].isna()
        if empty.any():
            i, more = _first(empty, places)
            raise CampaignError(f"{places[i]}, column {column!r}: empty{more}")
    frame["event"] = frame["event"].str.lower()
    unknown = ~frame["event"].isin(EVENT_KINDS)
    if unknown.any():
        i, more = _first(unknown, places)
        raise CampaignError(
            f"{places[i]}, column 'event': {raw['event'].iloc[i]!r} is not an event kind; use "
            f"one of {', '.join(EVENT_KINDS)}{more}"
        )
    for column in ("campaign_id", "channel"):
        piped = frame[column].str.contains("|", regex=False)
        if piped.any():
            i, more = _first(piped, places)
            raise CampaignError(
                f"{places[i]}, column {column!r}: {frame[column].iloc[i]!r} contains '|', which "
                f"no campaign id or channel does{more}"
            )
    long = frame["event_id"].notna() & (frame["event_id"].str.len() > _MAX_EVENT_ID)
    if long.any():
        i, more = _first(long, places)
        raise CampaignError(
            f"{places[i]}, column 'event_id': longer than {_MAX_EVENT_ID} characters{more}"
        )
    frame["occurred_at"] = _times(raw["timestamp"], frame["timestamp"], places)
    frame["value"] = _values(raw, places)
    missing_id = frame["event_id"].isna()
    if missing_id.any():
        frame.loc[missing_id, "event_id"] = _default_ids(frame.loc[missing_id])
    return _unique(frame[list(EVENT_COLUMNS)], places, name)


def _text(value: Any) -> str | None:
    """A cell as stripped text; None when missing or blank."""
    if value is None or value is pd.NA or value is pd.NaT:
        return None
    if isinstance(value, float) and math.isnan(value):
        return None
    text = str(value).strip()
    return text or None


def _parse_times(text: pd.Series) -> pd.Series:
    """ISO 8601 text as ``datetime64[ns, UTC]``: an offset where given, else UTC; NaT if not a
    time. Aware and naive values are parsed apart: pandas would give naive ones the first
    offset it saw."""
    result = pd.Series(pd.NaT, index=text.index, dtype="datetime64[ns, UTC]")
    aware = text.str.contains(_OFFSET, na=False)
    for part in (aware, ~aware):
        if part.any():
            result[part] = pd.to_datetime(
                text[part], utc=True, format="ISO8601", errors="coerce"
            ).astype("datetime64[ns, UTC]")
    return result


def _times(raw: pd.Series, text: pd.Series, places: Sequence[str]) -> pd.Series:
    if pd.api.types.is_datetime64_any_dtype(raw.dtype):  # Parquet's own timestamps
        stamps = pd.to_datetime(raw)
        stamps = (
            stamps.dt.tz_localize("UTC") if stamps.dt.tz is None else stamps.dt.tz_convert("UTC")
        )
        return stamps.astype("datetime64[ns, UTC]")
    parsed = _parse_times(text)
    bad = parsed.isna()
    if bad.any():
        i, more = _first(bad, places)
        raise CampaignError(
            f"{places[i]}, column 'timestamp': {raw.iloc[i]!r} is not an ISO 8601 time such as "
            f"2024-03-01T09:30:00Z or 2024-03-01 10:30:00+01:00 (naive times are UTC){more}"
        )
    return parsed


def _values(raw: pd.DataFrame, places: Sequence[str]) -> pd.Series:
    if "value" not in raw.columns:
        return pd.Series(np.nan, index=raw.index, dtype="float64")
    given = raw["value"]
    blank = given.isna() | given.astype(str).str.strip().eq("")
    numbers = pd.to_numeric(given.mask(blank), errors="coerce").astype("float64")
    bad = (~blank & numbers.isna()) | ~np.isfinite(numbers.fillna(0.0))
    if bad.any():
        i, more = _first(bad, places)
        raise CampaignError(
            f"{places[i]}, column 'value': {given.iloc[i]!r} is not a finite number{more}"
        )
    return numbers


def _unique(frame: pd.DataFrame, places: Sequence[str], name: str) -> pd.DataFrame:
    """Drop exact repeats; refuse one event_id for two different events."""
    repeated = frame.duplicated(subset=["event_id"], keep=False)
    if not repeated.any():
        return frame.reset_index(drop=True)
    exact = frame.duplicated(keep="first")
    clash = frame.duplicated(subset=["event_id"], keep="first") & ~exact
    if clash.any():
        i, more = _first(clash, places)
        event_id = frame["event_id"].iloc[i]
        earlier = int(np.flatnonzero((frame["event_id"] == event_id).to_numpy())[0])
        raise CampaignError(
            f"{places[i]}, column 'event_id': {event_id!r} is the id of another event "
            f"({places[earlier].removeprefix(name).strip()}){more}; give each event its own "
            "event_id (events without one are told apart by campaign, customer, channel, event "
            "and timestamp)"
        )
    return frame[~exact].reset_index(drop=True)


# --- callbacks ------------------------------------------------------------------------------------


def events_from_callbacks(store: Store, payloads: Iterable[Mapping[str, Any]]) -> pd.DataFrame:
    """Webhook callbacks as events, resolved to their message through the outbox.

    Parameters
    ----------
    store : Store
        The platform database whose outbox sent the messages.
    payloads : iterable of mappings
        A provider's callbacks: ``{"idempotency_key": "...", "event": "open", "timestamp":
        "...", "value": optional, "event_id": optional}`` (other fields are ignored).
        ``idempotency_key`` is what the message was sent with (:func:`clv.store.idempotency_key`).

    Returns
    -------
    DataFrame
        :data:`EVENT_COLUMNS`, as :func:`read_events` gives them.

    Raises
    ------
    CampaignError
        When a callback is not an object, lacks a field or has a bad one (named by its number,
        1-based), or when idempotency keys are unknown to the outbox: every such callback is
        counted and the first ones named, none is dropped silently.
    """
    records = list(payloads)
    if not records:
        raise CampaignError("no callbacks: expected at least one")
    return _resolve(store, records, [f"callback {i + 1}" for i in range(len(records))], "callbacks")


def read_callbacks(store: Store, path: str | os.PathLike[str]) -> pd.DataFrame:
    """A JSON-lines file of webhook callbacks (one per line) as events; see
    :func:`events_from_callbacks`. Messages name the file's line."""
    from clv.data.io import display_name, local_copy

    name = display_name(path)
    try:
        with local_copy(path) as local:
            records, lines = _json_lines(local, name)
    except FileNotFoundError as err:
        raise CampaignError(str(err)) from None
    except OSError as err:
        raise CampaignError(str(err) if name in str(err) else f"{name}: {err}") from None
    if not records:
        raise CampaignError(
            f"{name}: the file is empty; expected one callback per line, such as "
            '{"idempotency_key": "...", "event": "open", "timestamp": "2024-03-01T09:30:00Z"}'
        )
    return _resolve(store, records, _places(name, "jsonl", len(records), lines), name)


def _resolve(store: Store, records: list[Any], places: list[str], name: str) -> pd.DataFrame:
    payloads = _objects(records, places)
    for payload, place in zip(payloads, places, strict=True):
        for field in ("idempotency_key", "event", "timestamp"):
            value = payload.get(field)
            if value is None or not str(value).strip():
                raise CampaignError(
                    f"{place}: no {field!r} field; a callback needs idempotency_key, event and "
                    "timestamp"
                )
    keys = [str(p["idempotency_key"]).strip() for p in payloads]
    messages = store.messages_for_keys(keys).set_index("idempotency_key")
    unknown = [i for i, key in enumerate(keys) if key not in messages.index]
    if unknown:
        shown = "; ".join(f"{places[i]} ({keys[i][:20]!r})" for i in unknown[:3])
        raise CampaignError(
            f"{len(unknown):,} callback(s) carry an idempotency key that no message in the outbox "
            f"was sent with: {shown}{' ...' if len(unknown) > 3 else ''}; were they sent from "
            "another clv database, or by another system? Nothing was ingested"
        )
    found = messages.loc[keys]
    raw = pd.DataFrame(
        {
            "event_id": [p.get("event_id") for p in payloads],
            "campaign_id": found["campaign_id"].to_numpy(),
            "customer_id": found["customer_id"].to_numpy(),
            "channel": found["channel"].to_numpy(),
            "event": [p["event"] for p in payloads],
            "timestamp": [p["timestamp"] for p in payloads],
            "value": [p.get("value") for p in payloads],
        }
    )
    non_text = [
        i for i, p in enumerate(payloads) if not isinstance(p["timestamp"], str)
    ]  # epoch numbers are ambiguous (seconds? milliseconds?)
    if non_text:
        i = non_text[0]
        raise CampaignError(
            f"{places[i]}, field 'timestamp': {payloads[i]['timestamp']!r} is not an ISO 8601 "
            "time such as 2024-03-01T09:30:00Z"
        )
    return _validated(raw, places, name, None)


# --- summary --------------------------------------------------------------------------------------


def _ratio(numerator: int, denominator: int) -> float | None:
    return numerator / denominator if denominator else None


def _metrics(sent: pd.DataFrame, events: pd.DataFrame) -> dict[str, Any]:
    """The counts and rates of one cell: its sent messages and their events."""
    unique = {
        kind: int(events.loc[events["event"] == kind, "customer_id"].nunique())
        for kind in EVENT_KINDS
    }
    conversions = events[events["event"] == "conversion"]
    counts = {"sent": len(sent), **unique}
    result: dict[str, Any] = {
        "sent": len(sent),
        "customers": int(sent["customer_id"].nunique()),
        "unique_customers": unique,
        "events": len(events),
        "conversions": len(conversions),
        "conversion_value": float(math.fsum(conversions["value"].dropna())),
    }
    for rate, (numerator, denominator) in RATES.items():
        result[rate] = _ratio(unique[numerator], counts[denominator])
    return result


def engagement_summary(
    events: pd.DataFrame, plan: pd.DataFrame, outbox_sent: pd.DataFrame
) -> dict[str, Any]:
    """Engagement per variant and per channel: messages sent, unique customers per event kind,
    rates and conversion value.

    A rate is unique customers with an event over messages sent (``open_rate``,
    ``click_rate``, ``conversion_rate``, ``delivery_rate``, ``bounce_rate``,
    ``unsubscribe_rate``, ``complaint_rate``), except ``click_to_open``: unique clickers over
    unique openers (it can exceed 1 when images, and so opens, are blocked). Only events of
    messages sent count; the others are anomalies, counted and left out, never an error.

    Parameters
    ----------
    events : DataFrame
        ``customer_id``, ``channel``, ``event`` and ``value`` (:meth:`Store.campaign_events` or
        :func:`read_events`, one campaign); an ``event_id`` seen twice counts once.
    plan : DataFrame
        ``customer_id`` and ``group_name`` (or ``group``): ``holdout`` or the variant
        (:meth:`Store.campaign_plan`).
    outbox_sent : DataFrame
        The messages sent: ``customer_id`` and ``channel`` (``Store.outbox(campaign,
        status="sent")``); with a ``status`` column, rows of another status are left out.

    Returns
    -------
    dict
        ``total``, ``variants`` (variant → metrics), ``channels`` (channel → metrics) and
        ``cells`` (variant → channel → metrics), where metrics are ``sent``, ``customers``,
        ``unique_customers`` (event kind → count), ``events``, ``conversions`` (events),
        ``conversion_value`` (sum of the conversions' values) and the rates of :data:`RATES`
        (None when the denominator is 0); and ``anomalies``: ``holdout_events`` (events of
        holdout customers, who are never contacted), ``unsent_events`` (of a planned customer
        without a sent message on that channel) and ``unplanned_events`` (of customers the
        plan does not hold). Plain Python values, ready for JSON.
    """
    group_column = "group_name" if "group_name" in plan.columns else "group"
    if group_column not in plan.columns or "customer_id" not in plan.columns:
        raise CampaignError(
            "the plan needs customer_id and group_name (or group) columns; it has "
            f"{', '.join(map(str, plan.columns))}"
        )
    groups = pd.Series(
        plan[group_column].astype(str).to_numpy(), index=plan["customer_id"].astype(str)
    )
    groups = groups[~groups.index.duplicated()]
    sent = outbox_sent
    if "status" in sent.columns:
        sent = sent[sent["status"] == "sent"]
    sent = pd.DataFrame(
        {"customer_id": sent["customer_id"].astype(str), "channel": sent["channel"].astype(str)}
    ).drop_duplicates()
    sent["variant"] = sent["customer_id"].map(groups).fillna("(unplanned)")

    frame = events
    if "event_id" in frame.columns:
        frame = frame.drop_duplicates(subset=["event_id"])
    frame = pd.DataFrame(
        {
            "customer_id": frame["customer_id"].astype(str).to_numpy(),
            "channel": frame["channel"].astype(str).to_numpy(),
            "event": frame["event"].astype(str).to_numpy(),
            "value": (
                pd.to_numeric(frame["value"], errors="coerce").to_numpy(dtype="float64")
                if "value" in frame.columns
                else np.full(len(frame), np.nan)
            ),
        }
    )
    group = frame["customer_id"].map(groups)
    messaged = pd.MultiIndex.from_frame(sent[["customer_id", "channel"]])
    of_sent = pd.MultiIndex.from_frame(frame[["customer_id", "channel"]]).isin(messaged)
    holdout = (group == HOLDOUT).to_numpy()
    unplanned = group.isna().to_numpy()
    anomalies = {
        "holdout_events": int(holdout.sum()),
        "unsent_events": int((~of_sent & ~holdout & ~unplanned).sum()),
        "unplanned_events": int(unplanned.sum()),
    }
    kept = of_sent & ~holdout & ~unplanned
    counted = frame[kept].assign(variant=group[kept].to_numpy())

    def by(*keys: str) -> dict[tuple[str, ...], dict[str, Any]]:
        result: dict[tuple[str, ...], dict[str, Any]] = {}
        for key, cell in sent.groupby(list(keys), sort=True):
            mask = np.ones(len(counted), dtype=bool)
            for column, value in zip(keys, key, strict=True):
                mask &= (counted[column] == value).to_numpy()
            result[tuple(map(str, key))] = _metrics(cell, counted[mask])
        return result

    cells: dict[str, dict[str, dict[str, Any]]] = {}
    for (variant, channel), metrics in by("variant", "channel").items():
        cells.setdefault(variant, {})[channel] = metrics
    return {
        "total": _metrics(sent, counted),
        "variants": {variant: m for (variant,), m in by("variant").items()},
        "channels": {channel: m for (channel,), m in by("channel").items()},
        "cells": cells,
        "anomalies": anomalies,
    }
