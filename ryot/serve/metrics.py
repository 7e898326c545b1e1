"""The server's Prometheus metrics, in a registry of its own (never the process-global one).

A registry per app keeps two apps in one process (tests) from sharing counters, and keeps
/metrics to what this server measured.
"""

from __future__ import annotations

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.exposition import generate_latest

ENDPOINTS = ("/infer", "/health", "/metrics")
# Seconds: a smoke model answers in milliseconds, a batch of 32 x 64 tokens on a CPU in seconds.
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256)


def endpoint_label(path: str) -> str:
    # Unknown paths share one label: a scanner must not create a time series per URL.
    return path if path in ENDPOINTS else "other"


class ServerMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "ryot_requests",
            "HTTP requests answered, by endpoint and status code",
            ["endpoint", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "ryot_request_latency_seconds",
            "Time from request to response, by endpoint",
            ["endpoint"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.batch_size = Histogram(
            "ryot_batch_size",
            "Prompts decoded together in one batch",
            buckets=BATCH_BUCKETS,
            registry=self.registry,
        )
        self.tokens = Counter(
            "ryot_tokens_generated", "New tokens returned to clients", registry=self.registry
        )
        self.queue_depth = Gauge(
            "ryot_queue_depth", "Requests waiting for a decode batch", registry=self.registry
        )
        self.disconnects = Counter(
            "ryot_client_disconnects",
            "Requests whose client went away before an answer could be sent, by endpoint",
            ["endpoint"],
            registry=self.registry,
        )

    def observe_request(self, path: str, status: int, seconds: float) -> None:
        endpoint = endpoint_label(path)
        self.requests.labels(endpoint, str(status)).inc()
        self.latency.labels(endpoint).observe(seconds)

    def observe_disconnect(self, path: str) -> None:
        self.disconnects.labels(endpoint_label(path)).inc()

    def exposition(self) -> tuple[bytes, str]:
        return generate_latest(self.registry), CONTENT_TYPE_LATEST
