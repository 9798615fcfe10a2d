"""The consumer-lag evaluation rules (after Burrow's) and the pipeline's health levels."""

from __future__ import annotations

import pytest

from services.ops.evaluate import (
    GroupState,
    LagStatus,
    Level,
    Observation,
    assess,
    evaluate_partition,
    worst,
)


def window(*points: tuple[int, int], every: float = 5.0) -> list[Observation]:
    """Samples ``every`` seconds apart from ``(committed, end)`` pairs."""
    return [Observation(i * every, committed, end) for i, (committed, end) in enumerate(points)]


def test_lag_is_end_less_committed_and_never_negative() -> None:
    assert Observation(0, committed=90, end=100).lag == 10
    assert Observation(0, committed=101, end=100).lag == 0  # end sampled before a commit


def test_rule_1_a_zero_lag_anywhere_in_the_window_is_ok() -> None:
    samples = window((10, 20), (20, 20), (20, 35), (20, 50), (20, 80))
    verdict = evaluate_partition(samples, size=5, members=0)
    assert verdict.status is LagStatus.OK
    assert "caught up" in verdict.reason


def test_rule_2_a_window_not_yet_full_is_ok() -> None:
    stuck = window((10, 20), (10, 25), (10, 30))
    verdict = evaluate_partition(stuck, size=5, members=0)
    assert verdict.status is LagStatus.OK
    assert "judged once 5 samples are in (3 now)" in verdict.reason
    assert evaluate_partition([], size=5, members=1).status is LagStatus.OK


def test_rule_3_no_progress_with_lag_and_no_consumer_is_stopped() -> None:
    stuck = window((10, 20), (10, 25), (10, 30), (10, 30), (10, 40))
    verdict = evaluate_partition(stuck, size=5, members=0)
    assert verdict.status is LagStatus.STOPPED
    assert verdict.reason == (
        "committed offset 10 unchanged for 20s with lag 30 and no consumer in the group"
    )


def test_rule_4_no_progress_with_lag_while_consumers_are_there_is_stalled() -> None:
    stuck = window((10, 20), (10, 20), (10, 20), (10, 20), (10, 20))
    assert evaluate_partition(stuck, size=5, members=2).status is LagStatus.STALLED
    # a member count the broker did not give is not taken for none
    assert evaluate_partition(stuck, size=5, members=None).status is LagStatus.STALLED


def test_rule_5_a_committed_offset_moving_back_warns() -> None:
    rewound = window((50, 60), (55, 70), (30, 75), (40, 80), (45, 90))
    verdict = evaluate_partition(rewound, size=5, members=1)
    assert verdict.status is LagStatus.WARN
    assert verdict.reason == "committed offset moved back from 55 to 30"


def test_rule_6_advancing_but_never_shrinking_lag_warns() -> None:
    falling_behind = window((10, 20), (15, 25), (20, 32), (25, 40), (30, 45))
    verdict = evaluate_partition(falling_behind, size=5, members=1)
    assert verdict.status is LagStatus.WARN
    assert "lag never shrank (10 -> 15 in 20s)" in verdict.reason


def test_rule_6_needs_the_lag_to_grow_a_level_lag_keeps_pace() -> None:
    keeping_pace = window((29, 30), (31, 32), (33, 34), (35, 36), (37, 38))
    verdict = evaluate_partition(keeping_pace, size=5, members=1)
    assert verdict.status is LagStatus.OK
    assert verdict.reason == "consuming, lag 1 -> 1 in 20s"


def test_rule_7_lag_that_shrinks_at_least_once_is_ok() -> None:
    catching_up = window((10, 200), (60, 220), (100, 250), (160, 260), (200, 300))
    verdict = evaluate_partition(catching_up, size=5, members=1)
    assert verdict.status is LagStatus.OK
    assert verdict.reason == "consuming, lag 190 -> 100 in 20s"


def test_one_sample_never_decides() -> None:
    """The same latest sample is judged differently by the trend that led to it."""
    last = (10, 40)
    caught_up_before = window((10, 10), (10, 20), (10, 25), (10, 30), last)
    stuck_throughout = window((10, 20), (10, 25), (10, 30), (10, 35), last)
    assert evaluate_partition(caught_up_before, size=5, members=0).status is LagStatus.OK
    assert evaluate_partition(stuck_throughout, size=5, members=0).status is LagStatus.STOPPED


def test_a_group_is_as_bad_as_its_worst_partition() -> None:
    assert worst([LagStatus.OK, LagStatus.STALLED, LagStatus.WARN]) is LagStatus.STALLED
    assert worst([LagStatus.STOPPED, LagStatus.STALLED]) is LagStatus.STOPPED
    assert worst([]) is LagStatus.OK


def group(status: LagStatus, members: int | None = 1, lag: int = 0) -> GroupState:
    return GroupState("ts", status, members, lag)


def test_everything_fine_is_healthy() -> None:
    verdict = assess(broker=None, groups=[group(LagStatus.OK), group(LagStatus.OK)], store=None)
    assert (verdict.level, verdict.problems) == (Level.healthy, ())
    assert int(Level.healthy) == 0


@pytest.mark.parametrize("status", [LagStatus.STALLED, LagStatus.STOPPED])
def test_a_stalled_or_stopped_group_is_down(status: LagStatus) -> None:
    verdict = assess(broker=None, groups=[group(LagStatus.OK), group(status, lag=7)], store=None)
    assert verdict.level is Level.down
    assert int(verdict.level) == 2
    assert verdict.problems == (f"group ts is {status} (lag 7)",)


def test_a_group_falling_behind_is_degraded() -> None:
    verdict = assess(broker=None, groups=[group(LagStatus.WARN, lag=3)], store=None)
    assert (verdict.level, verdict.problems) == (
        Level.degraded,
        ("group ts is falling behind (lag 3)",),
    )


def test_a_group_without_consumers_is_degraded_even_without_lag() -> None:
    assert assess(broker=None, groups=[group(LagStatus.OK, members=0)], store=None).level is (
        Level.degraded
    )
    assert assess(broker=None, groups=[group(LagStatus.OK, members=None)], store=None).level is (
        Level.healthy
    )


def test_an_unreachable_store_is_degraded_and_an_unreachable_broker_down() -> None:
    store_down = assess(broker=None, groups=[group(LagStatus.OK)], store="unreachable (refused)")
    assert (store_down.level, store_down.problems) == (
        Level.degraded,
        ("store: unreachable (refused)",),
    )
    broker_down = assess(broker="no answer", groups=[], store="unreachable")
    assert (broker_down.level, broker_down.problems) == (
        Level.down,
        ("broker: no answer", "store: unreachable"),
    )


def test_the_worst_problem_decides_and_all_are_listed() -> None:
    verdict = assess(
        broker=None, groups=[group(LagStatus.WARN), group(LagStatus.STOPPED)], store="unreachable"
    )
    assert verdict.level is Level.down
    assert len(verdict.problems) == 3
