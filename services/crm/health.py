"""A customer's health score (0-100) and a friction flag's value at risk: pure functions.

The CRM sink stores both as it writes; the Customer 360 view recomputes the score at read
time. docs/customer-360.md documents the formula; change both together.

Health score, from 100:

- friction: every unresolved flag subtracts 20 (high), 10 (medium) or 5 (low), halved for
  every 14 days between its event time and ``as_of``; friction subtracts at most 50 in all;
- CSAT: a last score of 1-2 subtracts 15, of 3 subtracts 5;
- NPS: a last score of 0-6 subtracts 10, of 9-10 adds 5;
- payment: failed payments while invoices are open subtract 10; an overdue amount 15 more;
- engagement: no contact on any channel in the 90 days up to ``as_of`` subtracts 10;

then rounded to the nearest integer (halves up) and clamped to 0..100.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal, InvalidOperation
from typing import Any, Protocol

__all__ = [
    "BILLING_RULES",
    "Health",
    "HealthMetrics",
    "OpenFriction",
    "SpendMetrics",
    "health",
    "health_score",
    "last_contact",
    "value_at_risk",
]

SEVERITY_PENALTY = {"high": 20.0, "medium": 10.0, "low": 5.0}  # unknown severities: low
FRICTION_HALF_LIFE = timedelta(days=14)
FRICTION_CAP = 50.0
CSAT_POOR, CSAT_POOR_PENALTY, CSAT_NEUTRAL, CSAT_NEUTRAL_PENALTY = 2, 15, 3, 5
NPS_DETRACTOR, NPS_DETRACTOR_PENALTY, NPS_PROMOTER, NPS_PROMOTER_BONUS = 6, 10, 9, 5
FAILED_PAYMENT_PENALTY, OVERDUE_PENALTY = 10, 15
QUIET_PERIOD, QUIET_PENALTY = timedelta(days=90), 10

BILLING_RULES = frozenset({"payment_failed", "invoice_overdue"})
CENT = Decimal("0.01")


class HealthMetrics(Protocol):
    """What the score reads of a customer's relationship metrics; a
    :class:`~services.store.models.RelationshipMetrics` row is one."""

    @property
    def last_csat(self) -> int | None: ...
    @property
    def last_nps(self) -> int | None: ...
    @property
    def failed_payments(self) -> int: ...
    @property
    def open_invoices(self) -> int: ...
    @property
    def last_web_at(self) -> datetime | None: ...
    @property
    def last_store_at(self) -> datetime | None: ...
    @property
    def last_billing_at(self) -> datetime | None: ...
    @property
    def last_support_at(self) -> datetime | None: ...


class OpenFriction(Protocol):
    """An unresolved friction flag; a :class:`~services.store.models.FrictionEvent` is one."""

    @property
    def severity(self) -> str: ...
    @property
    def occurred_at(self) -> datetime: ...


class SpendMetrics(Protocol):
    """What value at risk reads of the metrics; a ``RelationshipMetrics`` row is one."""

    @property
    def amount_open(self) -> Decimal: ...
    @property
    def lifetime_spend(self) -> Decimal: ...


@dataclass(frozen=True, slots=True)
class Health:
    """The score and what each component added (negative: subtracted)."""

    score: int
    friction: float
    csat: int
    nps: int
    payment: int
    engagement: int


def _utc(at: datetime) -> datetime:
    """``at`` as an aware time; SQLite hands back naive times, stored in UTC."""
    return at.replace(tzinfo=UTC) if at.tzinfo is None else at


def last_contact(metrics: HealthMetrics) -> datetime | None:
    """The latest contact on any channel, or None if there was none."""
    times = [
        _utc(at)
        for at in (
            metrics.last_web_at,
            metrics.last_store_at,
            metrics.last_billing_at,
            metrics.last_support_at,
        )
        if at is not None
    ]
    return max(times, default=None)


def _friction(open_friction: Iterable[OpenFriction], as_of: datetime) -> float:
    total = 0.0
    for flag in open_friction:
        age = max(as_of - _utc(flag.occurred_at), timedelta(0))
        base = SEVERITY_PENALTY.get(flag.severity, SEVERITY_PENALTY["low"])
        total += base * 0.5 ** (age / FRICTION_HALF_LIFE)
    return -min(total, FRICTION_CAP)


def _csat(score: int | None) -> int:
    if score is None:
        return 0
    if score <= CSAT_POOR:
        return -CSAT_POOR_PENALTY
    return -CSAT_NEUTRAL_PENALTY if score == CSAT_NEUTRAL else 0


def _nps(score: int | None) -> int:
    if score is None:
        return 0
    if score <= NPS_DETRACTOR:
        return -NPS_DETRACTOR_PENALTY
    return NPS_PROMOTER_BONUS if score >= NPS_PROMOTER else 0


def _payment(metrics: HealthMetrics, amount_overdue: Decimal) -> int:
    failing = metrics.failed_payments > 0 and metrics.open_invoices > 0
    return -(FAILED_PAYMENT_PENALTY if failing else 0) - (
        OVERDUE_PENALTY if amount_overdue > 0 else 0
    )


def health(
    metrics: HealthMetrics | None,
    open_friction: Iterable[OpenFriction],
    as_of: datetime,
    *,
    amount_overdue: Decimal = Decimal(0),
) -> Health:
    """The health score at ``as_of`` with its components (see the module docstring).

    ``metrics`` None (no metrics yet) counts as no surveys, no payments and no contact;
    ``amount_overdue`` is what the customer's open invoices due before ``as_of`` add up to
    (the metrics row does not keep it: it depends on ``as_of``)."""
    as_of = _utc(as_of)
    friction = _friction(open_friction, as_of)
    csat = _csat(metrics.last_csat) if metrics else 0
    nps = _nps(metrics.last_nps) if metrics else 0
    payment = _payment(metrics, amount_overdue) if metrics else 0
    contact = last_contact(metrics) if metrics else None
    engagement = -QUIET_PENALTY if contact is None or as_of - contact > QUIET_PERIOD else 0
    raw = 100 + friction + csat + nps + payment + engagement
    score = min(100, max(0, math.floor(raw + 0.5)))
    return Health(score, round(friction, 1) + 0.0, csat, nps, payment, engagement)  # no -0.0


def health_score(
    metrics: HealthMetrics | None,
    open_friction: Iterable[OpenFriction],
    as_of: datetime,
    *,
    amount_overdue: Decimal = Decimal(0),
) -> int:
    """The 0-100 health score at ``as_of``: :func:`health` without the components."""
    return health(metrics, open_friction, as_of, amount_overdue=amount_overdue).score


def money(value: Any) -> Decimal | None:
    """A contract money amount as a Decimal (None if absent or not a number)."""
    if value is None or isinstance(value, bool):
        return None
    try:
        amount = Decimal(str(value))
    except InvalidOperation:
        return None
    return amount if amount.is_finite() else None


def value_at_risk(
    rule_id: str, flag_attrs: Mapping[str, Any], metrics: SpendMetrics | None
) -> Decimal:
    """What a friction flag puts at risk, never negative, to the cent.

    Billing rules (``payment_failed``, ``invoice_overdue``): the customer's open amount, or
    the flag's own ``amount`` attribute while no invoice is counted open yet. Every other
    rule: the customer's lifetime spend. No metrics yet: zero (or the flag's amount)."""
    if rule_id in BILLING_RULES:
        value = metrics.amount_open if metrics is not None else Decimal(0)
        if value <= 0:
            value = money(flag_attrs.get("amount")) or Decimal(0)
    else:
        value = metrics.lifetime_spend if metrics is not None else Decimal(0)
    return max(Decimal(value), Decimal(0)).quantize(CENT)
