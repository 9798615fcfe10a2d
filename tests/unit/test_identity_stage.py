"""The identity stage without Faust: resolved records, merge control records, and event time
per raw partition (docs/adr/0001-identity-resolution.md)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import orjson

from services.identity.stage import IdentityStage
from services.routing import Output
from tests.support.events import example

T0 = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)
MS = 1000


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def accepted(
    type_: str, event_id: str, identity: dict[str, str], at: timedelta, partition: int = 0
) -> bytes:
    event = example(type_, event_id=event_id, identity=identity)
    event["occurred_at"] = (T0 + at).isoformat().replace("+00:00", "Z")
    return orjson.dumps(
        {
            "event": event,
            "received_at": T0.isoformat(),
            "customer_id": None,
            "partition_key": "k",
            "origin": {"topic": "raw", "partition": partition, "offset": 0, "timestamp": None},
        }
    )


def records(outputs: list[Output], route: str) -> list[tuple[bytes | None, dict[str, Any]]]:
    return [(o.key, orjson.loads(o.value)) for o in outputs if o.route == route]


def ms(at: timedelta) -> int:
    return int((T0 + at).timestamp() * MS)


def test_events_leave_keyed_by_customer_with_the_customer_id_set() -> None:
    stage = IdentityStage({})
    (out,) = stage.resolve(accepted("web.login", "e1", {"customer_id": "cus-1"}, timedelta()), 0)
    assert (out.route, out.key) == ("resolved", b"cus-1")
    assert orjson.loads(out.value)["customer_id"] == "cus-1"
    assert orjson.loads(out.value)["event"]["event_id"] == "e1"


def test_a_merge_goes_to_the_loser_before_the_linking_event_goes_to_the_winner() -> None:
    stage = IdentityStage({})
    anonymous = stage.resolve(
        accepted("web.product_view", "e1", {"anonymous_id": "a1"}, timedelta()), 0
    )[0].key
    assert anonymous is not None
    outputs = stage.resolve(
        accepted("web.login", "e2", {"anonymous_id": "a1", "customer_id": "cus-2"}, timedelta()),
        1,
    )
    resolved = records(outputs, "resolved")
    assert [key for key, _ in resolved] == [anonymous, b"cus-2", b"cus-2"]
    assert resolved[1][1] == {"control": "expect", "winner": "cus-2", "loser": anonymous.decode()}
    assert resolved[0][1] == {
        "control": "merge",
        "winner": "cus-2",
        "loser": anonymous.decode(),
        "event_id": "e2",
    }
    ((key, audit),) = records(outputs, "identity")
    assert (key, audit["kind"], audit["reason"], audit["event_id"]) == (
        b"cus-2",
        "merge",
        "identified",
        "e2",
    )


def test_a_refused_link_is_recorded_and_the_event_still_resolves() -> None:
    from services.identity.graph import GuardRails

    stage = IdentityStage({}, rails=GuardRails(max_emails=1))
    stage.resolve(
        accepted("web.login", "e1", {"anonymous_id": "kiosk", "email": "a@x.com"}, timedelta()), 0
    )
    outputs = stage.resolve(
        accepted("web.login", "e2", {"anonymous_id": "kiosk", "email": "b@x.com"}, timedelta()), 1
    )
    ((_, refusal),) = records(outputs, "identity")
    assert (refusal["kind"], refusal["refused"], refusal["reason"]) == (
        "refusal",
        ["email:b@x.com"],
        "identifier limit",
    )
    assert len(records(outputs, "resolved")) == 1


def test_event_time_waits_for_every_raw_partition_of_a_channel() -> None:
    clock = Clock()
    stage = IdentityStage({}, lateness=timedelta(minutes=5), idle_timeout=10, clock=clock)
    web = {"customer_id": "cus-w"}
    stage.resolve(accepted("web.page_view", "e1", web, timedelta(hours=2), partition=0), 0)
    stage.resolve(accepted("web.page_view", "e2", web, timedelta(hours=1), partition=1), 1)
    stage.resolve(
        accepted("billing.invoice_issued", "e3", {"account_id": "acc"}, timedelta(), partition=1),
        2,
    )
    five = timedelta(minutes=5)
    assert stage.watermarks() == {"web": ms(timedelta(hours=1) - five), "billing": ms(-five)}
    outputs = list(stage.flush(partitions=3))
    assert [o.partition for o in outputs] == [0, 1, 2]
    assert {o.key for o in outputs} == {None}
    assert orjson.loads(outputs[0].value) == {
        "control": "watermark",
        "channels": {"web": ms(timedelta(hours=1) - five), "billing": ms(-five)},
    }
    assert list(stage.flush(partitions=3)) == []  # unchanged: nothing to send
    clock.now += 5  # ... until a partition's new owner may be waiting for it
    assert [o.partition for o in stage.flush(partitions=3)] == [0, 1, 2]

    stage.resolve(accepted("web.page_view", "e4", web, timedelta(hours=3), partition=0), 3)
    clock.now += 6  # partition 1 delivered nothing for 11 s: caught up, no longer holds back
    assert stage.watermarks()["web"] == ms(timedelta(hours=3) - five)
    assert stage.watermarks()["billing"] == ms(-five)  # only partition 1 carries billing
    clock.now += 60  # all idle: as far as any partition got
    assert stage.watermarks()["web"] == ms(timedelta(hours=3) - five)


def test_event_time_reached_survives_a_restart() -> None:
    table: dict[bytes, bytes] = {}
    stage = IdentityStage(table)
    stage.resolve(accepted("store.visit", "e1", {"loyalty_id": "L1"}, timedelta(hours=1)), 0)
    list(stage.flush(partitions=1))
    restarted = IdentityStage(table)
    restarted.recover()
    assert restarted.watermarks() == stage.watermarks()


def test_event_time_waits_for_raw_partitions_that_have_not_delivered_yet() -> None:
    """At start a partition whose first events are still on their way must hold event time
    back, or they would all be too late; once idle for the timeout, it no longer does."""
    clock = Clock()
    stage = IdentityStage({}, idle_timeout=10, clock=clock)
    stage.expect(["raw/0", "raw/1"])
    web = {"customer_id": "cus-w"}
    stage.resolve(accepted("web.page_view", "e1", web, timedelta(hours=2), partition=0), 0)
    assert stage.watermarks() == {}  # partition 1 has not been heard from
    stage.resolve(accepted("web.page_view", "e2", web, timedelta(hours=1), partition=1), 1)
    assert stage.watermarks() == {"web": ms(timedelta(hours=1) - timedelta(minutes=5))}
    quiet = IdentityStage({}, idle_timeout=10, clock=clock)
    quiet.expect(["raw/0", "raw/1"])
    quiet.resolve(accepted("web.page_view", "e1", web, timedelta(hours=2), partition=0), 0)
    clock.now += 11  # partition 1 idle since the start: it holds nothing back
    assert quiet.watermarks() == {"web": ms(timedelta(hours=2) - timedelta(minutes=5))}


def test_a_quiet_raw_partition_with_a_backlog_keeps_holding_event_time_back() -> None:
    """Quiet is not caught up: a partition whose worker died delivers nothing while its
    records wait. Event time must not pass them, or deadlines they would meet fire early."""
    clock = Clock()
    stage = IdentityStage({}, idle_timeout=10, clock=clock)
    stage.expect(["raw/0", "raw/1"])
    web = {"customer_id": "cus-w"}
    stage.resolve(accepted("web.page_view", "e1", web, timedelta(hours=1), partition=1), 0)
    stage.resolve(accepted("web.page_view", "e2", web, timedelta(hours=2), partition=0), 1)
    stage.backlog = frozenset({"raw/1"})
    clock.now += 60
    stage.resolve(accepted("web.page_view", "e3", web, timedelta(hours=3), partition=0), 2)
    five = timedelta(minutes=5)
    assert stage.watermarks() == {"web": ms(timedelta(hours=1) - five)}
    stage.backlog = frozenset()  # its records were validated and committed: caught up
    assert stage.watermarks() == {"web": ms(timedelta(hours=3) - five)}


def test_a_raw_partition_not_heard_from_with_a_backlog_holds_event_time_back() -> None:
    clock = Clock()
    stage = IdentityStage({}, idle_timeout=10, clock=clock)
    stage.expect(["raw/0", "raw/1"])
    web = {"customer_id": "cus-w"}
    stage.resolve(accepted("web.page_view", "e1", web, timedelta(hours=2), partition=0), 0)
    stage.backlog = frozenset({"raw/1"})
    clock.now += 60
    assert stage.watermarks() == {}
    stage.backlog = frozenset()
    assert stage.watermarks() == {"web": ms(timedelta(hours=2) - timedelta(minutes=5))}
