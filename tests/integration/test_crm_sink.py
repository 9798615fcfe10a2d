"""The CRM sink's writer on PostgreSQL and SQLite, record by record: what lands where,
merges in either order, pairs whose second half comes first, and redelivery."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import orjson
import pytest
import sqlalchemy as sa

from services.crm.bulk import JSON_FROM
from services.crm.records import Batch, Undecodable, decode
from services.crm.sink import CrmSink, _Transaction
from services.store.db import engine_for, upgrade

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
NOW = datetime(2026, 3, 20, tzinfo=UTC)


@pytest.fixture
def sink(store_url: str) -> CrmSink:
    upgrade(store_url)
    return CrmSink(engine_for(store_url), clock=lambda: NOW)


def event(
    event_id: str, type_: str, customer: str, at: timedelta, **attributes: Any
) -> tuple[str, bytes]:
    identity = {"customer_id": customer} if customer.startswith("cus-") else {}
    identity |= attributes.pop("identity", {})
    record = {
        "event": {
            "event_id": event_id,
            "type": type_,
            "occurred_at": (T0 + at).isoformat(),
            "source": "test",
            "identity": identity or {"anonymous_id": customer},
            "attributes": attributes,
        },
        "received_at": (T0 + at).isoformat(),
        "customer_id": customer,
        "partition_key": customer,
    }
    return "event", orjson.dumps(record)


def merge(loser: str, winner: str, at: timedelta = timedelta()) -> tuple[str, bytes]:
    record = {
        "kind": "merge",
        "winner": winner,
        "loser": loser,
        "reason": "linked",
        "event_id": f"m-{loser}",
        "occurred_at": (T0 + at).isoformat(),
        "moved": [],
    }
    return "identity", orjson.dumps(record)


def flag(flag_id: str, customer: str, rule: str = "payment_failed") -> tuple[str, bytes]:
    record = {
        "flag_id": flag_id,
        "rule_id": rule,
        "severity": "high",
        "customer_id": customer,
        "journey": "billing",
        "stage": "invoiced",
        "channel": "billing",
        "occurred_at": T0.isoformat(),
        "evidence": ["x"],
    }
    return "flag", orjson.dumps(record)


def transition(event_id: str, customer: str, stage: str, at: timedelta) -> tuple[str, bytes]:
    record = {
        "customer_id": customer,
        "journey": "purchase",
        "from_stage": None,
        "to_stage": stage,
        "occurred_at": (T0 + at).isoformat(),
        "event_id": event_id,
    }
    return "transition", orjson.dumps(record)


def write(sink: CrmSink, *records: tuple[str, bytes]) -> int:
    batch = Batch()
    for kind, value in records:
        decode(kind, value, batch)
    return sink.write(batch).rows


def one(sink: CrmSink, sql: str, **params: Any) -> Any:
    with sink.engine.connect() as conn:
        return tuple(conn.execute(sa.text(sql), params).one())


H, D = timedelta(hours=1), timedelta(days=1)
SALE = {"order_id": "o1", "amount": 40.5, "currency": "EUR", "store_id": "s1"}


def test_spend_orders_returns_and_surveys_add_up(sink: CrmSink) -> None:
    write(
        sink,
        event("e1", "store.pos_sale", "cus-1", 0 * H, **SALE),
        event("e2", "web.checkout_completed", "cus-1", H, order_id="o2", amount=10, currency="EUR"),
        event("e3", "store.return", "cus-1", 2 * H, **SALE, reason="size"),
        event("e4", "support.csat_submitted", "cus-1", 4 * H, score=2),
        event("e5", "support.csat_submitted", "cus-1", 3 * H, score=5),  # older: not the last
        event("e6", "web.checkout_completed", "cus-1", H, order_id="o3", amount=7, currency="USD"),
    )
    got = one(
        sink,
        "SELECT lifetime_spend, orders, returns, last_csat, interactions, other_currency_amounts,"
        " currency FROM relationship_metrics WHERE customer_id = 'cus-1'",
    )
    assert (Decimal(got[0]), *got[1:]) == (Decimal("10.00"), 2, 1, 2, 6, 1, "EUR")


def test_pairs_count_open_whichever_half_comes_first(sink: CrmSink) -> None:
    paid = {"invoice_id": "i1", "amount": 20, "currency": "EUR"}
    write(sink, event("p1", "billing.payment_succeeded", "cus-1", D, **paid))
    write(
        sink,
        event("i1", "billing.invoice_issued", "cus-1", 0 * D, **paid, due_date="2026-03-10"),
        event(
            "i2",
            "billing.invoice_issued",
            "cus-1",
            D,
            **paid | {"invoice_id": "i2"},
            due_date="2026-03-10",
        ),
        event("t1", "support.ticket_resolved", "cus-1", 2 * D, ticket_id="t1"),
    )
    write(
        sink,
        event("t0", "support.ticket_opened", "cus-1", D, ticket_id="t1", topic="x", via="chat"),
    )
    got = one(
        sink,
        "SELECT open_invoices, amount_open, open_tickets FROM relationship_metrics "
        "WHERE customer_id = 'cus-1'",
    )
    assert (got[0], Decimal(got[1]), got[2]) == (1, Decimal("20.00"), 0)
    write(sink, event("t2", "support.ticket_reopened", "cus-1", 3 * D, ticket_id="t1"))
    assert one(sink, "SELECT open_tickets FROM relationship_metrics")[0] == 1


def test_redelivery_writes_nothing(sink: CrmSink) -> None:
    records = [
        event("e1", "store.pos_sale", "cus-1", 0 * H, **SALE),
        transition("e1", "cus-1", "purchased", 0 * H),
        flag("f1", "cus-1"),
        merge("anon-1", "cus-1"),
    ]
    assert write(sink, *records) == 4
    before = one(sink, "SELECT lifetime_spend, orders FROM relationship_metrics")
    assert write(sink, *records) == 0
    assert write(sink, *records, *records) == 0  # twice inside one batch, too
    assert one(sink, "SELECT lifetime_spend, orders FROM relationship_metrics") == before
    assert one(sink, "SELECT sum(flags) FROM friction_daily") == (1,)
    assert one(sink, "SELECT sum(entered) FROM stage_daily") == (1,)


@pytest.mark.parametrize("merge_first", [True, False])
def test_a_merge_moves_every_row_to_the_survivor_in_either_order(
    sink: CrmSink, merge_first: bool
) -> None:
    loser_rows = [
        event(
            "a1",
            "web.checkout_completed",
            "anon-1",
            0 * H,
            order_id="o1",
            amount=5,
            currency="EUR",
            identity={"anonymous_id": "anon-1"},
        ),
        transition("a1", "anon-1", "purchased", 0 * H),
        flag("f1", "anon-1"),
    ]
    winner_rows = [
        event("w1", "store.pos_sale", "cus-1", H, **SALE),
        transition("w0", "cus-1", "consider", -H),
    ]
    if merge_first:
        write(sink, merge("anon-1", "cus-1"), *winner_rows)
        write(sink, *loser_rows)  # late rows of the merged-away id
    else:
        write(sink, *loser_rows, *winner_rows)
        write(sink, merge("anon-1", "cus-1"))
    with sink.engine.connect() as conn:
        owners: dict[str, set[str]] = {
            table: set(
                conn.execute(
                    sa.select(sa.column("customer_id")).distinct().select_from(sa.table(table))
                ).scalars()
            )
            for table in (
                "identities",
                "interactions",
                "orders",
                "friction_events",
                "journey_states",
                "relationship_metrics",
                "customers",
            )
        }
    assert all(found == {"cus-1"} for found in owners.values()), owners
    got = one(sink, "SELECT lifetime_spend, orders, interactions FROM relationship_metrics")
    assert (Decimal(got[0]), got[1], got[2]) == (Decimal("45.50"), 2, 2)
    assert one(sink, "SELECT stage FROM journey_states") == ("purchased",)  # the later stage
    assert one(sink, "SELECT raised_as FROM friction_events") == ("anon-1",)


def test_a_chain_of_merges_ends_at_the_last_survivor(sink: CrmSink) -> None:
    write(sink, event("a1", "web.page_view", "anon-1", 0 * H, url="u", session_id="s"))
    write(sink, merge("anon-1", "anon-2"), merge("anon-2", "cus-1"))
    write(sink, event("a2", "web.page_view", "anon-1", H, url="u", session_id="s"))
    assert one(sink, "SELECT count(DISTINCT customer_id), min(customer_id) FROM interactions") == (
        1,
        "cus-1",
    )
    assert one(sink, "SELECT count(*) FROM merges WHERE winner = 'cus-1'") == (2,)


def test_an_unreadable_record_says_why() -> None:
    with pytest.raises(Undecodable, match="not JSON"):
        decode("flag", b"{oops", Batch())
    with pytest.raises(Undecodable, match="flag_id"):
        decode("flag", b"{}", Batch())
    batch = Batch()
    decode("event", b'{"control": "watermark", "channels": {}}', batch)
    assert (len(batch), batch.skipped) == (0, 1)


def test_value_at_risk_follows_the_metrics_whatever_came_first(sink: CrmSink) -> None:
    write(sink, flag("f1", "cus-1", rule="checkout_abandoned"))  # before any purchase
    assert one(sink, "SELECT value_at_risk FROM friction_events")[0] == 0
    write(sink, event("e1", "store.pos_sale", "cus-1", 0 * H, **SALE))
    assert Decimal(one(sink, "SELECT value_at_risk FROM friction_events")[0]) == Decimal("40.50")
    assert Decimal(one(sink, "SELECT value_at_risk FROM friction_daily")[0]) == Decimal("40.50")


def test_a_large_batch_round_trips_awkward_text(sink: CrmSink) -> None:
    """A large batch takes PostgreSQL's JSON path: tabs, newlines, backslashes, quotes and
    non-ASCII text must come back as they went in."""
    awkward = 'tab\there, new\nline, back\\slash, "quote", \\N, ünïcødé 🛒'
    records = [
        event(
            f"e{n}",
            "web.search",
            f"cus-{n % 50}",
            n * timedelta(seconds=1),
            query=awkward,
            results_count=n,
        )
        for n in range(500)
    ]
    assert write(sink, *records) >= 500
    with sink.engine.connect() as conn:
        stored = (
            conn.execute(
                sa.select(sa.column("attributes", sa.JSON)).select_from(sa.table("interactions"))
            )
            .scalars()
            .all()
        )
    assert len(stored) == 500
    assert {a["query"] for a in stored} == {awkward}
    assert one(sink, "SELECT sum(interactions), count(*) FROM relationship_metrics") == (500, 50)
    assert write(sink, *records) == 0


@pytest.mark.parametrize("rows", [JSON_FROM - 1, 300], ids=["executemany", "json"])
def test_nul_characters_in_attributes_are_stored(sink: CrmSink, rows: int) -> None:
    """The contract lets attribute strings carry any character; PostgreSQL text cannot hold
    NUL, so the sink stores it as U+FFFD instead of failing the batch (and stalling)."""
    topic = "billing\x00dispute"
    records = [
        event(
            f"e{n}",
            "support.ticket_opened",
            f"cus-{n}",
            n * timedelta(seconds=1),
            ticket_id=f"t\x00{n}",
            topic=topic,
            via="chat",
            note={"text": "a\x00b"},
        )
        for n in range(rows)
    ]
    assert write(sink, *records) >= rows
    assert one(sink, "SELECT count(*), min(topic) FROM tickets") == (rows, "billing\ufffddispute")
    with sink.engine.connect() as conn:
        notes = conn.execute(
            sa.select(sa.column("attributes", sa.JSON)).select_from(sa.table("interactions"))
        ).scalars()
        assert {a["note"]["text"] for a in notes} == {"a\ufffdb"}


@pytest.mark.postgres
def test_merge_moves_plan_with_index_scans_and_the_rest_of_the_batch_as_before(
    database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The merge moves run with ``enable_seqscan`` off (a few hundred ids, found through
    indexes); the statements after them in the same transaction plan as configured."""
    upgrade(database_url)
    sink = CrmSink(engine_for(database_url), clock=lambda: NOW)
    seen: dict[str, str] = {}
    move, finish = _Transaction._move, _Transaction.finish

    def setting(tx: _Transaction) -> str:
        return str(tx.conn.execute(sa.text("SHOW enable_seqscan")).scalar_one())

    def spied_move(tx: _Transaction, moves: dict[str, str]) -> None:
        seen["move"] = setting(tx)
        move(tx, moves)

    def spied_finish(tx: _Transaction) -> None:
        seen["after"] = setting(tx)
        finish(tx)

    monkeypatch.setattr(_Transaction, "_move", spied_move)
    monkeypatch.setattr(_Transaction, "finish", spied_finish)
    write(sink, event("a1", "web.page_view", "anon-1", 0 * H, url="u", session_id="s"))
    written = write(
        sink,
        merge("anon-1", "cus-1"),
        event("w1", "web.page_view", "cus-1", H, url="u", session_id="s"),
    )
    assert written == 2  # the merge and the event, in one transaction
    assert seen == {"move": "off", "after": "on"}
    assert one(sink, "SELECT count(*), min(customer_id) FROM interactions") == (2, "cus-1")
    sink.engine.dispose()
