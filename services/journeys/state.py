"""What the journey engine keeps per customer, and what it emits. Bounded: counters keep
at most the events a rule can still use, and only the latest event ids are remembered."""

from __future__ import annotations

import hashlib
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, NamedTuple

SEEN_EVENT_IDS = 48  # duplicates arrive close together (redelivery after a restart)
STAY_MEMORY = 4  # entries into the current stage after the first, kept per journey


def event_key(event_id: str) -> int:
    """48 bits of the event id's hash: enough to tell one customer's recent events apart."""
    digest = hashlib.blake2b(event_id.encode(), digest_size=6)
    return int.from_bytes(digest.digest(), "big")


@dataclass(frozen=True, slots=True)
class Touchpoint:
    """The parts of an event the engine reads."""

    event_id: str
    type: str
    occurred_at: datetime
    attributes: Mapping[str, Any] = field(default_factory=dict)

    @property
    def channel(self) -> str:
        return self.type.partition(".")[0]


@dataclass(frozen=True, slots=True)
class Transition:
    customer_id: str
    journey: str
    from_stage: str | None
    to_stage: str
    occurred_at: datetime
    event_id: str


@dataclass(frozen=True, slots=True)
class Flag:
    """A friction point: which rule, for whom, where, when (event time) and on what evidence."""

    flag_id: str
    rule_id: str
    severity: str
    customer_id: str
    journey: str
    stage: str | None
    channel: str
    occurred_at: datetime
    evidence: tuple[str, ...]


def flag_id(rule_id: str, episode: str) -> str:
    """The same episode of the same rule always gets the same id. An episode is named by
    event ids (unique platform-wide), not by customer: when two profiles merge, an episode
    raised again under the surviving id keeps its id, so the flag is still one flag."""
    digest = hashlib.sha1(f"{rule_id}|{episode}".encode(), usedforsecurity=False)
    return digest.hexdigest()[:20]


@dataclass(slots=True)
class StageVisit:
    """A stay in a stage: entered at ``entered_at`` by ``event_id``; ``last_at`` is the latest
    event that entered this same stage again (the stay was still going on then);
    ``previous_at`` when the customer was last seen in the stage before this one (so a merge
    can tell that an earlier stay elsewhere had ended by then)."""

    stage: str
    entered_at: datetime
    event_id: str
    channel: str
    stalled: bool = False
    last_at: datetime | None = None
    previous_at: datetime | None = None
    seen: list[tuple[datetime, str]] = field(default_factory=list)  # later entries, bounded

    def confirm(self, at: datetime, event_id: str) -> None:
        """Another event entering this stage during the stay: keep the latest few (in time
        order), so a late event from elsewhere can split the stay where it really did."""
        self.seen.append((at, event_id))
        self.seen.sort()
        del self.seen[:-STAY_MEMORY]

    @property
    def confirmed_at(self) -> datetime:
        return self.last_at or self.entered_at


class Then(NamedTuple):
    """A ``then`` occurrence of a sequence rule, with the channel it came on and the stage
    the customer was in after it: a sequence flag is raised there, whichever side of the
    sequence was seen first (an ``after`` flag found late, as after a restart, is the same
    flag as one found before the ``then`` arrived)."""

    at: datetime
    evidence: tuple[str, ...]
    channel: str
    stage: str | None


@dataclass(slots=True)
class Pending:
    """An absence rule waiting for its completion until ``deadline``."""

    deadline: datetime
    started_at: datetime
    evidence: tuple[str, ...]
    channel: str
    stage: str | None


@dataclass(slots=True)
class CustomerState:
    stages: dict[str, StageVisit] = field(default_factory=dict)
    counts: dict[tuple[str, str], list[tuple[datetime, str]]] = field(default_factory=dict)
    pending: dict[tuple[str, str], Pending] = field(default_factory=dict)
    completed: dict[tuple[str, str], list[datetime]] = field(default_factory=dict)
    firsts: dict[str, list[tuple[datetime, tuple[str, ...]]]] = field(default_factory=dict)
    thens: dict[str, list[Then]] = field(default_factory=dict)
    seen: deque[int] = field(default_factory=lambda: deque(maxlen=SEEN_EVENT_IDS))
