"""A small CRM store with every kind of row, for the 360 view, API and CLI tests."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

from sqlalchemy import Engine
from sqlalchemy.orm import Session

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

AS_OF = datetime(2025, 6, 1, 12, 0, tzinfo=UTC)
CHANNELS = ("web", "store", "billing", "support")


def ago(**delta: float) -> datetime:
    return AS_OF - timedelta(**delta)


def flag(
    flag_id: str, customer: str, rule: str, severity: str, at: datetime, **kw: object
) -> FrictionEvent:
    return FrictionEvent(
        flag_id=flag_id,
        customer_id=customer,
        raised_as=kw.pop("raised_as", customer),
        rule_id=rule,
        severity=severity,
        journey=kw.pop("journey", "purchase"),
        stage=kw.pop("stage", None),
        channel=kw.pop("channel", "web"),
        occurred_at=at,
        evidence=[f"ev-{flag_id}"],
        value_at_risk=kw.pop("value_at_risk", Decimal("0")),
        status=kw.pop("status", "open"),
        **kw,
    )


def populate(engine: Engine) -> None:
    """Ana (c-1) with two merged-away ids, a full history and friction; Bo (c-2) bare."""
    with Session(engine) as s, s.begin():
        s.add_all(
            [
                Customer(
                    customer_id="c-1",
                    name="Ana Silva",
                    email="Ana@Example.com",
                    phone="+4915112345678",
                    segment="retail",
                    tier="gold",
                    account_owner="maria",
                    consent_email=True,
                    consent_sms=False,
                    custom={"region": "north"},
                    crm_imported_at=ago(days=30),
                    first_seen_at=ago(days=200),
                    updated_at=ago(days=1),
                ),
                Customer(customer_id="c-2", first_seen_at=ago(days=5), updated_at=ago(days=5)),
                Merge(
                    loser="c-old",
                    winner="c-1",
                    event_id="e-m1",
                    reason="shared_identifier",
                    occurred_at=ago(days=20),
                ),
                Merge(
                    loser="c-older",
                    winner="c-old",
                    event_id="e-m0",
                    reason="shared_identifier",
                    occurred_at=ago(days=40),
                ),
            ]
        )
        for kind, value, customer in [
            ("customer_id", "c-1", "c-1"),
            ("customer_id", "c-old", "c-1"),
            ("email", "ana@example.com", "c-1"),
            ("phone", "+4915112345678", "c-1"),
            ("loyalty_id", "L-77", "c-1"),
            ("account_id", "A-9", "c-1"),
            ("anonymous_id", "anon-1", "c-1"),
            ("customer_id", "c-2", "c-2"),
            ("email", "bo@example.com", "c-2"),
        ]:
            s.add(
                Identity(kind=kind, value=value, customer_id=customer, first_seen_at=ago(days=100))
            )
        for n in range(25):
            channel = CHANNELS[n % 4]
            s.add(
                Interaction(
                    event_id=f"e-{n:02d}",
                    customer_id="c-1",
                    type=f"{channel}.thing_{n}",
                    channel=channel,
                    source=f"src-{channel}",
                    occurred_at=ago(hours=100 - n),
                    received_at=ago(hours=100 - n) + timedelta(seconds=1),
                    attributes={"n": n},
                )
            )
        s.add(
            Interaction(
                event_id="e-bo",
                customer_id="c-2",
                type="web.login",
                channel="web",
                source="shop",
                occurred_at=ago(hours=1),
                attributes={},
            )
        )
        s.add(
            RelationshipMetrics(
                customer_id="c-1",
                currency="EUR",
                lifetime_spend=Decimal("250.00"),
                orders=3,
                returns=1,
                returned_amount=Decimal("20.00"),
                open_invoices=2,
                amount_open=Decimal("150.00"),
                failed_payments=1,
                open_tickets=1,
                last_csat=2,
                last_csat_at=ago(days=3),
                last_nps=9,
                last_nps_at=ago(days=3),
                last_web_at=ago(days=100),
                last_support_at=ago(days=2),
                interactions=25,
                health_score=None,  # not computed yet: the view computes it
                updated_at=ago(days=1),
            )
        )
        s.add_all(
            [
                Invoice(
                    invoice_id="i-1",
                    customer_id="c-1",
                    amount=Decimal("100.00"),
                    due_at=ago(days=3),
                ),
                Invoice(
                    invoice_id="i-2",
                    customer_id="c-1",
                    amount=Decimal("50.00"),
                    due_at=AS_OF + timedelta(days=3),
                ),
                Invoice(
                    invoice_id="i-3",
                    customer_id="c-1",
                    amount=Decimal("30.00"),
                    due_at=ago(days=10),
                    paid_at=ago(days=9),
                ),
                Invoice(
                    invoice_id="i-4", customer_id="c-2", amount=Decimal("70.00"), due_at=ago(days=3)
                ),
            ]
        )
        s.add_all(
            [
                JourneyStateRow(
                    customer_id="c-1",
                    journey="purchase",
                    stage="checkout",
                    entered_at=ago(hours=80),
                    event_id="e-20",
                ),
                JourneyStateRow(
                    customer_id="c-1",
                    journey="billing",
                    stage="invoiced",
                    entered_at=ago(days=13),
                    event_id="e-01",
                ),
                JourneyStateRow(
                    customer_id="c-2",
                    journey="purchase",
                    stage="discover",
                    entered_at=ago(hours=1),
                    event_id="e-bo",
                ),
            ]
        )
        s.add_all(
            [
                flag(
                    "f-pay",
                    "c-1",
                    "payment_failed",
                    "high",
                    ago(days=14),
                    journey="billing",
                    channel="billing",
                    value_at_risk=Decimal("150.00"),
                    raised_as="c-old",
                ),
                flag(
                    "f-cart",
                    "c-1",
                    "checkout_abandoned",
                    "medium",
                    AS_OF,
                    stage="checkout",
                    value_at_risk=Decimal("250.00"),
                    status="acknowledged",
                    status_changed_at=ago(hours=1),
                    status_changed_by="maria",
                ),
                *[
                    flag(
                        f"f-old{n:02d}",
                        "c-1",
                        "long_queue",
                        "low",
                        ago(days=30 + n),
                        channel="store",
                        status="resolved",
                    )
                    for n in range(10)
                ],
                flag("f-bo", "c-2", "low_csat", "medium", ago(hours=2), journey="support"),
            ]
        )
