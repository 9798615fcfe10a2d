"""The CRM sink's writer: one batch of decoded records into the relationship store, in one
transaction, idempotently (a redelivered record changes nothing).

Every count and sum moves only with a row that is new: an interaction, transition or
flag is inserted ``ON CONFLICT DO NOTHING ... RETURNING`` and only what came back adds to
metrics and the daily aggregates. Merges are applied first, and every customer id in the
batch is mapped through the merges table, so rows that arrive after their customer was
merged away land on the survivor."""

from __future__ import annotations

import zlib
from collections import defaultdict
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import (
    Connection,
    Engine,
    and_,
    case,
    func,
    or_,
    select,
    text,
    update,
)
from sqlalchemy.sql.elements import ColumnElement

from services.crm.bulk import among, dialect_insert, update_many, upsert
from services.crm.health import health_score, value_at_risk
from services.crm.merges import MergeMoves
from services.crm.records import PURCHASES, Batch, Event, day_of, money
from services.journeys.engine import due_moment
from services.store.models import (
    Customer,
    FrictionDaily,
    FrictionEvent,
    Identity,
    Interaction,
    Invoice,
    JourneyStateRow,
    JourneyTransition,
    Order,
    RelationshipMetrics,
    StageDaily,
    Ticket,
)

AMOUNTS = ("lifetime_spend", "returned_amount")
LATEST = ("last_web_at", "last_store_at", "last_billing_at", "last_support_at")
SURVEYS = ("csat", "nps")
MONEY_KEYS = ("currency_amounts", "failed_payments", "orders", "returns", *AMOUNTS)


@dataclass(frozen=True, slots=True)
class Written:
    """What one batch changed: new rows per table (0 everywhere for a redelivery)."""

    interactions: int = 0
    transitions: int = 0
    flags: int = 0
    merges: int = 0

    @property
    def rows(self) -> int:
        return self.interactions + self.transitions + self.flags + self.merges

    def __add__(self, other: Written) -> Written:
        return Written(
            self.interactions + other.interactions,
            self.transitions + other.transitions,
            self.flags + other.flags,
            self.merges + other.merges,
        )


SHARD_FROM = 1000  # records (merges aside); a smaller batch is one transaction
MERGE_LOCK = 5_418_302  # PostgreSQL advisory lock: merges against rows written meanwhile


def hold_merges(conn: Connection, exclusive: bool) -> None:
    """Order this transaction against other sinks' merges (PostgreSQL; SQLite has one writer
    at a time anyway). A transaction that merges takes the lock alone, one that only writes
    rows shares it: a merge then waits until rows written for its loser are committed (so
    it moves them), and rows written after it see it (and go to the survivor). Without it,
    two sinks could write a loser's rows while another moved the loser's rows away, and
    leave them under the merged-away id."""
    if conn.dialect.name == "postgresql":
        lock = "pg_advisory_xact_lock" if exclusive else "pg_advisory_xact_lock_shared"
        conn.execute(text(f"SELECT {lock}({MERGE_LOCK})"))


class CrmSink:
    """Writes batches into the store at ``engine`` (PostgreSQL or SQLite).

    On PostgreSQL a batch of ``SHARD_FROM`` records or more is written through ``writers``
    connections at once: its merges first, in a transaction of their own, then each writer
    takes the records of a share of the batch's customers (by the id they have after the
    merges) in its own transaction. One writer's transaction waits on the server most of
    the time; with two the server and this process keep both cores busy. Every row is
    keyed by one customer, so writers never write the same row, except the daily
    aggregates, which each writes last, in one statement a table in key order (they wait
    for each other there, and cannot deadlock). If one writer fails the others may have
    committed: the retried batch then finds their rows and adds nothing twice, as a
    redelivered batch does."""

    def __init__(
        self,
        engine: Engine,
        *,
        clock: Callable[[], datetime] | None = None,
        writers: int = 2,
    ) -> None:
        self.engine = engine
        self.clock = clock or (lambda: datetime.now(UTC))
        self.dialect = engine.dialect.name
        self.writers = writers if self.dialect == "postgresql" else 1
        self._pool = (
            ThreadPoolExecutor(self.writers - 1, thread_name_prefix="crm-writer")
            if self.writers > 1
            else None
        )

    def write(self, batch: Batch) -> Written:
        now = self.clock()
        if self._pool is None or len(batch) - len(batch.merges) < SHARD_FROM:
            with self.engine.begin() as conn:
                hold_merges(conn, exclusive=bool(batch.merges))
                return _Transaction(conn, self.dialect, now).write(batch)
        with self.engine.begin() as conn:
            hold_merges(conn, exclusive=bool(batch.merges))
            first = _Transaction(conn, self.dialect, now)
            merges = first.merges(batch.merges)
            final = first.survivors(customer_ids(batch))
            first.finish()
        shares = split(batch, final, self.writers)
        pending = [self._pool.submit(self._write_share, s, final, now) for s in shares[1:]]
        results: list[Written | BaseException] = []
        try:
            results.append(self._write_share(shares[0], final, now))
        except Exception as error:  # the others finish before the batch may be retried
            results.append(error)
        for job in pending:
            failure = job.exception()
            results.append(job.result() if failure is None else failure)
        for result in results:
            if isinstance(result, BaseException):
                raise result
        written = Written(merges=merges)
        for result in results:
            assert isinstance(result, Written)
            written += result
        return written

    def _write_share(self, batch: Batch, final: dict[str, str], now: datetime) -> Written:
        with self.engine.begin() as conn:
            hold_merges(conn, exclusive=False)
            share = _Transaction(conn, self.dialect, now)
            # another sink may have merged since ``final`` was read: read it again, under the lock
            return share.apply(batch, final | share.survivors(customer_ids(batch)))

    def close(self) -> None:
        """Let the writer threads go (a share still being written finishes on its own)."""
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)


def customer_ids(batch: Batch) -> set[str]:
    ids = {e.customer_id for e in batch.events}
    return ids | {t.customer_id for t in batch.transitions} | {f.customer_id for f in batch.flags}


def split(batch: Batch, final: dict[str, str], shares: int) -> list[Batch]:
    """``batch``'s events, transitions and flags in ``shares`` parts by customer (merges
    are written before)."""
    parts = [Batch() for _ in range(shares)]

    def part(customer: str) -> Batch:
        return parts[zlib.crc32(final[customer].encode()) % shares]

    for e in batch.events:
        part(e.customer_id).events.append(e)
    for t in batch.transitions:
        part(t.customer_id).transitions.append(t)
    for f in batch.flags:
        part(f.customer_id).flags.append(f)
    return parts


class _Transaction(MergeMoves):
    def __init__(self, conn: Connection, dialect: str, now: datetime) -> None:
        self.conn = conn
        self.dialect = dialect
        self.now = now
        self.touched: set[str] = set()  # customers whose metrics or friction changed
        self.itemized: set[str] = set()  # customers whose invoices or tickets changed
        # the daily aggregates' increments, written last (see CrmSink)
        self.entered: dict[tuple[Any, str, str], int] = defaultdict(int)
        self.daily: dict[tuple[Any, ...], list[Any]] = defaultdict(lambda: [0, Decimal(0)])

    # -- dialect helpers -------------------------------------------------------------
    def insert(self, model: Any) -> Any:
        return dialect_insert(self.dialect, model)

    def greatest(self, a: Any, b: Any) -> ColumnElement[Any]:
        """The later of two possibly-NULL values (SQLite's max() is NULL if either is)."""
        return case((a.is_(None), b), (b.is_(None), a), (b > a, b), else_=a)

    def least(self, a: Any, b: Any) -> ColumnElement[Any]:
        return case((a.is_(None), b), (b.is_(None), a), (b < a, b), else_=a)

    # -- the batch -------------------------------------------------------------------
    def write(self, batch: Batch) -> Written:
        merges = self.merges(batch.merges)
        written = self.apply(batch, self.survivors(customer_ids(batch)))
        return replace(written, merges=merges)

    def apply(self, batch: Batch, final: dict[str, str]) -> Written:
        """The batch's events, transitions and flags, its merges already applied."""
        interactions = self._events(batch.events, final)
        transitions = self._transitions(batch, final)
        self._refresh_open_items()
        flags = self._flags(batch, final)
        self.finish()
        return Written(interactions, transitions, flags)

    def finish(self) -> None:
        """Health of the customers the transaction changed, then the daily aggregates."""
        self._refresh_open_items()
        self._refresh_health()
        self._flush_daily()

    # -- events ----------------------------------------------------------------------
    def _events(self, events: Sequence[Event], final: dict[str, str]) -> int:
        if not events:
            return 0
        unique = {e.event_id: e for e in events}  # a duplicate inside one batch counts once
        rows = [
            {
                "event_id": e.event_id,
                "customer_id": final[e.customer_id],
                "type": e.type,
                "channel": e.channel,
                "source": e.source,
                "occurred_at": e.occurred_at,
                "received_at": e.received_at,
                "attributes": e.attributes,
            }
            for e in unique.values()
        ]
        new_ids = {
            event_id
            for (event_id,) in upsert(
                self.conn,
                Interaction,
                rows,
                lambda stmt: stmt.on_conflict_do_nothing().returning(stmt.table.c.event_id),
            )
        }
        new = [replace_customer(unique[i], final) for i in sorted(new_ids)]
        self._customers(new)
        self._identities(new)
        self._ledger(new)
        self._metrics(new)
        return len(new)

    def _customers(self, events: Sequence[Event]) -> None:
        first: dict[str, datetime] = {}
        for e in events:
            at = first.get(e.customer_id)
            first[e.customer_id] = e.occurred_at if at is None else min(at, e.occurred_at)
        if not first:
            return
        upsert(
            self.conn,
            Customer,
            [
                {"customer_id": c, "first_seen_at": at, "updated_at": self.now, "custom": {}}
                for c, at in sorted(first.items())
            ],
            lambda stmt: stmt.on_conflict_do_update(
                index_elements=[Customer.customer_id],
                set_={"first_seen_at": stmt.excluded.first_seen_at},
                # a known customer seen again writes nothing
                where=or_(
                    Customer.first_seen_at.is_(None),
                    Customer.first_seen_at > stmt.excluded.first_seen_at,
                ),
            ),
        )

    def _identities(self, events: Sequence[Event]) -> None:
        owner: dict[tuple[str, str], tuple[str, datetime]] = {}
        for e in sorted(events, key=lambda e: e.occurred_at):
            for identifier in e.identifiers:
                first = owner.get(identifier)
                owner[identifier] = (e.customer_id, first[1] if first else e.occurred_at)
        if not owner:
            return
        upsert(
            self.conn,
            Identity,
            [
                {"kind": k, "value": v, "customer_id": c, "first_seen_at": at}
                for (k, v), (c, at) in sorted(owner.items())
            ],
            lambda stmt: stmt.on_conflict_do_update(
                index_elements=[Identity.kind, Identity.value],
                set_={
                    "customer_id": stmt.excluded.customer_id,
                    "first_seen_at": self.least(
                        Identity.first_seen_at, stmt.excluded.first_seen_at
                    ),
                },
                # an identifier seen again for the same customer writes nothing
                where=or_(
                    Identity.customer_id != stmt.excluded.customer_id,
                    Identity.first_seen_at > stmt.excluded.first_seen_at,
                ),
            ),
        )

    def _ledger(self, events: Sequence[Event]) -> None:
        """Orders and returns, invoices and tickets: the items metrics count."""
        orders: list[dict[str, Any]] = []
        invoices: dict[str, dict[str, Any]] = {}
        tickets: dict[str, dict[str, Any]] = {}
        for e in sorted(events, key=lambda e: e.occurred_at):
            a = e.attributes
            if e.type in PURCHASES or e.type == "store.return":
                amount = money(a.get("amount"))
                if amount is None or not isinstance(a.get("order_id"), str):
                    continue
                orders.append(
                    {
                        "event_id": e.event_id,
                        "order_id": a["order_id"],
                        "customer_id": e.customer_id,
                        "kind": "return" if e.type == "store.return" else "purchase",
                        "channel": e.channel,
                        "amount": amount,
                        "currency": str(a.get("currency", ""))[:3],
                        "occurred_at": e.occurred_at,
                    }
                )
            elif e.type.startswith("billing.") and isinstance(a.get("invoice_id"), str):
                _invoice_fact(invoices, e)
                self.itemized.add(e.customer_id)
            elif e.type.startswith("support.ticket_") and isinstance(a.get("ticket_id"), str):
                _ticket_fact(tickets, e)
                self.itemized.add(e.customer_id)
        if orders:
            upsert(self.conn, Order, orders, lambda stmt: stmt.on_conflict_do_nothing())
        if invoices:
            rows = [invoices[k] for k in sorted(invoices)]
            upsert(self.conn, Invoice, rows, self._invoice_upsert)
        if tickets:
            upsert(self.conn, Ticket, [tickets[k] for k in sorted(tickets)], self._ticket_upsert)

    def _invoice_upsert(self, stmt: Any) -> Any:
        t, x = Invoice, stmt.excluded
        change: dict[str, Any] = {
            name: func.coalesce(x[name], getattr(t, name))
            for name in ("amount", "currency", "issued_at", "due_at")
        }
        change |= {
            "customer_id": x.customer_id,
            "paid_at": self.least(t.paid_at, x.paid_at),
            "failed_payments": t.failed_payments + x.failed_payments,
        }
        return stmt.on_conflict_do_update(index_elements=[t.invoice_id], set_=change)

    def _ticket_upsert(self, stmt: Any) -> Any:
        k, x = Ticket, stmt.excluded
        return stmt.on_conflict_do_update(
            index_elements=[k.ticket_id],
            set_={
                "customer_id": x.customer_id,
                "topic": func.coalesce(x.topic, k.topic),
                "via": func.coalesce(x.via, k.via),
                "opened_at": self.least(k.opened_at, x.opened_at),
                "last_opened_at": self.greatest(k.last_opened_at, x.last_opened_at),
                "resolved_at": self.greatest(k.resolved_at, x.resolved_at),
                "reopened": k.reopened + x.reopened,
            },
        )

    def _metrics(self, events: Sequence[Event]) -> None:
        deltas: dict[str, dict[str, Any]] = defaultdict(dict)
        for e in sorted(events, key=lambda e: e.occurred_at):
            d = deltas[e.customer_id]
            d["interactions"] = d.get("interactions", 0) + 1
            d[f"last_{e.channel}_at"] = e.occurred_at  # sorted: the latest wins
            a = e.attributes
            if e.type in PURCHASES or e.type == "store.return":
                amount = money(a.get("amount"))
                if amount is None:
                    continue
                d.setdefault("currency_amounts", []).append(
                    (e.type == "store.return", str(a.get("currency", ""))[:3], amount)
                )
            elif e.type == "billing.payment_failed":
                d["failed_payments"] = d.get("failed_payments", 0) + 1
            elif e.type in ("support.csat_submitted", "support.nps_submitted"):
                name = "csat" if e.type.endswith("csat_submitted") else "nps"
                if isinstance(a.get("score"), int):
                    d[f"last_{name}"], d[f"last_{name}_at"] = a["score"], e.occurred_at
        self.add_metrics(deltas)

    def add_metrics(self, deltas: dict[str, dict[str, Any]]) -> None:
        """Add counts and amounts into each customer's metrics row (created if missing), in
        one upsert: activity, money and surveys together (zeros and nulls change nothing).
        Amounts add up in the customer's currency, the first one seen, read first for the
        few customers whose rows carry money."""
        if not deltas:
            return
        customers = sorted(deltas)
        self.touched.update(customers)
        paying = [c for c in customers if any(deltas[c].get(n) for n in MONEY_KEYS)]
        currency = (
            dict(
                self.conn.execute(
                    select(RelationshipMetrics.customer_id, RelationshipMetrics.currency).where(
                        among(self.dialect, RelationshipMetrics.customer_id, paying)
                    )
                ).all()
            )
            if paying
            else {}
        )
        base = {"updated_at": self.now}
        rows = [
            {"interactions": deltas[c].get("interactions", 0)}
            | {name: deltas[c].get(name) for name in LATEST}
            | self._money(c, deltas[c], currency.get(c))
            | {
                f"last_{n}{at}": deltas[c].get(f"last_{n}{at}")
                for n in SURVEYS
                for at in ("", "_at")
            }
            | base
            for c in customers
        ]
        m = RelationshipMetrics

        def build(stmt: Any) -> Any:
            x = stmt.excluded
            change = self._activity_change(x) | self._money_change(x) | self._survey_change(x)
            return stmt.on_conflict_do_update(
                index_elements=[m.customer_id], set_=change | {"updated_at": x.updated_at}
            )

        upsert(self.conn, m, rows, build)

    @staticmethod
    def _money(customer: str, d: dict[str, Any], stored: str | None) -> dict[str, Any]:
        row: dict[str, Any] = {"customer_id": customer}
        row |= {name: d.get(name, 0) for name in ("orders", "returns", "other_currency_amounts")}
        row["failed_payments"] = d.get("failed_payments", 0)
        row |= {name: Decimal(d.get(name, 0)) for name in AMOUNTS}
        own = stored or d.get("currency")
        for is_return, cur, amount in d.get("currency_amounts", ()):
            own = own or cur
            if cur != own:
                row["other_currency_amounts"] += 1
            elif is_return:
                row["returns"] += 1
                row["returned_amount"] += amount
                row["lifetime_spend"] -= amount
            else:
                row["orders"] += 1
                row["lifetime_spend"] += amount
        row["currency"] = own
        return row

    def _activity_change(self, x: Any) -> dict[str, Any]:
        m = RelationshipMetrics
        change: dict[str, Any] = {"interactions": m.interactions + x.interactions}
        return change | {name: self.greatest(getattr(m, name), x[name]) for name in LATEST}

    def _money_change(self, x: Any) -> dict[str, Any]:
        m = RelationshipMetrics
        names = ("orders", "returns", "other_currency_amounts", "failed_payments", *AMOUNTS)
        change: dict[str, Any] = {name: getattr(m, name) + x[name] for name in names}
        return change | {"currency": func.coalesce(m.currency, x.currency)}

    def _survey_change(self, x: Any) -> dict[str, Any]:
        m = RelationshipMetrics
        change: dict[str, Any] = {}
        for name in SURVEYS:
            at, new_at = getattr(m, f"last_{name}_at"), x[f"last_{name}_at"]
            newer = or_(at.is_(None), and_(new_at.is_not(None), new_at >= at))
            change[f"last_{name}"] = case(
                (newer, x[f"last_{name}"]), else_=getattr(m, f"last_{name}")
            )
            change[f"last_{name}_at"] = self.greatest(at, new_at)
        return change

    # -- journeys --------------------------------------------------------------------
    def _transitions(self, batch: Batch, final: dict[str, str]) -> int:
        if not batch.transitions:
            return 0
        unique = {(t.event_id, t.journey): t for t in batch.transitions}
        rows = [
            {
                "event_id": t.event_id,
                "journey": t.journey,
                "customer_id": final[t.customer_id],
                "from_stage": t.from_stage,
                "to_stage": t.to_stage,
                "occurred_at": t.occurred_at,
            }
            for t in unique.values()
        ]
        returned = upsert(
            self.conn,
            JourneyTransition,
            rows,
            lambda stmt: stmt.on_conflict_do_nothing().returning(
                stmt.table.c.event_id, stmt.table.c.journey
            ),
        ).all()
        latest: dict[tuple[str, str], dict[str, Any]] = {}
        for event_id, journey in returned:
            t = unique[(event_id, journey)]
            customer = final[t.customer_id]
            now = latest.get((customer, journey))
            if now is None or t.occurred_at >= now["entered_at"]:
                latest[(customer, journey)] = {
                    "customer_id": customer,
                    "journey": journey,
                    "stage": t.to_stage,
                    "entered_at": t.occurred_at,
                    "event_id": event_id,
                }
            self.entered[(day_of(t.occurred_at), journey, t.to_stage)] += 1
        self.upsert_stages([latest[k] for k in sorted(latest)])
        return len(returned)

    def upsert_stages(self, rows: list[dict[str, Any]]) -> None:
        """Each customer's stage on a journey, unless a later move is already recorded."""
        if not rows:
            return

        def build(stmt: Any) -> Any:
            x = stmt.excluded
            return stmt.on_conflict_do_update(
                index_elements=[JourneyStateRow.customer_id, JourneyStateRow.journey],
                set_={"stage": x.stage, "entered_at": x.entered_at, "event_id": x.event_id},
                where=x.entered_at >= JourneyStateRow.entered_at,
            )

        upsert(self.conn, JourneyStateRow, rows, build)

    # -- friction --------------------------------------------------------------------
    def _flags(self, batch: Batch, final: dict[str, str]) -> int:
        if not batch.flags:
            return 0
        unique = {f.flag_id: f for f in batch.flags}
        customers = sorted({final[f.customer_id] for f in unique.values()})
        metrics: dict[str, Any] = {
            m.customer_id: m
            for m in self.conn.execute(
                select(RelationshipMetrics.__table__).where(
                    among(self.dialect, RelationshipMetrics.customer_id, customers)
                )
            )
        }
        rows: list[dict[str, Any]] = []
        for f in unique.values():
            customer = final[f.customer_id]
            rows.append(
                {
                    "flag_id": f.flag_id,
                    "customer_id": customer,
                    "raised_as": f.customer_id,
                    "rule_id": f.rule_id,
                    "severity": f.severity,
                    "journey": f.journey,
                    "stage": f.stage,
                    "channel": f.channel,
                    "occurred_at": f.occurred_at,
                    "evidence": list(f.evidence),
                    "value_at_risk": value_at_risk(f.rule_id, {}, metrics.get(customer)),
                    "status": "open",
                }
            )
        new = {
            flag_id
            for (flag_id,) in upsert(
                self.conn,
                FrictionEvent,
                rows,
                lambda stmt: stmt.on_conflict_do_nothing().returning(stmt.table.c.flag_id),
            )
        }
        for row in rows:
            if row["flag_id"] in new:
                key = (
                    day_of(row["occurred_at"]),
                    row["journey"],
                    row["stage"] or "",
                    row["rule_id"],
                    row["channel"],
                )
                self.daily[key][0] += 1
                self.daily[key][1] += row["value_at_risk"]
                self.touched.add(row["customer_id"])
        return len(new)

    def _flush_daily(self) -> None:
        """Add the transaction's journey entries per (day, journey, stage) and its
        ``[flags, value at risk]`` per (day, journey, stage, rule, channel): one statement a
        table, in key order, so concurrent writers lock these shared rows in one order."""
        if self.entered:
            upsert(
                self.conn,
                StageDaily,
                [
                    {"day": d, "journey": j, "stage": s, "entered": n}
                    for (d, j, s), n in sorted(self.entered.items())
                ],
                lambda stmt: stmt.on_conflict_do_update(
                    index_elements=[StageDaily.day, StageDaily.journey, StageDaily.stage],
                    set_={"entered": StageDaily.entered + stmt.excluded.entered},
                ),
            )
            self.entered.clear()
        daily = {k: v for k, v in self.daily.items() if v != [0, 0]}
        self.daily.clear()
        if not daily:
            return
        fd = FrictionDaily
        upsert(
            self.conn,
            fd,
            [
                {
                    "day": d,
                    "journey": j,
                    "stage": s,
                    "rule_id": r,
                    "channel": c,
                    "flags": n,
                    "value_at_risk": v,
                }
                for (d, j, s, r, c), (n, v) in sorted(daily.items())
            ],
            lambda stmt: stmt.on_conflict_do_update(
                index_elements=[fd.day, fd.journey, fd.stage, fd.rule_id, fd.channel],
                set_={
                    "flags": fd.flags + stmt.excluded.flags,
                    "value_at_risk": fd.value_at_risk + stmt.excluded.value_at_risk,
                },
            ),
        )

    # -- derived ---------------------------------------------------------------------
    def _refresh_open_items(self) -> None:
        """Open invoices (issued, unpaid) and open tickets of the customers whose invoices,
        tickets or merges this batch changed, counted from their rows (either event of a
        pair may come first)."""
        if not self.itemized:
            return
        customers = sorted(self.itemized)
        self.itemized.clear()
        m = RelationshipMetrics
        open_invoice = and_(Invoice.issued_at.is_not(None), Invoice.paid_at.is_(None))
        open_ticket = and_(
            Ticket.last_opened_at.is_not(None),
            or_(Ticket.resolved_at.is_(None), Ticket.resolved_at < Ticket.last_opened_at),
        )
        invoices = select(func.count(), func.coalesce(func.sum(Invoice.amount), 0)).where(
            Invoice.customer_id == m.customer_id, open_invoice
        )
        tickets = select(func.count()).where(Ticket.customer_id == m.customer_id, open_ticket)
        self.conn.execute(
            update(m)
            .where(among(self.dialect, m.customer_id, customers))
            .values(
                open_invoices=invoices.with_only_columns(func.count()).scalar_subquery(),
                amount_open=invoices.with_only_columns(
                    func.coalesce(func.sum(Invoice.amount), 0)
                ).scalar_subquery(),
                open_tickets=tickets.scalar_subquery(),
            )
        )

    def _refresh_health(self) -> None:
        if not self.touched:
            return
        customers = sorted(self.touched)
        metrics = self.conn.execute(
            select(RelationshipMetrics.__table__).where(
                among(self.dialect, RelationshipMetrics.customer_id, customers)
            )
        ).all()
        friction: dict[str, list[Any]] = defaultdict(list)
        for flag in self.conn.execute(
            select(FrictionEvent.__table__).where(
                among(self.dialect, FrictionEvent.customer_id, customers),
                FrictionEvent.status != "resolved",
            )
        ):
            friction[flag.customer_id].append(flag)
        # only a customer with open invoices (kept in the metrics) can have one overdue
        owing = [m.customer_id for m in metrics if m.open_invoices]
        overdue: dict[str, Decimal | None] = dict(
            self.conn.execute(
                select(Invoice.customer_id, func.sum(Invoice.amount))
                .where(
                    among(self.dialect, Invoice.customer_id, owing),
                    Invoice.issued_at.is_not(None),
                    Invoice.paid_at.is_(None),
                    Invoice.due_at < self.now,
                )
                .group_by(Invoice.customer_id)
            ).all()
            if owing
            else ()
        )
        self._revalue(metrics, friction)
        scores = []
        for m in metrics:
            overdue_amount = overdue.get(m.customer_id) or Decimal(0)
            score = health_score(
                m, friction[m.customer_id], self.now, amount_overdue=overdue_amount
            )
            if score != m.health_score:  # most events leave it where it was
                scores.append({"customer_id": m.customer_id, "health_score": score})
        update_many(self.conn, RelationshipMetrics, "customer_id", scores)

    def _revalue(self, metrics: Sequence[Any], friction: dict[str, list[Any]]) -> None:
        """Value at risk of open friction follows the customer's metrics (spend, open
        amount), so it does not depend on when the sink happened to write the flag."""
        by_customer = {m.customer_id: m for m in metrics}
        changed: list[dict[str, Any]] = []
        for customer, flags in friction.items():
            for f in flags:
                value = value_at_risk(f.rule_id, {}, by_customer.get(customer))
                if value != f.value_at_risk:
                    changed.append({"flag_id": f.flag_id, "value_at_risk": value})
                    key = (day_of(f.occurred_at), f.journey, f.stage or "", f.rule_id, f.channel)
                    self.daily[key][1] += value - Decimal(f.value_at_risk)
        update_many(self.conn, FrictionEvent, "flag_id", changed)


def replace_customer(event: Event, final: dict[str, str]) -> Event:
    """``event`` under the customer it belongs to now."""
    customer = final[event.customer_id]
    if customer == event.customer_id:
        return event
    return replace(event, customer_id=customer)


def _invoice_fact(invoices: dict[str, dict[str, Any]], e: Event) -> None:
    """Fold one billing event into its invoice's row of this batch (events in time order)."""
    a = e.attributes
    row = invoices.setdefault(
        a["invoice_id"],
        dict.fromkeys(("amount", "currency", "issued_at", "due_at", "paid_at"))
        | {"invoice_id": a["invoice_id"], "failed_payments": 0},
    )
    row["customer_id"] = e.customer_id
    if e.type == "billing.invoice_issued":
        row["amount"] = money(a.get("amount"))
        row["currency"] = str(a.get("currency", ""))[:3]
        row["issued_at"] = e.occurred_at
        row["due_at"] = due_moment(a.get("due_date"))
    elif e.type == "billing.payment_succeeded":
        row["paid_at"] = row["paid_at"] or e.occurred_at
    elif e.type == "billing.payment_failed":
        row["failed_payments"] += 1


def _ticket_fact(tickets: dict[str, dict[str, Any]], e: Event) -> None:
    """Fold one ticket event into its ticket's row of this batch (events in time order)."""
    a = e.attributes
    row = tickets.setdefault(
        a["ticket_id"],
        dict.fromkeys(("topic", "via", "opened_at", "last_opened_at", "resolved_at"))
        | {"ticket_id": a["ticket_id"], "reopened": 0},
    )
    row["customer_id"] = e.customer_id
    if e.type == "support.ticket_opened":
        row["opened_at"] = row["opened_at"] or e.occurred_at
        row["topic"], row["via"] = a.get("topic"), a.get("via")
        row["last_opened_at"] = e.occurred_at
    elif e.type == "support.ticket_reopened":
        row["reopened"] += 1
        row["last_opened_at"] = e.occurred_at
    elif e.type == "support.ticket_resolved":
        row["resolved_at"] = e.occurred_at
