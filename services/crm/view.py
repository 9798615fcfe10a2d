"""Customer 360: one customer's CRM profile, identifiers, metrics and health, journey stages,
friction and cross-channel timeline, read in a handful of indexed queries.

Every query is by primary key or an index of services/store/models.py, so a view costs the
same with a hundred customers or a hundred thousand."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, overload

from pydantic import BaseModel
from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session

from services.crm.health import health, last_contact
from services.identity.graph import normalised
from services.store.models import (
    Customer,
    FrictionEvent,
    Identity,
    Interaction,
    Invoice,
    JourneyStateRow,
    Merge,
    RelationshipMetrics,
)

__all__ = [
    "IDENTIFIER_KINDS",
    "Customer360",
    "FrictionItem",
    "customer_360",
    "lookup",
    "normalise",
]

IDENTIFIER_KINDS = ("customer_id", "email", "phone", "loyalty_id", "account_id", "anonymous_id")
RECENT_FRICTION = 10
MAX_MERGE_HOPS = 32


class Profile(BaseModel):
    customer_id: str
    name: str | None
    email: str | None
    phone: str | None
    segment: str | None
    tier: str | None
    account_owner: str | None
    consent_email: bool | None
    consent_sms: bool | None
    consent_tracking: bool | None
    custom: dict[str, Any]
    crm_imported_at: datetime | None
    first_seen_at: datetime | None
    updated_at: datetime


class Identifier(BaseModel):
    kind: str
    value: str
    first_seen_at: datetime


class MergedId(BaseModel):
    """A profile merged into this one: its id, when, why and by which event."""

    customer_id: str
    merged_at: datetime
    reason: str
    event_id: str


class HealthParts(BaseModel):
    """What each component added to the score (negative: subtracted); see health.py."""

    friction: float
    csat: int
    nps: int
    payment: int
    engagement: int


class Metrics(BaseModel):
    """The relationship metrics row, the overdue amount and the health score at ``as_of``."""

    currency: str | None = None
    lifetime_spend: Decimal = Decimal("0.00")
    orders: int = 0
    returns: int = 0
    returned_amount: Decimal = Decimal("0.00")
    other_currency_amounts: int = 0
    open_invoices: int = 0
    amount_open: Decimal = Decimal("0.00")
    amount_overdue: Decimal = Decimal("0.00")
    failed_payments: int = 0
    open_tickets: int = 0
    last_csat: int | None = None
    last_csat_at: datetime | None = None
    last_nps: int | None = None
    last_nps_at: datetime | None = None
    last_web_at: datetime | None = None
    last_store_at: datetime | None = None
    last_billing_at: datetime | None = None
    last_support_at: datetime | None = None
    last_contact_at: datetime | None = None
    interactions: int = 0
    health_score: int = 0
    health: HealthParts | None = None
    updated_at: datetime | None = None


STORED_METRICS = tuple(  # the score is computed at read time; the stored one may be null
    f for f in Metrics.model_fields if hasattr(RelationshipMetrics, f) and f != "health_score"
)


class JourneyStage(BaseModel):
    stage: str
    entered_at: datetime


class FrictionItem(BaseModel):
    flag_id: str
    customer_id: str
    raised_as: str
    rule_id: str
    severity: str
    journey: str
    stage: str | None
    channel: str
    occurred_at: datetime
    evidence: list[str]
    value_at_risk: Decimal
    status: str
    status_changed_at: datetime | None
    status_changed_by: str | None


class InteractionItem(BaseModel):
    event_id: str
    type: str
    channel: str
    source: str
    occurred_at: datetime
    received_at: datetime | None
    attributes: dict[str, Any]


class Customer360(BaseModel):
    """Who the customer is to the business and what they are going through, at ``as_of``."""

    customer_id: str
    as_of: datetime
    profile: Profile
    identifiers: list[Identifier]
    merged_ids: list[MergedId]
    metrics: Metrics
    journeys: dict[str, JourneyStage]
    open_friction: list[FrictionItem]
    recent_friction: list[FrictionItem]
    interactions: list[InteractionItem]


@overload
def utc(at: datetime) -> datetime: ...
@overload
def utc(at: None) -> None: ...
def utc(at: datetime | None) -> datetime | None:
    """``at`` as an aware UTC time (SQLite returns naive times; the store keeps UTC)."""
    if at is None:
        return None
    return at.replace(tzinfo=UTC) if at.tzinfo is None else at.astimezone(UTC)


def _aware(row: Any, *names: str) -> dict[str, Any]:
    """The named attributes of an ORM row, datetimes made aware."""
    values = {name: getattr(row, name) for name in names}
    return {k: utc(v) if isinstance(v, datetime) else v for k, v in values.items()}


def friction_item(row: FrictionEvent) -> FrictionItem:
    return FrictionItem(**_aware(row, *FrictionItem.model_fields))


def normalise(kind: str, value: str) -> str:
    """An identifier as the identities table keeps it (email compared case-insensitively)."""
    return normalised(kind, value.strip())


def _session(source: Engine | Session) -> Session:
    return Session(source) if isinstance(source, Engine) else source


def _winner(session: Session, customer_id: str) -> str:
    """The surviving id of ``customer_id``: its merges followed loser -> winner."""
    for _ in range(MAX_MERGE_HOPS):
        winner = session.scalar(select(Merge.winner).where(Merge.loser == customer_id))
        if winner is None or winner == customer_id:
            break
        customer_id = winner
    return customer_id


def lookup(source: Engine | Session, kind: str, value: str) -> str | None:
    """The customer id an identifier resolves to now, or None. A ``customer_id`` that was
    merged away resolves to the profile it was merged into."""
    if kind not in IDENTIFIER_KINDS:
        raise ValueError(f"unknown identifier kind {kind!r}; one of {', '.join(IDENTIFIER_KINDS)}")
    key = normalise(kind, value)
    session = _session(source)
    try:
        if kind == "customer_id" and session.get(Customer, key) is not None:
            return key
        found = session.scalar(
            select(Identity.customer_id).where(Identity.kind == kind, Identity.value == key)
        )
        if found is None and kind == "customer_id":
            found = key  # no identity row: it may still be a merged-away id
        if found is None:
            return None
        found = _winner(session, found)
        return found if session.get(Customer, found) is not None else None
    finally:
        if session is not source:
            session.close()


def _merged_ids(session: Session, customer_id: str) -> list[MergedId]:
    merged: list[MergedId] = []
    winners = [customer_id]
    for _ in range(MAX_MERGE_HOPS):
        rows = session.scalars(select(Merge).where(Merge.winner.in_(winners))).all()
        rows = [r for r in rows if r.loser != customer_id]
        merged += [
            MergedId(
                customer_id=r.loser,
                merged_at=utc(r.occurred_at),
                reason=r.reason,
                event_id=r.event_id,
            )
            for r in rows
        ]
        winners = [r.loser for r in rows]
        if not winners:
            break
    return sorted(merged, key=lambda m: (m.merged_at, m.customer_id))


def _metrics(session: Session, customer_id: str, as_of: datetime) -> Metrics:
    row = session.get(RelationshipMetrics, customer_id)
    overdue = session.scalar(
        select(func.coalesce(func.sum(Invoice.amount), 0)).where(
            Invoice.customer_id == customer_id,
            Invoice.paid_at.is_(None),
            Invoice.due_at < as_of,
        )
    )
    metrics = Metrics(**_aware(row, *STORED_METRICS)) if row is not None else Metrics()
    metrics.amount_overdue = Decimal(overdue or 0).quantize(Decimal("0.01"))
    metrics.last_contact_at = last_contact(metrics)
    return metrics


def customer_360(
    source: Engine | Session,
    customer_id: str,
    *,
    interactions: int = 20,
    as_of: datetime | None = None,
) -> Customer360 | None:
    """The 360 view of ``customer_id`` (exactly that id; see :func:`lookup` for others) with
    its last ``interactions`` interactions, newest first; None if there is no such customer.
    The health score is computed at ``as_of`` (default: now)."""
    as_of = datetime.now(UTC) if as_of is None else utc(as_of)
    session = _session(source)
    try:
        customer = session.get(Customer, customer_id)
        if customer is None:
            return None
        identities = session.scalars(
            select(Identity)
            .where(Identity.customer_id == customer_id)
            .order_by(Identity.kind, Identity.value)
        ).all()
        metrics = _metrics(session, customer_id, as_of)
        journeys = session.scalars(
            select(JourneyStateRow).where(JourneyStateRow.customer_id == customer_id)
        ).all()
        newest_first = (FrictionEvent.occurred_at.desc(), FrictionEvent.flag_id)
        unresolved = session.scalars(
            select(FrictionEvent)
            .where(FrictionEvent.customer_id == customer_id, FrictionEvent.status != "resolved")
            .order_by(*newest_first)
        ).all()
        recent = session.scalars(
            select(FrictionEvent)
            .where(FrictionEvent.customer_id == customer_id)
            .order_by(*newest_first)
            .limit(RECENT_FRICTION)
        ).all()
        timeline = session.scalars(
            select(Interaction)
            .where(Interaction.customer_id == customer_id)
            .order_by(Interaction.occurred_at.desc(), Interaction.event_id.desc())
            .limit(interactions)
        ).all()
        score = health(metrics, unresolved, as_of, amount_overdue=metrics.amount_overdue)
        metrics.health_score = score.score
        metrics.health = HealthParts(
            friction=score.friction,
            csat=score.csat,
            nps=score.nps,
            payment=score.payment,
            engagement=score.engagement,
        )
        return Customer360(
            customer_id=customer_id,
            as_of=as_of,
            profile=Profile(**_aware(customer, *Profile.model_fields)),
            identifiers=[Identifier(**_aware(i, *Identifier.model_fields)) for i in identities],
            merged_ids=_merged_ids(session, customer_id),
            metrics=metrics,
            journeys={
                j.journey: JourneyStage(stage=j.stage, entered_at=utc(j.entered_at))
                for j in sorted(journeys, key=lambda j: j.journey)
            },
            open_friction=[friction_item(f) for f in unresolved],
            recent_friction=[friction_item(f) for f in recent],
            interactions=[
                InteractionItem(**_aware(i, *InteractionItem.model_fields)) for i in timeline
            ],
        )
    finally:
        if session is not source:
            session.close()
