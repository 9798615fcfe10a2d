"""How events reach the platform: in event-time order, a few late (never more than the
allowed lateness), a few twice, then the closing "clock" events that move event time past
every deadline on every channel."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from random import Random
from typing import Any

from schemas.events import CHANNELS

MAX_LATE = 240  # seconds; the platform's allowed lateness is 5 minutes
CLOCKS_PER_CHANNEL = 64  # sentinels per channel, so every partition sees event time move on
CLOSING_AFTER = timedelta(days=30)


@dataclass(frozen=True, slots=True)
class Delivery:
    """The emission order (indexes into the events in event-time order; a duplicate's index
    appears twice) and, by event id, how many seconds late or how much later the copy came."""

    order: list[int]
    late: dict[str, int]
    duplicates: dict[str, int]


def deliver(
    events: Sequence[dict[str, Any]],
    owners: Sequence[int],
    times: Sequence[datetime],
    rng: Random,
    *,
    late_share: float,
    duplicate_share: float,
) -> Delivery:
    """A late event is never emitted after a later event of the same person, so each
    person's events arrive in their own order whatever else is late."""
    gaps: list[int] = []
    following: dict[int, datetime] = {}
    for i in range(len(events) - 1, -1, -1):
        after = following.get(owners[i])
        gaps.append(MAX_LATE + 1 if after is None else int((after - times[i]).total_seconds()))
        following[owners[i]] = times[i]
    gaps.reverse()
    eligible = [i for i, gap in enumerate(gaps) if gap >= 3]
    late_ones = rng.sample(eligible, min(len(eligible), round(late_share * len(events))))
    late = {i: rng.randint(1, min(MAX_LATE, gaps[i] - 1)) for i in sorted(late_ones)}
    punctual = [i for i in range(len(events)) if i not in late]
    copies = rng.sample(punctual, min(len(punctual), round(duplicate_share * len(events))))
    duplicates = {i: rng.randint(1, MAX_LATE) for i in sorted(copies)}
    arrivals = [(times[i] + timedelta(seconds=late.get(i, 0)), i, 0) for i in range(len(events))]
    arrivals += [(times[i] + timedelta(seconds=s), i, 1) for i, s in duplicates.items()]
    arrivals.sort()
    return Delivery(
        [i for _, i, _ in arrivals],
        {events[i]["event_id"]: s for i, s in late.items()},
        {events[i]["event_id"]: s for i, s in duplicates.items()},
    )


def arrivals(
    events: Sequence[dict[str, Any]], late: dict[str, int], duplicates: dict[str, int]
) -> list[datetime]:
    """When each emitted event arrived, in emission order: its event time, plus its lateness
    or, for the second copy of a duplicate, how much later the copy came."""
    seen: set[str] = set()
    out = []
    for event in events:
        event_id = event["event_id"]
        at = datetime.fromisoformat(event["occurred_at"])
        if event_id in seen:
            out.append(at + timedelta(seconds=duplicates[event_id]))
        else:
            seen.add(event_id)
            out.append(at + timedelta(seconds=late.get(event_id, 0)))
    return out


def clocks(seed: int, end: datetime, first_number: int) -> list[dict[str, Any]]:
    """Sentinel people, 64 per channel, each with one harmless event 30 days after the end."""
    at = end + CLOSING_AFTER
    events = []
    number = first_number
    for i in range(1, CLOCKS_PER_CHANNEL + 1):
        for channel in CHANNELS:
            who = f"clock-{channel}-{i:03d}"
            type_, source, identity, attributes = _clock_event(channel, who)
            events.append(
                {
                    "event_id": f"sim-{seed}-{number:06d}",
                    "type": type_,
                    "occurred_at": timestamp(at),
                    "source": source,
                    "identity": {"customer_id": who, **identity},
                    "attributes": attributes,
                    "schema_version": 1,
                }
            )
            number += 1
            at += timedelta(seconds=1)
    return events


def _clock_event(channel: str, who: str) -> tuple[str, str, dict[str, str], dict[str, Any]]:
    if channel == "web":
        return (
            "web.page_view",
            "web-shop",
            {"anonymous_id": f"anon-{who}"},
            {
                "url": "https://shop.example.com/",
                "session_id": f"sess-{who}",
            },
        )
    if channel == "store":
        return "store.visit", "pos-store-1", {"loyalty_id": f"LOY-{who}"}, {"store_id": "store-1"}
    if channel == "billing":
        return (
            "billing.payment_succeeded",
            "billing-core",
            {"account_id": f"ACC-{who}"},
            {
                "invoice_id": f"inv-{who}",
                "amount": 1.0,
                "currency": "EUR",
            },
        )
    return "support.csat_submitted", "support-desk", {"email": f"{who}@example.com"}, {"score": 5}


def timestamp(at: datetime) -> str:
    return at.isoformat().replace("+00:00", "Z")
