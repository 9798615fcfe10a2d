"""The scenario generator: valid, deterministic, realistic delivery, and an oracle that the
journey engine agrees with, flag for flag."""

from __future__ import annotations

from collections import Counter, defaultdict
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import pytest
from typer.testing import CliRunner

from schemas.events import CHANNELS, EVENT_TYPES, decode_event

# Every command registered, as main() does, so `touchstream simulate` parses as it does there.
from services.cli import admin, app, config, events, friction, maps, simulate, stack  # noqa: F401
from services.identity.graph import generated_id, identifier_key
from services.journeys.engine import Engine
from services.journeys.loader import default_maps_dir, load_maps
from services.journeys.maps import AbsenceRule, CountRule, EventRule, SequenceRule
from services.journeys.stage import JourneyStage
from services.journeys.state import Touchpoint
from services.simulate import Scenario, generate, load, oracle
from services.simulate.people import Draft

MAPS = load_maps(default_maps_dir())
RULES = {rule.id: rule for journey in MAPS.values() for rule in journey.rules}
BATCH = 100  # events per journey-stage batch; deadlines are checked after each


@pytest.fixture(scope="module")
def scenario() -> Scenario:
    """The demo's size; how long it takes to make is bench/simulate.py's figure."""
    return generate(1000, 30)


def _at(event: dict[str, Any]) -> datetime:
    return datetime.fromisoformat(event["occurred_at"])


def _unique(scenario: Scenario) -> list[dict[str, Any]]:
    return list({e["event_id"]: e for e in scenario.events}.values())


def _by_person(scenario: Scenario) -> dict[str, list[dict[str, Any]]]:
    of = scenario.customer_of()
    people: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for event in sorted(_unique(scenario), key=_at):
        people[of(event)].append(event)
    return people


def test_a_thousand_customers_over_30_days_make_20_to_40_events_each(
    scenario: Scenario,
) -> None:
    per_customer = len(_unique(scenario)) / len(scenario.people)
    assert 20 <= per_customer <= 40
    assert len(scenario.people) == 1000
    assert sum(not p.known for p in scenario.people) == 100


def test_the_same_seed_gives_the_same_scenario_and_another_seed_another() -> None:
    first, again, other = generate(150, 20, seed=3), generate(150, 20, seed=3), generate(150, 20)
    assert first.events == again.events
    assert first.closing == again.closing
    assert first.expected == again.expected
    assert first.people == again.people
    assert first.events != other.events


def test_every_event_is_a_valid_v1_event_with_a_unique_id(scenario: Scenario) -> None:
    for event in [*scenario.events, *scenario.closing]:
        decode_event(orjson.dumps(event))
    ids = [e["event_id"] for e in [*_unique(scenario), *scenario.closing]]
    assert len(ids) == len(set(ids))
    assert ids[0].startswith("sim-7-")
    assert {e["source"] for e in scenario.events} >= {"web-shop", "billing-core", "support-desk"}


def test_all_four_channels_and_all_24_types_occur(scenario: Scenario) -> None:
    types = Counter(e["type"] for e in scenario.events)
    assert set(types) == set(EVENT_TYPES)
    assert {t.partition(".")[0] for t in types} == set(CHANNELS)


def test_every_rule_is_expected_several_times(scenario: Scenario) -> None:
    per_rule = Counter(f.rule_id for f in scenario.expected)
    assert set(per_rule) == set(RULES)
    assert min(per_rule.values()) >= 5, per_rule
    assert len(set(scenario.expected)) == len(scenario.expected)


def test_friction_is_a_minority(scenario: Scenario) -> None:
    flagged = {f.customer_id for f in scenario.expected if f.rule_id != "stage_stall"}
    assert 0.1 < len(flagged) / len(scenario.people) < 0.4


def test_thresholds_are_met_on_both_sides(scenario: Scenario) -> None:
    values: dict[str, set[int]] = defaultdict(set)
    for e in scenario.events:
        for key in ("score", "wait_seconds"):
            if key in e["attributes"]:
                values[e["type"]].add(e["attributes"][key])
    assert {2, 3} <= values["support.csat_submitted"]
    assert {6, 7} <= values["support.nps_submitted"]
    assert {119, 120} <= values["support.call_abandoned"]
    assert {599, 600} <= values["store.queue_wait"]


def test_checkouts_finish_at_minute_29_online_or_in_store_or_too_late(
    scenario: Scenario,
) -> None:
    finished: Counter[str] = Counter()
    for timeline in _by_person(scenario).values():
        for i, start in enumerate(timeline):
            if start["type"] != "web.checkout_started":
                continue
            done = next((e for e in timeline[i + 1 :] if e["type"] in oracle.PURCHASES), None)
            if done is None:
                continue
            minutes = (_at(done) - _at(start)).total_seconds() / 60
            if 28 < minutes <= 30:
                finished[f"{done['type']} at 29"] += 1
            elif 30 < minutes < 60:
                finished[f"{done['type']} late"] += 1
    assert finished["web.checkout_completed at 29"] >= 3
    assert finished["store.pos_sale at 29"] >= 1
    assert finished["web.checkout_completed late"] >= 3
    assert sum(1 for e in scenario.events if e["type"] == "store.pos_sale") > 100


def test_late_events_are_at_most_4_minutes_out_of_order(scenario: Scenario) -> None:
    latest = _at(scenario.events[0])
    behind = []
    for event in scenario.events:
        at = _at(event)
        behind.append((latest - at).total_seconds())
        latest = max(latest, at)
    assert max(behind) <= 240
    assert sum(b > 0 for b in behind) > 500  # really out of order, not only labelled late
    assert 0.02 < len(scenario.late) / len(_unique(scenario)) < 0.04
    assert all(1 <= s <= 240 for s in scenario.late.values())


def test_a_person_s_own_events_arrive_in_their_order(scenario: Scenario) -> None:
    of = scenario.customer_of()
    last: dict[str, datetime] = {}
    seen: set[str] = set()
    for event in scenario.events:
        if event["event_id"] in seen:
            continue  # the second copy of a duplicate
        seen.add(event["event_id"])
        who = of(event)
        assert last.get(who, _at(event)) <= _at(event)
        last[who] = _at(event)


def test_duplicates_are_identical_copies_sent_a_little_later(scenario: Scenario) -> None:
    positions: dict[str, list[int]] = defaultdict(list)
    for i, event in enumerate(scenario.events):
        positions[event["event_id"]].append(i)
    twice = {k: v for k, v in positions.items() if len(v) == 2}
    assert set(twice) == set(scenario.duplicates)
    assert max(len(v) for v in positions.values()) == 2
    assert 0.015 < len(twice) / len(positions) < 0.025
    for first, second in twice.values():
        assert scenario.events[first] == scenario.events[second]
        assert orjson.dumps(scenario.events[first]) == orjson.dumps(scenario.events[second])


def test_closing_clock_events_come_30_days_after_the_end_on_every_channel(
    scenario: Scenario,
) -> None:
    closing = scenario.closing
    assert Counter(e["type"].partition(".")[0] for e in closing) == dict.fromkeys(CHANNELS, 64)
    assert min(_at(e) for e in closing) >= scenario.end + timedelta(days=30)
    assert all(e["identity"]["customer_id"].startswith("clock-") for e in closing)
    assert max(_at(e) for e in scenario.events) < scenario.end


def test_anonymous_browsing_becomes_known_at_a_login_within_the_hour(scenario: Scenario) -> None:
    """A short anonymous stretch on a new device ends with a login carrying that device and
    the customer id; every other identifier is linked to the customer id before it is used
    on its own on a channel."""
    people = {p.final_id: p for p in scenario.people}
    stretches = 0
    for who, timeline in _by_person(scenario).items():
        person = people[who]
        if not person.known:
            assert len(person.anonymous_ids) == 1
            assert who == generated_id(identifier_key("anonymous_id", person.anonymous_ids[0]))
            assert all(e["identity"] == {"anonymous_id": person.anonymous_ids[0]} for e in timeline)
            continue
        linked: set[tuple[str, str, str]] = set()
        unknown: list[dict[str, Any]] = []
        for event in timeline:
            channel = event["type"].partition(".")[0]
            uses = {(channel, k, v) for k, v in event["identity"].items() if k != "customer_id"}
            if event["identity"].get("customer_id") == who:
                if unknown:
                    assert event["type"] == "web.login"
                    assert (
                        event["identity"]["anonymous_id"] == unknown[0]["identity"]["anonymous_id"]
                    )
                    assert _at(event) - _at(unknown[0]) < timedelta(hours=1)
                    stretches += 1
                    unknown = []
                linked |= uses
            elif not uses <= linked:
                assert list(event["identity"]) == ["anonymous_id"]
                unknown.append(event)
        assert not unknown
    assert stretches > 0.3 * sum(p.known for p in scenario.people)


def test_no_device_is_shared(scenario: Scenario) -> None:
    devices = [d for p in scenario.people for d in p.anonymous_ids]
    assert len(devices) == len(set(devices))


def test_a_lagging_channel_reorders_the_body_but_keeps_every_event(scenario: Scenario) -> None:
    lagging = scenario.delayed("billing", timedelta(hours=6))
    assert lagging != scenario.events
    assert Counter(orjson.dumps(e) for e in lagging) == Counter(
        orjson.dumps(e) for e in scenario.events
    )
    position = {id(e): i for i, e in enumerate(lagging)}
    first_billing = next(e for e in scenario.events if e["type"].startswith("billing."))
    after = [e for e in lagging[: position[id(first_billing)]] if _at(e) > _at(first_billing)]
    assert after  # other channels' later events now come first
    assert all(_at(e) <= _at(first_billing) + timedelta(hours=6, minutes=4) for e in after)
    with pytest.raises(ValueError, match="not a channel"):
        scenario.delayed("fax", timedelta(hours=1))


def test_write_and_load_round_trip(scenario: Scenario, tmp_path: Path) -> None:
    path = tmp_path / "month.jsonl"
    scenario.write(path)
    lines = path.read_bytes().splitlines()
    assert len(lines) == len(scenario.events) + len(scenario.closing)
    meta = orjson.loads((tmp_path / "month.meta.json").read_bytes())
    assert meta["seed"] == 7
    assert (meta["customers"], meta["days"]) == (1000, 30)
    assert meta["body_events"] == len(scenario.events)
    assert meta["closing_events"] == 256
    assert sum(meta["events_per_channel"].values()) == len(_unique(scenario))
    assert meta["expected_flags"] == dict(Counter(f.rule_id for f in scenario.expected))
    assert len((tmp_path / "month.expected.jsonl").read_bytes().splitlines()) == len(
        scenario.expected
    )
    assert {p["final_id"] for p in meta["people"]} == {p.final_id for p in scenario.people}
    loaded = load(path)
    assert loaded.events == scenario.events
    assert loaded.closing == scenario.closing
    assert loaded.expected == scenario.expected
    assert loaded.people == scenario.people
    assert (loaded.late, loaded.duplicates) == (scenario.late, scenario.duplicates)
    lag = timedelta(hours=3)
    assert loaded.delayed("store", lag) == scenario.delayed("store", lag)


def test_cli_writes_the_files_and_a_summary(tmp_path: Path) -> None:
    out = tmp_path / "small.jsonl"
    args = ["simulate", "--customers", "60", "--days", "10", "--out", str(out), "--seed", "5"]
    result = CliRunner().invoke(app, [*args, "--billing-delay", "6h"])
    assert result.exit_code == 0, result.output
    assert "expected flags" in result.output
    assert "billing 6h behind" in result.output
    assert "support" in result.output
    written = load(out)
    fresh = generate(60, 10, seed=5)
    assert written.events == fresh.delayed("billing", timedelta(hours=6))
    assert written.delay == ("billing", timedelta(hours=6))
    assert written.expected == fresh.expected


def _text(output: str) -> str:
    """CLI output without the error box's borders and line breaks."""
    return " ".join(output.replace("│", " ").split())


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--customers", "0"], "--customers"),
        (["--days", "0"], "--days"),
        (["--billing-delay", "six hours"], "not a duration"),
    ],
)
def test_cli_refuses_bad_numbers(tmp_path: Path, args: list[str], message: str) -> None:
    result = CliRunner().invoke(app, ["simulate", "--out", str(tmp_path / "x.jsonl"), *args])
    assert result.exit_code == 2
    assert message in _text(result.output)


def test_cli_refuses_a_missing_directory(tmp_path: Path) -> None:
    out = tmp_path / "missing" / "x.jsonl"
    result = CliRunner().invoke(app, ["simulate", "--customers", "5", "--out", str(out)])
    assert result.exit_code == 2
    assert "does not exist; create it or choose another --out" in _text(result.output)
    assert not out.parent.exists()


def test_generate_refuses_nonsense() -> None:
    with pytest.raises(ValueError, match="at least 1"):
        generate(0, 30)
    with pytest.raises(ValueError, match="late_share"):
        generate(10, 30, late_share=2)
    with pytest.raises(ValueError, match="midnight"):
        generate(10, 30, start=datetime(2026, 3, 2, 12))


def test_the_oracle_reads_the_shipped_thresholds() -> None:
    def when(rule_id: str) -> tuple[str, object]:
        rule = RULES[rule_id]
        assert isinstance(rule, EventRule)
        assert rule.when is not None
        return rule.when.op, rule.when.value

    assert when("low_csat") == ("<=", oracle.LOW_CSAT)
    assert when("detractor_nps") == ("<=", oracle.DETRACTOR_NPS)
    assert when("call_abandoned") == (">=", oracle.CALL_WAIT)
    assert when("long_queue") == (">=", oracle.QUEUE_WAIT)
    loop, repeat = RULES["form_error_loop"], RULES["repeat_contact"]
    assert isinstance(loop, CountRule)
    assert isinstance(repeat, CountRule)
    assert (loop.count, loop.within) == (oracle.FORM_ERRORS, oracle.FORM_ERRORS_WITHIN)
    assert (repeat.count, repeat.within) == (oracle.TICKETS, oracle.TICKETS_WITHIN)
    for rule_id, within in (
        ("checkout_abandoned", oracle.CHECKOUT_WITHIN),
        ("support_sla_breach", oracle.SLA),
    ):
        absence = RULES[rule_id]
        assert isinstance(absence, AbsenceRule)
        assert absence.within == within
    for rule_id, within in (
        ("return_after_purchase", oracle.RETURN_WITHIN),
        ("digital_to_support", oracle.FOLLOW_UP_WITHIN),
    ):
        sequence = RULES[rule_id]
        assert isinstance(sequence, SequenceRule)
        assert sequence.within == within
    purchase = MAPS["purchase"]
    assert {t: s.id for s in purchase.stages for t in s.entered_by} == oracle.PURCHASE_STAGES
    assert {s.id: s.budget for s in purchase.stages if s.budget} == oracle.BUDGETS


def test_the_oracle_refuses_overlapping_checkouts() -> None:
    t0 = datetime.fromisoformat("2026-03-02T10:00:00Z")
    starts = [
        Draft("web.checkout_started", t0 + timedelta(minutes=m), {}, {}, "web-shop")
        for m in (0, 40)
    ]
    with pytest.raises(oracle.Ambiguous):
        oracle.derive(starts)


Flagged = set[tuple[str, str, frozenset[str], datetime]]


def engine_flags(scenario: Scenario, body: list[dict[str, Any]]) -> Flagged:
    """The flags the journey stage raises when the body, then the closing events, arrive in
    batches with a deadline check after each, as in the worker. Each event is applied under
    its person's final id (identity resolution is not under test here)."""
    of = scenario.customer_of()
    stage = JourneyStage(Engine(MAPS), {})
    raised: dict[str, dict[str, Any]] = {}
    for stream in (body, scenario.closing):
        for i in range(0, len(stream), BATCH):
            batch = [
                (of(e), Touchpoint(e["event_id"], e["type"], _at(e), e["attributes"]))
                for e in stream[i : i + BATCH]
            ]
            for out in [*stage.apply(batch), *stage.tick()]:
                if out.route == "flags":
                    flag = orjson.loads(out.value)
                    raised.setdefault(flag["flag_id"], flag)
    ids = {e["event_id"] for e in body}
    return {
        (
            f["customer_id"],
            f["rule_id"],
            frozenset(set(f["evidence"]) & ids),  # digital_to_support also names a flag id
            datetime.fromisoformat(f["occurred_at"]),
        )
        for f in raised.values()
    }


def expected_flags(scenario: Scenario) -> Flagged:
    return {
        (f.customer_id, f.rule_id, frozenset(f.evidence), f.occurred_at) for f in scenario.expected
    }


def _difference(got: Flagged, expected: Flagged) -> str:
    return f"engine only: {sorted(got - expected)[:5]}; oracle only: {sorted(expected - got)[:5]}"


def test_the_engine_raises_exactly_the_expected_flags(scenario: Scenario) -> None:
    got, expected = engine_flags(scenario, scenario.events), expected_flags(scenario)
    assert got == expected, _difference(got, expected)
    assert not any(customer.startswith("clock-") for customer, *_ in got)


@pytest.mark.parametrize("channel", CHANNELS)
def test_a_channel_lagging_6_hours_raises_nothing_more_or_less(
    scenario: Scenario, channel: str
) -> None:
    body = scenario.delayed(channel, timedelta(hours=6))
    got, expected = engine_flags(scenario, body), expected_flags(scenario)
    assert got == expected, _difference(got, expected)
