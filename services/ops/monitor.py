"""The stream-health monitor: a window of broker samples, evaluated into a report.

The API runs :func:`keep_sampling` as a background task (every
``TOUCHSTREAM_OPS_SAMPLE_INTERVAL`` seconds, a window of ``TOUCHSTREAM_OPS_WINDOW`` samples)
and serves the latest report; ``touchstream health`` takes a short window of its own.
Requests never touch the broker: a sample is a few offset requests and at most
``TOUCHSTREAM_OPS_TAIL_RECORDS`` new records per partition of three topics."""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections import Counter, deque
from collections.abc import Callable
from datetime import UTC, datetime

from kafka import TopicPartition

from services.errors import BrokerUnavailable
from services.ops.evaluate import GroupState, Observation, assess, evaluate_partition, worst
from services.ops.pipeline import monitored_groups, pipeline_stages
from services.ops.probe import BrokerProbe, Snapshot
from services.ops.report import (
    BrokerReport,
    ChannelDelay,
    DeadLetterReport,
    GroupReport,
    LatencySummary,
    PartitionLag,
    RecentDeadLetter,
    StageReport,
    StoreReport,
    StreamsReport,
    WindowReport,
)
from services.ops.store import StoreCheck, StoreProbe
from services.ops.tail import Tail
from services.settings import Settings

__all__ = ["StreamMonitor", "keep_sampling"]

log = logging.getLogger("touchstream.ops")
PROBE_TIMEOUT = 5.0  # seconds a sample waits for the broker before reporting it unreachable


class StreamMonitor:
    """Samples the broker and the store; :meth:`sample` returns the report over the window of
    the last ``window`` samples, which :attr:`latest` keeps for readers in other threads."""

    def __init__(
        self,
        settings: Settings,
        broker_url: str,
        *,
        window: int | None = None,
        interval: float | None = None,
    ) -> None:
        self.settings = settings
        self.broker_url = broker_url
        self.size = window or settings.ops_window
        self.interval = interval or settings.ops_sample_interval
        self.stages = pipeline_stages(settings)
        self.groups = monitored_groups(settings)
        self.tail = Tail(lateness=settings.allowed_lateness)
        t = settings.topics
        self.probe = BrokerProbe(
            broker_url,
            t.all(),
            self.groups,
            tails={
                t.resolved: self.tail.resolved,
                t.transitions: self.tail.transition,
                t.dlq: self.tail.dead_letter,
            },
            tail_records=settings.ops_tail_records,
            timeout=PROBE_TIMEOUT,
        )
        self.store = StoreProbe(settings.store_url())
        self.window: deque[Snapshot] = deque(maxlen=self.size)
        self.latest: StreamsReport | None = None
        self._lock = threading.Lock()

    def sample(self) -> StreamsReport:
        """Take one sample of the broker and the store and evaluate the window."""
        with self._lock:
            broker_problem = None
            try:
                self.window.append(self.probe.snapshot())
            except BrokerUnavailable as error:
                broker_problem = str(error)
                self.window.clear()  # offsets from before an outage may not hold after it
            report = self._report(broker_problem, self.store.check())
            self.latest = report
            return report

    def close(self) -> None:
        self.probe.close()
        self.store.close()

    def _report(self, broker_problem: str | None, store: StoreCheck) -> StreamsReport:
        now = datetime.now(UTC)
        window = list(self.window)
        groups = [self._group(group, window) for group in self.groups] if window else []
        states = [
            GroupState(g.group, g.status, None if g.members is None else len(g.members), g.lag)
            for g in groups
        ]
        verdict = assess(broker=broker_problem, groups=states, store=store.problem)
        sink = next((g for g in groups if g.role == "crm-sink"), None)
        return StreamsReport(
            status=verdict.level.name,
            exit_code=int(verdict.level),
            problems=list(verdict.problems),
            sampled_at=now,
            window=WindowReport(
                samples=len(window),
                size=self.size,
                seconds=round(window[-1].at - window[0].at, 3) if window else 0.0,
                interval_seconds=self.interval,
            ),
            broker=BrokerReport(
                url=self.broker_url, reachable=broker_problem is None, detail=broker_problem
            ),
            store=StoreReport(
                reachable=store.reachable,
                seconds=round(store.seconds, 4),
                revision=store.revision,
                head=store.head,
                detail=store.problem,
            ),
            groups=groups,
            stages=[self._stage(i, window, groups) for i in range(len(self.stages))]
            if window
            else [],
            dead_letters=self._dead_letters(window),
            event_time=self._event_time(now),
            latency=self._latency(),
            sink_backlog=sink.lag if sink is not None else None,
        )

    def _group(self, group: str, window: list[Snapshot]) -> GroupReport:
        latest = window[-1]
        members = latest.members.get(group)
        partitions = []
        for tp, committed in sorted(latest.committed.get(group, {}).items()):
            if tp not in latest.ends:
                continue
            history = [
                Observation(s.at, s.committed[group][tp], s.ends[tp])
                for s in window
                if tp in s.ends and tp in s.committed.get(group, {})
            ]
            verdict = evaluate_partition(
                history, size=self.size, members=None if members is None else len(members)
            )
            end = latest.ends[tp]
            partitions.append(
                PartitionLag(
                    topic=tp.topic,
                    partition=tp.partition,
                    committed=committed,
                    end=end,
                    lag=max(0, end - committed),
                    status=verdict.status,
                    reason=verdict.reason,
                )
            )
        return GroupReport(
            group=group,
            role="workers" if group == self.settings.app_id else "crm-sink",
            status=worst(p.status for p in partitions),
            lag=sum(p.lag for p in partitions),
            members=members,
            complete=round(min(1.0, len(window) / self.size), 3),
            partitions=partitions,
        )

    def _stage(self, index: int, window: list[Snapshot], groups: list[GroupReport]) -> StageReport:
        stage = self.stages[index]
        first, last = window[0], window[-1]
        seconds = last.at - first.at

        def per_second(delta: int) -> float:
            return round(delta / seconds, 3) if seconds > 0 else 0.0

        inputs = _partitions(last.ends, stage.inputs)
        outputs = _partitions(last.ends, stage.outputs)
        consumed_now = last.committed.get(stage.group, {})
        consumed_then = first.committed.get(stage.group, {})
        consumed = sum(
            max(0, consumed_now[tp] - consumed_then.get(tp, consumed_now[tp]))
            for tp in inputs
            if tp in consumed_now
        )
        group = next(g for g in groups if g.group == stage.group)
        lag = sum(p.lag for p in group.partitions if p.topic in stage.inputs)
        written = per_second(consumed)
        return StageReport(
            stage=stage.name,
            group=stage.group,
            inputs=list(stage.inputs),
            outputs=list(stage.outputs),
            input_per_second=per_second(_growth(first.ends, last.ends, inputs)),
            output_per_second=per_second(_growth(first.ends, last.ends, outputs))
            if stage.outputs
            else written,
            consumed_per_second=written,
            lag=lag,
            input_records=sum(last.ends[tp] for tp in inputs),
            output_records=sum(last.ends[tp] for tp in outputs)
            if stage.outputs
            else sum(consumed_now.get(tp, 0) for tp in inputs),
        )

    def _dead_letters(self, window: list[Snapshot]) -> DeadLetterReport:
        letters = list(self.tail.letters)
        reasons = Counter(letter.reason for letter in letters)
        appended, seconds, total = 0, 0.0, 0
        if window:
            first, last = window[0], window[-1]
            dlq = _partitions(last.ends, (self.settings.topics.dlq,))
            appended = _growth(first.ends, last.ends, dlq)
            seconds = last.at - first.at
            total = sum(last.ends[tp] for tp in dlq)
        return DeadLetterReport(
            per_second=round(appended / seconds, 3) if seconds > 0 else 0.0,
            in_window=appended,
            total=total,
            reasons=dict(reasons.most_common()),
            recent=[
                RecentDeadLetter(
                    id=x.id,
                    at=x.at,
                    stage=x.stage,
                    reason=x.reason,
                    event_id=x.event_id,
                    summary=x.summary,
                )
                for x in letters
            ],
        )

    def _event_time(self, now: datetime) -> list[ChannelDelay]:
        delays = []
        for channel, seen in sorted(self.tail.channels.items()):
            reached = datetime.fromtimestamp(seen.reached_ms / 1000, UTC)
            delays.append(
                ChannelDelay(
                    channel=channel,
                    reached=reached,
                    delay_seconds=round((now - reached).total_seconds(), 3),
                    reported_at=datetime.fromtimestamp(seen.seen_ms / 1000, UTC),
                )
            )
        return delays

    def _latency(self) -> list[LatencySummary]:
        summaries = []
        for stage, observed in self.tail.latencies.items():
            values = sorted(observed)
            summaries.append(
                LatencySummary(
                    stage=stage,
                    samples=len(values),
                    p50_seconds=_quantile(values, 0.5),
                    p95_seconds=_quantile(values, 0.95),
                    max_seconds=values[-1] if values else None,
                )
            )
        return summaries


def _partitions(ends: dict[TopicPartition, int], topics: tuple[str, ...]) -> list[TopicPartition]:
    return [tp for tp in ends if tp.topic in topics]


def _growth(
    before: dict[TopicPartition, int], after: dict[TopicPartition, int], tps: list[TopicPartition]
) -> int:
    """Records appended to ``tps`` between two samples (a partition new since: none counted)."""
    return sum(max(0, after[tp] - before.get(tp, after[tp])) for tp in tps)


def _quantile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    return round(values[min(len(values) - 1, int(q * len(values)))], 4)


async def keep_sampling(
    monitor: StreamMonitor,
    on_sample: Callable[[StreamsReport, dict[str, list[float]]], None],
) -> None:
    """Sample every ``monitor.interval`` seconds until cancelled; hand each report and the
    latency observations new since the last one to ``on_sample``. A failed sample is logged
    and the next one taken as usual."""
    while True:
        started = time.monotonic()
        try:
            report = await asyncio.to_thread(monitor.sample)
            on_sample(report, monitor.tail.drain())
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("stream health: sampling failed")
        await asyncio.sleep(max(0.1, monitor.interval - (time.monotonic() - started)))
