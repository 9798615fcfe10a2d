"""Run a generated scenario (``services.simulate``) through the real broker and workers, and
read back the flags it raised, per final customer."""

from __future__ import annotations

import contextlib
import time
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

import orjson
from kafka import KafkaConsumer, TopicPartition

from services.emit import emit_lines
from services.kafka import read_to_end
from services.settings import Settings, bootstrap_servers

FlagKey = tuple[str, str, frozenset[str]]  # final customer, rule, evidence event ids


@dataclass
class Raised:
    """The flags on the flags topic, by flag id, with customers followed through merges."""

    flags: dict[str, dict[str, Any]] = field(default_factory=dict)
    winner: dict[str, str] = field(default_factory=dict)

    def final(self, customer: str) -> str:
        seen = set()
        while customer in self.winner and customer not in seen:
            seen.add(customer)
            customer = self.winner[customer]
        return customer

    def keys(self, event_ids: set[str]) -> dict[FlagKey, list[str]]:
        """Each flag's key, with the flag ids that have it (more than one: fired twice)."""
        found: dict[FlagKey, list[str]] = defaultdict(list)
        for flag_id, flag in self.flags.items():
            evidence = frozenset(e for e in flag["evidence"] if e in event_ids)
            found[(self.final(flag["customer_id"]), flag["rule_id"], evidence)].append(flag_id)
        return dict(found)


def expected_keys(expected: list[Any]) -> set[FlagKey]:
    return {(f.customer_id, f.rule_id, frozenset(f.evidence)) for f in expected}


def read_raised(settings: Settings) -> Raised:
    url = settings.broker_url or ""
    raised = Raised()
    for record in read_to_end(url, settings.topics.flags):
        flag = orjson.loads(record.value)
        raised.flags.setdefault(flag["flag_id"], flag)
    for record in read_to_end(url, settings.topics.identity):
        decision = orjson.loads(record.value)
        if decision["kind"] == "merge":
            raised.winner[decision["loser"]] = decision["winner"]
    return raised


def resolved_events(settings: Settings) -> int:
    records = read_to_end(settings.broker_url or "", settings.topics.resolved)
    return sum(1 for r in records if not r.value.startswith(b'{"control"'))


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


class ResolvedCounter:
    """Counts events (not control records) on the resolved topic as they arrive."""

    def __init__(self, settings: Settings) -> None:
        self.consumer = KafkaConsumer(
            bootstrap_servers=bootstrap_servers(settings.broker_url or ""), group_id=None
        )
        topic = settings.topics.resolved
        tps = [
            TopicPartition(topic, p)
            for p in sorted(self.consumer.partitions_for_topic(topic) or ())
        ]
        self.consumer.assign(tps)
        self.consumer.seek_to_beginning(*tps)
        self.events = 0

    def wait_for(self, target: int, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while self.events < target:
            if time.monotonic() > deadline:
                raise AssertionError(f"{self.events} of {target} events resolved in {timeout:.0f}s")
            for records in self.consumer.poll(timeout_ms=200).values():
                self.events += sum(1 for r in records if not r.value.startswith(b'{"control"'))

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
) -> Raised:
    """Emit the body a day of event time at a time, each once the last is resolved (as live
    traffic arrives, rather than weeks read at once from partitions at different paces),
    then the closing events (they move event time past every open deadline), and wait
    until the flags stop changing."""
    counter = ResolvedCounter(settings)
    try:
        sent = 0
        for chunk in [*by_day(body), closing]:
            emit(settings, chunk)
            sent += len(chunk)
            counter.wait_for(sent, timeout)
    finally:
        counter.close()
    last: list[int] = [-1, 0]

    def settled() -> bool:
        raised = read_raised(settings)
        if expected <= set(raised.keys(event_ids)) and len(raised.flags) == last[0]:
            last[1] += 1
        else:
            last[1] = 0
        last[0] = len(raised.flags)
        return last[1] >= 3  # everything expected is there, and nothing new for 3 polls

    # on timeout the caller compares what was raised with what was expected, and says how
    with contextlib.suppress(AssertionError):
        wait_until("the expected flags", settled, timeout, interval=1.5)
    return read_raised(settings)
