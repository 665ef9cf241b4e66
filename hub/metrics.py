"""Prometheus metrics, one registry per app (no module-level state)."""

from __future__ import annotations

from typing import Any

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

        # (method, route, status) -> the latency and count children: ``labels()`` takes a
        # lock and validates the labels, every request
        self._http: dict[tuple[str, str, int], tuple[Any, Any]] = {}

    def observe_http(self, method: str, route: str, status: int, seconds: float) -> None:
        """Count one request and its latency."""
        key = (method, route, status)
        children = self._http.get(key)
        if children is None:
            children = self._http[key] = (
                self.http_latency.labels(method, route),
                self.http_requests.labels(method, route, str(status)),
            )
        children[0].observe(seconds)
        children[1].inc()

    def render(self) -> bytes:
        return generate_latest(self.registry)
