"""Prometheus metrics, one registry per app (no module-level state)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest


class HubMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.http_requests = Counter(
            "sportello_http_requests_total",
            "HTTP requests served",
            ["method", "route", "status"],
            registry=self.registry,
        )
        self.http_latency = Histogram(
            "sportello_http_request_duration_seconds",
            "HTTP request latency",
            ["method", "route"],
            registry=self.registry,
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
        )
        self.outbox_depth = Gauge(
            "sportello_outbox_jobs",
            "Outbox rows by status (read from the database at scrape time)",
            ["status"],
            registry=self.registry,
        )
        self.outbox_attempts = Counter(
            "sportello_outbox_attempts_total",
            "Outbox delivery attempts by kind and outcome (ok, retry, failed, lease_lost, ...)",
            ["kind", "outcome"],
            registry=self.registry,
        )

    def render(self) -> bytes:
        return generate_latest(self.registry)
