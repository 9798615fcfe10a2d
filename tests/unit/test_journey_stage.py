"""The journey stage without Faust: a byte store, watermarks from the stream, a deadline index."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson

from services.journeys.codec import load_state
from services.journeys.engine import Engine
from services.journeys.loader import default_maps_dir, load_maps
from services.journeys.stage import JourneyStage, Output
from services.journeys.state import Touchpoint

T0 = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)
M = timedelta(minutes=1)
ENGINE = Engine(load_maps(default_maps_dir()))


class CountingStore(dict[str, bytes]):
    """A dict that counts state loads, to show ticks do not scan every customer."""

    def __init__(self) -> None:
        super().__init__()
        self.loads = 0

    def __getitem__(self, key: str) -> bytes:
        self.loads += 1
        return super().__getitem__(key)

    def get(self, key: str, default: Any = None) -> Any:  # type: ignore[override]
        self.loads += 1
        return super().get(key, default)


_n: Iterator[int] = iter(range(10**9))


def ev(type_: str, at: timedelta, **attributes: Any) -> Touchpoint:
    return Touchpoint(f"e{next(_n)}", type_, T0 + at, attributes)


def heartbeat(at: timedelta, *channels: str) -> list[tuple[str, Touchpoint]]:
    """Traffic of another customer that moves event time on the given channels."""
    kinds = {
        "web": ("web.page_view", {"url": "u", "session_id": "h"}),
        "store": ("store.visit", {"store_id": "s"}),
        "billing": (
            "billing.payment_succeeded",
            {"invoice_id": "h", "amount": 1, "currency": "EUR"},
        ),
        "support": ("support.ticket_resolved", {"ticket_id": "h"}),
    }
    return [("heartbeat", ev(kinds[c][0], at, **kinds[c][1])) for c in channels]


ALL = ("web", "store", "billing", "support")


def flags(outputs: list[Output]) -> list[dict[str, Any]]:
    return [orjson.loads(o.value) for o in outputs if o.route == "flags"]


def test_abandonments_are_found_through_the_index_not_by_scanning() -> None:
    store = CountingStore()
    stage = JourneyStage(ENGINE, store)
    browsing = [
        (f"b{i}", ev("web.page_view", i * M / 100, url="u", session_id="s")) for i in range(500)
    ]
    checkouts = [
        (f"c{i}", ev("web.checkout_started", M, session_id="s", cart_value=1, currency="EUR"))
        for i in range(3)
    ]
    stage.apply(browsing + checkouts)
    assert stage.indexed == 3  # browsing (discover) has no deadline; only the checkouts do
    stage.apply(heartbeat(20 * M, *ALL))
    assert flags(stage.tick()) == []
    store.loads = 0
    stage.apply(heartbeat(40 * M, *ALL))
    raised = flags(stage.tick())
    assert sorted(f["customer_id"] for f in raised) == ["c0", "c1", "c2"]
    assert {f["rule_id"] for f in raised} == {"checkout_abandoned"}
    assert store.loads < 50  # a handful of due customers and the heartbeat, not all 503
    assert flags(stage.tick()) == []  # once per episode


def test_no_overdue_while_billing_lags_then_flagged_when_it_catches_up() -> None:
    stage = JourneyStage(ENGINE, {})
    issued = {
        "invoice_id": "i1",
        "amount": 9,
        "currency": "EUR",
        "due_date": "2026-11-02T12:00:00Z",
    }
    stage.apply([("cus-1", ev("billing.invoice_issued", timedelta(), **issued))])
    stage.apply(heartbeat(9 * 60 * M, "web", "store", "support") + heartbeat(2 * 60 * M, "billing"))
    assert flags(stage.tick()) == []  # 18:00 on every feed but billing, which is at 11:00
    stage.apply(heartbeat(4 * 60 * M, "billing"))
    (flag,) = flags(stage.tick())
    assert (flag["rule_id"], flag["customer_id"], flag["journey"]) == (
        "invoice_overdue",
        "cus-1",
        "billing",
    )
    assert flag["occurred_at"] == "2026-11-02T12:00:00+00:00"


def test_paid_invoice_while_billing_lagged_raises_nothing() -> None:
    stage = JourneyStage(ENGINE, {})
    issued = {
        "invoice_id": "i1",
        "amount": 9,
        "currency": "EUR",
        "due_date": "2026-11-02T12:00:00Z",
    }
    stage.apply([("cus-1", ev("billing.invoice_issued", timedelta(), **issued))])
    stage.apply(heartbeat(9 * 60 * M, "web", "store", "support") + heartbeat(M, "billing"))
    assert flags(stage.tick()) == []
    stage.apply(
        [
            (
                "cus-1",
                ev(
                    "billing.payment_succeeded",
                    2 * 60 * M,
                    invoice_id="i1",
                    amount=9,
                    currency="EUR",
                ),
            )
        ]
    )
    stage.apply(heartbeat(10 * 60 * M, *ALL))
    assert flags(stage.tick()) == []


def test_a_restarted_stage_rebuilds_its_index_from_the_store() -> None:
    store: dict[str, bytes] = {}
    first = JourneyStage(ENGINE, store)
    first.apply(
        [("cus-9", ev("support.ticket_opened", timedelta(), ticket_id="t", topic="x", via="chat"))]
    )
    second = JourneyStage(ENGINE, store)
    second.rebuild_index(store)
    second.apply(heartbeat(49 * 60 * M, *ALL))
    (flag,) = flags(second.tick())
    assert (flag["rule_id"], flag["customer_id"]) == ("support_sla_breach", "cus-9")


def test_outputs_are_keyed_by_customer_with_transitions_and_flags() -> None:
    stage = JourneyStage(ENGINE, {})
    outputs = stage.apply(
        [
            (
                "cus-2",
                ev(
                    "billing.payment_failed",
                    timedelta(),
                    invoice_id="i",
                    amount=3,
                    currency="EUR",
                    reason="x",
                ),
            )
        ]
    )
    assert {(o.route, o.key) for o in outputs} == {(r, b"cus-2") for r in ("flags",)}
    (flag,) = flags(outputs)
    assert set(flag) == {
        "flag_id",
        "rule_id",
        "severity",
        "customer_id",
        "journey",
        "stage",
        "channel",
        "occurred_at",
        "evidence",
    }
    moved = stage.apply(
        [
            (
                "cus-2",
                ev(
                    "billing.invoice_issued",
                    M,
                    invoice_id="j",
                    amount=3,
                    currency="EUR",
                    due_date="2026-12-01",
                ),
            )
        ]
    )
    (transition,) = [orjson.loads(o.value) for o in moved if o.route == "transitions"]
    assert (transition["journey"], transition["from_stage"], transition["to_stage"]) == (
        "billing",
        None,
        "invoiced",
    )


def test_a_merged_away_customer_hands_its_state_to_the_winner() -> None:
    from services.journeys.stage import Merged, Transfer

    loser_side, winner_side = JourneyStage(ENGINE, {}), JourneyStage(ENGINE, {})
    ticket = {"topic": "t", "via": "phone"}
    loser_side.apply(
        [("ts_x", ev("support.ticket_opened", i * M, ticket_id=str(i), **ticket)) for i in (1, 2)]
    )
    (out,) = loser_side.apply([Merged("cus-9", "ts_x", "e-link")])
    assert (out.route, out.key) == ("resolved", b"cus-9")
    assert "ts_x" not in loser_side.store
    assert loser_side.indexed == 0
    record = orjson.loads(out.value)
    assert (record["control"], record["winner"], record["loser"]) == ("transfer", "cus-9", "ts_x")

    winner_side.apply([("cus-9", ev("support.ticket_opened", 3 * M, ticket_id="3", **ticket))])
    transfer = Transfer("cus-9", "ts_x", orjson.dumps(record["state"]))
    (flag,) = flags(winner_side.apply([transfer]))
    assert (flag["rule_id"], flag["customer_id"]) == ("repeat_contact", "cus-9")
    assert winner_side.indexed == 1  # the SLA deadlines of all three tickets, under cus-9


def test_a_transfer_to_an_id_that_lost_a_merge_since_is_passed_on() -> None:
    from services.journeys.stage import Merged, Transfer

    stage = JourneyStage(ENGINE, {})
    stage.apply([("ts_b", ev("web.page_view", M, url="u", session_id="s"))])
    stage.apply([Merged("cus-c", "ts_b", "e-2")])  # ts_b went to cus-c before ts_a's state came
    (out,) = stage.apply([Transfer("ts_b", "ts_a", b'{"v":1}')])
    assert (out.route, out.key) == ("resolved", b"cus-c")
    assert orjson.loads(out.value)["winner"] == "cus-c"


def test_watermark_records_drive_deadlines_and_wait_for_every_partition() -> None:
    from services.journeys.stage import Watermark

    stage = JourneyStage(ENGINE, {}, event_time="records")
    stage.assign([0, 1])
    start = ev("web.checkout_started", 0 * M, session_id="s", cart_value=1, currency="EUR")
    stage.apply([("cus-1", start), *heartbeat(3 * 60 * M, *ALL)])
    assert stage.tick() == []  # events alone do not move event time here
    late = dict.fromkeys(ALL, T0 + 40 * M)
    stage.apply([Watermark(0, late)])
    assert stage.tick() == []  # partition 1 has not told its event time yet
    stage.apply([Watermark(1, {**late, "store": T0 + 20 * M})])
    assert stage.tick() == []  # a store sale could still complete it
    stage.apply([Watermark(1, late)])
    assert [f["rule_id"] for f in flags(stage.tick())] == ["checkout_abandoned"]


def test_the_winner_holds_its_deadlines_until_the_losers_state_arrives() -> None:
    from services.journeys.stage import Expected, Merged, Transfer, Watermark

    winner_side, loser_side = (
        JourneyStage(ENGINE, {}, event_time="records"),
        JourneyStage(ENGINE, {}),
    )
    sale = {"store_id": "s", "order_id": "o", "amount": 1, "currency": "EUR"}
    loser_side.apply([("ts_l", ev("store.pos_sale", 10 * M, **sale))])  # completes it, elsewhere
    start = ev("web.checkout_started", 0 * M, session_id="s", cart_value=1, currency="EUR")
    winner_side.apply([Expected("cus-w", "ts_l"), ("cus-w", start)])
    winner_side.apply([Watermark(0, dict.fromkeys(ALL, T0 + 2 * 60 * M))])
    assert winner_side.tick() == []  # past the deadline, but the loser's state is due
    (out,) = loser_side.apply([Merged("cus-w", "ts_l", "e-link")])
    record = orjson.loads(out.value)
    transfer = Transfer("cus-w", "ts_l", orjson.dumps(record["state"]), record["awaiting"])
    assert flags(winner_side.apply([transfer])) == []
    assert flags(winner_side.tick()) == []  # the sale in the loser's state closed it
    assert not winner_side.waiting("cus-w")


def test_a_transfer_that_overtakes_its_expect_record_is_not_waited_for() -> None:
    from services.journeys.stage import Expected, Transfer

    stage = JourneyStage(ENGINE, {})
    stage.apply([Transfer("cus-w", "ts_l", b'{"v":1}')])
    stage.apply([Expected("cus-w", "ts_l")])
    assert not stage.waiting("cus-w")
    assert not [k for k in stage.store if k.startswith("\x00awaiting")]


def test_a_loser_without_state_still_sends_an_empty_transfer() -> None:
    from services.journeys.stage import Merged

    (out,) = JourneyStage(ENGINE, {}).apply([Merged("cus-w", "ts_nobody", "e-link")])
    assert orjson.loads(out.value)["state"] == {"v": 1}


def test_events_held_for_a_merged_state_are_applied_in_event_time_order() -> None:
    """After a login, the anonymous browsing before it can arrive at the winner after later
    events (read from another raw partition). Held, they are applied in event-time order:
    the stay in ``consider`` began at the last product view, not the first."""
    from services.journeys.stage import Expected, Merged, Transfer

    winner_side, loser_side = JourneyStage(ENGINE, {}), JourneyStage(ENGINE, {})
    first = ev("web.product_view", 2 * M, sku="k", session_id="s")
    loser_side.apply(
        [("ts_l", ev("web.page_view", 0 * M, url="u", session_id="s")), ("ts_l", first)]
    )
    search = ev("web.search", 4 * M, query="q", results_count=1)  # back to discover
    again = ev("web.product_view", 6 * M, sku="k", session_id="s")  # consider again
    after = ev("web.product_view", 9 * M, sku="k", session_id="s")
    winner_side.apply(
        [Expected("cus-w", "ts_l"), ("cus-w", after), ("cus-w", search), ("cus-w", again)]
    )
    (out,) = loser_side.apply([Merged("cus-w", "ts_l", "e-link")])
    record = orjson.loads(out.value)
    winner_side.apply(
        [Transfer("cus-w", "ts_l", orjson.dumps(record["state"]), record["awaiting"])]
    )
    visit = load_state(winner_side.store["cus-w"]).stages["purchase"]
    assert (visit.stage, visit.event_id) == ("consider", again.event_id)


def test_an_event_far_behind_the_watermark_is_counted_not_applied() -> None:
    """Far past the allowed lateness (a redelivery of last month, a feed that broke the
    contract) an event cannot be judged against deadlines already decided: the journey
    stage counts it and leaves journeys alone (the CRM sink still records it). An event
    less late is applied."""
    from services.journeys.stage import Watermark

    stage = JourneyStage(ENGINE, {}, event_time="records", too_late_after=30 * M)
    tickets = [
        ev("support.ticket_opened", n * M, ticket_id=f"t{n}", topic="x", via="chat") for n in (0, 1)
    ]
    stage.apply([Watermark(0, dict.fromkeys(ALL, T0 - M)), *(("cus-1", t) for t in tickets)])
    stage.apply([Watermark(0, dict.fromkeys(ALL, T0 + 60 * M))])
    third = ev("support.ticket_opened", 2 * M, ticket_id="t2", topic="x", via="chat")
    assert flags(stage.apply([("cus-1", third), ("cus-1", tickets[0])])) == []  # both too late
    assert stage.too_late == 2
    late = ev("support.ticket_opened", 45 * M, ticket_id="t3", topic="x", via="chat")
    assert [f["rule_id"] for f in flags(stage.apply([("cus-1", late)]))] == ["repeat_contact"]
    assert stage.too_late == 2


def test_after_a_rebalance_records_read_again_are_not_too_late() -> None:
    """A partition is read again from its last commit after a rebalance; the marks seen
    before must not make those records too late (their state may not have been saved)."""
    from services.journeys.stage import Watermark

    stage = JourneyStage(ENGINE, {}, event_time="records")
    stage.assign([0])
    stage.apply([Watermark(0, dict.fromkeys(ALL, T0 + 60 * M))])
    stage.assign([0])  # rebalanced: the same partition, read again from an older offset
    opened = ev("support.ticket_opened", 0 * M, ticket_id="t", topic="x", via="chat")
    stage.apply([("cus-1", opened)])
    assert stage.too_late == 0
    assert "cus-1" in stage.store
