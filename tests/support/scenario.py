"""Run a generated scenario (``services.simulate``) through the real broker and workers, and
read back the flags it raised, per final customer (``touchstream friction list``'s reading)."""

from __future__ import annotations

import contextlib
import time
from collections import defaultdict
from collections.abc import Callable
from typing import Any

import orjson
from kafka import KafkaConsumer, TopicPartition

from services.cli.friction import read_flags
from services.emit import emit_lines
from services.identity.stage import is_control
from services.settings import Settings, bootstrap_servers

FlagKey = tuple[str, str, frozenset[str]]  # final customer, rule, evidence event ids


def raised_keys(flags: list[dict[str, Any]], event_ids: set[str]) -> dict[FlagKey, list[str]]:
    """Each flag's key (customer as ``read_flags`` gives it: after merges), with the flag ids
    that have it (more than one: fired twice)."""
    found: dict[FlagKey, list[str]] = defaultdict(list)
    for flag in flags:
        evidence = frozenset(e for e in flag["evidence"] if e in event_ids)
        found[(flag["customer_id"], flag["rule_id"], evidence)].append(flag["flag_id"])
    return dict(found)


def expected_keys(expected: list[Any]) -> set[FlagKey]:
    return {(f.customer_id, f.rule_id, frozenset(f.evidence)) for f in expected}


def read_raised(settings: Settings) -> list[dict[str, Any]]:
    return read_flags(settings.broker_url or "", settings.topics)


def emit(settings: Settings, events: list[dict[str, Any]]) -> None:
    lines = ((n, orjson.dumps(e)) for n, e in enumerate(events, 1))
    result = emit_lines(settings.broker_url or "", settings.topics.raw, lines)
    assert result.failed == [], result.failed[:3]


def wait_until(what: str, done: Any, timeout: float, interval: float = 1.0) -> None:
    deadline = time.monotonic() + timeout
    while not done():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(interval)


def read_resolved(settings: Settings) -> KafkaConsumer:
    """A consumer of every partition of the resolved topic, from its beginning, outside any
    group."""
    consumer = KafkaConsumer(
        bootstrap_servers=bootstrap_servers(settings.broker_url or ""), group_id=None
    )
    topic = settings.topics.resolved
    tps = [TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic) or ())]
    consumer.assign(tps)
    consumer.seek_to_beginning(*tps)
    return consumer


class ResolvedCounter:
    """Counts events (not control records) on the resolved topic as they arrive."""

    def __init__(self, settings: Settings) -> None:
        self.consumer = read_resolved(settings)
        self.events = 0

    def wait_for(self, target: int, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while self.events < target:
            if time.monotonic() > deadline:
                raise AssertionError(f"{self.events} of {target} events resolved in {timeout:.0f}s")
            for records in self.consumer.poll(timeout_ms=200).values():
                self.events += sum(1 for r in records if not is_control(r.value))

    def close(self) -> None:
        self.consumer.close()


def by_day(events: list[dict[str, Any]]) -> list[list[dict[str, Any]]]:
    """The events in emission order, cut where the day of the event time changes."""
    chunks: list[list[dict[str, Any]]] = []
    for event in events:
        day = event["occurred_at"][:10]
        if not chunks or chunks[-1][-1]["occurred_at"][:10] < day:
            chunks.append([])
        chunks[-1].append(event)
    return chunks


def run(
    settings: Settings,
    body: list[dict[str, Any]],
    closing: list[dict[str, Any]],
    expected: set[FlagKey],
    event_ids: set[str],
    *,
    timeout: float = 240.0,
    settle: bool = True,
    before_chunk: Callable[[int], None] | None = None,
) -> list[dict[str, Any]]:
    """Emit the body a day of event time at a time, each once the last is resolved (as live
    traffic arrives, rather than weeks read at once from partitions at different paces),
    then the closing events (they move event time past every open deadline), and wait
    until the flags stop changing (unless ``settle`` is false)."""
    counter = ResolvedCounter(settings)
    try:
        sent = 0
        for number, chunk in enumerate([*by_day(body), closing]):
            if before_chunk is not None:
                before_chunk(number)
            emit(settings, chunk)
            sent += len(chunk)
            counter.wait_for(sent, timeout)
    finally:
        counter.close()
    if not settle:  # the caller waits for what it needs
        return []
    last: list[int] = [-1, 0]

    def settled() -> bool:
        raised = read_raised(settings)
        if expected <= set(raised_keys(raised, event_ids)) and len(raised) == last[0]:
            last[1] += 1
        else:
            last[1] = 0
        last[0] = len(raised)
        return last[1] >= 3  # everything expected is there, and nothing new for 3 polls

    # on timeout the caller compares what was raised with what was expected, and says how
    with contextlib.suppress(AssertionError):
        wait_until("the expected flags", settled, timeout, interval=1.5)
    return read_raised(settings)
