"""The friction report: where journeys hurt, for whom, and how it moved against the period
before, per journey, stage and rule.

Counts and sums come from the CRM sink's pre-aggregated tables: flags and value at risk from
``friction_daily``, stage entries from ``stage_daily``. What a daily table cannot say comes
from indexed reads of the period only: distinct customers affected and example customers
from ``friction_events`` (index on status and event time), customers who reached a stage
from ``journey_transitions``. ``interactions`` is never read."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

from pydantic import BaseModel, ConfigDict
from sqlalchemy import Connection, Engine, case, func, select, union
from sqlalchemy.sql.elements import ColumnElement

from services.errors import ReportError
from services.reports.period import Period
from services.store.models import FrictionDaily, FrictionEvent, JourneyTransition, StageDaily

__all__ = [
    "ChannelFlags",
    "DayLine",
    "ExampleCustomer",
    "FrictionReport",
    "FrictionRow",
    "JourneyOutline",
    "StageLine",
    "Totals",
    "friction_report",
    "known_journeys",
]

STATUSES = ("open", "acknowledged", "resolved")  # every flag, whatever its workflow status
SEVERITIES = ("low", "medium", "high")  # ranked; an unknown one counts as low
TOP_CHANNELS = 3
EXAMPLES = 3
CENT = Decimal("0.01")


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True)


class ChannelFlags(_Frozen):
    channel: str
    flags: int


class ExampleCustomer(_Frozen):
    """A customer with flags of the row in the period: flags and their value at risk."""

    customer_id: str
    flags: int
    value_at_risk: Decimal


class FrictionRow(_Frozen):
    """One rule at one stage of one journey in the period (see docs/reports.md)."""

    journey: str
    stage: str | None
    rule_id: str
    severity: str | None
    flags: int
    customers: int
    reached: int | None
    stage_entries: int | None
    rate_per_1000: float | None
    value_at_risk: Decimal
    previous_flags: int
    change: int
    change_pct: float | None
    top_channels: list[ChannelFlags]
    examples: list[ExampleCustomer]


class StageLine(_Frozen):
    """A journey stage: its flags (all rules) now and before, entries and reach."""

    journey: str
    stage: str | None
    flags: int
    previous_flags: int
    value_at_risk: Decimal
    stage_entries: int | None
    reached: int | None


class DayLine(_Frozen):
    """One UTC day of the period, and the same day of the previous period."""

    day: date
    flags: int
    value_at_risk: Decimal
    previous_flags: int


class Totals(_Frozen):
    flags: int
    customers: int
    value_at_risk: Decimal
    previous_flags: int
    change: int
    change_pct: float | None


class FrictionReport(_Frozen):
    """The report for ``since`` to ``until`` (exclusive), against ``previous_since`` to
    ``since``; one journey or all (``journey`` null)."""

    journey: str | None
    since: datetime
    until: datetime
    previous_since: datetime
    days: int
    generated_at: datetime
    totals: Totals
    rows: list[FrictionRow]
    stages: list[StageLine]
    daily: list[DayLine]


@dataclass(frozen=True, slots=True)
class JourneyOutline:
    """What the journey maps say of a journey: stages in funnel order, each rule's severity.
    Used to order the report and to name journeys that have no data yet."""

    stages: tuple[str, ...]
    severities: Mapping[str, str] = field(default_factory=dict)


Outlines = Mapping[str, JourneyOutline]


def _connection(source: Engine | Connection) -> Connection:
    if isinstance(source, Connection):
        return source
    conn = source.connect()
    if source.dialect.name == "postgresql":  # one snapshot for every query of the report
        conn = conn.execution_options(isolation_level="REPEATABLE READ")
    return conn


def known_journeys(source: Engine | Connection, outlines: Outlines | None = None) -> list[str]:
    """Journeys in the maps and journeys the daily tables have rows for, sorted."""
    conn = _connection(source)
    try:
        stored = conn.execute(
            union(select(FrictionDaily.journey).distinct(), select(StageDaily.journey).distinct())
        ).scalars()
        return sorted(set(stored) | set(outlines or {}))
    finally:
        if conn is not source:
            conn.close()


def friction_report(
    source: Engine | Connection,
    period: Period,
    *,
    journey: str | None = None,
    outlines: Outlines | None = None,
    now: datetime | None = None,
) -> FrictionReport:
    """The friction report for ``period`` and ``journey`` (None: every journey). Raises
    :class:`ReportError` for a journey neither the maps (``outlines``) nor the store know."""
    outlines = outlines or {}
    conn = _connection(source)
    try:
        if journey is not None:
            known = known_journeys(conn, outlines)
            if journey not in known:
                raise ReportError(
                    f"no journey {journey!r}; known journeys: {', '.join(known) or 'none yet'}"
                )
        q = _Queries(conn, period, journey)
        return _assemble(q, period, journey, outlines, now or datetime.now(UTC))
    finally:
        if conn is not source:
            conn.close()


# -- queries ----------------------------------------------------------------------------------

Key = tuple[str, str, str]  # journey, stage ("" for none), rule
StageKey = tuple[str, str]


@dataclass
class _Affected:
    customers: int = 0
    severity: str | None = None
    examples: list[ExampleCustomer] = field(default_factory=list)


class _Queries:
    """The report's reads, each a GROUP BY over one table and the period (and the previous
    one for flags)."""

    def __init__(self, conn: Connection, period: Period, journey: str | None) -> None:
        self.conn, self.period, self.journey = conn, period, journey

    def _journey(self, column: Any) -> list[ColumnElement[bool]]:
        return [column == self.journey] if self.journey is not None else []

    def flags(self) -> list[Any]:
        """Per journey, stage, rule and channel: flags and value at risk now, flags before."""
        fd, p = FrictionDaily, self.period
        current = fd.day >= p.since
        return list(
            self.conn.execute(
                select(
                    fd.journey,
                    fd.stage,
                    fd.rule_id,
                    fd.channel,
                    func.sum(case((current, fd.flags), else_=0)).label("flags"),
                    func.sum(case((current, fd.value_at_risk), else_=0)).label("value_at_risk"),
                    func.sum(case((current, 0), else_=fd.flags)).label("previous"),
                )
                .where(fd.day >= p.previous_since, fd.day < p.until, *self._journey(fd.journey))
                .group_by(fd.journey, fd.stage, fd.rule_id, fd.channel)
            )
        )

    def days(self) -> list[Any]:
        fd, p = FrictionDaily, self.period
        return list(
            self.conn.execute(
                select(fd.day, func.sum(fd.flags), func.sum(fd.value_at_risk))
                .where(fd.day >= p.previous_since, fd.day < p.until, *self._journey(fd.journey))
                .group_by(fd.day)
            )
        )

    def entries(self) -> dict[StageKey, int]:
        sd, p = StageDaily, self.period
        rows = self.conn.execute(
            select(sd.journey, sd.stage, func.sum(sd.entered))
            .where(sd.day >= p.since, sd.day < p.until, *self._journey(sd.journey))
            .group_by(sd.journey, sd.stage)
        )
        return {(j, s): int(n) for j, s, n in rows}

    def reached(self) -> dict[StageKey, int]:
        """Distinct customers with a move into each stage in the period."""
        jt, p = JourneyTransition, self.period
        rows = self.conn.execute(
            select(jt.journey, jt.to_stage, func.count(jt.customer_id.distinct()))
            .where(jt.occurred_at >= p.start, jt.occurred_at < p.end, *self._journey(jt.journey))
            .group_by(jt.journey, jt.to_stage)
        )
        return {(j, s): int(n) for j, s, n in rows}

    def _events(self) -> list[ColumnElement[bool]]:
        fe, p = FrictionEvent, self.period
        return [
            fe.status.in_(STATUSES),
            fe.occurred_at >= p.start,
            fe.occurred_at < p.end,
            *self._journey(fe.journey),
        ]

    def customers(self) -> int:
        fe = FrictionEvent
        found = self.conn.execute(
            select(func.count(fe.customer_id.distinct())).where(*self._events())
        ).scalar()
        return int(found or 0)

    def affected(self) -> dict[Key, _Affected]:
        """Per row: distinct customers, the highest severity, the customers with the most
        flags (then the most value at risk) as examples."""
        fe = FrictionEvent
        stage = func.coalesce(fe.stage, "")
        rank = case(*((fe.severity == s, n) for n, s in enumerate(SEVERITIES)), else_=0)
        per = (
            select(
                fe.journey,
                stage.label("stage"),
                fe.rule_id,
                fe.customer_id,
                func.count().label("flags"),
                func.sum(fe.value_at_risk).label("value_at_risk"),
                func.max(rank).label("severity"),
            )
            .where(*self._events())
            .group_by(fe.journey, stage, fe.rule_id, fe.customer_id)
            .subquery()
        )
        row = (per.c.journey, per.c.stage, per.c.rule_id)
        order = (per.c.flags.desc(), per.c.value_at_risk.desc(), per.c.customer_id)
        ranked = select(
            per,
            func.row_number().over(partition_by=row, order_by=order).label("place"),
            func.count().over(partition_by=row).label("customers"),
            func.max(per.c.severity).over(partition_by=row).label("top_severity"),
        ).subquery()
        found: dict[Key, _Affected] = defaultdict(_Affected)
        for r in self.conn.execute(
            select(ranked).where(ranked.c.place <= EXAMPLES).order_by(ranked.c.place)
        ):
            a = found[(r.journey, r.stage, r.rule_id)]
            a.customers, a.severity = int(r.customers), SEVERITIES[int(r.top_severity)]
            a.examples.append(
                ExampleCustomer(
                    customer_id=r.customer_id,
                    flags=int(r.flags),
                    value_at_risk=_money(r.value_at_risk),
                )
            )
        return dict(found)


# -- assembling -------------------------------------------------------------------------------


def _money(value: Any) -> Decimal:
    return Decimal(value or 0).quantize(CENT)


def _change_pct(now: int, before: int) -> float | None:
    return round((now - before) * 100 / before, 1) if before else None


def _rate(customers: int, reached: int | None) -> float | None:
    return round(customers * 1000 / reached, 1) if reached else None


@dataclass
class _Sums:
    flags: int = 0
    value: Decimal = field(default_factory=Decimal)
    previous: int = 0
    channels: dict[str, int] = field(default_factory=dict)


def _assemble(
    q: _Queries, period: Period, journey: str | None, outlines: Outlines, now: datetime
) -> FrictionReport:
    sums: dict[Key, _Sums] = defaultdict(_Sums)
    for j, s, r, channel, flags, value, previous in q.flags():
        total = sums[(j, s, r)]
        total.flags += int(flags)
        total.value += Decimal(value or 0)
        total.previous += int(previous)
        if flags:
            total.channels[channel] = total.channels.get(channel, 0) + int(flags)
    entries, reached, affected = q.entries(), q.reached(), q.affected()
    order = _Order(outlines)
    rows = [
        _row(key, total, affected.get(key, _Affected()), entries, reached, outlines)
        for key, total in sorted(sums.items(), key=lambda kv: order.row(kv[0], kv[1].flags))
    ]
    stages = _stages(rows, entries, reached, outlines, journey, order)
    flags = sum(r.flags for r in rows)
    previous = sum(r.previous_flags for r in rows)
    totals = Totals(
        flags=flags,
        customers=q.customers(),
        value_at_risk=_money(sum((r.value_at_risk for r in rows), Decimal(0))),
        previous_flags=previous,
        change=flags - previous,
        change_pct=_change_pct(flags, previous),
    )
    return FrictionReport(
        journey=journey,
        since=period.start,
        until=period.end,
        previous_since=period.previous_start,
        days=period.days,
        generated_at=now.astimezone(UTC),
        totals=totals,
        rows=rows,
        stages=stages,
        daily=_daily(q.days(), period),
    )


def _row(
    key: Key,
    total: _Sums,
    found: _Affected,
    entries: Mapping[StageKey, int],
    reached: Mapping[StageKey, int],
    outlines: Outlines,
) -> FrictionRow:
    journey, stage, rule = key
    staged = bool(stage)
    reach = reached.get((journey, stage), 0) if staged else None
    outline = outlines.get(journey)
    channels = sorted(total.channels.items(), key=lambda c: (-c[1], c[0]))[:TOP_CHANNELS]
    return FrictionRow(
        journey=journey,
        stage=stage or None,
        rule_id=rule,
        severity=found.severity or (outline.severities.get(rule) if outline else None),
        flags=total.flags,
        customers=found.customers,
        reached=reach,
        stage_entries=entries.get((journey, stage), 0) if staged else None,
        rate_per_1000=_rate(found.customers, reach),
        value_at_risk=_money(total.value),
        previous_flags=total.previous,
        change=total.flags - total.previous,
        change_pct=_change_pct(total.flags, total.previous),
        top_channels=[ChannelFlags(channel=c, flags=n) for c, n in channels],
        examples=found.examples,
    )


class _Order:
    """Journeys in map order (then by name), stages in funnel order (then by name, no stage
    last), rules by flags (most first) then id."""

    def __init__(self, outlines: Outlines) -> None:
        self.outlines = outlines
        self.journeys = {name: n for n, name in enumerate(outlines)}

    def stage(self, journey: str, stage: str) -> tuple[int, str, int, str]:
        outline = self.outlines.get(journey)
        stages = outline.stages if outline else ()
        place = stages.index(stage) if stage in stages else len(stages)
        first = self.journeys.get(journey, len(self.journeys))
        return (first, journey, place if stage else len(stages) + 1, stage)

    def row(self, key: Key, flags: int) -> tuple[Any, ...]:
        return (*self.stage(key[0], key[1]), -flags, key[2])


def _stages(
    rows: Sequence[FrictionRow],
    entries: Mapping[StageKey, int],
    reached: Mapping[StageKey, int],
    outlines: Outlines,
    journey: str | None,
    order: _Order,
) -> list[StageLine]:
    keys: set[StageKey] = {(r.journey, r.stage or "") for r in rows} | set(entries) | set(reached)
    for name, outline in outlines.items():
        if journey is None or name == journey:
            keys |= {(name, s) for s in outline.stages}
    lines = []
    for j, s in sorted(keys, key=lambda k: order.stage(*k)):
        mine = [r for r in rows if r.journey == j and (r.stage or "") == s]
        lines.append(
            StageLine(
                journey=j,
                stage=s or None,
                flags=sum(r.flags for r in mine),
                previous_flags=sum(r.previous_flags for r in mine),
                value_at_risk=_money(sum((r.value_at_risk for r in mine), Decimal(0))),
                stage_entries=entries.get((j, s), 0) if s else None,
                reached=reached.get((j, s), 0) if s else None,
            )
        )
    return lines


def _daily(rows: Sequence[Any], period: Period) -> list[DayLine]:
    by_day = {_as_date(day): (int(flags), Decimal(value or 0)) for day, flags, value in rows}
    lines = []
    for day in period.each_day():
        flags, value = by_day.get(day, (0, Decimal(0)))
        before = by_day.get(day - (period.until - period.since), (0, Decimal(0)))[0]
        lines.append(
            DayLine(day=day, flags=flags, value_at_risk=_money(value), previous_flags=before)
        )
    return lines


def _as_date(value: Any) -> date:
    """A ``day`` value as a date (SQLite may hand back its text form)."""
    return value if isinstance(value, date) else date.fromisoformat(str(value))
