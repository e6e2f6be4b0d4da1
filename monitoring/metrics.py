"""Prometheus metrics of the CLV platform, in a registry of their own.

The flows are batch jobs, so nothing is scraped from them directly: they record into a
:class:`MonitoringMetrics` and either write a textfile for the node exporter's textfile collector
(:func:`write_textfile`, atomic) or push to a Pushgateway (:func:`push`). ``infra/prometheus``
scrapes both and alerts on them; ``infra/grafana/dashboards/clv.json`` plots them.

Metrics
-------
``clv_drift_share{model, dataset}`` (gauge)
    Share of drifted columns in the last drift check of ``dataset`` (``features``,
    ``predictions``, ...) for ``model``.
``clv_drifted_columns{model}`` (gauge)
    Number of drifted feature columns in the last ``features`` drift check.
``clv_model_metric{model, version, metric}`` (gauge)
    A model version's holdout metric (``normalized_gini``, ``decile_mape``, ``mae``, ...), and,
    once a scoring run's horizon has passed, its realised metrics under ``realised_<metric>``.
``clv_predictions_total{model}`` (counter)
    Customers scored.
``clv_flow_runs_total{flow, state}`` (counter)
    Finished flow runs by final state (lower-case Prefect state type: ``completed``,
    ``failed``, ``crashed``, ``cancelled``).
``clv_last_drift_check_timestamp_seconds`` (gauge)
    Unix time of the last drift check.

Counters across processes
-------------------------
Each flow run is a new process whose counters start at 0, and a textfile (or a Pushgateway group)
holds only what the last writer wrote. :func:`restore_textfile` merges the samples of the previous
textfile into this process's registry, so that counters keep counting and gauges of other
versions or datasets survive. :func:`write_default_textfile` does that once per process, under a
file lock, for the shared ``<CLV_HOME>/monitoring/metrics/clv.prom`` the flows write.
Pushgateway groups are replaced on every push: push from one long-lived place, or prefer the
textfile.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Mapping
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry, Counter, Gauge

if TYPE_CHECKING:
    from monitoring.drift import DriftResult

__all__ = [
    "FEATURES_DATASET",
    "METRIC_NAMES",
    "MonitoringMetrics",
    "default_metrics",
    "default_textfile",
    "push",
    "record_drift",
    "record_drift_result",
    "record_flow_run",
    "record_model_metrics",
    "record_predictions",
    "restore_textfile",
    "write_default_textfile",
    "write_textfile",
]

logger = logging.getLogger(__name__)

#: The drift check whose drifted-column count feeds ``clv_drifted_columns``.
FEATURES_DATASET = "features"

#: Every series name this module exposes (counters with their ``_total`` suffix).
METRIC_NAMES: frozenset[str] = frozenset(
    {
        "clv_drift_share",
        "clv_drifted_columns",
        "clv_model_metric",
        "clv_predictions_total",
        "clv_flow_runs_total",
        "clv_last_drift_check_timestamp_seconds",
    }
)


class MonitoringMetrics:
    """The platform's metrics, registered in a dedicated :class:`CollectorRegistry`.

    Parameters
    ----------
    registry : CollectorRegistry, optional
        Where to register (default: a new registry; never the global one).
    """

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry if registry is not None else CollectorRegistry(auto_describe=True)
        self.drift_share = Gauge(
            "clv_drift_share",
            "Share of drifted columns in the last drift check.",
            ["model", "dataset"],
            registry=self.registry,
        )
        self.drifted_columns = Gauge(
            "clv_drifted_columns",
            "Number of drifted feature columns in the last features drift check.",
            ["model"],
            registry=self.registry,
        )
        self.model_metric = Gauge(
            "clv_model_metric",
            "Holdout (or realised_*) metric of a model version.",
            ["model", "version", "metric"],
            registry=self.registry,
        )
        self.predictions = Counter(
            "clv_predictions",
            "Customers scored.",
            ["model"],
            registry=self.registry,
        )
        self.flow_runs = Counter(
            "clv_flow_runs",
            "Finished flow runs by final state.",
            ["flow", "state"],
            registry=self.registry,
        )
        # Registered on first use: an unlabelled gauge would otherwise be exported as 0 by every
        # process, including those that never check drift (and clash between textfiles).
        self.last_drift_check = Gauge(
            "clv_last_drift_check_timestamp_seconds",
            "Unix time of the last drift check.",
            registry=None,
        )
        self._last_drift_check_registered = False
        #: Whether :func:`write_default_textfile` has merged the previous file in already.
        self.restored = False

    @property
    def has_last_drift_check(self) -> bool:
        """Whether ``clv_last_drift_check_timestamp_seconds`` has been set in this process."""
        return self._last_drift_check_registered

    def set_last_drift_check(self, timestamp: float) -> None:
        """Set ``clv_last_drift_check_timestamp_seconds`` (exported from the first call on)."""
        if not self._last_drift_check_registered:
            self.registry.register(self.last_drift_check)
            self._last_drift_check_registered = True
        self.last_drift_check.set(timestamp)


@cache
def default_metrics() -> MonitoringMetrics:
    """This process's metrics, created on first use."""
    return MonitoringMetrics()


def _resolve(metrics: MonitoringMetrics | None) -> MonitoringMetrics:
    return default_metrics() if metrics is None else metrics


def _label(value: str, what: str) -> str:
    text = str(value).strip()
    if not text:
        raise ValueError(f"{what} must be a non-empty label value")
    return text


def record_drift(
    model: str,
    share: float,
    drifted_columns: int,
    *,
    dataset: str = FEATURES_DATASET,
    timestamp: float | None = None,
    metrics: MonitoringMetrics | None = None,
) -> None:
    """Record a drift check: its share, drifted feature columns and when it ran.

    Parameters
    ----------
    model : str
        Model the checked data feed, e.g. ``"clv-spend"``.
    share : float
        Share of drifted columns, in [0, 1] (:attr:`monitoring.drift.DriftResult.share`).
    drifted_columns : int
        Number of drifted columns; sets ``clv_drifted_columns`` only for the
        ``"features"`` dataset.
    dataset : str
        ``dataset`` label: ``"features"``, ``"predictions"``, ...
    timestamp : float, optional
        Unix time of the check (default: now).
    metrics : MonitoringMetrics, optional
        Default: :func:`default_metrics`.

    Raises
    ------
    ValueError
        When ``share`` is outside [0, 1] or ``drifted_columns`` is negative.
    """
    if not 0.0 <= share <= 1.0:
        raise ValueError(f"share must be in [0, 1], got {share!r}")
    if drifted_columns < 0:
        raise ValueError(f"drifted_columns must be at least 0, got {drifted_columns}")
    m = _resolve(metrics)
    model = _label(model, "model")
    dataset = _label(dataset, "dataset")
    m.drift_share.labels(model=model, dataset=dataset).set(share)
    if dataset == FEATURES_DATASET:
        m.drifted_columns.labels(model=model).set(drifted_columns)
    m.set_last_drift_check(time.time() if timestamp is None else timestamp)


def record_drift_result(
    result: DriftResult,
    *,
    model: str,
    dataset: str | None = None,
    timestamp: float | None = None,
    metrics: MonitoringMetrics | None = None,
) -> None:
    """:func:`record_drift` from a :class:`monitoring.drift.DriftResult`.

    ``dataset`` defaults to ``result.name``.
    """
    record_drift(
        model,
        result.share,
        len(result.drifted_columns),
        dataset=result.name if dataset is None else dataset,
        timestamp=timestamp,
        metrics=metrics,
    )


def record_model_metrics(
    model: str,
    version: str | int,
    values: Mapping[str, float],
    *,
    prefix: str = "",
    metrics: MonitoringMetrics | None = None,
) -> None:
    """Record a model version's metrics, one ``clv_model_metric`` series per metric.

    Parameters
    ----------
    model : str
        Registered model name, e.g. ``"clv-spend"``.
    version : str or int
        Model version.
    values : mapping of str to float
        E.g. :func:`clv.evaluation.metrics.regression_report`. Non-numeric entries (such as
        ``as_of``) and NaN values are skipped.
    prefix : str
        Prepended to each metric name: ``"realised_"`` for realised performance.
    metrics : MonitoringMetrics, optional
        Default: :func:`default_metrics`.
    """
    m = _resolve(metrics)
    model = _label(model, "model")
    version = _label(str(version), "version")
    for name, value in values.items():
        if isinstance(value, bool) or not isinstance(value, int | float):
            continue
        if math.isnan(value):
            logger.debug("skipping %s%s of %s v%s: NaN", prefix, name, model, version)
            continue
        m.model_metric.labels(model=model, version=version, metric=f"{prefix}{name}").set(value)


def record_predictions(model: str, count: int, *, metrics: MonitoringMetrics | None = None) -> None:
    """Add ``count`` scored customers to ``clv_predictions_total{model}``.

    Raises
    ------
    ValueError
        When ``count`` is negative.
    """
    if count < 0:
        raise ValueError(f"count must be at least 0, got {count}")
    _resolve(metrics).predictions.labels(model=_label(model, "model")).inc(count)


def record_flow_run(flow: str, state: str, *, metrics: MonitoringMetrics | None = None) -> None:
    """Count a finished flow run under its final state (lower-cased, e.g. ``"failed"``)."""
    _resolve(metrics).flow_runs.labels(
        flow=_label(flow, "flow"), state=_label(state, "state").lower()
    ).inc()


def restore_textfile(path: Path, *, metrics: MonitoringMetrics | None = None) -> int:
    """Seed the metrics with the samples of a textfile written earlier (if it exists).

    Counters are incremented by their previous totals; gauges take their previous values unless
    this process has set them already. Call it once per process (before or after recording):
    a second call would count the file's totals twice.

    Parameters
    ----------
    path : Path
        A file written by :func:`write_textfile`; a missing file restores nothing.
    metrics : MonitoringMetrics, optional
        Default: :func:`default_metrics`.

    Returns
    -------
    int
        Number of series restored.

    Raises
    ------
    ValueError
        When the file is not valid Prometheus text format.
    """
    from prometheus_client.parser import text_string_to_metric_families

    path = Path(path)
    if not path.exists():
        return 0
    m = _resolve(metrics)
    targets: dict[str, Gauge | Counter] = {
        "clv_drift_share": m.drift_share,
        "clv_drifted_columns": m.drifted_columns,
        "clv_model_metric": m.model_metric,
        "clv_predictions_total": m.predictions,
        "clv_flow_runs_total": m.flow_runs,
    }
    restored = 0
    try:
        families = list(text_string_to_metric_families(path.read_text(encoding="utf-8")))
    except ValueError as err:
        raise ValueError(f"{path} is not a Prometheus textfile: {err}") from None
    for family in families:
        for sample in family.samples:
            if sample.name == "clv_last_drift_check_timestamp_seconds":
                if not m.has_last_drift_check:
                    m.set_last_drift_check(sample.value)
                    restored += 1
                continue
            target = targets.get(sample.name)
            if target is None:
                continue
            if isinstance(target, Counter):
                target.labels(**sample.labels).inc(sample.value)
            elif _label_values(target, sample.labels) not in _existing(target):
                target.labels(**sample.labels).set(sample.value)
            else:
                continue  # set in this process since: newer than the file
            restored += 1
    return restored


def _label_values(metric: Gauge | Counter, labels: Mapping[str, str]) -> tuple[str, ...]:
    return tuple(labels.get(name, "") for name in metric._labelnames)


def _existing(metric: Gauge | Counter) -> set[tuple[str, ...]]:
    names = metric._labelnames
    return {
        tuple(sample.labels.get(name, "") for name in names)
        for family in metric.collect()
        for sample in family.samples
    }


def default_textfile() -> Path:
    """Where :func:`write_default_textfile` writes: ``<CLV_HOME>/monitoring/metrics/clv.prom``.

    Point the node exporter's ``--collector.textfile.directory`` at that folder.
    """
    from clv.settings import get_settings

    return get_settings().home / "monitoring" / "metrics" / "clv.prom"


def write_default_textfile(*, metrics: MonitoringMetrics | None = None) -> Path:
    """Merge this process's metrics into :func:`default_textfile` and write it atomically.

    The first call in a process restores the file's previous samples (:func:`restore_textfile`),
    so that flows running one after another share one file without losing each other's series.
    Concurrent writers are serialised with an exclusive lock on ``clv.prom.lock``.

    Returns
    -------
    Path
        The file written.
    """
    import fcntl

    m = _resolve(metrics)
    path = default_textfile()
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.with_name(path.name + ".lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            if not m.restored:
                restore_textfile(path, metrics=m)
                m.restored = True
            write_textfile(path, metrics=m)
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)
    return path


def write_textfile(path: Path, *, metrics: MonitoringMetrics | None = None) -> None:
    """Write the metrics for the node exporter's textfile collector, atomically.

    Parameters
    ----------
    path : Path
        Destination; the collector only reads names ending in ``.prom``. Its folder is created.
    metrics : MonitoringMetrics, optional
        Default: :func:`default_metrics`.
    """
    from prometheus_client import write_to_textfile

    path = Path(path)
    if path.suffix != ".prom":
        logger.warning("%s does not end in .prom: the textfile collector will ignore it", path)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_to_textfile(str(path), _resolve(metrics).registry)  # temp file + rename


def push(
    gateway_url: str,
    *,
    job: str = "clv",
    grouping_key: Mapping[str, str] | None = None,
    timeout: float = 10.0,
    metrics: MonitoringMetrics | None = None,
) -> None:
    """Push the metrics to a Prometheus Pushgateway (replacing the group's previous push).

    Parameters
    ----------
    gateway_url : str
        E.g. ``"http://pushgateway:9091"``.
    job : str
        ``job`` grouping label.
    grouping_key : mapping, optional
        Further grouping labels (e.g. ``{"flow": "clv-training"}``).
    timeout : float
        Seconds before giving up.
    metrics : MonitoringMetrics, optional
        Default: :func:`default_metrics`.
    """
    from prometheus_client import push_to_gateway

    push_to_gateway(
        gateway_url,
        job=job,
        registry=_resolve(metrics).registry,
        grouping_key=dict(grouping_key) if grouping_key else None,
        timeout=timeout,
    )
