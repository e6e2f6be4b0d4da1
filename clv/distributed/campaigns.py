"""Campaign planning on a Dask cluster: the per-customer summaries of the transactions.

:func:`clv.campaigns.planning.plan_campaign` reads the transactions twice, both times per
customer: the purchase habits that choose each send time
(:func:`clv.campaigns.personalisation.customer_habits`) and the history behind the content fields
(:func:`clv.campaigns.personalisation.purchase_summary`). Given a dask DataFrame with every
customer's rows in one partition (:func:`clv.distributed.io.read_transactions`), both run here
partition by partition on the workers, and only their results, one small row per customer, come
back to the client. Everything else in a plan (audience, eligibility, assignment, the uplift, the
choice under the budget) works on one row per customer and stays on the client. The plan is the
one-machine plan: the same functions on the same customers (a test compares the two).

The transactions are read twice (once per summary) rather than persisted: the workers keep at
most the partitions they are working on.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

if TYPE_CHECKING:
    import dask.dataframe as dd
    from distributed import Client

__all__ = [
    "customer_habits_dask",
    "purchase_summary_dask",
    "transactions_fingerprint",
    "transactions_on_cluster",
]

_HABIT_COLUMNS = ("orders", "weekday", "hour")


def _habits_partition(part: pd.DataFrame, zones: pd.Series, before: pd.Timestamp) -> pd.DataFrame:
    from clv.campaigns.personalisation import customer_habits

    found = customer_habits(part, zones, before)
    return found.astype(dict.fromkeys(_HABIT_COLUMNS, "int64"))


def _summary_partition(part: pd.DataFrame, ids: pd.Index, start: pd.Timestamp) -> pd.DataFrame:
    from clv.campaigns.personalisation import purchase_summary

    return purchase_summary(part, ids, start)


def _shipped(value: Any, name: str) -> Any:
    """One task in the graph: the workers fetch ``value`` once, whatever the partitions."""
    import dask

    token = hashlib.sha256(pd.util.hash_pandas_object(value).to_numpy().tobytes()).hexdigest()
    return dask.delayed(value, name=f"{name}-{token[:16]}")


def customer_habits_dask(
    transactions: dd.DataFrame, zones: pd.Series, before: pd.Timestamp
) -> pd.DataFrame:
    """:func:`clv.campaigns.personalisation.customer_habits`, computed on the partitions.

    Parameters
    ----------
    transactions : dask DataFrame
        Contract transactions, every customer's rows in one partition.
    zones : Series
        IANA time zone per customer id: the customers to describe.
    before : Timestamp
        Purchases from this instant on are left out.

    Returns
    -------
    DataFrame
        As ``customer_habits``; computed with the current Dask scheduler.
    """
    meta = pd.DataFrame({c: pd.Series(dtype="int64") for c in _HABIT_COLUMNS})
    meta.index = pd.Index([], dtype=object, name="customer_id")
    parts = transactions[["customer_id", "timestamp"]].map_partitions(
        _habits_partition,
        _shipped(zones, "clv-campaign-zones"),
        pd.Timestamp(before),
        meta=meta,
        enforce_metadata=False,
        align_dataframes=False,
    )
    return parts.compute()


def purchase_summary_dask(
    transactions: dd.DataFrame, ids: pd.Index, start: pd.Timestamp
) -> pd.DataFrame:
    """:func:`clv.campaigns.personalisation.purchase_summary`, computed on the partitions.

    Parameters
    ----------
    transactions : dask DataFrame
        Contract transactions, every customer's rows in one partition.
    ids : Index
        The customers to describe (strings).
    start : Timestamp
        History from this instant on is left out.

    Returns
    -------
    DataFrame
        As ``purchase_summary``; computed with the current Dask scheduler.
    """
    columns = [
        c
        for c in ("customer_id", "timestamp", "amount", "product_category")
        if c in transactions.columns
    ]
    meta = pd.DataFrame(
        {
            "top_category": pd.Series(dtype=object),
            "first_day": pd.Series(dtype="datetime64[ns]"),
            "last_day": pd.Series(dtype="datetime64[ns]"),
            "purchase_days": pd.Series(dtype="int64"),
        }
    )
    meta.index = pd.Index([], dtype=object, name="customer_id")
    wanted = pd.Index(ids.astype(str), name="customer_id")
    parts = transactions[columns].map_partitions(
        _summary_partition,
        _shipped(wanted.to_series(), "clv-campaign-ids"),
        pd.Timestamp(start),
        meta=meta,
        enforce_metadata=False,
        align_dataframes=False,
    )
    return parts.compute()


def transactions_on_cluster(
    uri: str, client: Client, read_options: Mapping[str, Any] | None = None
) -> dd.DataFrame:
    """Transactions as a dask DataFrame partitioned by customer (what planning and scoring read).

    A folder (or glob) of Parquet files, local or ``s3://``, is read and validated on the
    workers (:func:`clv.distributed.io.read_transactions`); one file is read and validated here
    and split by customer.

    Parameters
    ----------
    uri : str
        Transactions: a file, a folder or a glob.
    client : distributed.Client
        The cluster (its threads set the partitions of a single file).
    read_options : mapping, optional
        As :func:`clv.data.io.read_table` takes them; a collection uses their ``columns``.

    Returns
    -------
    dask DataFrame
        Every customer's rows in one partition.
    """
    import dask.dataframe as dd

    from clv.data.io import read_table

    options = dict(read_options or {})
    if _is_collection(uri):
        from clv.distributed.io import read_transactions

        return read_transactions(uri, columns=options.get("columns"))
    frame = read_table(uri, "transactions", **options)
    partitions = max(1, 2 * sum(client.nthreads().values()))
    by_customer = frame.set_index("customer_id").sort_index(kind="stable")
    return dd.from_pandas(by_customer, npartitions=partitions).reset_index()


def _is_collection(uri: str) -> bool:
    if any(ch in uri for ch in "*?["):
        return True
    if uri.startswith("s3://"):
        return uri.endswith("/")
    return "://" not in uri and Path(uri).expanduser().is_dir()


def transactions_fingerprint(uri: str) -> str:
    """Content identity of a transactions file, folder or glob (what a campaign id depends on).

    A file: its SHA-256. A collection: the SHA-256 of its Parquet files' names (relative to the
    folder) and their own digests, local files hashed whole, S3 objects by their ETag and size.

    Raises
    ------
    FileNotFoundError
        When ``uri`` names nothing, or no Parquet file.
    """
    from clv.data.io import sha256_of

    if not _is_collection(uri):
        return sha256_of(uri)
    from clv.distributed.io import _list_local, _list_s3, _s3_client, _s3_settings

    digest = hashlib.sha256()
    if uri.startswith("s3://"):
        s3 = _s3_settings()
        files = _list_s3(uri, s3)
        client = _s3_client(s3)
        for path, shown in files:
            bucket, _, key = path[len("s3://") :].partition("/")
            head = client.head_object(Bucket=bucket, Key=key)
            digest.update(f"{shown}\0{head['ETag']}\0{head['ContentLength']}\n".encode())
    else:
        files = _list_local(uri)
        for path, shown in files:
            digest.update(f"{shown}\0{sha256_of(path)}\n".encode())
    if not files:
        raise FileNotFoundError(f"no Parquet file (.parquet, .pq) at {uri}")
    return digest.hexdigest()
