"""Prometheus metrics of the API process, in a registry of the app's own: ingestion, and the
stream health its sampler measures."""

from __future__ import annotations

from collections.abc import Mapping

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from services.ops.evaluate import LagStatus
from services.ops.report import StreamsReport


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
        self.streams = StreamMetrics(self.registry)


LATENCY_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600)


class StreamMetrics:
    """Stream health from the API's sampler (docs/operations.md): consumer lag, stage rates,
    dead letters, event-time delay, processing latency, broker and store reachability."""

    def __init__(self, registry: CollectorRegistry) -> None:
        def gauge(name: str, doc: str, labels: tuple[str, ...] = ()) -> Gauge:
            return Gauge(name, doc, labels, registry=registry)

        def counter(name: str, doc: str, labels: tuple[str, ...] = ()) -> Counter:
            return Counter(name, doc, labels, registry=registry)

        self.lag = gauge(
            "touchstream_consumer_lag_records",
            "Records a consumer group has not committed yet, per partition: end offset (high "
            "watermark) less committed offset.",
            ("group", "topic", "partition"),
        )
        self.group_lag = gauge(
            "touchstream_consumer_group_lag_records",
            "Sum of a consumer group's lag over the partitions it consumes.",
            ("group",),
        )
        self.group_status = gauge(
            "touchstream_consumer_group_status",
            "1 for a consumer group's current status (OK, WARN, STALLED, STOPPED), 0 for the "
            "others; judged on the lag's trend over the evaluation window.",
            ("group", "status"),
        )
        self.members = gauge(
            "touchstream_consumer_group_members",
            "Members of a consumer group, as the broker describes it.",
            ("group",),
        )
        self.input_rate = gauge(
            "touchstream_stage_input_records_per_second",
            "Records appended to a stage's input topics per second, over the window.",
            ("stage",),
        )
        self.output_rate = gauge(
            "touchstream_stage_output_records_per_second",
            "Records appended to a stage's output topics per second, over the window (the sink: "
            "records it wrote and committed).",
            ("stage",),
        )
        self.consumed_rate = gauge(
            "touchstream_stage_consumed_records_per_second",
            "Advance of a stage's committed offsets on its inputs per second, over the window.",
            ("stage",),
        )
        self.inputs = counter(
            "touchstream_stage_input_records_total",
            "Records appended to a stage's input topics since the API started sampling.",
            ("stage",),
        )
        self.outputs = counter(
            "touchstream_stage_output_records_total",
            "Records appended to a stage's output topics (the sink: records it committed) since "
            "the API started sampling.",
            ("stage",),
        )
        self.dead_letter_rate = gauge(
            "touchstream_dead_letters_per_second",
            "Records appended to the dead-letter topic per second, over the window.",
        )
        self.dead_lettered = counter(
            "touchstream_dead_lettered_records_total",
            "Records appended to the dead-letter topic since the API started sampling.",
        )
        self.event_time_delay = gauge(
            "touchstream_event_time_delay_seconds",
            "How far behind now a channel's feed is: now less the event time the identity "
            "stage's watermark says every active raw partition has reached.",
            ("channel",),
        )
        self.latency = Histogram(
            "touchstream_processing_latency_seconds",
            "Time from acceptance (the raw record's broker timestamp) to a stage's output record: "
            "identity (resolved topic) or journey (transitions topic); sampled from the newest "
            "records.",
            ["stage"],
            buckets=LATENCY_BUCKETS,
            registry=registry,
        )
        self.sink_backlog = gauge(
            "touchstream_sink_backlog_records",
            "Records on the CRM sink's topics it has not committed yet.",
        )
        self.broker_up = gauge(
            "touchstream_broker_up", "1 when the broker answered the last sample, else 0."
        )
        self.store_up = gauge(
            "touchstream_store_up", "1 when the CRM store answered the last sample, else 0."
        )
        self.health = gauge(
            "touchstream_stream_health",
            "The pipeline's health: 0 healthy, 1 degraded, 2 down (as `touchstream health`); 2 "
            "until the first sample.",
        )
        self.health.set(2)
        self.samples = counter(
            "touchstream_stream_samples_total",
            "Stream-health samples taken, by outcome (ok, broker_unavailable).",
            ("outcome",),
        )
        self._records: dict[str, tuple[int, int]] = {}
        self._dead_letters: int | None = None

    def update(self, report: StreamsReport, latencies: Mapping[str, list[float]]) -> None:
        """Set the series from one sample's report; observe its new latencies."""
        self.samples.labels("ok" if report.broker.reachable else "broker_unavailable").inc()
        self.broker_up.set(int(report.broker.reachable))
        self.store_up.set(int(report.store is not None and report.store.reachable))
        self.health.set(report.exit_code)
        for stage, seconds in latencies.items():
            for value in seconds:
                self.latency.labels(stage).observe(value)
        if not report.broker.reachable:
            for family in (self.lag, self.group_lag, self.group_status, self.members):
                family.clear()  # absent rather than stale while the broker is away
            return
        self._groups(report)
        self._stages(report)
        self.dead_letter_rate.set(report.dead_letters.per_second)
        total = report.dead_letters.total
        if self._dead_letters is not None and total > self._dead_letters:
            self.dead_lettered.inc(total - self._dead_letters)
        self._dead_letters = total
        for channel in report.event_time:
            self.event_time_delay.labels(channel.channel).set(channel.delay_seconds)
        if report.sink_backlog is not None:
            self.sink_backlog.set(report.sink_backlog)

    def _groups(self, report: StreamsReport) -> None:
        self.lag.clear()
        for group in report.groups:
            for p in group.partitions:
                self.lag.labels(group.group, p.topic, str(p.partition)).set(p.lag)
            self.group_lag.labels(group.group).set(group.lag)
            for status in LagStatus:
                self.group_status.labels(group.group, status.value).set(int(group.status is status))
            if group.members is not None:
                self.members.labels(group.group).set(len(group.members))

    def _stages(self, report: StreamsReport) -> None:
        for stage in report.stages:
            self.input_rate.labels(stage.stage).set(stage.input_per_second)
            self.output_rate.labels(stage.stage).set(stage.output_per_second)
            self.consumed_rate.labels(stage.stage).set(stage.consumed_per_second)
            before = self._records.get(stage.stage)
            now = (stage.input_records, stage.output_records)
            if before is not None:
                self.inputs.labels(stage.stage).inc(max(0, now[0] - before[0]))
                self.outputs.labels(stage.stage).inc(max(0, now[1] - before[1]))
            else:  # the series exist from the first sample on, at zero
                self.inputs.labels(stage.stage)
                self.outputs.labels(stage.stage)
            self._records[stage.stage] = now
