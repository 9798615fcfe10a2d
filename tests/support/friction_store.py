"""A small store for the friction report, written through the real CRM sink, whose report
for 2026-03-09 to 2026-03-16 is worked out by hand below (``EXPECTED``).

Edge cases on purpose: flags exactly at ``since`` (in) and at ``until`` (out), one a second
before ``since`` (previous period), a flag and a stage move of an anonymous profile merged
into cus-3 afterwards, two flags of one customer, a flag without a stage, and flags in every
workflow status."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import orjson
from sqlalchemy import Engine

from services.crm.records import Batch, decode
from services.crm.sink import CrmSink
from services.crm.workflow import change_status

SINCE, UNTIL = "2026-03-09", "2026-03-16"
NOW = datetime(2026, 3, 20, tzinfo=UTC)


def _at(text: str) -> str:
    return f"2026-03-{text}+00:00"


def _sale(event_id: str, customer: str, amount: str) -> tuple[str, bytes]:
    identity = (
        {"anonymous_id": customer} if customer.startswith("anon") else {"customer_id": customer}
    )
    record = {
        "event": {
            "event_id": event_id,
            "type": "store.pos_sale",
            "occurred_at": _at("01T09:00:00"),
            "source": "till",
            "identity": identity,
            "attributes": {"order_id": f"o-{event_id}", "amount": amount, "currency": "EUR"},
        },
        "customer_id": customer,
        "partition_key": customer,
    }
    return "event", orjson.dumps(record)


def _move(event_id: str, customer: str, stage: str, at: str) -> tuple[str, bytes]:
    record = {
        "event_id": event_id,
        "journey": "purchase",
        "customer_id": customer,
        "from_stage": None,
        "to_stage": stage,
        "occurred_at": _at(at),
    }
    return "transition", orjson.dumps(record)


def _flag(flag_id: str, customer: str, rule: str, at: str, **kw: Any) -> tuple[str, bytes]:
    record = {
        "flag_id": flag_id,
        "rule_id": rule,
        "severity": kw.get("severity", "medium"),
        "customer_id": customer,
        "journey": kw.get("journey", "purchase"),
        "stage": kw.get("stage", "checkout"),
        "channel": kw.get("channel", "web"),
        "occurred_at": _at(at),
        "evidence": [f"ev-{flag_id}"],
    }
    return "flag", orjson.dumps(record)


MERGE = {
    "kind": "merge",
    "winner": "cus-3",
    "loser": "anon-9",
    "reason": "linked",
    "event_id": "m-anon-9",
    "occurred_at": _at("11T13:00:00"),
    "moved": [],
}


def _write(sink: CrmSink, *records: tuple[str, bytes]) -> None:
    batch = Batch()
    for kind, value in records:
        decode(kind, value, batch)
    sink.write(batch)


def populate_friction(engine: Engine) -> None:
    """Write the store's records through the sink, then work two flags (the store must be
    migrated)."""
    sink = CrmSink(engine, clock=lambda: NOW)
    _write(
        sink,
        _sale("s1", "cus-1", "100.00"),
        _sale("s2", "cus-2", "40.50"),
        _sale("s9", "anon-9", "10.00"),
    )
    _write(
        sink,
        _move("t1", "cus-1", "checkout", "10T10:00:00"),
        _move("t2", "cus-1", "checkout", "12T10:00:00"),
        _move("t3", "cus-2", "checkout", "09T00:00:00"),
        _move("t4", "cus-3", "checkout", "16T00:00:00"),  # at until: out
        _move("t5", "anon-9", "checkout", "11T11:00:00"),
        _move("t6", "cus-2", "discover", "08T23:00:00"),  # previous period
        _flag("f1", "cus-1", "checkout_abandoned", "10T12:00:00"),
        _flag("f2", "cus-1", "checkout_abandoned", "12T12:00:00"),
        _flag("f3", "cus-2", "checkout_abandoned", "09T00:00:00"),  # at since: in
        _flag("f4", "cus-3", "checkout_abandoned", "16T00:00:00"),  # at until: out
        _flag("f5", "anon-9", "checkout_abandoned", "11T12:00:00", channel="store"),
        _flag("f6", "cus-2", "checkout_abandoned", "08T23:59:59"),  # previous period
        _flag("f7", "cus-1", "checkout_abandoned", "03T08:00:00"),  # previous period
        _flag(
            "f8",
            "cus-2",
            "detractor_nps",
            "13T09:00:00",
            journey="support",
            stage=None,
            channel="support",
        ),
        _flag(
            "f9",
            "cus-1",
            "long_queue",
            "14T15:00:00",
            stage="discover",
            channel="store",
            severity="low",
        ),
    )
    _write(sink, ("identity", orjson.dumps(MERGE)))
    change_status(engine, "f1", "resolved", "called back", "maria", now=NOW)
    change_status(engine, "f3", "acknowledged", "on it", "maria", now=NOW)


EXPECTED_ROWS = [  # in funnel order (the shipped maps): discover before checkout
    {
        "journey": "purchase",
        "stage": "discover",
        "rule_id": "long_queue",
        "severity": "low",
        "flags": 1,
        "customers": 1,
        "reached": 0,
        "stage_entries": 0,
        "rate_per_1000": None,
        "value_at_risk": Decimal("100.00"),
        "previous_flags": 0,
        "change": 1,
        "change_pct": None,
        "top_channels": "store:1",
        "examples": "cus-1",
    },
    {
        "journey": "purchase",
        "stage": "checkout",
        "rule_id": "checkout_abandoned",
        "severity": "medium",
        "flags": 4,
        "customers": 3,
        "reached": 3,
        "stage_entries": 4,
        "rate_per_1000": 1000.0,
        "value_at_risk": Decimal("250.50"),
        "previous_flags": 2,
        "change": 2,
        "change_pct": 100.0,
        "top_channels": "web:3; store:1",
        "examples": "cus-1; cus-2; cus-3",
    },
    {
        "journey": "support",
        "stage": None,
        "rule_id": "detractor_nps",
        "severity": "medium",
        "flags": 1,
        "customers": 1,
        "reached": None,
        "stage_entries": None,
        "rate_per_1000": None,
        "value_at_risk": Decimal("40.50"),
        "previous_flags": 0,
        "change": 1,
        "change_pct": None,
        "top_channels": "support:1",
        "examples": "cus-2",
    },
]
EXPECTED_TOTALS = {
    "flags": 6,
    "customers": 3,
    "value_at_risk": Decimal("391.00"),
    "previous_flags": 2,
    "change": 4,
    "change_pct": 200.0,
}
