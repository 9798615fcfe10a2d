"""What the CRM store should hold after a generated scenario, worked out from the scenario's
events alone (not from the sink): per final customer, identifiers, spend, orders, open
items, survey scores and flags; and a snapshot of the store to compare two runs."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any

import sqlalchemy as sa

from services.identity.graph import identifier_key
from services.journeys.engine import Engine
from services.journeys.loader import default_maps_dir, load_maps
from services.journeys.state import CustomerState, Touchpoint
from services.simulate import Scenario

PURCHASES = {"web.checkout_completed", "store.pos_sale"}


@dataclass
class Truth:
    identifiers: set[tuple[str, str]] = field(default_factory=set)
    events: set[str] = field(default_factory=set)
    spend: Decimal = Decimal(0)
    orders: int = 0
    returns: int = 0
    open_tickets: int = 0
    open_invoices: int = 0
    last_csat: int | None = None
    last_nps: int | None = None
    flags: set[tuple[str, frozenset[str]]] = field(default_factory=set)
    times: list[datetime] = field(default_factory=list)  # of its events, newest first
    stages: dict[str, str] = field(default_factory=dict)  # journey -> stage, in event order


def truth(scenario: Scenario) -> dict[str, Truth]:
    """Per final customer id, what the store should say about them."""
    owner = scenario.customer_of()
    found: dict[str, Truth] = defaultdict(Truth)
    ordered: dict[str, list[dict[str, Any]]] = defaultdict(list)
    seen: set[str] = set()
    for event in scenario.events:
        if event["event_id"] in seen:
            continue  # a duplicate delivery
        seen.add(event["event_id"])
        customer = owner(event)
        t = found[customer]
        t.events.add(event["event_id"])
        for kind, value in event["identity"].items():
            t.identifiers.add((kind, identifier_key(kind, value).partition(":")[2]))
        ordered[customer].append(event)
    engine = Engine(load_maps(default_maps_dir()))
    for customer, events in ordered.items():
        in_order = sorted(events, key=_at)
        t = found[customer]
        _ledger(t, in_order)
        t.times = [_at(e) for e in reversed(in_order)]
        state = CustomerState()
        for e in in_order:
            touch = Touchpoint(e["event_id"], e["type"], _at(e), e["attributes"])
            engine.apply(state, customer, touch)
        t.stages = {journey: visit.stage for journey, visit in state.stages.items()}
    for flag in scenario.expected:
        found[flag.customer_id].flags.add((flag.rule_id, frozenset(flag.evidence)))
    return dict(found)


def _at(event: dict[str, Any]) -> datetime:
    return datetime.fromisoformat(event["occurred_at"])


def _ledger(t: Truth, events: list[dict[str, Any]]) -> None:
    tickets: dict[str, bool] = {}
    invoices: dict[str, bool] = {}
    for e in events:
        kind, a = e["type"], e["attributes"]
        if kind in PURCHASES:
            t.orders += 1
            t.spend += Decimal(str(a["amount"]))
        elif kind == "store.return":
            t.returns += 1
            t.spend -= Decimal(str(a["amount"]))
        elif kind in ("support.ticket_opened", "support.ticket_reopened"):
            tickets[a["ticket_id"]] = True
        elif kind == "support.ticket_resolved":
            tickets[a["ticket_id"]] = False
        elif kind == "billing.invoice_issued":
            invoices.setdefault(a["invoice_id"], True)
        elif kind == "billing.payment_succeeded":
            invoices[a["invoice_id"]] = False
        elif kind == "support.csat_submitted":
            t.last_csat = a["score"]
        elif kind == "support.nps_submitted":
            t.last_nps = a["score"]
    t.open_tickets = sum(tickets.values())
    t.open_invoices = sum(invoices.values())


SNAPSHOT_QUERIES = {
    "customers": "SELECT count(*) FROM customers",
    "identities": "SELECT count(*), count(DISTINCT customer_id) FROM identities",
    "merges": "SELECT count(*) FROM merges",
    "interactions": "SELECT count(*), count(DISTINCT customer_id) FROM interactions",
    "orders": "SELECT count(*), sum(amount) FROM orders",
    "invoices": "SELECT count(*), sum(failed_payments), count(paid_at) FROM invoices",
    "tickets": "SELECT count(*), sum(reopened), count(resolved_at) FROM tickets",
    "journey_states": "SELECT count(*) FROM journey_states",
    "transitions": "SELECT count(*) FROM journey_transitions",
    "friction": "SELECT count(*), count(DISTINCT customer_id), sum(value_at_risk) "
    "FROM friction_events",
    "metrics": "SELECT count(*), sum(lifetime_spend), sum(orders), sum(returns), "
    "sum(open_invoices), sum(amount_open), sum(open_tickets), sum(interactions), "
    "sum(failed_payments) FROM relationship_metrics",
    "friction_daily": "SELECT count(*), sum(flags), sum(value_at_risk) FROM friction_daily",
    "stage_daily": "SELECT count(*), sum(entered) FROM stage_daily",
}


def snapshot(url: str) -> dict[str, Any]:
    """Row counts and sums of every CRM table, and which customer is where."""
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            shot: dict[str, Any] = {
                name: tuple(conn.execute(sa.text(sql)).one())
                for name, sql in SNAPSHOT_QUERIES.items()
            }
            for name, sql in {
                "stages": "SELECT customer_id, journey, stage FROM journey_states",
                "flags": "SELECT flag_id, customer_id FROM friction_events",
            }.items():
                shot[name] = sorted(tuple(row) for row in conn.execute(sa.text(sql)))
    finally:
        engine.dispose()
    return shot
