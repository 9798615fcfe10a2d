"""Crashes on purpose, for the reliability tests: workers killed with SIGKILL and started
again, PostgreSQL stopped in immediate mode (as in a crash) and started again, each at a
seeded point of a generated scenario sent a day of event time at a time; and how much work
each crash left uncommitted, to show it hit work in flight."""

from __future__ import annotations

import contextlib
import os
import queue
import random
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import orjson
import pytest

from services.crm.service import sink_group, sink_topics
from services.embedded.postgres import ThrowawayPostgres, find_pg_bin
from services.embedded.process import ManagedProcess
from services.identity.stage import is_control
from services.kafka import read_to_end
from services.ops.probe import BrokerProbe
from services.settings import Settings
from services.simulate import Scenario, generate
from tests.support import scenario as pipeline
from tests.support.services import HEAVY, start_worker


@dataclass(frozen=True)
class RunSize:
    """How big a reliability run is: ``TOUCHSTREAM_RELIABILITY_EVENTS`` (about that many
    events), ``..._DAYS`` (of event time, sent a day at a time), ``..._SEED`` (the scenario
    and where the crashes fall), ``..._KILLS`` (worker kills in the one-worker test)."""

    events: int
    seed: int
    kills: int
    days: int = 14

    @classmethod
    def from_env(cls) -> RunSize:
        return cls(
            events=int(os.environ.get("TOUCHSTREAM_RELIABILITY_EVENTS", "2000")),
            seed=int(os.environ.get("TOUCHSTREAM_RELIABILITY_SEED", "23")),
            kills=int(os.environ.get("TOUCHSTREAM_RELIABILITY_KILLS", "3")),
            days=int(os.environ.get("TOUCHSTREAM_RELIABILITY_DAYS", "14")),
        )

    @property
    def customers(self) -> int:
        """People for about ``events`` events: the events per person of a sample of 200."""
        sample = generate(200, self.days, seed=self.seed)
        return max(20, round(self.events * 200 / len(sample.events)))

    @property
    def timeout(self) -> float:
        """Seconds a test may take: room for ~100 events/s (the worker does ~700 alone)."""
        return 300.0 + self.events / 100

    def marks(self) -> list[pytest.MarkDecorator]:
        """A crash-test module's ``pytestmark``: what it needs, and its size's timeout."""
        return [
            pytest.mark.broker,
            pytest.mark.postgres,
            pytest.mark.reliability,
            pytest.mark.timeout(self.timeout),
            HEAVY,
        ]

    def scenario(self) -> Scenario:
        return generate(self.customers, self.days, seed=self.seed)


def sigkill(process: ManagedProcess) -> int | None:
    """``kill -9`` the process (no handler runs, nothing is flushed) and reap it."""
    with contextlib.suppress(ProcessLookupError):
        os.kill(process.pid, signal.SIGKILL)
    assert process.proc is not None
    return process.proc.wait(10)


class CrashablePostgres(ThrowawayPostgres):
    """A throwaway cluster that can also be stopped as a crash would stop it."""

    def crash(self) -> None:
        """``pg_ctl stop -m immediate``: every server process quits at once, without a
        checkpoint; connections drop mid-transaction; the next start recovers from the WAL."""
        self._run([find_pg_bin("pg_ctl"), "-D", str(self.data), "-m", "immediate", "-w", "stop"])


def uncommitted(settings: Settings) -> dict[str, int]:
    """Records the worker group and the CRM sink group have not committed, per group: what a
    worker started now reads again."""
    t = settings.topics
    groups = {
        settings.app_id: (t.raw, t.valid, t.resolved),
        sink_group(settings): tuple(sink_topics(settings)),
    }
    topics = sorted({topic for consumed in groups.values() for topic in consumed})
    probe = BrokerProbe(settings.broker_url or "", topics, groups)
    try:
        shot = probe.snapshot()
    finally:
        probe.close()
    return {
        "workers" if group == settings.app_id else "sink": sum(
            max(0, shot.ends.get(tp, 0) - offset) for tp, offset in committed.items()
        )
        for group, committed in shot.committed.items()
    }


def records_on(settings: Settings, topic: str) -> int:
    """Records ever written to ``topic`` (the sum of its partitions' end offsets)."""
    probe = BrokerProbe(settings.broker_url or "", [topic], {})
    try:
        return sum(probe.snapshot().ends.values())
    finally:
        probe.close()


def where_are(settings: Settings, ids: set[str]) -> str:
    """Evidence for events that did not come through: where each one is on the raw and
    valid topics, and how far the worker group has committed on each partition."""
    broker = settings.broker_url or ""
    found: dict[str, list[str]] = {i: [] for i in ids}
    t = settings.topics
    for topic in (t.raw, t.valid, t.dlq):
        for record in read_to_end(broker, topic):
            value = orjson.loads(record.value)
            if topic == t.valid:
                event_id = value["event"]["event_id"]
            elif topic == t.dlq:
                event_id = value.get("event_id")
            else:
                event_id = value.get("event_id")
            if event_id in found:
                found[event_id].append(
                    f"{topic.rsplit('.', 1)[-1]}/{record.partition}@{record.offset}"
                )
    group = {settings.app_id: (t.raw, t.valid, t.resolved)}
    probe = BrokerProbe(broker, list(group[settings.app_id]), group)
    try:
        shot = probe.snapshot()
    finally:
        probe.close()
    offsets = {
        f"{tp.topic.rsplit('.', 1)[-1]}/{tp.partition}": (committed, shot.ends.get(tp))
        for tp, committed in sorted(shot.committed[settings.app_id].items())
    }
    return (
        f"where the events are: {dict(sorted(found.items())[:20])}; "
        f"worker group (committed, end) per partition: {offsets}; members {shot.members}"
    )


class ResolvedIds:
    """The event ids on the resolved topic so far (each once, however often resolved)."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.consumer = pipeline.read_resolved(settings)
        self.seen: set[str] = set()

    def wait_for(self, ids: set[str], timeout: float) -> None:
        """Until every one of ``ids`` was resolved; ``timeout`` seconds without progress fail,
        with where the missing events are."""
        last, progress = -1, time.monotonic()
        while not ids <= self.seen:
            missing = len(ids - self.seen)
            if missing != last:
                last, progress = missing, time.monotonic()
            elif time.monotonic() - progress > timeout:
                raise AssertionError(
                    f"{missing} of {len(ids)} events not resolved after {timeout:.0f}s "
                    f"without progress; {where_are(self.settings, ids - self.seen)}"
                )
            for records in self.consumer.poll(timeout_ms=200).values():
                self.seen.update(
                    orjson.loads(r.value)["event"]["event_id"]
                    for r in records
                    if not is_control(r.value)
                )

    def close(self) -> None:
        self.consumer.close()


def run_paced(
    settings: Settings,
    scenario: Scenario,
    *,
    before_chunk: Callable[[int], None] | None = None,
    timeout: float = 180.0,
) -> list[dict[str, Any]]:
    """The scenario's body a day of event time at a time, each once all its events are
    resolved (as ``tests.support.scenario.run`` sends it, but counting event ids rather than
    records: a crashed worker resolves some events twice), then the closing events; then
    until the expected flags are raised and nothing new comes for three polls (or
    ``timeout``). Returns the flags raised."""
    chunks = [*pipeline.by_day(scenario.events), scenario.closing]
    resolved = ResolvedIds(settings)
    try:
        for number, chunk in enumerate(chunks):
            if before_chunk is not None:
                before_chunk(number)
            pipeline.emit(settings, chunk)
            resolved.wait_for({e["event_id"] for e in chunk}, timeout)
    finally:
        resolved.close()
    event_ids = {e["event_id"] for e in scenario.events + scenario.closing}
    expected = pipeline.expected_keys(scenario.expected)
    last: list[int] = [-1, 0]

    def settled() -> bool:
        raised = pipeline.read_raised(settings)
        if expected <= set(pipeline.raised_keys(raised, event_ids)) and len(raised) == last[0]:
            last[1] += 1
        else:
            last[1] = 0
        last[0] = len(raised)
        return last[1] >= 3

    with contextlib.suppress(AssertionError):  # the caller reports what is missing
        pipeline.wait_until("the expected flags", settled, timeout, interval=1.5)
    return pipeline.read_raised(settings)


class Workers:
    """Worker processes by name: started as users start them, killed, started again."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.processes: dict[str, ManagedProcess] = {}
        self.exits: list[tuple[str, int | None]] = []  # every exit seen, with its code

    def start(self, name: str) -> ManagedProcess:
        process = start_worker(self.settings, name)
        self.processes[name] = process
        return process

    def kill(self, name: str) -> int | None:
        code = sigkill(self.processes[name])
        self.exits.append((name, code))
        return code

    def alive(self) -> dict[str, bool]:
        return {name: p.alive() for name, p in self.processes.items()}

    def stop(self) -> None:
        for name, process in reversed(self.processes.items()):
            if process.alive():
                self.exits.append((name, process.stop()))

    def tails(self, lines: int = 30) -> str:
        return "\n".join(f"--- {n}\n{p.tail(lines)}" for n, p in self.processes.items())


Action = Callable[[], dict[str, Any]]  # does the fault; returns what it measured


# Until the broker drops a killed worker from the group (its session timeout, 6 s here)
# and the survivor has taken its partitions, the raw partitions it read deliver nothing: 12
# to 16 s in the kill tests. A raw partition idle for TOUCHSTREAM_WATERMARK_IDLE_TIMEOUT no
# longer holds event time back, and its events count as late when they come (ADR 0001,
# consequences): with the default 10 s, a stage stall due in that window was raised though
# the event ending the stay was on its way. The idle timeout was set above the failover for
# that. Since then a raw partition with records past the committed offset is never idle
# (services/worker/backlog.py); the two-worker tests keep 30 s, as they passed with it at
# 200,000 events.
FAILOVER_IDLE_TIMEOUT = 30.0


def crm_settings(settings: Settings, url: str, *, workers: int = 1) -> Settings:
    """The test's topics and group, its store, and the idle timeout for watermarks: 10 s
    (the default; the tests' 2 s could call a partition idle while its worker restarts),
    above a failover with several workers. A worker starved of CPU can be dropped from the
    group too: a 200,000-event store-crash run with 10 s, on a machine other benchmarks were
    loading, rebalanced mid-run and raised 24 deadline flags an uninterrupted run does not."""
    idle = FAILOVER_IDLE_TIMEOUT if workers > 1 else 10.0
    return settings.model_copy(update={"database_url": url, "watermark_idle_timeout": idle})


def chunks(scenario: Scenario) -> int:
    """How many times a paced run sends: each day of the body, then the closing events."""
    return len(pipeline.by_day(scenario.events)) + 1


@dataclass
class Fault:
    """What was done at one point of the run, and what it found."""

    what: str
    chunk: int
    delay: float
    uncommitted: dict[str, Any] = field(default_factory=dict)  # what the action measured
    seconds: float = 0.0  # from the fault until the action (and any restart) returned


class Faults:
    """Faults at seeded points of a paced run. ``plan`` maps a chunk number to a delay in
    seconds and an action: before that chunk is sent, the fault thread waits the delay (so
    the fault falls while the chunk is being sent and worked on), then runs the action,
    which returns what it measured. The run goes on meanwhile; one fault at a time: the
    next waits for the one before, and :meth:`join` for the last.

    One thread runs every action and lives until :meth:`close`: a worker it starts gets
    ``PR_SET_PDEATHSIG``, which Linux ties to the thread that forked it, so a thread that
    ended would take its workers with it. Close after stopping the workers."""

    def __init__(self, plan: dict[int, tuple[float, str, Action]]) -> None:
        self.plan = plan
        self.done: list[Fault] = []
        self.errors: list[BaseException] = []
        self._queue: queue.Queue[tuple[Fault, Action] | None]
        self._queue = queue.Queue()
        self._thread = threading.Thread(target=self._serve, name="faults", daemon=True)
        self._thread.start()

    @staticmethod
    def points(seed: int, count: int, chunks: int, *, first: int = 1) -> list[tuple[int, float]]:
        """``count`` distinct chunk numbers in ``[first, chunks - 2]`` (never the closing
        chunk, so every fault is over before event time is moved past the last deadlines),
        each with a delay of 0.1 to 2.5 seconds, drawn from ``seed``."""
        rng = random.Random(f"{seed}:faults")
        numbers = sorted(rng.sample(range(first, chunks - 1), count))
        return [(n, round(rng.uniform(0.1, 2.5), 2)) for n in numbers]

    def before_chunk(self, number: int) -> None:
        if number in self.plan:
            self.join()
            delay, what, action = self.plan[number]
            self._queue.put((Fault(what, number, delay), action))

    def _serve(self) -> None:
        while (item := self._queue.get()) is not None:
            fault, action = item
            time.sleep(fault.delay)
            started = time.monotonic()
            try:
                fault.uncommitted = action()
            except BaseException as error:  # pytest.fail in a thread: hand it to the test
                self.errors.append(error)
            fault.seconds = round(time.monotonic() - started, 1)
            self.done.append(fault)
            self._queue.task_done()

    def join(self) -> None:
        """Wait for the fault under way, if any; raise if an action failed."""
        self._queue.join()
        if self.errors:
            raise AssertionError(f"a fault's action failed: {self.errors[0]!r}")

    def close(self) -> None:
        self._queue.put(None)
        self._thread.join(30)

    def report(self) -> str:
        return "; ".join(
            f"{f.what} before day {f.chunk} +{f.delay}s (uncommitted {f.uncommitted}, {f.seconds}s)"
            for f in self.done
        )
