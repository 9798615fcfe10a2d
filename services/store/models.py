"""Tables of the store. Alembic owns the schema: change a model, then add a migration."""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Date,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    Numeric,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

ID = String(256)  # customer, order, invoice and ticket ids: contract identifiers, 1-256
EVENT_ID = String(128)  # the contract's event_id: 1-128
MONEY = Numeric(14, 2)
WHEN = DateTime(timezone=True)
ROW_ID = BigInteger().with_variant(Integer, "sqlite")  # SQLite autoincrements INTEGER only

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


class SourceKey(Base):
    """An emitting system's ingestion key; only its SHA-256 is stored."""

    __tablename__ = "source_keys"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(64), index=True)
    key_hash: Mapped[str] = mapped_column(String(64), unique=True)
    key_prefix: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), default=None)


class DeadLetterReplay(Base):
    """A dead letter ``touchstream dlq replay`` has re-submitted, so it is not re-sent twice."""

    __tablename__ = "dead_letter_replays"
    __table_args__ = (UniqueConstraint("letter_id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    letter_id: Mapped[str] = mapped_column(String(40))
    reason: Mapped[str] = mapped_column(String(64))
    outcome: Mapped[str] = mapped_column(String(32))
    replayed_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class ApiUser(Base):
    """A user of the read API and dashboard, with a role; only its token's SHA-256 is stored."""

    __tablename__ = "api_users"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    role: Mapped[str] = mapped_column(String(16))
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(WHEN)
    last_used_at: Mapped[datetime | None] = mapped_column(WHEN, default=None)


class Customer(Base):
    """A customer: the CRM profile (imported or edited) of an id the identity stage resolved.
    A row exists once either the CRM or an event named the customer."""

    __tablename__ = "customers"

    customer_id: Mapped[str] = mapped_column(ID, primary_key=True)
    name: Mapped[str | None] = mapped_column(String(200), default=None)
    email: Mapped[str | None] = mapped_column(String(320), default=None, index=True)
    phone: Mapped[str | None] = mapped_column(String(32), default=None)
    segment: Mapped[str | None] = mapped_column(String(64), default=None)
    tier: Mapped[str | None] = mapped_column(String(32), default=None)
    account_owner: Mapped[str | None] = mapped_column(String(128), default=None)
    consent_email: Mapped[bool | None] = mapped_column(Boolean, default=None)
    consent_sms: Mapped[bool | None] = mapped_column(Boolean, default=None)
    consent_tracking: Mapped[bool | None] = mapped_column(Boolean, default=None)
    custom: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    crm_imported_at: Mapped[datetime | None] = mapped_column(WHEN, default=None)
    first_seen_at: Mapped[datetime | None] = mapped_column(WHEN, default=None)
    updated_at: Mapped[datetime] = mapped_column(WHEN)


class Identity(Base):
    """An identifier (kind: email, phone, loyalty_id, account_id, anonymous_id, customer_id)
    and the customer it resolves to now."""

    __tablename__ = "identities"

    kind: Mapped[str] = mapped_column(String(16), primary_key=True)
    value: Mapped[str] = mapped_column(String(320), primary_key=True)
    customer_id: Mapped[str] = mapped_column(ID, index=True)
    first_seen_at: Mapped[datetime] = mapped_column(WHEN)


class Merge(Base):
    """``loser`` was merged into ``winner`` by ``event_id``; the loser's rows moved."""

    __tablename__ = "merges"

    loser: Mapped[str] = mapped_column(ID, primary_key=True)
    winner: Mapped[str] = mapped_column(ID, index=True)
    event_id: Mapped[str] = mapped_column(EVENT_ID)
    reason: Mapped[str] = mapped_column(String(32))
    occurred_at: Mapped[datetime] = mapped_column(WHEN)


class Interaction(Base):
    """Every applied event, once (``event_id``), for the cross-channel timeline."""

    __tablename__ = "interactions"
    __table_args__ = (Index("ix_interactions_customer_time", "customer_id", "occurred_at"),)

    event_id: Mapped[str] = mapped_column(EVENT_ID, primary_key=True)
    customer_id: Mapped[str] = mapped_column(ID)
    type: Mapped[str] = mapped_column(String(64))
    channel: Mapped[str] = mapped_column(String(16))
    source: Mapped[str] = mapped_column(String(64))
    occurred_at: Mapped[datetime] = mapped_column(WHEN)
    received_at: Mapped[datetime | None] = mapped_column(WHEN, default=None)
    attributes: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)


class Order(Base):
    """A purchase (web checkout or till sale) or a return of one, by its event."""

    __tablename__ = "orders"

    event_id: Mapped[str] = mapped_column(EVENT_ID, primary_key=True)
    order_id: Mapped[str] = mapped_column(ID, index=True)
    customer_id: Mapped[str] = mapped_column(ID, index=True)
    kind: Mapped[str] = mapped_column(String(16))  # purchase | return
    channel: Mapped[str] = mapped_column(String(16))
    amount: Mapped[Decimal] = mapped_column(MONEY)
    currency: Mapped[str] = mapped_column(String(3))
    occurred_at: Mapped[datetime] = mapped_column(WHEN)


class Invoice(Base):
    """An invoice, open until paid; either event may come first."""

    __tablename__ = "invoices"

    invoice_id: Mapped[str] = mapped_column(ID, primary_key=True)
    customer_id: Mapped[str] = mapped_column(ID, index=True)
    amount: Mapped[Decimal | None] = mapped_column(MONEY, default=None)
    currency: Mapped[str | None] = mapped_column(String(3), default=None)
    issued_at: Mapped[datetime | None] = mapped_column(WHEN, default=None)
    due_at: Mapped[datetime | None] = mapped_column(WHEN, default=None)
    paid_at: Mapped[datetime | None] = mapped_column(WHEN, default=None)
    failed_payments: Mapped[int] = mapped_column(Integer, default=0)


class Ticket(Base):
    """A support ticket: open from its opening until resolved (again, after a reopen)."""

    __tablename__ = "tickets"

    ticket_id: Mapped[str] = mapped_column(ID, primary_key=True)
    customer_id: Mapped[str] = mapped_column(ID, index=True)
    topic: Mapped[str | None] = mapped_column(String(128), default=None)
    via: Mapped[str | None] = mapped_column(String(16), default=None)
    opened_at: Mapped[datetime | None] = mapped_column(WHEN, default=None)
    last_opened_at: Mapped[datetime | None] = mapped_column(WHEN, default=None)
    resolved_at: Mapped[datetime | None] = mapped_column(WHEN, default=None)
    reopened: Mapped[int] = mapped_column(Integer, default=0)


class JourneyStateRow(Base):
    """The stage a customer is in on each journey (from the journey stage's transitions)."""

    __tablename__ = "journey_states"

    customer_id: Mapped[str] = mapped_column(ID, primary_key=True)
    journey: Mapped[str] = mapped_column(String(64), primary_key=True)
    stage: Mapped[str] = mapped_column(String(64))
    entered_at: Mapped[datetime] = mapped_column(WHEN)
    event_id: Mapped[str] = mapped_column(EVENT_ID)


class JourneyTransition(Base):
    """A move between stages, once (``event_id`` and journey), for funnels."""

    __tablename__ = "journey_transitions"
    __table_args__ = (Index("ix_journey_transitions_customer", "customer_id", "occurred_at"),)

    event_id: Mapped[str] = mapped_column(EVENT_ID, primary_key=True)
    journey: Mapped[str] = mapped_column(String(64), primary_key=True)
    customer_id: Mapped[str] = mapped_column(ID)
    from_stage: Mapped[str | None] = mapped_column(String(64), default=None)
    to_stage: Mapped[str] = mapped_column(String(64))
    occurred_at: Mapped[datetime] = mapped_column(WHEN)


class FrictionEvent(Base):
    """A friction flag and where a CX team is with it (open, acknowledged, resolved)."""

    __tablename__ = "friction_events"
    __table_args__ = (Index("ix_friction_events_status_time", "status", "occurred_at"),)

    flag_id: Mapped[str] = mapped_column(String(40), primary_key=True)
    customer_id: Mapped[str] = mapped_column(ID, index=True)
    raised_as: Mapped[str] = mapped_column(ID)
    rule_id: Mapped[str] = mapped_column(String(64))
    severity: Mapped[str] = mapped_column(String(16))
    journey: Mapped[str] = mapped_column(String(64))
    stage: Mapped[str | None] = mapped_column(String(64), default=None)
    channel: Mapped[str] = mapped_column(String(16))
    occurred_at: Mapped[datetime] = mapped_column(WHEN)
    evidence: Mapped[list[str]] = mapped_column(JSON, default=list)
    value_at_risk: Mapped[Decimal] = mapped_column(MONEY, default=Decimal(0))
    status: Mapped[str] = mapped_column(String(16), default="open")
    status_changed_at: Mapped[datetime | None] = mapped_column(WHEN, default=None)
    status_changed_by: Mapped[str | None] = mapped_column(String(64), default=None)


class FrictionNote(Base):
    """One change of a friction event's status, with who made it and why."""

    __tablename__ = "friction_history"

    id: Mapped[int] = mapped_column(ROW_ID, primary_key=True, autoincrement=True)
    flag_id: Mapped[str] = mapped_column(ForeignKey("friction_events.flag_id"), index=True)
    status: Mapped[str] = mapped_column(String(16))
    note: Mapped[str] = mapped_column(Text, default="")
    actor: Mapped[str] = mapped_column(String(64))
    at: Mapped[datetime] = mapped_column(WHEN)


class RelationshipMetrics(Base):
    """What a customer is worth and how the relationship stands, kept as events apply.
    Amounts add up in ``currency`` (the first seen); amounts in another currency are counted
    in ``other_currency_amounts`` and left out of the sums."""

    __tablename__ = "relationship_metrics"

    customer_id: Mapped[str] = mapped_column(ID, primary_key=True)
    currency: Mapped[str | None] = mapped_column(String(3), default=None)
    lifetime_spend: Mapped[Decimal] = mapped_column(MONEY, default=Decimal(0))
    orders: Mapped[int] = mapped_column(Integer, default=0)
    returns: Mapped[int] = mapped_column(Integer, default=0)
    returned_amount: Mapped[Decimal] = mapped_column(MONEY, default=Decimal(0))
    other_currency_amounts: Mapped[int] = mapped_column(Integer, default=0)
    open_invoices: Mapped[int] = mapped_column(Integer, default=0)
    amount_open: Mapped[Decimal] = mapped_column(MONEY, default=Decimal(0))
    failed_payments: Mapped[int] = mapped_column(Integer, default=0)
    open_tickets: Mapped[int] = mapped_column(Integer, default=0)
    last_csat: Mapped[int | None] = mapped_column(Integer, default=None)
    last_csat_at: Mapped[datetime | None] = mapped_column(WHEN, default=None)
    last_nps: Mapped[int | None] = mapped_column(Integer, default=None)
    last_nps_at: Mapped[datetime | None] = mapped_column(WHEN, default=None)
    last_web_at: Mapped[datetime | None] = mapped_column(WHEN, default=None)
    last_store_at: Mapped[datetime | None] = mapped_column(WHEN, default=None)
    last_billing_at: Mapped[datetime | None] = mapped_column(WHEN, default=None)
    last_support_at: Mapped[datetime | None] = mapped_column(WHEN, default=None)
    interactions: Mapped[int] = mapped_column(Integer, default=0)
    health_score: Mapped[int | None] = mapped_column(Integer, default=None)
    updated_at: Mapped[datetime] = mapped_column(WHEN)


class FrictionDaily(Base):
    """Flags per day (event time, UTC), journey, stage, rule and channel, for reports."""

    __tablename__ = "friction_daily"

    day: Mapped[date] = mapped_column(Date, primary_key=True)
    journey: Mapped[str] = mapped_column(String(64), primary_key=True)
    stage: Mapped[str] = mapped_column(String(64), primary_key=True)  # "" for none
    rule_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    channel: Mapped[str] = mapped_column(String(16), primary_key=True)
    flags: Mapped[int] = mapped_column(Integer, default=0)
    value_at_risk: Mapped[Decimal] = mapped_column(MONEY, default=Decimal(0))


class StageDaily(Base):
    """Customers entering each journey stage per day (event time, UTC): report denominators."""

    __tablename__ = "stage_daily"

    day: Mapped[date] = mapped_column(Date, primary_key=True)
    journey: Mapped[str] = mapped_column(String(64), primary_key=True)
    stage: Mapped[str] = mapped_column(String(64), primary_key=True)
    entered: Mapped[int] = mapped_column(Integer, default=0)
