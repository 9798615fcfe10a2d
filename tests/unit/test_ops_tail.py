"""What stream health reads from the newest records: latency, event time, dead letters."""

from __future__ import annotations

from datetime import UTC, datetime

import orjson

from schemas.records import DeadLetter, DeadLetterError
from services.identity.stage import resolved_control
from services.ops.tail import Tail

T0 = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)
MS = int(T0.timestamp() * 1000)


def resolved_event(event_id: str, received_at: str) -> bytes:
    event = {"event_id": event_id, "type": "web.page_view"}
    return orjson.dumps({"event": event, "received_at": received_at, "customer_id": "cus-1"})


def test_latency_is_the_output_timestamp_less_the_acceptance_time() -> None:
    tail = Tail(lateness=300)
    tail.resolved(MS + 1500, resolved_event("e-1", "2026-11-20T12:00:00Z"))
    tail.transition(MS + 4000, orjson.dumps({"event_id": "e-1", "to_stage": "browsing"}))
    tail.transition(MS + 9000, orjson.dumps({"event_id": "unseen", "to_stage": "browsing"}))
    assert tail.drain() == {"identity": [1.5], "journey": [4.0]}
    assert tail.drain() == {"identity": [], "journey": []}  # each observation is handed out once
    assert list(tail.latencies["identity"]) == [1.5]


def test_clock_skew_never_gives_a_negative_latency() -> None:
    tail = Tail(lateness=0)
    tail.resolved(MS - 200, resolved_event("e-1", "2026-11-20T12:00:00+00:00"))
    assert tail.drain()["identity"] == [0.0]


def test_watermarks_give_the_event_time_each_channel_reached() -> None:
    tail = Tail(lateness=300)
    mark = MS - 3_600_000  # the watermark is an hour back, less the lateness
    tail.resolved(MS, resolved_control("watermark", channels={"web": mark, "billing": mark - 5}))
    tail.resolved(MS + 5000, resolved_control("watermark", channels={"web": mark - 1000}))
    web = tail.channels["web"]
    assert web.reached_ms == mark + 300_000  # event time does not go back
    assert web.seen_ms == MS
    assert tail.channels["billing"].reached_ms == mark - 5 + 300_000
    tail.resolved(MS, resolved_control("merge", winner="a", loser="b", event_id="e"))
    assert tail.drain() == {"identity": [], "journey": []}


def test_dead_letters_are_kept_newest_last_within_a_bound() -> None:
    tail = Tail(lateness=0, keep_letters=2)
    for n in range(3):
        letter = DeadLetter.create(
            reason="contract_violation",
            errors=(DeadLetterError(field="type", rule="enum", message=f"unknown {n}"),),
            event_id=f"bad-{n}",
            payload=b"{}",
            dead_lettered_at=T0,
        )
        tail.dead_letter(MS, letter.model_dump_json().encode())
    tail.dead_letter(MS, b"not json")
    assert [(x.event_id, x.reason) for x in tail.letters] == [
        ("bad-2", "contract_violation"),
        (None, "unreadable_dead_letter"),
    ]
    assert tail.letters[0].summary == "type: unknown 2"
