"""Customer 360, identifier lookup and the friction workflow over PostgreSQL and SQLite, from
rows written straight into the store."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest
from sqlalchemy import Engine

from services.crm.view import customer_360, lookup
from services.crm.workflow import change_status, friction, history
from services.errors import FrictionTransitionRefused, UnknownFriction
from services.store.db import engine_for, upgrade
from tests.support.crm_store import AS_OF, ago, populate


@pytest.fixture
def engine(store_url: str) -> Engine:
    upgrade(store_url)
    engine = engine_for(store_url)
    populate(engine)
    return engine


def test_the_360_view_has_every_part(engine: Engine) -> None:
    view = customer_360(engine, "c-1", as_of=AS_OF)
    assert view is not None
    assert view.customer_id == "c-1"
    assert view.as_of == AS_OF
    p = view.profile
    assert (p.name, p.email, p.phone, p.segment, p.tier, p.account_owner) == (
        "Ana Silva",
        "Ana@Example.com",
        "+4915112345678",
        "retail",
        "gold",
        "maria",
    )
    assert (p.consent_email, p.consent_sms, p.consent_tracking) == (True, False, None)
    assert p.custom == {"region": "north"}
    assert p.first_seen_at == ago(days=200)
    assert p.crm_imported_at == ago(days=30)
    assert [(i.kind, i.value) for i in view.identifiers] == [
        ("account_id", "A-9"),
        ("anonymous_id", "anon-1"),
        ("customer_id", "c-1"),
        ("customer_id", "c-old"),
        ("email", "ana@example.com"),
        ("loyalty_id", "L-77"),
        ("phone", "+4915112345678"),
    ]
    assert [(m.customer_id, m.merged_at, m.event_id) for m in view.merged_ids] == [
        ("c-older", ago(days=40), "e-m0"),
        ("c-old", ago(days=20), "e-m1"),
    ]
    assert {j: (s.stage, s.entered_at) for j, s in view.journeys.items()} == {
        "billing": ("invoiced", ago(days=13)),
        "purchase": ("checkout", ago(hours=80)),
    }


def test_metrics_overdue_amount_and_health_at_as_of(engine: Engine) -> None:
    view = customer_360(engine, "c-1", as_of=AS_OF)
    assert view is not None
    m = view.metrics
    assert (m.currency, m.lifetime_spend, m.orders, m.returns, m.returned_amount) == (
        "EUR",
        Decimal("250.00"),
        3,
        1,
        Decimal("20.00"),
    )
    assert (m.open_invoices, m.amount_open, m.failed_payments, m.open_tickets) == (
        2,
        Decimal("150.00"),
        1,
        1,
    )
    assert m.amount_overdue == Decimal("100.00")  # i-1 only: i-2 not due, i-3 paid, i-4 Bo's
    assert (m.last_csat, m.last_nps, m.interactions) == (2, 9, 25)
    assert m.last_contact_at == ago(days=2)
    # friction: high 14 days old -10, medium fresh -10; csat 2 -15; nps 9 +5;
    # failed payment with invoices open -10, overdue -15; contact 2 days ago 0
    assert m.health is not None
    assert (m.health.friction, m.health.csat, m.health.nps, m.health.payment) == (-20, -15, 5, -25)
    assert m.health.engagement == 0
    assert m.health_score == 45
    later = customer_360(engine, "c-1", as_of=AS_OF + timedelta(days=120))
    assert later is not None
    assert later.metrics.amount_overdue == Decimal("150.00")  # i-2 is due by then
    assert later.metrics.health is not None
    assert later.metrics.health.engagement == -10


def test_open_and_recent_friction_newest_first(engine: Engine) -> None:
    view = customer_360(engine, "c-1", as_of=AS_OF)
    assert view is not None
    assert [(f.flag_id, f.status) for f in view.open_friction] == [
        ("f-cart", "acknowledged"),
        ("f-pay", "open"),
    ]
    pay = view.open_friction[1]
    assert (pay.rule_id, pay.severity, pay.journey, pay.channel, pay.raised_as) == (
        "payment_failed",
        "high",
        "billing",
        "billing",
        "c-old",
    )
    assert pay.value_at_risk == Decimal("150.00")
    assert pay.evidence == ["ev-f-pay"]
    assert pay.occurred_at == ago(days=14)
    cart = view.open_friction[0]
    assert (cart.stage, cart.status_changed_by, cart.status_changed_at) == (
        "checkout",
        "maria",
        ago(hours=1),
    )
    assert [f.flag_id for f in view.recent_friction] == [
        "f-cart",
        "f-pay",
        *[f"f-old{n:02d}" for n in range(8)],
    ]


def test_the_timeline_is_the_latest_interactions_newest_first(engine: Engine) -> None:
    view = customer_360(engine, "c-1", as_of=AS_OF)
    assert view is not None
    assert [i.event_id for i in view.interactions] == [f"e-{n:02d}" for n in range(24, 4, -1)]
    first = view.interactions[0]
    assert (first.type, first.channel, first.source, first.attributes) == (
        "web.thing_24",
        "web",
        "src-web",
        {"n": 24},
    )
    assert first.occurred_at == ago(hours=76)
    assert first.received_at == ago(hours=76) + timedelta(seconds=1)
    short = customer_360(engine, "c-1", interactions=3, as_of=AS_OF)
    assert short is not None
    assert [(i.event_id, i.channel) for i in short.interactions] == [
        ("e-24", "web"),
        ("e-23", "support"),
        ("e-22", "billing"),
    ]


def test_a_bare_customer_has_default_metrics_and_its_own_rows_only(engine: Engine) -> None:
    view = customer_360(engine, "c-2", as_of=AS_OF)
    assert view is not None
    assert view.profile.name is None
    assert view.merged_ids == []
    assert [i.event_id for i in view.interactions] == ["e-bo"]
    assert [f.flag_id for f in view.open_friction] == ["f-bo"]
    assert view.metrics.orders == 0
    assert view.metrics.amount_overdue == Decimal("70.00")
    # no metrics row, so no contact known: -10; a 2-hour-old medium flag -9.96; overdue -15
    assert view.metrics.health is not None
    assert (view.metrics.health.engagement, view.metrics.health.payment) == (-10, -15)
    assert view.metrics.health_score == 65
    assert customer_360(engine, "nobody", as_of=AS_OF) is None


@pytest.mark.parametrize(
    ("kind", "value", "found"),
    [
        ("customer_id", "c-1", "c-1"),
        ("customer_id", "c-old", "c-1"),
        ("customer_id", "c-older", "c-1"),
        ("email", "ana@example.com", "c-1"),
        ("email", " ANA@Example.COM ", "c-1"),
        ("phone", "+4915112345678", "c-1"),
        ("loyalty_id", "L-77", "c-1"),
        ("loyalty_id", "l-77", None),
        ("account_id", "A-9", "c-1"),
        ("anonymous_id", "anon-1", "c-1"),
        ("email", "bo@example.com", "c-2"),
        ("customer_id", "nobody", None),
        ("email", "nobody@example.com", None),
    ],
)
def test_lookup(engine: Engine, kind: str, value: str, found: str | None) -> None:
    assert lookup(engine, kind, value) == found


def test_lookup_of_an_unknown_kind_is_refused(engine: Engine) -> None:
    with pytest.raises(ValueError, match="unknown identifier kind 'twitter'"):
        lookup(engine, "twitter", "@ana")


def test_acknowledge_resolve_reopen_keep_the_history(engine: Engine) -> None:
    acked = change_status(engine, "f-pay", "acknowledged", "calling her", "maria", ago(hours=3))
    assert (acked.status, acked.status_changed_by, acked.status_changed_at) == (
        "acknowledged",
        "maria",
        ago(hours=3),
    )
    resolved = change_status(engine, "f-pay", "resolved", "  card updated ", "joe", ago(hours=2))
    assert resolved.status == "resolved"
    assert [(h.status, h.note, h.actor, h.at) for h in resolved.history] == [
        ("acknowledged", "calling her", "maria", ago(hours=3)),
        ("resolved", "card updated", "joe", ago(hours=2)),
    ]
    with pytest.raises(
        FrictionTransitionRefused, match="cannot resolve flag 'f-pay': it is resolved"
    ):
        change_status(engine, "f-pay", "resolved", "again", "joe")
    with pytest.raises(FrictionTransitionRefused, match="it is resolved \\(reopen it first\\)"):
        change_status(engine, "f-pay", "acknowledged", "again", "joe")
    reopened = change_status(engine, "f-pay", "open", "card failed again", "joe", ago(hours=1))
    assert reopened.status == "open"
    assert [h.status for h in history(engine, "f-pay")] == ["acknowledged", "resolved", "open"]
    assert friction(engine, "f-pay").status_changed_at == ago(hours=1)
    view = customer_360(engine, "c-1", as_of=AS_OF)
    assert view is not None
    assert "f-pay" in [f.flag_id for f in view.open_friction]
    change_status(engine, "f-pay", "resolved", "paid", "joe", AS_OF)
    view = customer_360(engine, "c-1", as_of=AS_OF)
    assert view is not None
    assert [f.flag_id for f in view.open_friction] == ["f-cart"]
    assert view.metrics.health is not None
    assert view.metrics.health.friction == -10  # the resolved flag no longer counts


def test_workflow_refusals(engine: Engine) -> None:
    with pytest.raises(UnknownFriction, match="no friction event with flag id 'nope'"):
        change_status(engine, "nope", "resolved", "done", "joe")
    with pytest.raises(UnknownFriction):
        history(engine, "nope")
    with pytest.raises(FrictionTransitionRefused, match="cannot reopen flag 'f-bo': it is open"):
        change_status(engine, "f-bo", "open", "why", "joe")
    with pytest.raises(FrictionTransitionRefused, match="without a note"):
        change_status(engine, "f-bo", "acknowledged", "   ", "joe")
    with pytest.raises(FrictionTransitionRefused, match="actor must be 1-64 characters"):
        change_status(engine, "f-bo", "acknowledged", "on it", "x" * 65)
    assert friction(engine, "f-bo").history == []
    assert friction(engine, "f-bo").status == "open"
