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


# -- the store in full, for crash tests -----------------------------------------------------
# Every row of every CRM table the pipeline writes, keyed by its primary key, leaving out only
# what differs between two correct runs: when a row was written (updated_at, received_at, the
# health score, which ages with the clock), and what follows the order the identity
# coordinator read the raw partitions in (merges, transitions and stage_daily, the customer a
# flag was first raised as and the journey stage it names, when a journey stage was
# entered): see test_crm_pipeline.py.
CONTENT_QUERIES = {
    "customers": "SELECT customer_id, first_seen_at FROM customers",
    "identities": "SELECT kind, value, customer_id, first_seen_at FROM identities",
    "interactions": "SELECT event_id, customer_id, type, channel, source, occurred_at, "
    "CAST(attributes AS TEXT) FROM interactions",
    "orders": "SELECT event_id, order_id, customer_id, kind, channel, amount, currency, "
    "occurred_at FROM orders",
    "invoices": "SELECT invoice_id, customer_id, amount, currency, issued_at, due_at, paid_at, "
    "failed_payments FROM invoices",
    "tickets": "SELECT ticket_id, customer_id, topic, via, opened_at, last_opened_at, "
    "resolved_at, reopened FROM tickets",
    "journey_states": "SELECT customer_id, journey, stage FROM journey_states",
    "friction_events": "SELECT flag_id, customer_id, rule_id, severity, journey, channel, "
    "occurred_at, CAST(evidence AS TEXT), value_at_risk, status FROM friction_events",
    "relationship_metrics": "SELECT customer_id, currency, lifetime_spend, orders, returns, "
    "returned_amount, other_currency_amounts, open_invoices, amount_open, failed_payments, "
    "open_tickets, last_csat, last_csat_at, last_nps, last_nps_at, last_web_at, last_store_at, "
    "last_billing_at, last_support_at, interactions FROM relationship_metrics",
    "friction_daily": "SELECT day, journey, rule_id, channel, sum(flags), sum(value_at_risk) "
    "FROM friction_daily GROUP BY day, journey, rule_id, channel",
}
KEY_COLUMNS = {
    "identities": 2,
    "journey_states": 2,
    "friction_daily": 4,
}  # leading columns that make a row's key (1 where not listed)


def contents(url: str) -> dict[str, dict[tuple[Any, ...], tuple[Any, ...]]]:
    """Per table, primary key -> the rest of the row (see ``CONTENT_QUERIES``)."""
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            found: dict[str, dict[tuple[Any, ...], tuple[Any, ...]]] = {}
            for name, sql in CONTENT_QUERIES.items():
                width = KEY_COLUMNS.get(name, 1)
                found[name] = {
                    tuple(row[:width]): tuple(row[width:]) for row in conn.execute(sa.text(sql))
                }
    finally:
        engine.dispose()
    return found


def content_differences(
    got: dict[str, dict[tuple[Any, ...], tuple[Any, ...]]],
    want: dict[str, dict[tuple[Any, ...], tuple[Any, ...]]],
    examples: int = 3,
) -> dict[str, str]:
    """Per table that differs: rows missing, rows extra and rows changed, with examples."""
    problems = {}
    for table, rows in want.items():
        have = got.get(table, {})
        missing = sorted(set(rows) - set(have), key=str)
        extra = sorted(set(have) - set(rows), key=str)
        changed = sorted((k for k in set(rows) & set(have) if rows[k] != have[k]), key=str)
        if missing or extra or changed:
            problems[table] = (
                f"{len(rows)} rows expected: {len(missing)} missing {missing[:examples]}, "
                f"{len(extra)} extra {extra[:examples]}, {len(changed)} changed "
                f"{[(k, have[k], rows[k]) for k in changed[:examples]]}"
            )
    return problems


# Counts and sums the store keeps must agree with the rows they count: a record written twice
# that added to a counter a second time shows here, whatever the scenario.
INVARIANT_QUERIES = {
    "interactions per customer": """
        SELECT m.customer_id, m.interactions, count(i.event_id)
        FROM relationship_metrics m LEFT JOIN interactions i ON i.customer_id = m.customer_id
        GROUP BY m.customer_id, m.interactions HAVING m.interactions <> count(i.event_id)""",
    "customers with interactions but no metrics": """
        SELECT i.customer_id, count(*), 0 FROM interactions i
        LEFT JOIN relationship_metrics m ON m.customer_id = i.customer_id
        WHERE m.customer_id IS NULL GROUP BY i.customer_id""",
    "orders per customer": """
        SELECT m.customer_id, m.orders + m.returns + m.other_currency_amounts, count(o.event_id)
        FROM relationship_metrics m LEFT JOIN orders o ON o.customer_id = m.customer_id
        GROUP BY m.customer_id, m.orders, m.returns, m.other_currency_amounts
        HAVING m.orders + m.returns + m.other_currency_amounts <> count(o.event_id)""",
    "failed payments per customer": """
        SELECT m.customer_id, m.failed_payments, count(i.event_id)
        FROM relationship_metrics m LEFT JOIN interactions i
          ON i.customer_id = m.customer_id AND i.type = 'billing.payment_failed'
        GROUP BY m.customer_id, m.failed_payments HAVING m.failed_payments <> count(i.event_id)""",
    "failed payments per invoice": """
        SELECT v.invoice_id, v.failed_payments, count(i.event_id)
        FROM invoices v LEFT JOIN interactions i ON i.type = 'billing.payment_failed'
          AND i.attributes->>'invoice_id' = v.invoice_id
        GROUP BY v.invoice_id, v.failed_payments HAVING v.failed_payments <> count(i.event_id)""",
    "reopenings per ticket": """
        SELECT t.ticket_id, t.reopened, count(i.event_id)
        FROM tickets t LEFT JOIN interactions i ON i.type = 'support.ticket_reopened'
          AND i.attributes->>'ticket_id' = t.ticket_id
        GROUP BY t.ticket_id, t.reopened HAVING t.reopened <> count(i.event_id)""",
    "flags and value at risk per day": """
        SELECT coalesce(d.day, f.day), (d.flags, d.value), (f.flags, f.value) FROM (
            SELECT day, sum(flags) AS flags, sum(value_at_risk) AS value
            FROM friction_daily GROUP BY day) d
        FULL JOIN (
            SELECT CAST(occurred_at AT TIME ZONE 'UTC' AS DATE) AS day, count(*) AS flags,
                   sum(value_at_risk) AS value
            FROM friction_events GROUP BY 1) f ON f.day = d.day
        WHERE d.flags IS DISTINCT FROM f.flags OR d.value IS DISTINCT FROM f.value""",
    "rows filed under a merged-away id": """
        SELECT t, customer_id, n FROM (
            SELECT 'interactions' AS t, customer_id, count(*) AS n FROM interactions
            GROUP BY customer_id
            UNION ALL SELECT 'identities', customer_id, count(*) FROM identities
            GROUP BY customer_id
            UNION ALL SELECT 'relationship_metrics', customer_id, count(*)
            FROM relationship_metrics GROUP BY customer_id
            UNION ALL SELECT 'journey_states', customer_id, count(*) FROM journey_states
            GROUP BY customer_id
            UNION ALL SELECT 'friction_events', customer_id, count(*) FROM friction_events
            GROUP BY customer_id
            UNION ALL SELECT 'orders', customer_id, count(*) FROM orders GROUP BY customer_id
            UNION ALL SELECT 'invoices', customer_id, count(*) FROM invoices GROUP BY customer_id
            UNION ALL SELECT 'tickets', customer_id, count(*) FROM tickets GROUP BY customer_id
        ) rows WHERE customer_id IN (SELECT loser FROM merges)""",
    "stage entries": """
        SELECT 'all', (SELECT coalesce(sum(entered), 0) FROM stage_daily),
               (SELECT count(*) FROM journey_transitions)
        WHERE (SELECT coalesce(sum(entered), 0) FROM stage_daily)
              <> (SELECT count(*) FROM journey_transitions)""",
}


def invariant_violations(url: str, examples: int = 5) -> dict[str, list[tuple[Any, ...]]]:
    """Per invariant that does not hold: examples of (what, counted, rows behind it). Needs
    PostgreSQL (JSON operators)."""
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            found = {
                name: [tuple(row) for row in conn.execute(sa.text(sql)).fetchmany(examples)]
                for name, sql in INVARIANT_QUERIES.items()
            }
    finally:
        engine.dispose()
    return {name: rows for name, rows in found.items() if rows}


def stored_flags(url: str, event_ids: set[str]) -> dict[tuple[str, str, frozenset[str]], int]:
    """How many friction rows each episode has: (customer, rule, the scenario's evidence
    event ids) -> rows. An episode stored under two flag ids counts 2."""
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            rows = conn.execute(
                sa.select(
                    sa.column("customer_id"), sa.column("rule_id"), sa.column("evidence", sa.JSON)
                ).select_from(sa.table("friction_events"))
            ).all()
    finally:
        engine.dispose()
    found: dict[tuple[str, str, frozenset[str]], int] = defaultdict(int)
    for customer, rule, evidence in rows:
        found[(customer, rule, frozenset(e for e in evidence if e in event_ids))] += 1
    return dict(found)


def flag_differences(
    stored: dict[tuple[str, str, frozenset[str]], int],
    expected: set[tuple[str, str, frozenset[str]]],
    examples: int = 5,
) -> dict[str, list[Any]]:
    """Expected episodes not stored, stored ones not expected, and ones stored more than once."""
    problems = {
        "missing": sorted(expected - set(stored), key=str)[:examples],
        "unexpected": sorted(set(stored) - expected, key=str)[:examples],
        "stored more than once": sorted(((key, n) for key, n in stored.items() if n > 1), key=str)[
            :examples
        ],
    }
    return {name: found for name, found in problems.items() if found}
