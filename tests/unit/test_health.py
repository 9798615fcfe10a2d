"""The health score's components at their boundaries, decay, cap and clamp; value at risk."""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from services.crm.health import health, health_score, value_at_risk

AS_OF = datetime(2025, 6, 1, 12, 0, tzinfo=UTC)


@dataclass(frozen=True)
class Metrics:
    last_csat: int | None = None
    last_nps: int | None = None
    failed_payments: int = 0
    open_invoices: int = 0
    last_web_at: datetime | None = AS_OF - timedelta(days=1)
    last_store_at: datetime | None = None
    last_billing_at: datetime | None = None
    last_support_at: datetime | None = None
    amount_open: Decimal = Decimal(0)
    lifetime_spend: Decimal = Decimal(0)


@dataclass(frozen=True)
class Flag:
    severity: str
    occurred_at: datetime


QUIET = Metrics()


def days_ago(days: float) -> datetime:
    return AS_OF - timedelta(days=days)


def test_a_quiet_healthy_customer_scores_100() -> None:
    assert health_score(QUIET, [], AS_OF) == 100


@pytest.mark.parametrize(("severity", "penalty"), [("high", 20), ("medium", 10), ("low", 5)])
def test_fresh_friction_subtracts_by_severity(severity: str, penalty: int) -> None:
    assert health_score(QUIET, [Flag(severity, AS_OF)], AS_OF) == 100 - penalty


def test_unknown_severity_counts_as_low() -> None:
    assert health_score(QUIET, [Flag("critical?", AS_OF)], AS_OF) == 95


@pytest.mark.parametrize(("age_days", "score"), [(14, 90), (28, 95), (7, 86), (42, 98), (365, 100)])
def test_friction_halves_every_14_days(age_days: float, score: int) -> None:
    # 20 * 0.5 ** (7/14) = 14.14 -> 86; 20 * 0.5 ** 3 = 2.5 -> 97.5 rounds half up to 98
    assert health_score(QUIET, [Flag("high", days_ago(age_days))], AS_OF) == score


def test_friction_after_as_of_counts_in_full() -> None:
    assert health_score(QUIET, [Flag("high", AS_OF + timedelta(days=3))], AS_OF) == 80


def test_friction_is_capped_at_50() -> None:
    two = [Flag("high", AS_OF), Flag("high", AS_OF)]
    assert health_score(QUIET, two, AS_OF) == 60
    assert health_score(QUIET, [Flag("high", AS_OF)] * 10, AS_OF) == 50
    parts = health(QUIET, [Flag("high", AS_OF)] * 10, AS_OF)
    assert parts.friction == -50.0


def test_naive_times_are_read_as_utc() -> None:
    naive = (AS_OF - timedelta(days=14)).replace(tzinfo=None)
    assert health_score(QUIET, [Flag("high", naive)], AS_OF) == 90


@pytest.mark.parametrize(
    ("csat", "score"), [(None, 100), (1, 85), (2, 85), (3, 95), (4, 100), (5, 100)]
)
def test_csat(csat: int | None, score: int) -> None:
    assert health_score(replace(QUIET, last_csat=csat), [], AS_OF) == score


@pytest.mark.parametrize(
    ("nps", "component"), [(None, 0), (0, -10), (6, -10), (7, 0), (8, 0), (9, 5), (10, 5)]
)
def test_nps(nps: int | None, component: int) -> None:
    assert health(replace(QUIET, last_nps=nps), [], AS_OF).nps == component
    assert health_score(replace(QUIET, last_nps=nps), [], AS_OF) == min(100, 100 + component)


def test_a_promoter_offsets_friction_but_never_passes_100() -> None:
    promoter = replace(QUIET, last_nps=10)
    assert health_score(promoter, [], AS_OF) == 100
    assert health_score(promoter, [Flag("low", AS_OF)], AS_OF) == 100
    assert health_score(promoter, [Flag("medium", AS_OF)], AS_OF) == 95


@pytest.mark.parametrize(
    ("failed", "open_invoices", "overdue", "component"),
    [
        (0, 0, "0", 0),
        (1, 0, "0", 0),  # failed once, since paid: nothing open
        (0, 1, "0", 0),
        (1, 1, "0", -10),
        (0, 1, "0.01", -15),
        (2, 1, "120.00", -25),
    ],
)
def test_payment(failed: int, open_invoices: int, overdue: str, component: int) -> None:
    metrics = replace(QUIET, failed_payments=failed, open_invoices=open_invoices)
    result = health(metrics, [], AS_OF, amount_overdue=Decimal(overdue))
    assert result.payment == component
    assert result.score == 100 + component


@pytest.mark.parametrize(
    ("last_seen", "score"),
    [
        (days_ago(90), 100),
        (days_ago(90) - timedelta(seconds=1), 90),
        (days_ago(400), 90),
        (None, 90),
        (AS_OF + timedelta(days=1), 100),
    ],
)
def test_engagement_needs_a_contact_within_90_days(last_seen: datetime | None, score: int) -> None:
    assert health_score(replace(QUIET, last_web_at=last_seen), [], AS_OF) == score


def test_engagement_takes_the_latest_channel() -> None:
    metrics = replace(QUIET, last_web_at=days_ago(300), last_support_at=days_ago(10))
    assert health_score(metrics, [], AS_OF) == 100


def test_no_metrics_yet_counts_as_no_contact() -> None:
    assert health_score(None, [], AS_OF) == 90
    assert health_score(None, [Flag("medium", AS_OF)], AS_OF) == 80


def test_the_score_is_clamped_at_zero() -> None:
    worst = Metrics(last_csat=1, last_nps=0, failed_payments=3, open_invoices=2, last_web_at=None)
    flags = [Flag("high", AS_OF)] * 5
    result = health(worst, flags, AS_OF, amount_overdue=Decimal(10))
    assert (result.friction, result.csat, result.nps, result.payment, result.engagement) == (
        -50.0,
        -15,
        -10,
        -25,
        -10,
    )
    assert result.score == 0


def test_rounds_half_up() -> None:
    # 5 * 0.5 ** (14 / 14) = 2.5 -> 97.5 -> 98; 5 * 0.5 ** (28 / 14) = 1.25 -> 98.75 -> 99
    assert health_score(QUIET, [Flag("low", days_ago(14))], AS_OF) == 98
    assert health_score(QUIET, [Flag("low", days_ago(28))], AS_OF) == 99


@pytest.mark.parametrize("rule", ["payment_failed", "invoice_overdue"])
def test_value_at_risk_of_billing_rules_is_the_open_amount(rule: str) -> None:
    metrics = Metrics(amount_open=Decimal("80.5"), lifetime_spend=Decimal("1000"))
    assert value_at_risk(rule, {}, metrics) == Decimal("80.50")
    nothing_open = replace(metrics, amount_open=Decimal(0))
    assert value_at_risk(rule, {"amount": "42.10"}, nothing_open) == Decimal("42.10")
    assert value_at_risk(rule, {"amount": "n/a"}, nothing_open) == Decimal("0.00")
    assert value_at_risk(rule, {}, None) == Decimal("0.00")


def test_value_at_risk_of_other_rules_is_lifetime_spend_never_negative() -> None:
    metrics = Metrics(amount_open=Decimal("80"), lifetime_spend=Decimal("1234.567"))
    assert value_at_risk("checkout_abandoned", {"amount": "5"}, metrics) == Decimal("1234.57")
    refunded = replace(metrics, lifetime_spend=Decimal("-30"))
    assert value_at_risk("low_csat", {}, refunded) == Decimal("0.00")
    assert value_at_risk("low_csat", {}, None) == Decimal("0.00")


def test_the_documented_example() -> None:
    ana = Metrics(
        last_csat=2,
        last_nps=9,
        failed_payments=1,
        open_invoices=1,
        last_web_at=None,
        last_support_at=days_ago(2),
    )
    flags = [Flag("high", AS_OF), Flag("medium", AS_OF)]
    assert health_score(ana, flags, AS_OF, amount_overdue=Decimal("99.90")) == 35


def test_a_fully_decayed_flag_shows_as_zero_not_minus_zero() -> None:
    friction = health(QUIET, [Flag("low", days_ago(400))], AS_OF).friction
    assert str(friction) == "0.0"
