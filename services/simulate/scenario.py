"""A generated month of customers across web, store, billing and support, with the
friction flags the platform must raise for it (its oracle).

    scenario = generate(1000, 30, seed=7)
    scenario.write(Path("month.jsonl"))   # + month.expected.jsonl, month.meta.json
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from itertools import pairwise
from pathlib import Path
from random import Random
from typing import Any

import orjson

from schemas.events import CHANNELS
from services.identity.graph import identifier_key
from services.simulate import delivery, plan
from services.simulate.oracle import PURCHASE_STAGES, Ambiguous, Finding, derive, stalls
from services.simulate.people import Actor, Draft, Person

START = datetime(2026, 3, 2, tzinfo=UTC)
ATTEMPTS = 50  # a person whose month would be ambiguous is made again, with other draws
DELAY_CHECKS = tuple(timedelta(minutes=m) for m in (10, 20, 30, 60, 360, 720))
SAME_TIME_WINDOW = max(DELAY_CHECKS)


@dataclass(frozen=True, slots=True)
class ExpectedFlag:
    """A flag the platform must raise: rule, customer (final id), evidence event ids, time."""

    rule_id: str
    customer_id: str
    evidence: tuple[str, ...]
    occurred_at: datetime

    def to_json(self) -> dict[str, Any]:
        return {
            "rule_id": self.rule_id,
            "customer_id": self.customer_id,
            "evidence": list(self.evidence),
            "occurred_at": delivery.timestamp(self.occurred_at),
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ExpectedFlag:
        return cls(
            data["rule_id"],
            data["customer_id"],
            tuple(data["evidence"]),
            datetime.fromisoformat(data["occurred_at"]),
        )


@dataclass
class Scenario:
    """The body of events in emission order, the closing clock events, the expected flags."""

    events: list[dict[str, Any]]
    closing: list[dict[str, Any]]
    expected: list[ExpectedFlag]
    people: list[Person]
    seed: int
    days: int
    start: datetime = START
    late: dict[str, int] = field(default_factory=dict)
    duplicates: dict[str, int] = field(default_factory=dict)
    delay: tuple[str, timedelta] | None = None  # a channel written as arriving this much later
    settings: dict[str, float] = field(default_factory=dict)
    regenerated: int = 0  # people made again because their first draw was ambiguous

    @property
    def end(self) -> datetime:
        return self.start + timedelta(days=self.days)

    def delayed(self, channel: str, by: timedelta) -> list[dict[str, Any]]:
        """The body as it arrives when ``channel``'s feed lags ``by``: each event sorted by
        its arrival time, plus ``by`` on that channel (stable); the flags must not change."""
        if channel not in CHANNELS:
            raise ValueError(f"{channel!r} is not a channel; channels are {', '.join(CHANNELS)}")
        times = delivery.arrivals(self.events, self.late, self.duplicates)
        keys = [
            at + by if event["type"].startswith(f"{channel}.") else at
            for at, event in zip(times, self.events, strict=True)
        ]
        return [self.events[i] for i in sorted(range(len(self.events)), key=keys.__getitem__)]

    def customer_of(self) -> Callable[[dict[str, Any]], str]:
        """A function from an event to the final id of the person it is about."""
        owner = {identifier_key(k, v): p.final_id for p in self.people for k, v in p.identifiers()}

        def of(event: dict[str, Any]) -> str:
            identity: dict[str, str] = event["identity"]
            if identity.get("customer_id", "").startswith("clock-"):
                return identity["customer_id"]
            return next(owner[identifier_key(k, v)] for k, v in identity.items())

        return of

    def write(self, path: Path) -> None:
        """``path``: events as JSON lines (body, then closing); beside it the expected flags
        (``<stem>.expected.jsonl``) and what was generated (``<stem>.meta.json``)."""
        expected, meta = sidecars(path)
        path.write_bytes(b"".join(orjson.dumps(e) + b"\n" for e in [*self.events, *self.closing]))
        expected.write_bytes(b"".join(orjson.dumps(f.to_json()) + b"\n" for f in self.expected))
        meta.write_bytes(orjson.dumps(self.meta(), option=orjson.OPT_INDENT_2))

    def meta(self) -> dict[str, Any]:
        unique = {e["event_id"]: e for e in self.events}.values()
        return {
            "seed": self.seed,
            "customers": len(self.people),
            "days": self.days,
            "start": delivery.timestamp(self.start),
            "end": delivery.timestamp(self.end),
            **self.settings,
            "body_events": len(self.events),
            "closing_events": len(self.closing),
            "events_per_channel": dict(Counter(e["type"].partition(".")[0] for e in unique)),
            "events_per_type": dict(sorted(Counter(e["type"] for e in unique).items())),
            "expected_flags": dict(sorted(Counter(f.rule_id for f in self.expected).items())),
            "delay": None
            if self.delay is None
            else {"channel": self.delay[0], "seconds": int(self.delay[1].total_seconds())},
            "regenerated": self.regenerated,
            "late": self.late,
            "duplicates": self.duplicates,
            "people": [p.to_json() for p in self.people],
        }


def sidecars(path: Path) -> tuple[Path, Path]:
    """The expected-flags and meta files that go with the events file ``path``."""
    stem = path.name.removesuffix(".jsonl")
    return path.with_name(f"{stem}.expected.jsonl"), path.with_name(f"{stem}.meta.json")


def load(path: Path) -> Scenario:
    """A scenario written by :meth:`Scenario.write`."""
    expected, meta_path = sidecars(path)
    meta = orjson.loads(meta_path.read_bytes())
    events = [orjson.loads(line) for line in path.read_bytes().splitlines() if line.strip()]
    body = meta["body_events"]
    delay = meta.get("delay")
    return Scenario(
        events=events[:body],
        closing=events[body:],
        expected=[
            ExpectedFlag.from_json(orjson.loads(line))
            for line in expected.read_bytes().splitlines()
        ],
        people=[Person.from_json(p) for p in meta["people"]],
        seed=meta["seed"],
        days=meta["days"],
        start=datetime.fromisoformat(meta["start"]),
        late=meta["late"],
        duplicates=meta["duplicates"],
        delay=None if delay is None else (delay["channel"], timedelta(seconds=delay["seconds"])),
        settings={k: meta[k] for k in ("late_share", "duplicate_share", "anonymous_share")},
        regenerated=meta["regenerated"],
    )


def generate(
    customers: int,
    days: int,
    *,
    seed: int = 7,
    start: datetime = START,
    late_share: float = 0.03,
    duplicate_share: float = 0.02,
    anonymous_share: float = 0.1,
    progress: Callable[[int], None] | None = None,
) -> Scenario:
    """``customers`` people over ``days`` days from ``start``; the same seed gives the same
    scenario. ``progress`` is called with the number of people made so far."""
    if customers < 1 or days < 1:
        raise ValueError("customers and days must be at least 1")
    for name, share in (
        ("late_share", late_share),
        ("duplicate_share", duplicate_share),
        ("anonymous_share", anonymous_share),
    ):
        if not 0 <= share <= 1:
            raise ValueError(f"{name} must be between 0 and 1, not {share}")
    if (
        start.tzinfo is None
        or start.utcoffset()
        or start != start.replace(hour=0, minute=0, second=0, microsecond=0)
    ):
        raise ValueError(
            f"start must be a midnight in UTC, such as {START.isoformat()}; not {start}"
        )
    start = start.astimezone(UTC)
    visitors = Random(f"{seed}:visitors")  # noqa: S311 - a simulation, not a secret
    anonymous = set(visitors.sample(range(customers), round(customers * anonymous_share)))
    actors: list[tuple[Actor, list[Finding]]] = []
    regenerated = 0
    for index in range(customers):
        actor, findings, attempts = _live(seed, index + 1, index in anonymous, start, days)
        actors.append((actor, findings))
        regenerated += attempts > 1
        if progress is not None:
            progress(index + 1)
    return _assemble(
        actors,
        seed=seed,
        start=start,
        days=days,
        regenerated=regenerated,
        settings={
            "late_share": late_share,
            "duplicate_share": duplicate_share,
            "anonymous_share": anonymous_share,
        },
    )


def _live(
    seed: int, index: int, anonymous: bool, start: datetime, days: int
) -> tuple[Actor, list[Finding], int]:
    """One person's days, drawn again until nothing in them is ambiguous."""
    for attempt in range(1, ATTEMPTS + 1):
        rng = Random(f"{seed}:{index}:{attempt}")  # noqa: S311 - a simulation, not a secret
        actor = Actor.create(index, not anonymous, rng, start, days)
        if anonymous:
            plan.live_anonymous(actor, days)
        else:
            plan.live_known(actor, days)
        actor.link()
        try:
            findings = derive(actor.drafts)
        except Ambiguous:
            continue
        raised = Counter(f.rule_id for f in findings if f.rule_id != "stage_stall")
        if raised == actor.intended and _stalls_survive_delays(actor.drafts):
            return actor, findings, attempt
    raise RuntimeError(f"person {index}: no unambiguous month in {ATTEMPTS} attempts")


def _stalls_survive_delays(drafts: Sequence[Draft]) -> bool:
    """Stage stalls are the one outcome that depends on the order of different channels'
    events: check that a lagging feed would not change them."""
    staged = sorted((d for d in drafts if d.type in PURCHASE_STAGES), key=lambda d: d.at)
    close = any(
        b.channel != a.channel and b.at - a.at <= SAME_TIME_WINDOW for a, b in pairwise(staged)
    )
    if not close:
        return True
    expected = _signature(stalls(staged))
    for channel in {d.channel for d in staged}:
        for by in DELAY_CHECKS:
            lagging = sorted(staged, key=lambda d: d.at + by if d.channel == channel else d.at)
            if _signature(stalls(lagging)) != expected:
                return False
    return True


def _signature(found: list[Finding]) -> list[tuple[int, datetime]]:
    return [(id(f.evidence[0]), f.at) for f in found]


def _assemble(
    actors: list[tuple[Actor, list[Finding]]],
    *,
    seed: int,
    start: datetime,
    days: int,
    regenerated: int,
    settings: dict[str, float],
) -> Scenario:
    ordered = sorted(
        (
            (draft.at, index, n, draft)
            for index, (a, _) in enumerate(actors)
            for n, draft in enumerate(a.drafts)
        ),
        key=lambda item: item[:3],
    )
    events: list[dict[str, Any]] = []
    for number, (_, _, _, draft) in enumerate(ordered, start=1):
        draft.event_id = f"sim-{seed}-{number:06d}"
        events.append(
            {
                "event_id": draft.event_id,
                "type": draft.type,
                "occurred_at": delivery.timestamp(draft.at),
                "source": draft.source,
                "identity": draft.identity,
                "attributes": draft.attributes,
                "schema_version": 1,
            }
        )
    people = [a.person() for a, _ in actors]
    sent = delivery.deliver(
        events,
        [index for _, index, _, _ in ordered],
        [at for at, _, _, _ in ordered],
        Random(f"{seed}:delivery"),  # noqa: S311
        late_share=settings["late_share"],
        duplicate_share=settings["duplicate_share"],
    )
    expected = sorted(
        (
            ExpectedFlag(f.rule_id, person.final_id, tuple(d.event_id for d in f.evidence), f.at)
            for person, (_, findings) in zip(people, actors, strict=True)
            for f in findings
        ),
        key=lambda f: (f.occurred_at, f.customer_id, f.rule_id, f.evidence),
    )
    return Scenario(
        events=[events[i] for i in sent.order],
        closing=delivery.clocks(seed, start + timedelta(days=days), len(events) + 1),
        expected=expected,
        people=people,
        seed=seed,
        days=days,
        start=start,
        late=sent.late,
        duplicates=sent.duplicates,
        settings=settings,
        regenerated=regenerated,
    )
