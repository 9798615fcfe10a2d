"""Import customers from a CRM export into the store (``ImportCustomers``): validate each
row, upsert customers by ``customer_id`` or email in batches, link their identifiers, and
report what was rejected and why.

Imported attributes land on the profile the identity stage builds from events: a CRM id is
followed through ``identities`` (kind ``customer_id``), and a customer matched by email
that is not known yet gets the id the identity stage gives a profile first seen by it."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

from sqlalchemy import Connection, Engine, func, select
from sqlalchemy.dialects import postgresql, sqlite

from services.crm.rows import (
    ATTRIBUTES,
    LINKED_KINDS,
    CustomerRecord,
    Rejected,
    SourceRow,
    validate,
)
from services.errors import CrmImportError
from services.identity.graph import generated_id, identifier_key
from services.store.models import Customer, Identity

Match = Literal["customer_id", "email"]


@dataclass(frozen=True, slots=True)
class Notice:
    """Something about an imported row worth knowing that did not stop it."""

    line: int
    message: str


@dataclass(slots=True)
class ImportReport:
    read: int = 0
    inserted: int = 0
    updated: int = 0
    rejected: list[Rejected] = field(default_factory=list)
    warnings: list[Notice] = field(default_factory=list)

    @property
    def imported(self) -> int:
        return self.inserted + self.updated


@dataclass(frozen=True, slots=True)
class _Item:
    line: int
    record: CustomerRecord
    target: str = ""


def import_customers(
    engine: Engine,
    rows: Iterable[SourceRow | Mapping[str, Any]],
    *,
    mapping: Mapping[str, str] | None = None,
    match: Match = "customer_id",
    now: datetime,
    batch_size: int = 1000,
    on_progress: Callable[[int], None] | None = None,
) -> ImportReport:
    """Validate and upsert ``rows`` (read rows, or plain mappings numbered from 1), one
    transaction per ``batch_size`` valid rows; ``on_progress`` gets how many rows were done."""
    if match not in ("customer_id", "email"):
        raise CrmImportError(f"cannot match customers by {match!r}; use customer_id or email")
    report = ImportReport()
    batch: list[_Item] = []
    pending = 0

    def flush() -> None:
        nonlocal pending
        if batch:
            with engine.begin() as conn:
                _Writer(conn, match, now, report).write(batch)
            batch.clear()
        if on_progress is not None and pending:
            on_progress(pending)
        pending = 0

    for row in rows:
        report.read += 1
        pending += 1
        source = row if isinstance(row, SourceRow) else SourceRow(report.read, dict(row))
        outcome = validate(source, mapping or {})
        if isinstance(outcome, Rejected):
            report.rejected.append(outcome)
        elif getattr(outcome, match) is None:
            report.rejected.append(Rejected(source.line, _missing(match), source.values))
        else:
            batch.append(_Item(source.line, outcome))
        if len(batch) >= batch_size or pending >= batch_size:
            flush()
    flush()
    return report


def _missing(match: Match) -> str:
    return (
        f"no {match}: with --match {match} every row needs one "
        f"(name its column with --map 'COLUMN={match}')"
    )


class _Writer:
    """One batch in one transaction."""

    def __init__(self, conn: Connection, match: Match, now: datetime, report: ImportReport):
        self.conn = conn
        self.match = match
        self.now = now
        self.report = report
        if conn.dialect.name not in ("postgresql", "sqlite"):
            raise CrmImportError(
                f"the CRM import writes to PostgreSQL or SQLite, not {conn.dialect.name}"
            )

    def insert(self, model: Any) -> Any:
        module = postgresql if self.conn.dialect.name == "postgresql" else sqlite
        return module.insert(model)

    def write(self, batch: list[_Item]) -> None:
        items = self._targets(batch)
        existing = self._existing({item.target for item in items})
        for round_ in _rounds(items):
            self._customers(round_, existing)
        self._identities(items)

    def _owners(self, kind: str, values: Iterable[str]) -> dict[str, str]:
        rows = self.conn.execute(
            select(Identity.value, Identity.customer_id).where(
                Identity.kind == kind, Identity.value.in_(sorted(set(values)))
            )
        )
        return dict(rows.all())

    def _targets(self, batch: list[_Item]) -> list[_Item]:
        """Each row with the customer it updates: the owner of its match key in
        ``identities``, else a new customer."""
        keys = [str(getattr(item.record, self.match)) for item in batch]
        owners = self._owners(self.match, keys)
        return [
            _Item(item.line, item.record, owners.get(key) or self._new_id(key))
            for item, key in zip(batch, keys, strict=True)
        ]

    def _new_id(self, key: str) -> str:
        """A new customer's id: its CRM id, or the id the identity stage gives a profile
        first seen by this email."""
        if self.match == "customer_id":
            return key
        return generated_id(identifier_key("email", key))

    def _existing(self, targets: set[str]) -> dict[str, dict[str, Any]]:
        """Customers already stored, with their custom attributes."""
        rows = self.conn.execute(
            select(Customer.customer_id, Customer.custom).where(
                Customer.customer_id.in_(sorted(targets))
            )
        )
        return {customer_id: dict(custom or {}) for customer_id, custom in rows}

    def _customers(self, items: list[_Item], existing: dict[str, dict[str, Any]]) -> None:
        values = []
        for item in items:
            custom = {**existing.get(item.target, {}), **item.record.custom}
            if item.target in existing:
                self.report.updated += 1
            else:
                self.report.inserted += 1
            existing[item.target] = custom
            values.append(
                {
                    "customer_id": item.target,
                    **{name: getattr(item.record, name) for name in ATTRIBUTES},
                    "custom": custom,
                    "crm_imported_at": self.now,
                    "updated_at": self.now,
                }
            )
        stmt = self.insert(Customer)
        keep = {
            name: func.coalesce(stmt.excluded[name], getattr(Customer, name)) for name in ATTRIBUTES
        }
        self.conn.execute(
            stmt.on_conflict_do_update(
                index_elements=[Customer.customer_id],
                set_={
                    **keep,
                    "custom": stmt.excluded.custom,
                    "crm_imported_at": stmt.excluded.crm_imported_at,
                    "updated_at": stmt.excluded.updated_at,
                },
            ),
            values,
        )

    def _identities(self, items: list[_Item]) -> None:
        """Link each row's identifiers to its customer, unless another customer has one."""
        kinds = [k for k in LINKED_KINDS if self.match == "customer_id" or k != "customer_id"]
        wanted = [(kind, value) for item in items for kind, value in item.record.identifiers()]
        owner: dict[tuple[str, str], str] = {}
        for kind in kinds:
            values = [value for k, value in wanted if k == kind]
            if values:
                owner.update(((kind, v), c) for v, c in self._owners(kind, values).items())
        new = []
        for item in items:
            for kind, value in item.record.identifiers():
                if kind not in kinds:
                    continue
                current = owner.get((kind, value))
                if current is None:
                    owner[(kind, value)] = item.target
                    new.append(
                        {
                            "kind": kind,
                            "value": value,
                            "customer_id": item.target,
                            "first_seen_at": self.now,
                        }
                    )
                elif current != item.target:
                    self.report.warnings.append(
                        Notice(
                            item.line,
                            f"{kind} {value} belongs to customer {current}; not linked to "
                            f"{item.target}",
                        )
                    )
        if new:
            self.conn.execute(self.insert(Identity).on_conflict_do_nothing(), new)


def _rounds(items: list[_Item]) -> list[list[_Item]]:
    """Items split so no customer appears twice in one statement (an upsert may touch a
    row once); later rows of a customer apply after earlier ones."""
    rounds: list[list[_Item]] = []
    seen: list[set[str]] = []
    for item in items:
        index = sum(1 for taken in seen if item.target in taken)
        if index == len(rounds):
            rounds.append([])
            seen.append(set())
        rounds[index].append(item)
        seen[index].add(item.target)
    return rounds
