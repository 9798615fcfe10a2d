"""A generated omnichannel scenario through the real broker and real workers: the flags
raised equal the scenario's expected flags, with one worker, with two, and with the
billing feed six hours behind (issue 4's acceptance)."""

from __future__ import annotations

import itertools
from datetime import timedelta
from typing import Any

import pytest

from services.kafka import read_to_end
from services.settings import Settings
from services.simulate import Scenario, generate
from services.worker.journey import partition_of
from tests.support import scenario as pipeline
from tests.support.services import HEAVY, start_worker

# 24,000 events through real workers, a day at a time: 70-90 s each when run alone, but the
# two-worker run took ~280 s late in the full suite (shared broker, rebalances) and met the
# suite-wide 300 s cap twice; its flags were complete by then (worker logs)
pytestmark = [pytest.mark.broker, pytest.mark.timeout(600), HEAVY]

CUSTOMERS, DAYS = 1000, 21


@pytest.fixture(scope="module")
def scenario() -> Scenario:
    return generate(CUSTOMERS, DAYS, seed=11)


@pytest.fixture
def scenario_settings(settings: Settings) -> Settings:
    """A partition idle for 10 s (the default) is caught up; 2 s, the tests' default, could
    call a partition idle while its worker rebalances."""
    return settings.model_copy(update={"watermark_idle_timeout": 10.0})


def _run(settings: Settings, scenario: Scenario, body: list[dict[str, Any]]) -> None:
    event_ids = {e["event_id"] for e in scenario.events + scenario.closing}
    expected = pipeline.expected_keys(scenario.expected)
    raised = pipeline.run(settings, body, scenario.closing, expected, event_ids)
    got = pipeline.raised_keys(raised, event_ids)
    missing = sorted(expected - set(got), key=str)
    unexpected = sorted(set(got) - expected, key=str)
    twice = {key: ids for key, ids in got.items() if len(ids) > 1}
    report = (
        f"{len(missing)} missing, e.g. {missing[:5]}; {len(unexpected)} unexpected, "
        f"e.g. {unexpected[:5]}; {len(twice)} raised under two ids"
    )
    print(f"\n[scenario] {len(expected)} expected flags: {report}")
    assert (missing, unexpected, twice) == ([], [], {}), report
    _assert_customer_entries_stay_in_their_partition(settings)


def _assert_customer_entries_stay_in_their_partition(settings: Settings) -> None:
    """Every journey-table entry (state, held events, awaited transfers, merged-away ids) is
    in its customer's changelog partition: the partition a rebalance hands over with it."""
    topic = f"{settings.app_id}-journey-state-changelog"
    records = list(read_to_end(settings.broker_url or "", topic))
    control = [r for r in records if r.key.startswith(b"\x00")]
    assert control, "the scenario's merges leave control entries"
    misplaced = [
        (r.key, r.partition)
        for r in records
        if r.partition != partition_of(r.key, settings.partitions)
    ]
    assert misplaced == [], f"{len(misplaced)} of {len(records)} entries, e.g. {misplaced[:3]}"


def test_the_scenario_covers_what_the_acceptance_asks(scenario: Scenario) -> None:
    events = scenario.events
    assert len(scenario.people) >= CUSTOMERS
    assert {e["type"].partition(".")[0] for e in events} == {"web", "store", "billing", "support"}
    assert any(
        e["type"] == "web.login" and {"anonymous_id", "customer_id"} <= set(e["identity"])
        for e in events
    )
    ids = [e["event_id"] for e in events]
    assert len(ids) > len(set(ids)), "duplicates are delivered"
    assert any(a["occurred_at"] > b["occurred_at"] for a, b in itertools.pairwise(events)), "late"
    assert {f.rule_id for f in scenario.expected} >= {
        "payment_failed",
        "checkout_abandoned",
        "repeat_contact",
        "ticket_reopened",
        "support_sla_breach",
        "low_csat",
        "detractor_nps",
        "call_abandoned",
        "long_queue",
        "form_error_loop",
        "invoice_overdue",
        "return_after_purchase",
        "stage_stall",
        "digital_to_support",
    }


def test_one_worker_raises_exactly_the_expected_flags(
    scenario_settings: Settings, scenario: Scenario
) -> None:
    worker = start_worker(scenario_settings)
    try:
        _run(scenario_settings, scenario, scenario.events)
    finally:
        worker.stop()


def test_two_workers_raise_the_same_flags(scenario_settings: Settings, scenario: Scenario) -> None:
    first = start_worker(scenario_settings, "worker-1")
    second = start_worker(scenario_settings, "worker-2")
    try:
        _run(scenario_settings, scenario, scenario.events)
        assert first.alive()
        assert second.alive()
    finally:
        second.stop()
        first.stop()


def test_a_billing_feed_six_hours_behind_raises_nothing_a_timely_one_would_not(
    scenario_settings: Settings, scenario: Scenario
) -> None:
    lagging = scenario.delayed("billing", timedelta(hours=6))
    assert lagging != scenario.events
    worker = start_worker(scenario_settings)
    try:
        _run(scenario_settings, scenario, lagging)
    finally:
        worker.stop()
