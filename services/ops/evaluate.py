"""Consumer lag evaluation over a window of samples, after Burrow's rules, as pure functions.

Each sample of a partition holds the group's committed offset and the partition's end (high
watermark); the lag is their difference. A partition is judged on the trend across the
window, never on one sample (docs/operations.md):

1. **OK** when the lag was zero in any sample of the window: the group caught up.
2. **OK** while the window is not full yet: too few samples to tell a trend.
3. **STOPPED** when the committed offset never moved, the lag stayed above zero, and the group
   has no member: nobody consumes.
4. **STALLED** when the committed offset never moved and the lag stayed above zero while the
   group has members: a consumer holds the partition but does not get on.
5. **WARN** when the committed offset moved back (a reset or a rewind).
6. **WARN** when the offsets advance but the lag never shrank from one sample to the next
   and ended higher than it began: the group consumes, slower than records arrive.
7. **OK** otherwise: the lag shrank at least once (catching up), or it stayed level while
   the offsets advanced (keeping pace).

Rule 6 is stricter than Burrow's, which also warns about a level lag: here the journey stage
reads a watermark record every few seconds per partition, between its commits, so a healthy
stage shows a lag of 1 that neither grows nor shrinks.

A group is as bad as its worst partition. The health of the whole pipeline follows from the
groups, the broker and the store: see :func:`assess`.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from enum import IntEnum, StrEnum
from itertools import pairwise

__all__ = [
    "Assessment",
    "GroupState",
    "LagStatus",
    "Level",
    "Observation",
    "Verdict",
    "assess",
    "evaluate_partition",
    "worst",
]


class LagStatus(StrEnum):
    """A group's or partition's status, from best to worst."""

    OK = "OK"
    WARN = "WARN"
    STALLED = "STALLED"
    STOPPED = "STOPPED"

    @property
    def rank(self) -> int:
        return list(LagStatus).index(self)


class Level(IntEnum):
    """The pipeline's health; the value is the exit code of ``touchstream health``."""

    healthy = 0
    degraded = 1
    down = 2


@dataclass(frozen=True, slots=True)
class Observation:
    """One sample of a partition for a group: when (seconds), the committed offset (the log
    start when the group never committed) and the partition's end offset."""

    at: float
    committed: int
    end: int

    @property
    def lag(self) -> int:
        return max(0, self.end - self.committed)


@dataclass(frozen=True, slots=True)
class Verdict:
    status: LagStatus
    reason: str


def evaluate_partition(window: Sequence[Observation], *, size: int, members: int | None) -> Verdict:
    """The status of one partition from its ``window`` of samples, oldest first. ``size`` is
    the number of samples a full window holds; ``members`` the group's member count (None:
    unknown, which is never taken for none)."""
    if not window:
        return Verdict(LagStatus.OK, "no sample yet")
    lags = [o.lag for o in window]
    if 0 in lags:
        return Verdict(LagStatus.OK, f"caught up within the window (lag now {lags[-1]})")
    if len(window) < size:
        return Verdict(
            LagStatus.OK, f"lag {lags[-1]}; judged once {size} samples are in ({len(window)} now)"
        )
    first, last = window[0], window[-1]
    span = last.at - first.at
    committed = [o.committed for o in window]
    if all(offset == first.committed for offset in committed):
        where = f"committed offset {first.committed} unchanged for {span:.0f}s with lag {lags[-1]}"
        if members == 0:
            return Verdict(LagStatus.STOPPED, f"{where} and no consumer in the group")
        return Verdict(LagStatus.STALLED, f"{where} while the group has consumers")
    for before, after in pairwise(committed):
        if after < before:
            return Verdict(LagStatus.WARN, f"committed offset moved back from {before} to {after}")
    if lags[-1] > lags[0] and all(after >= before for before, after in pairwise(lags)):
        return Verdict(
            LagStatus.WARN,
            f"falling behind: offsets advance but the lag never shrank ({lags[0]} -> {lags[-1]} "
            f"in {span:.0f}s)",
        )
    return Verdict(LagStatus.OK, f"consuming, lag {lags[0]} -> {lags[-1]} in {span:.0f}s")


def worst(statuses: Iterable[LagStatus]) -> LagStatus:
    """The worst of ``statuses``; OK when there are none."""
    return max(statuses, key=lambda s: s.rank, default=LagStatus.OK)


@dataclass(frozen=True, slots=True)
class GroupState:
    """What :func:`assess` needs of a consumer group: its status, its members (None:
    unknown) and its total lag."""

    group: str
    status: LagStatus
    members: int | None
    lag: int


@dataclass(frozen=True, slots=True)
class Assessment:
    level: Level
    problems: tuple[str, ...]


def assess(
    *,
    broker: str | None,
    groups: Sequence[GroupState],
    store: str | None,
) -> Assessment:
    """The pipeline's health. ``broker`` and ``store`` are None when they answered, else what
    went wrong.

    - down: the broker does not answer, or a group is STALLED or STOPPED (a stage does not
      process what it has);
    - degraded: a group is WARN (falling behind), a group has no consumer at all (new records
      would wait), or the CRM store does not answer (the sink waits, nothing is lost);
    - healthy: none of these.
    """
    problems: list[tuple[Level, str]] = []
    if broker is not None:
        problems.append((Level.down, f"broker: {broker}"))
    for g in groups:
        if g.status in (LagStatus.STALLED, LagStatus.STOPPED):
            problems.append((Level.down, f"group {g.group} is {g.status} (lag {g.lag})"))
        elif g.status is LagStatus.WARN:
            problems.append((Level.degraded, f"group {g.group} is falling behind (lag {g.lag})"))
        elif g.members == 0:
            problems.append((Level.degraded, f"group {g.group} has no consumer"))
    if store is not None:
        problems.append((Level.degraded, f"store: {store}"))
    level = max((lvl for lvl, _ in problems), default=Level.healthy)
    return Assessment(level, tuple(text for _, text in problems))
