"""A generated scenario through broker -> worker -> CRM sink -> PostgreSQL (issue 5's
acceptance): the store agrees with what the scenario's events say, customer by customer;
delivering the whole scenario again changes no count or sum; and a 30-second PostgreSQL
outage mid-stream ends with the same rows as a run without it."""

from __future__ import annotations

import random
import threading
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import pytest
import sqlalchemy as sa

from services.crm.service import sink_backlog, wait_sink
from services.crm.view import customer_360
from services.embedded.postgres import ThrowawayPostgres
from services.errors import SinkBehind
from services.settings import Settings
from services.simulate import Scenario, generate
from services.store.db import engine_for
from tests.support import scenario as pipeline
from tests.support.crm_truth import Truth, snapshot, truth
from tests.support.services import HEAVY, start_worker

pytestmark = [pytest.mark.broker, pytest.mark.timeout(600), HEAVY]

CUSTOMERS, DAYS = 300, 21
_baseline: dict[str, Any] = {}  # the snapshot of the run without an outage, for the outage test
# Which profiles merged (rather than linking directly) and which stage moves were seen
# depend on the order the identity coordinator read the raw partitions in, which differs
# from run to run; what the store holds about each customer does not.
ORDER_DEPENDENT = ("merges", "transitions", "stage_daily")


@pytest.fixture(scope="module")
def scenario() -> Scenario:
    return generate(CUSTOMERS, DAYS, seed=5)


def _crm_settings(settings: Settings, url: str) -> Settings:
    return settings.model_copy(update={"database_url": url, "watermark_idle_timeout": 10.0})


def wait_stored(settings: Settings, timeout: float = 180.0) -> None:
    """Until the sink has committed everything on its topics, and 2 s later what came
    meanwhile (the journey stage may still be sending the last flags when the first round
    ends)."""
    try:
        wait_sink(settings, settings.broker_url or "", timeout, rounds=2)
    except SinkBehind as error:
        raise AssertionError(str(error)) from None


def _events(scenario: Scenario) -> set[str]:
    return {e["event_id"] for e in scenario.events + scenario.closing}


def _run(settings: Settings, scenario: Scenario) -> None:
    expected = pipeline.expected_keys(scenario.expected)
    pipeline.run(settings, scenario.events, scenario.closing, expected, _events(scenario))
    wait_stored(settings)


def _check_customer(conn: sa.Connection, customer: str, t: Truth) -> list[str]:
    """What differs between the store and the truth for one customer."""
    problems = []
    ids = set(
        conn.execute(
            sa.text("SELECT kind, value FROM identities WHERE customer_id = :c"), {"c": customer}
        ).all()
    )
    if ids != t.identifiers:
        problems.append(f"identifiers {sorted(ids ^ t.identifiers)[:4]}")
    m = conn.execute(
        sa.text(
            "SELECT lifetime_spend, orders, returns, open_tickets, open_invoices, last_csat, "
            "last_nps, interactions FROM relationship_metrics WHERE customer_id = :c"
        ),
        {"c": customer},
    ).one_or_none()
    want = (t.spend, t.orders, t.returns, t.open_tickets, t.open_invoices, t.last_csat)
    want_rest = (t.last_nps, len(t.events))
    got = tuple(m) if m is not None else None
    if got is None or (Decimal(got[0]), *got[1:]) != (*want, *want_rest):
        problems.append(f"metrics {got} != {(*want, *want_rest)}")
    flags = {
        (rule, frozenset(e for e in evidence if e.startswith("sim-")))
        for rule, evidence in conn.execute(
            sa.select(sa.column("rule_id"), sa.column("evidence", sa.JSON))
            .select_from(sa.table("friction_events"))
            .where(sa.column("customer_id") == customer)
        ).all()
    }
    if flags != t.flags:
        problems.append(f"flags {sorted(flags ^ t.flags, key=str)[:3]}")
    stages: dict[str, str] = dict(
        conn.execute(
            sa.text("SELECT journey, stage FROM journey_states WHERE customer_id = :c"),
            {"c": customer},
        ).all()
    )
    if stages != t.stages:
        problems.append(f"stages {stages} != {t.stages}")
    return problems


def _check_truth(url: str, scenario: Scenario) -> dict[str, Truth]:
    """Every customer's rows against the scenario's truth; returns the truth."""
    truths = truth(scenario)
    engine = engine_for(url)
    try:
        with engine.connect() as conn:
            problems = {
                customer: p
                for customer, t in truths.items()
                if (p := _check_customer(conn, customer, t))
            }
    finally:
        engine.dispose()
    assert problems == {}, f"{len(problems)} of {len(truths)} customers differ: " + str(
        list(problems.items())[:5]
    )
    return truths


def test_the_store_agrees_with_the_scenario_and_a_redelivery_changes_nothing(
    settings: Settings, database_url: str, scenario: Scenario
) -> None:
    crm = _crm_settings(settings, database_url)
    worker = start_worker(crm)
    try:
        _run(crm, scenario)
        truths = _check_truth(database_url, scenario)
        engine = engine_for(database_url)
        for customer in random.Random(5).sample(sorted(truths), 25):  # the 360 view itself
            view = customer_360(engine, customer)
            assert view is not None, customer
            t = truths[customer]
            assert {(i.kind, i.value) for i in view.identifiers} == t.identifiers
            assert Decimal(view.metrics.lifetime_spend) == t.spend
            assert view.metrics.open_tickets == t.open_tickets
            assert {j: s.stage for j, s in view.journeys.items()} == t.stages
            shown = {
                (f.rule_id, frozenset(e for e in f.evidence if e.startswith("sim-")))
                for f in view.recent_friction
            }
            assert shown <= t.flags
            assert [i.occurred_at for i in view.interactions] == t.times[:20]
        first = snapshot(database_url)
        assert first["interactions"][0] == len(
            {e for t in truths.values() for e in t.events}
        ) + len({e["event_id"] for e in scenario.closing})
        _baseline["snapshot"] = first

        pipeline.emit(crm, scenario.events + scenario.closing)  # everything, once more
        counter = pipeline.ResolvedCounter(crm)
        try:
            counter.wait_for(2 * len(scenario.events + scenario.closing), 180)
        finally:
            counter.close()
        wait_stored(crm)
        assert snapshot(database_url) == first
    finally:
        worker.stop()


def _fresh_database(server_url: str, name: str) -> str:
    admin = sa.create_engine(server_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    admin.dispose()
    return sa.make_url(server_url).set(database=name).render_as_string(hide_password=False)


@pytest.fixture
def outage_postgres() -> Iterator[ThrowawayPostgres]:
    cluster = ThrowawayPostgres().start()
    yield cluster
    cluster.stop()


def test_a_30_second_store_outage_mid_stream_ends_with_the_same_rows(
    settings: Settings, outage_postgres: ThrowawayPostgres, scenario: Scenario
) -> None:
    if "snapshot" not in _baseline:  # run alone: make the run without an outage first
        other = settings.model_copy(
            update={"topic_prefix": "b" + settings.topic_prefix, "app_id": "b" + settings.app_id}
        )
        url = _fresh_database(outage_postgres.url, "baseline")
        baseline = _crm_settings(other, url)
        worker = start_worker(baseline, "baseline-worker")
        try:
            _run(baseline, scenario)
        finally:
            worker.stop()
        _baseline["snapshot"] = snapshot(url)
    crm = _crm_settings(settings, outage_postgres.url)
    worker = start_worker(crm)
    half = len(pipeline.by_day(scenario.events)) // 2
    seen: dict[str, Any] = {}

    def end_outage() -> None:  # 30 s after the store went down, mid-stream
        seen["alive"] = worker.alive()
        seen["backlog"] = sink_backlog(crm, crm.broker_url or "")
        outage_postgres.resume()

    def outage(day: int) -> None:
        if day == half:
            outage_postgres.pause()
            seen["timer"] = threading.Timer(30.0, end_outage)
            seen["timer"].start()

    try:
        expected = pipeline.expected_keys(scenario.expected)
        pipeline.run(
            crm, scenario.events, scenario.closing, expected, _events(scenario), before_chunk=outage
        )
        seen["timer"].join()
        assert seen["alive"], worker.tail(30)
        assert (seen["backlog"] or 0) > 0  # it waited for the store, it did not skip
        wait_stored(crm)
        assert worker.alive()
        assert "store unavailable, retrying" in worker.tail(400)
        _check_truth(outage_postgres.url, scenario)
        after, before = snapshot(outage_postgres.url), _baseline["snapshot"]
        for name in ORDER_DEPENDENT:  # how identity decisions fell, not what the store lost
            after.pop(name), before.pop(name)
        assert after == before
    finally:
        worker.stop()
