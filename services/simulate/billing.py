"""Billing episodes: an invoice paid on time (at the last minute, after a failed attempt),
paid late or never (invoice_overdue), a failed payment followed by a ticket, a cancellation."""

from __future__ import annotations

from datetime import datetime, timedelta

from services.simulate import support
from services.simulate.people import Actor, Draft

SOURCE = "billing-core"
PLANS = {"basic-monthly": 9.99, "plus-monthly": 24.99, "family-monthly": 49.0}
FAILURES = ("card_declined", "insufficient_funds", "expired_card")


def _identity(a: Actor) -> dict[str, str]:
    assert a.account_id is not None
    return {"account_id": a.account_id}


def _event(a: Actor, type_: str, at: datetime, invoice: dict[str, object]) -> Draft:
    attributes = {k: invoice[k] for k in ("invoice_id", "amount", "currency")}
    if type_ == "billing.payment_failed":
        attributes["reason"] = a.rng.choice(FAILURES)
    return a.add(type_, at, attributes, _identity(a), SOURCE)


def bill(a: Actor) -> None:
    """One invoice of the person's plan, and how it was paid."""
    variant = a.rng.choices(
        ("paid", "failed", "last_minute", "late", "failed_ticket"), (60, 3, 6, 4, 2)
    )[0]
    due = a.rng.choice((7, 14))
    stamp = a.rng.random() < 0.3  # a due timestamp (noon UTC) instead of a due date
    pay = a.rng.randint(1, due - 1)
    plan: list[tuple[int, str]]  # (day offset, what happens)
    if variant == "paid":
        plan = [(0, "invoice"), (0 if a.rng.random() < 0.3 else pay, "pay")]
    elif variant == "last_minute":
        plan = [(0, "invoice"), (due, "pay_at_deadline")]
    elif variant == "late":
        late = a.rng.choice(("after_deadline", "days", "never"))
        plan = [(0, "invoice")]
        if late == "after_deadline":
            plan.append((due + (0 if stamp else 1), "pay_after_deadline"))
        elif late == "days":
            plan.append((due + a.rng.randint(1, 3), "pay"))
    else:
        fail = a.rng.randint(0, due - 2)
        plan = [(0, "invoice"), (fail, "fail"), (fail + 1, "pay")]
    tickets = [p[0] for p in plan if p[1] == "fail"] if variant == "failed_ticket" else []
    day = a.timeline.place("bill", sorted({offset for offset, _ in plan}), tickets=tickets)
    if day is None:
        return
    _run(a, day, plan, due, stamp, ticket=variant == "failed_ticket")
    if variant == "late":
        a.intend("invoice_overdue")


def _run(
    a: Actor, day: int, plan: list[tuple[int, str]], due: int, stamp: bool, *, ticket: bool
) -> None:
    name, amount = a.rng.choice(list(PLANS.items()))
    deadline = a.day_at(day + due, 12) if stamp else a.day_at(day + due + 1, 0)
    issued = a.moment(day, 8, 12)
    invoice: dict[str, object] = {
        "invoice_id": a.serial("inv"),
        "amount": amount,
        "currency": "EUR",
        "due_date": deadline.isoformat()
        if stamp
        else (deadline - timedelta(days=1)).date().isoformat(),
        "plan": name,
    }
    a.add("billing.invoice_issued", issued, dict(invoice), _identity(a), SOURCE)
    for offset, what in plan[1:]:
        at = (
            a.moment(day + offset, 13, 19)
            if offset
            else issued + timedelta(minutes=a.rng.randint(5, 90))
        )
        if what == "pay_at_deadline":
            at = deadline - timedelta(seconds=a.rng.randint(1, 59))
        elif what == "pay_after_deadline":
            at = deadline + timedelta(seconds=a.rng.randint(1, 59))
        if what == "fail":
            failed = _event(a, "billing.payment_failed", at, invoice)
            a.intend("payment_failed")
            if ticket:
                support.follow_up(a, failed.at, day + offset, topic="payment")
        else:
            _event(a, "billing.payment_succeeded", at, invoice)


def cancel(a: Actor) -> None:
    day = a.timeline.place("cancel", [0])
    if day is not None:
        a.add(
            "billing.subscription_cancelled",
            a.moment(day),
            {"plan": a.rng.choice(list(PLANS)), "reason": "too expensive"},
            _identity(a),
            SOURCE,
        )
