"""Batch scoring on a Dask cluster: the single-machine scores, one partition of customers at a time.

:func:`score_customers_dask` gives the rows :func:`clv.training.scoring.score_customers` gives (its
columns, in its order, one row per customer), computed by ``map_partitions`` over the customer
features: every customer lies in one partition, so each partition is scored on its own.

How the models reach the workers
--------------------------------
A bundle is shipped as the files :func:`clv.training.bundle.save_bundle` writes (native model
formats plus their SHA-256 manifest), never as a pickle of the live model: a worker then loads
every family (XGBoost, LightGBM, the Keras ZILN network, ensembles, churn) the way
``clv score`` does, from verified native files, and no model object is unpickled on a worker
(bundles are "nothing pickled" by design; a Keras bundle scored this way on a LocalCluster
gave the single-machine scores). The files are one task in the graph, so each worker receives
them once; the worker writes them to a temporary folder, loads them with
:func:`clv.training.bundle.load_bundle` (which verifies every SHA-256) and keeps the loaded
bundle for the following partitions (:data:`_LOADED`). A saved bundle predicts exactly what the
live one does (``tests/unit/test_training_library.py``), so the scores are identical.

Writing
-------
:func:`write_scores_dask` writes partitioned Parquet into a temporary folder beside ``out_dir`` and
renames it into place (a rerun replaces the folder whole), then stores the scoring run through
:meth:`clv.store.Store.write_scores_parts`, reading the folder's files back one at a time (one
transaction, the content hash :meth:`~clv.store.Store.write_scores` gives the same rows, a
customer in two files refused): the client never holds more than one partition's scores.
"""

from __future__ import annotations

import hashlib
import tempfile
import threading
from collections import OrderedDict
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from clv.training.bundle import ChurnBundle, SpendBundle
from clv.training.scoring import PROFILE_COLUMNS, SCORE_COLUMNS

if TYPE_CHECKING:
    import dask.dataframe as dd

    from clv.store import Store

__all__ = [
    "BundleFiles",
    "score_customers_dask",
    "score_features_dask",
    "write_scores_dask",
]

#: Loaded bundles a worker process keeps (a spend and a churn model, and the previous pair).
_KEEP_LOADED = 4
_LOADED: OrderedDict[str, SpendBundle | ChurnBundle] = OrderedDict()
_LOADED_LOCK = threading.Lock()


@dataclass(frozen=True)
class BundleFiles:
    """A saved bundle's files (relative path → bytes) and their digest: what a worker receives.

    Attributes
    ----------
    digest : str
        SHA-256 over the paths and contents; the key under which a worker keeps the loaded bundle.
    files : dict
        Every file of the bundle folder.
    """

    digest: str
    files: dict[str, bytes]

    @classmethod
    def of(cls, bundle: SpendBundle | ChurnBundle) -> BundleFiles:
        """Save ``bundle`` to a temporary folder and read its files back."""
        from clv.training.bundle import save_bundle

        with tempfile.TemporaryDirectory(prefix="clv-ship-bundle-") as tmp:
            folder = save_bundle(bundle, Path(tmp) / "bundle")
            files = {
                p.relative_to(folder).as_posix(): p.read_bytes()
                for p in sorted(folder.rglob("*"))
                if p.is_file()
            }
        digest = hashlib.sha256()
        for name, content in files.items():
            digest.update(name.encode())
            digest.update(hashlib.sha256(content).digest())
        return cls(digest=digest.hexdigest(), files=files)

    def load(self) -> SpendBundle | ChurnBundle:
        """The bundle, loaded (and verified) once per process, then reused."""
        with _LOADED_LOCK:
            found = _LOADED.get(self.digest)
            if found is not None:
                _LOADED.move_to_end(self.digest)
                return found
            from clv.training.bundle import load_bundle

            with tempfile.TemporaryDirectory(prefix="clv-worker-bundle-") as tmp:
                folder = Path(tmp) / "bundle"
                for name, content in self.files.items():
                    path = folder / name
                    path.parent.mkdir(parents=True, exist_ok=True)
                    path.write_bytes(content)
                loaded = load_bundle(folder)
            _LOADED[self.digest] = loaded
            while len(_LOADED) > _KEEP_LOADED:
                _LOADED.popitem(last=False)
            return loaded


def _check_horizon(
    spend: SpendBundle, churn: ChurnBundle | None, horizon_days: int
) -> None:  # the single-machine message, word for word
    for bundle in (spend, churn):
        if bundle is not None and bundle.horizon_days != horizon_days:
            raise ValueError(
                f"the {bundle.family} model was trained for a {bundle.horizon_days}-day horizon, "
                f"not {horizon_days}; score with --horizon-days {bundle.horizon_days} or train "
                f"a model with --horizon-days {horizon_days}"
            )


def _scores_meta(features_meta: pd.DataFrame, *, with_churn: bool) -> pd.DataFrame:
    """The empty frame of the scores' columns and dtypes (what ``score_customers`` returns)."""
    columns: dict[str, pd.Series] = {
        "customer_id": pd.Series([], dtype=object),
        **{c: pd.Series([], dtype="float64") for c in SCORE_COLUMNS[1:]},
    }
    if with_churn:
        columns["churn_probability"] = pd.Series([], dtype="float64")
    columns["as_of"] = pd.Series([], dtype="datetime64[ns]")
    columns["horizon_days"] = pd.Series([], dtype="int64")
    for column in PROFILE_COLUMNS:
        if column in features_meta.columns:
            columns[column] = pd.Series([], dtype=features_meta[column].dtype)
    return pd.DataFrame(columns)


def _score_partition(
    features: pd.DataFrame,
    spend: BundleFiles,
    churn: BundleFiles | None,
    *,
    cutoff: pd.Timestamp,
    horizon_days: int,
    empty: pd.DataFrame,
) -> pd.DataFrame:
    """One partition's scores, built as :func:`clv.training.scoring.score_customers` builds them."""
    if len(features) == 0:
        return empty.copy()
    spend_bundle = spend.load()
    out = spend_bundle.predict_frame(features)
    if churn is not None:
        out["churn_probability"] = churn.load().predict_frame(features)["churn_probability"]
    out["as_of"] = cutoff
    out["horizon_days"] = horizon_days
    for column in PROFILE_COLUMNS:
        if column in features.columns:
            out[column] = features[column].to_numpy()
    out.index = np.asarray(out.index.astype(str), dtype=object)
    out = out.rename_axis("customer_id").reset_index().sort_values("customer_id")
    out = out.reset_index(drop=True)
    out["customer_id"] = out["customer_id"].astype(object)
    return out.astype(empty.dtypes.to_dict())


def _shipped(files: BundleFiles) -> Any:
    """``files`` as one task of the graph, keyed by their digest (the same files, the same key)."""
    import dask

    return dask.delayed(files, name=f"clv-bundle-{files.digest}")


def score_features_dask(
    features_ddf: dd.DataFrame,
    *,
    spend: SpendBundle,
    horizon_days: int,
    as_of: pd.Timestamp,
    churn: ChurnBundle | None = None,
) -> dd.DataFrame:
    """Scores of every customer of ``features_ddf``, computed partition by partition.

    Parameters
    ----------
    features_ddf : dask DataFrame
        What :func:`clv.training.scoring.customer_features` returns, indexed by ``customer_id``,
        every customer in one partition.
    spend, churn : bundles
        Shipped to the workers once, as their saved files (see the module docstring).
    horizon_days : int
        Must equal the bundles' horizon.
    as_of : Timestamp
        The scoring cut-off the features were computed at.

    Returns
    -------
    dask DataFrame
        The columns of ``score_customers``; each partition sorted by ``customer_id`` (the
        partitions themselves are in the features' order).

    Raises
    ------
    ValueError
        When the horizon differs from a bundle's.
    """
    _check_horizon(spend, churn, horizon_days)
    meta = _scores_meta(features_ddf._meta, with_churn=churn is not None)
    # One task each in the graph: every worker fetches the files once, whatever the partitions.
    spend_files = _shipped(BundleFiles.of(spend))
    churn_files = None if churn is None else _shipped(BundleFiles.of(churn))
    return features_ddf.map_partitions(
        _score_partition,
        spend_files,
        churn_files,
        cutoff=pd.Timestamp(as_of),
        horizon_days=int(horizon_days),
        empty=meta,
        meta=meta,
    )


def score_customers_dask(
    transactions_ddf: dd.DataFrame,
    *,
    spend: SpendBundle,
    horizon_days: int,
    as_of: pd.Timestamp | None = None,
    churn: ChurnBundle | None = None,
    customers: pd.DataFrame | None = None,
    sustainability: pd.DataFrame | None = None,
    persist: bool = True,
) -> dd.DataFrame:
    """:func:`clv.training.scoring.score_customers` on a Dask DataFrame of transactions.

    Parameters
    ----------
    transactions_ddf : dask DataFrame
        Validated transactions, partitioned by customer (``clv.distributed.io.read_transactions``);
        rows after ``as_of`` are ignored.
    spend, churn, horizon_days, customers, sustainability
        As in ``score_customers``.
    as_of : Timestamp, optional
        Scoring cut-off (default: the day of the last transaction, end of day: one pass over the
        timestamps).
    persist : bool
        Keep the transactions in the cluster's memory for the passes over them (the last
        timestamp, the population's summary, the features; see
        :func:`clv.distributed.features.persisted`); False reads them for each pass.

    Returns
    -------
    dask DataFrame
        The rows of ``score_customers``; each partition sorted by ``customer_id``. Sort after
        gathering (``.compute().sort_values("customer_id")``) to get its exact frame.

    Raises
    ------
    ValueError
        When the horizon differs from the model's (before any work on the cluster), or no
        customer has a purchase by ``as_of``.
    """
    from clv.distributed.features import dask_customer_features, persisted
    from clv.training.windows import end_of_day

    _check_horizon(spend, churn, horizon_days)
    if persist:
        # Read, validated and shuffled once for the passes below (see ``persisted``).
        transactions_ddf = persisted(transactions_ddf)
    if as_of is None:
        cutoff = end_of_day(pd.Timestamp(transactions_ddf["timestamp"].max().compute()))
    else:
        cutoff = pd.Timestamp(as_of)
    features = dask_customer_features(
        transactions_ddf,
        as_of=cutoff,
        horizon_days=horizon_days,
        customers=customers,
        sustainability=sustainability,
        persist=False,
    )
    return score_features_dask(
        features, spend=spend, churn=churn, horizon_days=horizon_days, as_of=cutoff
    )


def _store_columns(columns: list[str]) -> list[str]:
    from clv.store import SCORE_FEATURES

    run = ("as_of", "horizon_days", "model_version", "model_name")
    keep = ("customer_id", "predicted_clv", *SCORE_FEATURES, *run)
    return [c for c in columns if c in keep]


def write_scores_dask(
    scores_ddf: dd.DataFrame,
    out_dir: str | Path,
    *,
    store: Store,
    source: str,
    model_name: str | None,
    model_version: str | None,
) -> int:
    """Write scores as partitioned Parquet (atomically) and store the scoring run.

    Parameters
    ----------
    scores_ddf : dask DataFrame
        :func:`score_customers_dask` (optionally with a ``model_version`` column).
    out_dir : str or Path
        A local folder the workers can write to (one file per partition,
        ``part.0.parquet``, ...); replaced whole when it exists, never left half-written.
    store : Store
        The platform database.
    source, model_name, model_version
        As in :meth:`clv.store.Store.write_scores`.

    Returns
    -------
    int
        The scoring run's id (the existing one when the same scores were stored before).

    Raises
    ------
    clv.store.StoreError
        As ``write_scores`` raises it (a customer in two partitions, a missing column, ...).
    """
    from clv.data.io import write_folder_atomic

    target = Path(out_dir)

    def write(tmp: Path) -> None:
        # Workers write into the temporary folder; the rename happens on the client.
        scores_ddf.to_parquet(
            str(tmp), write_index=False, compression="zstd", write_metadata_file=False
        )

    write_folder_atomic(target, write)
    # The Parquet folder now holds the scores: read back from it, a file at a time, not
    # recomputed and never gathered whole.
    import pyarrow.parquet as pq

    files = sorted(target.glob("*.parquet"), key=_part_number)
    columns = _store_columns(list(scores_ddf.columns))

    def parts() -> Iterator[pd.DataFrame]:
        for path in files:
            frame = pq.read_table(path, columns=columns).to_pandas()
            for column in frame.columns:
                if str(frame[column].dtype) in ("string", "str"):
                    frame[column] = frame[column].astype(object)
            yield frame

    return store.write_scores_parts(
        parts, source=source, model_name=model_name, model_version=model_version
    )


def _part_number(path: Path) -> tuple[int, str]:
    """``part.12.parquet`` after ``part.2.parquet``: Dask's files in partition order."""
    middle = path.name.split(".")
    number = next((int(p) for p in middle if p.isdigit()), -1)
    return number, path.name
