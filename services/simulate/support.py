"""Support episodes: tickets resolved in time or not, reopened, repeated within a week,
abandoned calls and surveys."""

from __future__ import annotations

from datetime import datetime, timedelta

from services.simulate.people import Actor, Draft

SOURCE = "support-desk"
TOPICS = ("delivery", "payment", "returns", "account", "product", "website", "checkout")
CSAT_SCORES = {1: 6, 2: 9, 3: 15, 4: 30, 5: 40}
NPS_SCORES = {0: 2, 2: 2, 4: 3, 5: 4, 6: 8, 7: 8, 8: 15, 9: 28, 10: 30}


def _identity(a: Actor, via: str) -> dict[str, str]:
    assert a.phone is not None
    assert a.email is not None
    assert a.loyalty_id is not None
    if via == "phone":
        return {"phone": a.phone}
    if via == "store":
        return {"loyalty_id": a.loyalty_id}
    return {"email": a.email}


def open_ticket(a: Actor, at: datetime, topic: str | None = None) -> tuple[str, str, Draft]:
    """A new ticket: ``(ticket_id, via, ticket_opened)``."""
    via = a.rng.choices(("phone", "email", "chat", "store"), (4, 3, 3, 1))[0]
    ticket = a.serial("T")
    draft = a.add(
        "support.ticket_opened",
        at,
        {"ticket_id": ticket, "topic": topic or a.rng.choice(TOPICS), "via": via},
        _identity(a, via),
        SOURCE,
    )
    return ticket, via, draft


def close(
    a: Actor, at: datetime, ticket: str, via: str, type_: str = "support.ticket_resolved"
) -> Draft:
    return a.add(type_, at, {"ticket_id": ticket}, _identity(a, via), SOURCE)


def rate(a: Actor, at: datetime, ticket: str, via: str) -> None:
    """A CSAT score after a resolution, sometimes: 2 or less is low."""
    if a.rng.random() < 0.6:
        score = a.rng.choices(list(CSAT_SCORES), list(CSAT_SCORES.values()))[0]
        a.add(
            "support.csat_submitted",
            at,
            {"score": score, "ticket_id": ticket},
            _identity(a, via),
            SOURCE,
        )
        if score <= 2:
            a.intend("low_csat")


def _hours(a: Actor, low: float, high: float) -> timedelta:
    return timedelta(seconds=a.rng.randint(int(low * 3600), int(high * 3600)))


def follow_up(a: Actor, flagged: datetime, day: int, *, topic: str) -> None:
    """A ticket within 24 hours of a friction flag online (digital_to_support), on ``day``:
    the flag's own day (within 3 hours) or the next (before 24 hours are up)."""
    if a.start + timedelta(days=day) <= flagged:
        at = flagged + _hours(a, 0.2, 3)
    else:
        latest = min(flagged + timedelta(hours=23), a.day_at(day, 20))
        at = a.day_at(day, 8) + timedelta(
            seconds=a.rng.randint(0, int((latest - a.day_at(day, 8)).total_seconds()))
        )
    ticket, via, _ = open_ticket(a, at, topic)
    resolved = close(a, at + _hours(a, 0.5, 3), ticket, via)
    rate(a, resolved.at + _hours(a, 0.1, 1), ticket, via)
    a.intend("digital_to_support")


def ticket(a: Actor) -> None:
    """A ticket resolved well within 48 hours, sometimes rated."""
    next_day = a.rng.random() < 0.4
    day = a.timeline.place("ticket", [0, 1] if next_day else [0], tickets=[0])
    if day is None:
        return
    opened = a.moment(day, 9, 16)
    ticket_id, via, _ = open_ticket(a, opened)
    resolved_at = a.moment(day + 1, 9, 18) if next_day else opened + _hours(a, 0.5, 4)
    close(a, resolved_at, ticket_id, via)
    rate(a, resolved_at + _hours(a, 0.1, 2), ticket_id, via)


def sla(a: Actor) -> None:
    """Resolution around the 48-hour SLA: at 47h59m or 48h (no flag), 48h01m or days late,
    or never (support_sla_breach)."""
    after = a.rng.choice((47 * 60 + 59, 48 * 60, 48 * 60 + 1, 3 * 24 * 60 + 200, None))
    offsets = [0] if after is None else [0, (after + 12 * 60) // (24 * 60)]
    day = a.timeline.place("sla", offsets, tickets=[0])
    if day is None:
        return
    opened = a.moment(day, 9, 11)
    ticket_id, via, _ = open_ticket(a, opened)
    if after is None or after > 48 * 60:
        a.intend("support_sla_breach")
    if after is not None:
        resolved = close(a, opened + timedelta(minutes=after), ticket_id, via)
        rate(a, resolved.at + _hours(a, 0.1, 2), ticket_id, via)


def reopen(a: Actor) -> None:
    """Resolved, reopened the next day, resolved again (ticket_reopened)."""
    day = a.timeline.place("reopen", [0, 1], tickets=[0])
    if day is None:
        return
    opened = a.moment(day, 9, 14)
    ticket_id, via, _ = open_ticket(a, opened)
    close(a, opened + _hours(a, 1, 4), ticket_id, via)
    again = close(a, a.moment(day + 1, 9, 14), ticket_id, via, "support.ticket_reopened")
    resolved = close(a, again.at + _hours(a, 1, 4), ticket_id, via)
    rate(a, resolved.at + _hours(a, 0.1, 1), ticket_id, via)
    a.intend("ticket_reopened")


def repeat(a: Actor) -> None:
    """Tickets in one week: three within 7 days (repeat_contact, the third sometimes at
    exactly 7 days), a third a minute too late, or only two (no flag)."""
    variant = a.rng.choices(("three", "seven_days", "minute_late", "two"), (4, 1, 1, 3))[0]
    if variant == "two":
        offsets = [0, a.rng.randint(1, 6)]
    elif variant == "three":
        second = a.rng.randint(1, 4)
        offsets = [0, second, a.rng.randint(second + 1, 6)]
    else:
        offsets = [0, a.rng.randint(2, 5), 7]
    day = a.timeline.place("repeat", offsets, tickets=offsets, run=True)
    if day is None:
        return
    first = a.moment(day, 9, 16)
    for offset in offsets:
        at = a.moment(day + offset, 9, 16)
        if offset == 0:
            at = first
        elif offset == 7:
            at = first + timedelta(days=7, minutes=0 if variant == "seven_days" else 1)
        ticket_id, via, _ = open_ticket(a, at)
        resolved = close(a, at + _hours(a, 0.5, 3), ticket_id, via)
        if offset == offsets[-1]:
            rate(a, resolved.at + _hours(a, 0.1, 1), ticket_id, via)
    if variant in ("three", "seven_days"):
        a.intend("repeat_contact")


def call(a: Actor) -> None:
    """A call hung up while waiting: 2 minutes or more is call_abandoned."""
    day = a.timeline.place("call", [0])
    if day is None:
        return
    wait = a.rng.choices(
        (a.rng.randint(20, 110), 119, 120, a.rng.randint(121, 420)), (45, 15, 15, 25)
    )[0]
    a.add(
        "support.call_abandoned",
        a.moment(day),
        {"wait_seconds": wait, "queue": "general"},
        _identity(a, "phone"),
        "contact-centre",
    )
    if wait >= 120:
        a.intend("call_abandoned")


def survey(a: Actor) -> None:
    """An NPS answer: 6 or less is a detractor."""
    day = a.timeline.place("survey", [0])
    if day is None:
        return
    assert a.customer_id is not None
    score = a.rng.choices(list(NPS_SCORES), list(NPS_SCORES.values()))[0]
    a.add(
        "support.nps_submitted",
        a.moment(day),
        {"score": score},
        {"customer_id": a.customer_id},
        "survey-tool",
    )
    if score <= 6:
        a.intend("detractor_nps")
