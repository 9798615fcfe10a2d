"""Valid and invalid events through the real broker and a real worker process:
every sent record ends exactly once, validated (on its way to identity) or dead-lettered."""

from __future__ import annotations

import json
import random
import time
from collections import Counter

import pytest

from schemas import EVENT_TYPES
from schemas.records import AcceptedEvent, DeadLetter
from services.embedded.process import ManagedProcess
from services.emit import emit_lines
from services.kafka import read_to_end
from services.settings import Settings
from tests.support.events import dumps, example

pytestmark = pytest.mark.broker


def _valid(n: int, rng: random.Random) -> list[bytes]:
    events = []
    for i in range(n):
        event_type = EVENT_TYPES[i % len(EVENT_TYPES)]
        event = example(event_type, event_id=f"valid-{i:05d}")
        event["identity"] = {"customer_id": f"cus-{rng.randrange(50)}"}
        events.append(dumps(event))
    return events


def _invalid() -> dict[bytes, tuple[str, str]]:
    """Payload -> (reason, field the dead letter must name)."""
    cases: dict[bytes, tuple[str, str]] = {
        b"not json at all": ("invalid_json", "(payload)"),
        b"\xff\xfe\x00\x01": ("invalid_json", "(payload)"),
        b'{"event_id": "cut-off"': ("invalid_json", "(payload)"),
        b"[1, 2, 3]": ("contract_violation", "(payload)"),
    }
    naive = example("web.page_view", event_id="bad-naive", occurred_at="2026-11-12T10:00:00")
    cases[dumps(naive)] = ("contract_violation", "occurred_at")
    cases[dumps(example("web.page_view", event_id="bad-type", type="web.nope"))] = (
        "contract_violation",
        "type",
    )
    cases[dumps(example("store.visit", event_id="bad-identity", identity={}))] = (
        "contract_violation",
        "identity",
    )
    negative = example("store.pos_sale", event_id="bad-amount")
    negative["attributes"]["amount"] = -1
    cases[dumps(negative)] = ("contract_violation", "attributes.amount")
    currency = example("billing.payment_failed", event_id="bad-currency")
    currency["attributes"]["currency"] = "XYZ"
    cases[dumps(currency)] = ("contract_violation", "attributes.currency")
    missing = example("support.ticket_opened", event_id="bad-missing")
    del missing["attributes"]["topic"]
    cases[dumps(missing)] = ("contract_violation", "attributes.topic")
    return cases


def _collect(settings: Settings, expected: int, timeout: float = 60.0) -> tuple[list, list]:
    deadline = time.monotonic() + timeout
    while True:
        resolved = list(read_to_end(settings.broker_url or "", settings.topics.valid))
        dead = list(read_to_end(settings.broker_url or "", settings.topics.dlq))
        if len(resolved) + len(dead) >= expected or time.monotonic() > deadline:
            return resolved, dead
        time.sleep(0.5)


def test_valid_plus_dead_lettered_equals_sent_event_by_event(
    settings: Settings, worker: ManagedProcess
) -> None:
    rng = random.Random(7)
    valid = _valid(480, rng)
    invalid = _invalid()
    payloads = valid + list(invalid)
    rng.shuffle(payloads)
    result = emit_lines(settings.broker_url or "", settings.topics.raw, enumerate(payloads, 1))
    assert result.failed == []
    assert len(result.sent) == len(payloads)
    sent = {(s.partition, s.offset): payloads[s.line - 1] for s in result.sent}

    resolved, dead = _collect(settings, len(payloads))
    outcomes: Counter[tuple[int, int]] = Counter()
    for record in resolved:
        accepted = AcceptedEvent.model_validate_json(record.value)
        origin = (accepted.origin.partition, accepted.origin.offset)
        outcomes[origin] += 1
        assert json.loads(sent[origin])["event_id"] == accepted.event.event_id
        assert record.key == accepted.partition_key.encode()
        assert accepted.partition_key.startswith("customer_id:cus-")
    for record in dead:
        letter = DeadLetter.model_validate_json(record.value)
        origin = (letter.origin.partition, letter.origin.offset)
        outcomes[origin] += 1
        assert letter.payload == sent[origin]
        reason, field = invalid[letter.payload]
        assert letter.reason == reason
        assert field in {e.field for e in letter.errors}
        assert letter.origin.topic == settings.topics.raw

    assert set(outcomes) == set(sent), "every sent record has an outcome"
    assert set(outcomes.values()) == {1}, "no record has two outcomes"
    assert len(resolved) == len(valid)
    assert len(dead) == len(invalid)
    assert len(resolved) + len(dead) == len(payloads)


def test_same_customer_keeps_one_partition(settings: Settings, worker: ManagedProcess) -> None:
    events = [
        dumps(example(t, event_id=f"one-{i}", identity={"email": "Ana@Example.com"}))
        for i, t in enumerate(("web.login", "web.checkout_started", "support.ticket_opened"))
    ]
    emit_lines(settings.broker_url or "", settings.topics.raw, enumerate(events, 1))
    resolved, _ = _collect(settings, len(events))
    assert {r.key for r in resolved} == {b"email:ana@example.com"}
    assert len({r.partition for r in resolved}) == 1
    in_order = [AcceptedEvent.model_validate_json(r.value).event.event_id for r in resolved]
    assert in_order == ["one-0", "one-1", "one-2"]
