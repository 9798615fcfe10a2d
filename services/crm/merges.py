"""Merges in the CRM store: when identity resolution merges two profiles, every row of the
losing id moves to the surviving one. A batch's merges move together, a few statements for
all of them, so a burst of merges costs what one does."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

from sqlalchemy import (
    Connection,
    any_,
    bindparam,
    delete,
    func,
    literal,
    select,
    text,
    update,
)
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.sql.elements import ColumnElement

from services.crm.bulk import among
from services.crm.records import MergeDecision
from services.store.models import (
    Customer,
    FrictionEvent,
    Identity,
    Interaction,
    Invoice,
    JourneyStateRow,
    JourneyTransition,
    Merge,
    Order,
    RelationshipMetrics,
    Ticket,
)

MOVED = (Identity, Interaction, Order, Invoice, Ticket, FrictionEvent, JourneyTransition)
CRM_FIELDS = tuple(
    c.name for c in Customer.__table__.columns if c.name not in ("customer_id", "updated_at")
)


class MergeMoves:
    """The merge half of a sink transaction (mixed into it: ``conn``, ``insert``, ...)."""

    conn: Connection
    touched: set[str]
    itemized: set[str]

    def insert(self, model: Any) -> Any:
        raise NotImplementedError

    def least(self, a: Any, b: Any) -> ColumnElement[Any]:
        raise NotImplementedError

    def survivors(self, ids: set[str]) -> dict[str, str]:
        """Each id mapped to the customer it is now (the table is kept one hop deep)."""
        final = {i: i for i in ids}
        if ids:
            rows = self.conn.execute(
                select(Merge.loser, Merge.winner).where(
                    among(self.conn.dialect.name, Merge.loser, ids)
                )
            )
            final.update(dict(rows.all()))
        return final

    def add_metrics(self, deltas: dict[str, dict[str, Any]]) -> None:
        raise NotImplementedError

    def upsert_stages(self, rows: list[dict[str, Any]]) -> None:
        raise NotImplementedError

    def merges(self, merges: Sequence[MergeDecision]) -> int:
        """Record the batch's new merges and move their losers' rows; how many were new."""
        if not merges:
            return 0
        first: dict[str, MergeDecision] = {}
        for m in merges:
            first.setdefault(m.loser, m)
        returned = {
            loser
            for (loser,) in self.conn.execute(
                self.insert(Merge).on_conflict_do_nothing().returning(Merge.loser),
                [
                    {
                        "loser": m.loser,
                        "winner": m.winner,
                        "event_id": m.event_id,
                        "reason": m.reason,
                        "occurred_at": m.occurred_at,
                    }
                    for m in first.values()
                ],
            )
        }
        if returned:
            self._seqscan("off")
            self._move(self._finals([first[loser] for loser in sorted(returned)]))
            self._seqscan("DEFAULT")
        return len(returned)

    def _seqscan(self, value: Literal["off", "DEFAULT"]) -> None:
        """Set PostgreSQL's ``enable_seqscan`` for the rest of the transaction (``DEFAULT``:
        back to the database's). A batch's merges touch the rows of a few hundred losers
        and survivors, which their ``customer_id`` indexes find in a few milliseconds; the
        planner, costing random reads as from a disk (``random_page_cost`` 4) and with
        statistics that lag a growing table, scanned whole tables instead: in the CRM bench
        10-15 ms a statement on ``customers`` and ``journey_states``, up to 100 ms on
        ``interactions``; ~100 ms of a 20,000-record batch's serial merge transaction went
        with the index scans. A transaction that fails is rolled back with the setting."""
        if self.conn.dialect.name == "postgresql":
            self.conn.execute(text(f"SET LOCAL enable_seqscan TO {value}"))

    def _finals(self, new: list[MergeDecision]) -> dict[str, str]:
        """Each new loser with the customer it ends up in (a winner may itself have lost)."""
        table = self.survivors({m.winner for m in new} | {m.loser for m in new})
        moves = {}
        for m in new:
            current, hops = m.winner, 0
            while table.get(current, current) != current and hops <= len(table):
                current, hops = table[current], hops + 1
            moves[m.loser] = current
        return moves

    def _move(self, moves: dict[str, str]) -> None:
        """Point merges at each loser's final survivor and move the loser's rows."""
        losers = sorted(moves)
        # one statement each: a new merge's row can match both (its survivor a loser too)
        self._repoint([(Merge.winner, Merge.winner)], moves)
        self._repoint([(Merge.loser, Merge.winner)], moves)
        self._repoint([(model.customer_id, model.customer_id) for model in MOVED], moves)
        self._move_journeys(losers, moves)
        self._move_metrics(losers, moves)
        self._move_customers(losers, moves)
        self.touched -= set(losers)
        self.touched |= set(moves.values())
        self.itemized -= set(losers)
        self.itemized |= set(moves.values())

    def _repoint(self, columns: Sequence[tuple[Any, Any]], moves: dict[str, str]) -> None:
        """For each ``(key, target)`` of ``columns``, set ``target`` to the survivor in every
        row whose ``key`` is a loser. PostgreSQL takes one statement, an ``UPDATE`` a column
        in a ``WITH``: the rows are found through ``key``'s index (``= ANY``) and joined
        with the loser/survivor pairs (a join with the merges table alone made it scan
        interactions: 21 ms a batch against 5 in the CRM bench). The seven tables that own
        rows by customer went in one statement, ~32 ms a batch against ~76 ms for seven,
        each of which waited for the interpreter lock to come back after the server had
        answered. SQLite takes one statement a column and loser."""
        losers = sorted(moves)
        if self.conn.dialect.name != "postgresql":
            pairs_given = [{"l": loser, "w": moves[loser]} for loser in losers]
            for key, target in columns:
                self.conn.execute(
                    update(key.class_)
                    .where(key == bindparam("l"))
                    .values({target: bindparam("w")}),
                    pairs_given,
                )
            return
        ids = ARRAY(Merge.loser.type)
        given = bindparam("l", type_=ids)
        pairs = select(
            func.unnest(given, bindparam("w", type_=ids))
            .table_valued("l", "w")
            .render_derived(name="given")
        ).cte("moves")
        updates = [
            update(key.class_)
            .where(key == any_(given), key == pairs.c.l)
            .values({target: pairs.c.w})
            .cte(f"moved_{n}")
            for n, (key, target) in enumerate(columns)
        ]
        self.conn.execute(
            select(literal(1)).add_cte(*updates),
            {"l": losers, "w": [moves[loser] for loser in losers]},
        )

    def _move_journeys(self, losers: list[str], moves: dict[str, str]) -> None:
        table = JourneyStateRow.__table__
        rows = self.conn.execute(
            select(table).where(among(self.conn.dialect.name, table.c.customer_id, losers))
        ).all()
        for batch in _rounds(rows, moves, lambda r: (moves[r.customer_id], r.journey)):
            self.upsert_stages(
                [
                    {
                        "customer_id": moves[r.customer_id],
                        "journey": r.journey,
                        "stage": r.stage,
                        "entered_at": r.entered_at,
                        "event_id": r.event_id,
                    }
                    for r in batch
                ]
            )
        self.conn.execute(
            delete(JourneyStateRow).where(
                among(self.conn.dialect.name, JourneyStateRow.customer_id, losers)
            )
        )

    def _move_metrics(self, losers: list[str], moves: dict[str, str]) -> None:
        table = RelationshipMetrics.__table__
        rows = self.conn.execute(
            select(table).where(among(self.conn.dialect.name, table.c.customer_id, losers))
        ).all()
        if not rows:
            return
        self.conn.execute(
            delete(RelationshipMetrics).where(
                among(self.conn.dialect.name, RelationshipMetrics.customer_id, losers)
            )
        )
        for batch in _rounds(rows, moves, lambda r: moves[r.customer_id]):
            self.add_metrics({moves[r.customer_id]: dict(r._mapping) for r in batch})

    def _move_customers(self, losers: list[str], moves: dict[str, str]) -> None:
        """Winners keep their CRM attributes; a loser's fill the gaps."""
        table = Customer.__table__
        rows = self.conn.execute(
            select(table).where(among(self.conn.dialect.name, table.c.customer_id, losers))
        ).all()
        if not rows:
            return
        self.conn.execute(
            delete(Customer).where(among(self.conn.dialect.name, Customer.customer_id, losers))
        )
        now = rows[0].updated_at
        values = [
            {name: getattr(r, name) for name in CRM_FIELDS}
            | {"customer_id": moves[r.customer_id], "updated_at": now}
            for r in rows
        ]
        self.conn.execute(self.insert(Customer).on_conflict_do_nothing(), values)
        fill: dict[str, Any] = {
            name: func.coalesce(getattr(Customer, name), bindparam(f"v_{name}"))
            for name in CRM_FIELDS
            if name not in ("first_seen_at", "custom")
        }
        fill["first_seen_at"] = self.least(
            Customer.first_seen_at, bindparam("v_first_seen_at", type_=Customer.first_seen_at.type)
        )
        self.conn.execute(
            update(Customer).where(Customer.customer_id == bindparam("w")).values(**fill),
            [
                {f"v_{name}": v[name] for name in CRM_FIELDS if name != "custom"}
                | {"w": v["customer_id"]}
                for v in values
            ],
        )


def _rounds(rows: Sequence[Any], moves: dict[str, str], key: Any) -> list[list[Any]]:
    """``rows`` split so no round has two rows for one target (an upsert may not touch a row
    twice in one statement)."""
    rounds: list[tuple[set[Any], list[Any]]] = []
    for row in rows:
        k = key(row)
        for keys, batch in rounds:
            if k not in keys:
                keys.add(k)
                batch.append(row)
                break
        else:
            rounds.append(({k}, [row]))
    return [batch for _, batch in rounds]
