"""The friction report on PostgreSQL and SQLite (issue 6's acceptance): over a generated
scenario run through the stages and the real CRM sink, its counts equal those worked out in
plain Python from the records the sink consumed and the friction_events rows; its CSV, JSON
and HTML agree; the HTML loads nothing from anywhere."""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

import orjson
import pytest
import sqlalchemy as sa
from sqlalchemy import Engine

from services.crm.sink import CrmSink
from services.crm.workflow import change_status
from services.errors import ReportError
from services.journeys.loader import default_maps_dir
from services.reports.friction import FrictionReport, friction_report, known_journeys
from services.reports.html import COLUMNS
from services.reports.outlines import journey_outlines
from services.reports.output import ReportFormat, render
from services.reports.period import Period, period_of
from services.settings import Settings
from services.simulate import generate
from services.simulate.inprocess import InProcessPipeline
from services.store.db import engine_for, upgrade
from tests.support import report_formats as formats
from tests.support.friction_store import (
    EXPECTED_ROWS,
    EXPECTED_TOTALS,
    SINCE,
    UNTIL,
    populate_friction,
)
from tests.support.stages import sink_all

NOW = datetime(2026, 4, 2, tzinfo=UTC)
OUTLINES = journey_outlines(Settings(journey_maps_dir=default_maps_dir()))[0]
Key = tuple[str, str, str]


@pytest.fixture(scope="module")
def records() -> list[tuple[str, bytes]]:
    """Four weeks of 300 customers through validate, identity and journey stages."""
    scenario = generate(300, 28, seed=11)
    return InProcessPipeline().run(scenario.events + scenario.closing)


@pytest.fixture
def store(store_url: str, records: list[tuple[str, bytes]]) -> Engine:
    """The scenario in a fresh store, through the real sink; every fifth flag acknowledged
    and every seventh resolved (the report counts flags whatever their status)."""
    upgrade(store_url)
    engine = engine_for(store_url)
    sink_all(CrmSink(engine, clock=lambda: NOW), records)
    with engine.connect() as conn:
        flag_ids = sorted(conn.execute(sa.text("SELECT flag_id FROM friction_events")).scalars())
    for n, flag_id in enumerate(flag_ids):
        if n % 5 == 0:
            change_status(engine, flag_id, "acknowledged", "looking", "qa", now=NOW)
        if n % 7 == 0:
            change_status(engine, flag_id, "resolved", "done", "qa", now=NOW)
    return engine


# -- the truth, in plain Python over the sink's input ----------------------------------------


@dataclass
class Truth:
    flags: Counter[Key] = field(default_factory=Counter)
    previous: Counter[Key] = field(default_factory=Counter)
    customers: dict[Key, set[str]] = field(default_factory=lambda: defaultdict(set))
    per_customer: dict[Key, Counter[str]] = field(default_factory=lambda: defaultdict(Counter))
    value: dict[Key, Decimal] = field(default_factory=lambda: defaultdict(Decimal))
    channels: dict[Key, Counter[str]] = field(default_factory=lambda: defaultdict(Counter))
    reached: dict[tuple[str, str], set[str]] = field(default_factory=lambda: defaultdict(set))
    entries: Counter[tuple[str, str]] = field(default_factory=Counter)
    days: Counter[date] = field(default_factory=Counter)
    everyone: set[str] = field(default_factory=set)


def _final(winner: dict[str, str], customer: str) -> str:
    for _ in range(len(winner) + 1):
        if customer not in winner:
            return customer
        customer = winner[customer]
    raise AssertionError(f"merge cycle at {customer}")


def truth(
    records: list[tuple[str, bytes]],
    stored_value: dict[str, Decimal],
    period: Period,
    journey: str | None,
) -> Truth:
    """What the report must say, from the flag, transition and merge records the sink read
    (each flag and transition once) and each flag's stored value at risk."""
    winner: dict[str, str] = {}
    flags: dict[str, dict[str, Any]] = {}
    moves: dict[tuple[str, str], dict[str, Any]] = {}
    for kind, raw in records:
        record = orjson.loads(raw)
        if kind == "identity" and record.get("kind") == "merge":
            winner.setdefault(record["loser"], record["winner"])
        elif kind == "flag":
            flags.setdefault(record["flag_id"], record)
        elif kind == "transition":
            moves.setdefault((record["event_id"], record["journey"]), record)
    start, end = period.start, period.end
    before = start - (end - start)
    t = Truth()
    for flag_id, f in flags.items():
        if journey is not None and f["journey"] != journey:
            continue
        at = datetime.fromisoformat(f["occurred_at"])
        key = (f["journey"], f["stage"] or "", f["rule_id"])
        customer = _final(winner, f["customer_id"])
        if start <= at < end:
            t.flags[key] += 1
            t.customers[key].add(customer)
            t.per_customer[key][customer] += 1
            t.value[key] += stored_value[flag_id]
            t.channels[key][f["channel"]] += 1
            t.days[at.astimezone(UTC).date()] += 1
            t.everyone.add(customer)
        elif before <= at < start:
            t.previous[key] += 1
    for m in moves.values():
        at = datetime.fromisoformat(m["occurred_at"])
        if (journey is None or m["journey"] == journey) and start <= at < end:
            t.reached[(m["journey"], m["to_stage"])].add(_final(winner, m["customer_id"]))
            t.entries[(m["journey"], m["to_stage"])] += 1
    return t


def stored_values(engine: Engine) -> dict[str, Decimal]:
    with engine.connect() as conn:
        rows = conn.execute(sa.text("SELECT flag_id, value_at_risk FROM friction_events")).all()
    return {flag_id: Decimal(str(value)).quantize(Decimal("0.01")) for flag_id, value in rows}


def check(report: FrictionReport, t: Truth) -> None:
    """Every row and total of ``report`` against the truth."""
    keys = set(t.flags) | set(t.previous)
    assert {(r.journey, r.stage or "", r.rule_id) for r in report.rows} == keys
    for r in report.rows:
        key = (r.journey, r.stage or "", r.rule_id)
        reached = len(t.reached[(r.journey, r.stage)]) if r.stage else None
        customers = len(t.customers[key])
        expected = {
            "flags": t.flags[key],
            "previous_flags": t.previous[key],
            "change": t.flags[key] - t.previous[key],
            "customers": customers,
            "value_at_risk": t.value[key],
            "reached": reached,
            "stage_entries": t.entries[(r.journey, r.stage)] if r.stage else None,
            "rate_per_1000": round(customers * 1000 / reached, 1) if reached else None,
        }
        got = {name: getattr(r, name) for name in expected}
        assert got == expected, key
        shown = {c.channel: c.flags for c in r.top_channels}
        assert shown.items() <= t.channels[key].items(), key
        assert len(shown) == min(3, len(t.channels[key]))
        assert min(shown.values(), default=0) >= max(
            (n for c, n in t.channels[key].items() if c not in shown), default=0
        )
        counts = t.per_customer[key]
        assert len(r.examples) == min(3, len(counts)), key
        for e in r.examples:
            assert e.flags == counts[e.customer_id], (key, e)
        left_out = [n for c, n in counts.items() if c not in {e.customer_id for e in r.examples}]
        assert all(e.flags >= max(left_out, default=0) for e in r.examples), key
    totals = report.totals
    assert (totals.flags, totals.previous_flags, totals.customers) == (
        sum(t.flags.values()),
        sum(t.previous.values()),
        len(t.everyone),
    )
    assert totals.value_at_risk == sum(t.value.values(), Decimal(0))
    assert {d.day: d.flags for d in report.daily if d.flags} == dict(t.days)
    by_stage = {(s.journey, s.stage or ""): s for s in report.stages}
    for (journey, stage), customers in t.reached.items():
        assert by_stage[(journey, stage)].reached == len(customers)
        assert by_stage[(journey, stage)].stage_entries == t.entries[(journey, stage)]


# -- the acceptance tests ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("since", "until", "journey"),
    [
        ("2026-03-16", "2026-03-30", None),
        ("2026-03-12T09:30:00+01:00", "2026-03-26T00:00:00Z", "purchase"),  # from 03-12 00:00
    ],
)
def test_counts_equal_the_flags_the_sink_consumed(
    store: Engine,
    records: list[tuple[str, bytes]],
    since: str,
    until: str,
    journey: str | None,
) -> None:
    period = period_of(since, until, NOW)
    report = friction_report(store, period, journey=journey, outlines=OUTLINES, now=NOW)
    t = truth(records, stored_values(store), period, journey)
    assert sum(t.flags.values()) > 20
    assert sum(t.previous.values()) > 10
    assert period.widened == (journey is not None)
    assert any(r.top_channels[1:] for r in report.rows) or journey is not None
    check(report, t)
    assert {r.journey for r in report.rows} == ({journey} if journey else set(OUTLINES))


def test_csv_json_and_html_agree(store: Engine) -> None:
    report = friction_report(
        store, period_of("2026-03-16", "2026-03-30", NOW), outlines=OUTLINES, now=NOW
    )
    json_rows, json_totals = formats.from_json(render(report, ReportFormat.json))
    csv_rows, csv_totals = formats.from_csv(render(report, ReportFormat.csv))
    html_rows, html_totals = formats.from_html(render(report, ReportFormat.html))
    assert len(json_rows) == len(report.rows) > 10
    assert csv_rows == json_rows
    shown = {name for name, _, _ in COLUMNS}
    assert html_rows == formats.common(json_rows, shown)
    assert csv_totals == json_totals == html_totals
    assert json_totals["flags"] == sum(r["flags"] for r in json_rows) == report.totals.flags


def test_the_html_page_is_self_contained(store: Engine) -> None:
    report = friction_report(
        store, period_of("2026-03-16", "2026-03-30", NOW), outlines=OUTLINES, now=NOW
    )
    page = render(report, ReportFormat.html)
    assert page.startswith("<!DOCTYPE html>")
    assert formats.external_references(page) == []
    assert page.count("<svg") == 2  # flags per stage and per day
    stages = [s for s in report.stages if s.flags]
    assert all(f"{s.journey} · {s.stage or '(no stage)'}" in page for s in stages)


# -- edge cases of the hand-made store --------------------------------------------------------


def test_bounds_merges_and_statuses(store_url: str) -> None:
    """Flags at ``since`` count and at ``until`` do not; a merged-away profile's flags and
    stage moves count for the survivor; acknowledged and resolved flags count."""
    upgrade(store_url)
    engine = engine_for(store_url)
    populate_friction(engine)
    report = friction_report(engine, period_of(SINCE, UNTIL, NOW), outlines=OUTLINES, now=NOW)
    rows, totals = formats.from_json(report.model_dump_json())
    assert rows == [formats.normalised(r) for r in EXPECTED_ROWS]
    assert totals == formats.normalised(EXPECTED_TOTALS)
    checkout = next(s for s in report.stages if s.stage == "checkout")
    assert (checkout.flags, checkout.previous_flags, checkout.reached) == (4, 2, 3)
    assert [
        (d.day.day, d.flags, d.previous_flags) for d in report.daily if d.flags or d.previous_flags
    ] == [
        (9, 1, 0),
        (10, 1, 1),
        (11, 1, 0),
        (12, 1, 0),
        (13, 1, 0),
        (14, 1, 0),
        (15, 0, 1),
    ]


def test_one_journey_and_an_unknown_one(store_url: str) -> None:
    upgrade(store_url)
    engine = engine_for(store_url)
    populate_friction(engine)
    period = period_of(SINCE, UNTIL, NOW)
    support = friction_report(engine, period, journey="support", outlines=OUTLINES, now=NOW)
    assert [(r.rule_id, r.flags) for r in support.rows] == [("detractor_nps", 1)]
    assert support.totals.customers == 1
    assert [s.stage for s in support.stages] == ["contact", "resolved", None]
    billing = friction_report(engine, period, journey="billing", outlines=OUTLINES, now=NOW)
    assert (billing.rows, billing.totals.flags) == ([], 0)  # mapped, no data yet: empty
    with pytest.raises(ReportError, match=r"no journey 'returns'; known journeys: billing, "):
        friction_report(engine, period, journey="returns", outlines=OUTLINES)
    assert known_journeys(engine) == ["purchase", "support"]  # the store alone


def test_an_empty_store_gives_an_empty_report(store_url: str) -> None:
    upgrade(store_url)
    report = friction_report(engine_for(store_url), period_of(None, None, NOW), now=NOW)
    assert (report.rows, report.stages, report.totals.flags) == ([], [], 0)
    assert report.since == NOW - timedelta(days=6)
    assert report.until == NOW + timedelta(days=1)
    assert len(report.daily) == 7
    assert report.totals.change_pct is None
    assert formats.external_references(render(report, ReportFormat.html)) == []
