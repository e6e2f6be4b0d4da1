"""Prometheus metrics of the API, in a registry of its own (``GET /metrics``)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

__all__ = ["ApiMetrics"]

#: Latency buckets (seconds): the p99 goal is 50 ms.
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)
#: Predicted spend buckets (currency over the horizon).
CLV_BUCKETS = (0, 10, 25, 50, 100, 200, 400, 800, 1600, 3200, 6400)


class ApiMetrics:
    """Request counts and latencies per route, the served model version, predictions."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "clv_api_requests",
            "Requests answered, by method, route template and status.",
            ["method", "route", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "clv_api_request_duration_seconds",
            "Time to answer a request, by method and route template.",
            ["method", "route"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.model = Gauge(
            "clv_api_model_version_info",
            "1 for the model version served, by model name.",
            ["model", "version"],
            registry=self.registry,
        )
        self.predicted = Histogram(
            "clv_api_predicted_clv",
            "Predicted spend returned, by source (stored or scored on the fly).",
            ["source"],
            buckets=CLV_BUCKETS,
            registry=self.registry,
        )
        self.churn = Histogram(
            "clv_api_churn_probability",
            "Churn probability returned.",
            buckets=(0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0),
            registry=self.registry,
        )
        self._served: dict[str, str] = {}

    def observe_request(self, method: str, route: str, status: int, seconds: float) -> None:
        """Count one answered request."""
        self.requests.labels(method, route, str(status)).inc()
        self.latency.labels(method, route).observe(seconds)

    def observe_prediction(self, source: str, clv: float, churn: float | None) -> None:
        """Record one returned prediction."""
        self.predicted.labels(source).observe(clv)
        if churn is not None:
            self.churn.observe(churn)

    def serve_models(self, versions: dict[str, str | None]) -> None:
        """Set the served version per model (the previous version's series goes to 0)."""
        for name, version in versions.items():
            old = self._served.get(name)
            if old is not None and old != version:
                self.model.labels(name, old).set(0)
            if version is not None:
                self.model.labels(name, version).set(1)
                self._served[name] = version

    def render(self) -> bytes:
        """The text exposition format."""
        return generate_latest(self.registry)
