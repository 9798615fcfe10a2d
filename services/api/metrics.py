"""Prometheus metrics of the API process, in a registry of the app's own."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram


class ApiMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.ingested = Counter(
            "touchstream_ingest_events_total",
            "Events received over HTTP, by endpoint, source and outcome "
            "(accepted, rejected, dead_lettered, unavailable).",
            ["endpoint", "source", "outcome"],
            registry=self.registry,
        )
        self.requests = Counter(
            "touchstream_http_requests_total",
            "HTTP ingestion requests by endpoint and status code.",
            ["endpoint", "code"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "touchstream_ingest_request_duration_seconds",
            "Time to validate a request and have the broker acknowledge its events.",
            ["endpoint"],
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
            registry=self.registry,
        )
        self.dead_letters = Gauge(
            "touchstream_dead_letters",
            "Records in the dead-letter topic, by stage and reason (from the start of its "
            "retention).",
            ["stage", "reason"],
            registry=self.registry,
        )
