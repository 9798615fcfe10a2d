"""What a run that crashed must still end with: the store of a run nothing interrupted, the
scenario's ground truth customer by customer, every expected flag exactly once, and counters
that agree with the rows they count."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from services.simulate import Scenario
from tests.integration.test_crm_pipeline import ORDER_DEPENDENT, _check_truth
from tests.support import scenario as pipeline
from tests.support.crm_truth import (
    content_differences,
    contents,
    flag_differences,
    invariant_violations,
    snapshot,
    stored_flags,
)


@dataclass(frozen=True)
class Reference:
    """The store after the scenario went through the stages uninterrupted."""

    contents: dict[str, dict[tuple[Any, ...], tuple[Any, ...]]]
    snapshot: dict[str, Any]
    database: str  # on the session's cluster, kept until the session ends


def store_problems(
    url: str, scenario: Scenario, reference: Reference, raised: list[dict[str, Any]]
) -> dict[str, Any]:
    """Everything that differs from what an uninterrupted run gives (empty: nothing)."""
    problems: dict[str, Any] = {}
    event_ids = {e["event_id"] for e in scenario.events + scenario.closing}
    expected = pipeline.expected_keys(scenario.expected)

    # on the flags topic: each expected episode raised, under one flag id
    got = pipeline.raised_keys(raised, event_ids)
    on_topic = {
        "missing": sorted(expected - set(got), key=str)[:5],
        "unexpected": sorted(set(got) - expected, key=str)[:5],
        "raised under two ids": sorted((k for k, ids in got.items() if len(ids) > 1), key=str)[:5],
    }
    if any(on_topic.values()):
        problems["flags topic"] = on_topic

    # in the store: each expected episode exactly once, nothing else
    if found := flag_differences(stored_flags(url, event_ids), expected):
        problems["friction_events"] = found

    # every accepted event once: one interaction per distinct event id
    shot = snapshot(url)
    if shot["interactions"][0] != len(event_ids):
        problems["interactions"] = f"{shot['interactions'][0]} rows for {len(event_ids)} events"

    # the scenario's truth, customer by customer (test_crm_pipeline's check)
    try:
        _check_truth(url, scenario)
    except AssertionError as error:
        problems["customers"] = str(error)[:2000]

    # counters agree with the rows they count
    if broken := invariant_violations(url):
        problems["invariants"] = broken

    # every row of every table as in the uninterrupted run
    if differ := content_differences(contents(url), reference.contents):
        problems["rows"] = differ
    want, have = _comparable(reference.snapshot), _comparable(shot)
    if have != want:
        problems["snapshot"] = {
            name: _difference(have.get(name), value)
            for name, value in want.items()
            if have.get(name) != value
        }
    return problems


def _comparable(shot: dict[str, Any]) -> dict[str, Any]:
    """The snapshot without what follows the order the identity coordinator read the raw
    partitions in (test_crm_pipeline's ORDER_DEPENDENT), nor friction_daily's row count: a
    flag names the journey stage the customer was in when it was raised, which follows
    that order as transitions do, and friction_daily has a row per stage (its sums, and
    every flag's other fields, are compared in full)."""
    kept = {name: value for name, value in shot.items() if name not in ORDER_DEPENDENT}
    kept["friction_daily"] = kept["friction_daily"][1:]
    return kept


def _difference(got: Any, want: Any) -> Any:
    """``(got, want)``; for lists of rows, what is missing and what is extra."""
    if isinstance(got, list) and isinstance(want, list):
        missing, extra = set(want) - set(got), set(got) - set(want)
        return {
            "rows": (len(got), len(want)),
            "missing": sorted(missing, key=str)[:5],
            "extra": sorted(extra, key=str)[:5],
        }
    return (got, want)
