"""The flags a person's events must raise, read off the events the generator made.

An implementation of the shipped rules (journey_maps/*.yaml, docs/journey-maps.md) of its
own, independent of services.journeys.engine, so the two can be checked against each other.
It also refuses (:class:`Ambiguous`) sequences whose outcome would hang on an accident of
delivery, so the generator can make that person again."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from itertools import pairwise

from services.simulate.people import Draft

#: Event types that move a customer through the purchase journey, and the stage they enter.
PURCHASE_STAGES = {
    "web.page_view": "discover",
    "web.search": "discover",
    "store.visit": "discover",
    "web.product_view": "consider",
    "web.add_to_cart": "consider",
    "web.checkout_started": "checkout",
    "web.checkout_completed": "purchased",
    "store.pos_sale": "purchased",
    "store.return": "post_purchase",
    "billing.refund_issued": "post_purchase",
}
BUDGETS = {"consider": timedelta(days=7)}
CHECKOUT_WITHIN = timedelta(minutes=30)
FORM_ERRORS, FORM_ERRORS_WITHIN = 3, timedelta(minutes=10)
TICKETS, TICKETS_WITHIN = 3, timedelta(days=7)
SLA = timedelta(hours=48)
RETURN_WITHIN = timedelta(days=30)
FOLLOW_UP_WITHIN = timedelta(hours=24)
LOW_CSAT, DETRACTOR_NPS = 2, 6
CALL_WAIT, QUEUE_WAIT = 120, 600
PURCHASES = ("web.checkout_completed", "store.pos_sale")
RETURNS = ("store.return", "billing.refund_issued")
TRIGGERS = ("checkout_abandoned", "payment_failed", "form_error_loop")


class Ambiguous(Exception):
    """The events are fine but the generator avoids them: the outcome is too fragile."""


@dataclass(frozen=True, slots=True, eq=False)
class Finding:
    rule_id: str
    evidence: tuple[Draft, ...]
    at: datetime


def derive(drafts: Iterable[Draft]) -> list[Finding]:
    """Every flag one person's events raise, once the closing events have passed all
    deadlines."""
    ordered = sorted(drafts, key=lambda d: d.at)
    for before, after in pairwise(ordered):
        if before.at == after.at:
            raise Ambiguous("two events of one person at the same second")
    found = [
        *_event_rules(ordered),
        *_abandoned(ordered),
        *_form_error_loops(ordered),
        *_runs([d for d in ordered if d.type == "support.ticket_opened"], "repeat_contact"),
        *_sla(ordered),
        *_overdue(ordered),
        *_returns(ordered),
        *stalls(ordered),
    ]
    return found + _follow_ups(ordered, found)


def _event_rules(ordered: Sequence[Draft]) -> Iterable[Finding]:
    for d in ordered:
        score = d.attributes.get("score", 99)
        wait = d.attributes.get("wait_seconds", 0)
        rule = {
            "billing.payment_failed": "payment_failed",
            "support.ticket_reopened": "ticket_reopened",
            "support.csat_submitted": "low_csat" if score <= LOW_CSAT else None,
            "support.nps_submitted": "detractor_nps" if score <= DETRACTOR_NPS else None,
            "support.call_abandoned": "call_abandoned" if wait >= CALL_WAIT else None,
            "store.queue_wait": "long_queue" if wait >= QUEUE_WAIT else None,
        }.get(d.type)
        if rule is not None:
            yield Finding(rule, (d,), d.at)


def _abandoned(ordered: Sequence[Draft]) -> Iterable[Finding]:
    """One pending checkout per customer: a start must come well after the last deadline."""
    completions = [d.at for d in ordered if d.type in PURCHASES]
    last_deadline: datetime | None = None
    for start in (d for d in ordered if d.type == "web.checkout_started"):
        if last_deadline is not None and start.at <= last_deadline + timedelta(hours=1):
            raise Ambiguous("a checkout started while another could still be pending")
        last_deadline = deadline = start.at + CHECKOUT_WITHIN
        if not any(start.at <= at <= deadline for at in completions):
            yield Finding("checkout_abandoned", (start,), deadline)


def _form_error_loops(ordered: Sequence[Draft]) -> Iterable[Finding]:
    sessions: dict[str, list[Draft]] = defaultdict(list)
    for d in ordered:
        if d.type == "web.form_error":
            sessions[d.attributes["session_id"]].append(d)
    for errors in sessions.values():
        yield from _runs(errors, "form_error_loop")


def _runs(events: Sequence[Draft], rule_id: str) -> Iterable[Finding]:
    """The n-th event within the window fires; the n events are then used up."""
    count, within = (
        (FORM_ERRORS, FORM_ERRORS_WITHIN)
        if rule_id == "form_error_loop"
        else (TICKETS, TICKETS_WITHIN)
    )
    unused: list[Draft] = []
    for d in events:
        unused.append(d)
        last = unused[-count:]
        if len(last) == count and last[-1].at - last[0].at <= within:
            yield Finding(rule_id, tuple(last), d.at)
            del unused[-count:]


def _sla(ordered: Sequence[Draft]) -> Iterable[Finding]:
    resolved: dict[str, list[datetime]] = defaultdict(list)
    for d in ordered:
        if d.type == "support.ticket_resolved":
            resolved[d.attributes["ticket_id"]].append(d.at)
    for d in ordered:
        if d.type == "support.ticket_opened":
            deadline = d.at + SLA
            if not any(d.at <= at <= deadline for at in resolved[d.attributes["ticket_id"]]):
                yield Finding("support_sla_breach", (d,), deadline)


def due_deadline(value: str) -> datetime:
    """A due date is the end of that UTC day; a timestamp is taken as it is."""
    if len(value) == 10:
        return datetime.combine(date.fromisoformat(value), datetime.min.time(), UTC) + timedelta(
            days=1
        )
    return datetime.fromisoformat(value)


def _overdue(ordered: Sequence[Draft]) -> Iterable[Finding]:
    paid: dict[str, list[datetime]] = defaultdict(list)
    for d in ordered:
        if d.type == "billing.payment_succeeded":
            paid[d.attributes["invoice_id"]].append(d.at)
    for d in ordered:
        if d.type == "billing.invoice_issued":
            deadline = due_deadline(d.attributes["due_date"])
            if not any(d.at <= at <= deadline for at in paid[d.attributes["invoice_id"]]):
                yield Finding("invoice_overdue", (d,), deadline)


def _returns(ordered: Sequence[Draft]) -> Iterable[Finding]:
    """A return pairs with the purchase before it; both must be unambiguous."""
    purchases = [d for d in ordered if d.type in PURCHASES]
    returns = [d for d in ordered if d.type in RETURNS]
    for back in returns:
        bought = [p for p in purchases if p.at <= back.at <= p.at + RETURN_WITHIN]
        if len(bought) > 1:
            raise Ambiguous("a return within 30 days of two purchases")
        for purchase in bought:
            later = [r for r in returns if purchase.at <= r.at <= purchase.at + RETURN_WITHIN]
            if len(later) > 1:
                raise Ambiguous("two returns within 30 days of one purchase")
            yield Finding("return_after_purchase", (purchase, back), back.at)


def stalls(ordered: Sequence[Draft]) -> list[Finding]:
    """Stays in a stage beyond its budget, for events applied in this order. An event older
    than the current stage's entry does not move the customer; a stay still open at the end
    stalls (the closing events pass every deadline)."""
    found: list[Finding] = []
    stage: str | None = None
    entry: Draft | None = None
    for d in ordered:
        target = PURCHASE_STAGES.get(d.type)
        if target is None or target == stage or (entry is not None and d.at < entry.at):
            continue
        budget = BUDGETS.get(stage or "")
        if entry is not None and budget is not None and d.at > entry.at + budget:
            found.append(Finding("stage_stall", (entry,), entry.at + budget))
        stage, entry = target, d
    budget = BUDGETS.get(stage or "")
    if entry is not None and budget is not None:
        found.append(Finding("stage_stall", (entry,), entry.at + budget))
    return found


def _follow_ups(ordered: Sequence[Draft], found: Sequence[Finding]) -> list[Finding]:
    """digital_to_support: each friction flag online, paired with the first ticket opened
    within 24 hours of the time it refers to."""
    tickets = [d for d in ordered if d.type == "support.ticket_opened"]
    follow: list[Finding] = []
    for flag in sorted((f for f in found if f.rule_id in TRIGGERS), key=lambda f: f.at):
        ticket = next((t for t in tickets if flag.at <= t.at <= flag.at + FOLLOW_UP_WITHIN), None)
        if ticket is not None:
            follow.append(Finding("digital_to_support", (*flag.evidence, ticket), ticket.at))
    return follow
