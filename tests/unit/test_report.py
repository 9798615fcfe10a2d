"""The friction report's period rules and rendering, without a store."""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal

import pytest

from services.errors import ReportError
from services.reports.friction import (
    ChannelFlags,
    DayLine,
    ExampleCustomer,
    FrictionReport,
    FrictionRow,
    StageLine,
    Totals,
)
from services.reports.output import ReportFormat, render
from services.reports.period import period_of
from tests.support import report_formats as formats

NOW = datetime(2026, 3, 20, 15, 30, tzinfo=UTC)


def test_default_is_the_last_seven_days_ending_today() -> None:
    period = period_of(None, None, NOW)
    assert (period.since, period.until, period.days) == (date(2026, 3, 14), date(2026, 3, 21), 7)
    assert period.previous_since == date(2026, 3, 7)
    assert not period.widened


@pytest.mark.parametrize(
    ("since", "until", "expected"),
    [
        ("2026-03-01", "2026-03-08", (date(2026, 3, 1), date(2026, 3, 8), False)),
        ("2026-03-01", None, (date(2026, 3, 1), date(2026, 3, 21), False)),
        (None, "2026-03-08", (date(2026, 3, 1), date(2026, 3, 8), False)),
        (
            "2026-03-01T00:00:00Z",
            "2026-03-08T00:00:00+00:00",
            (date(2026, 3, 1), date(2026, 3, 8), False),
        ),
        # a time of day widens to whole UTC days; offsets count, a naive time is UTC
        (
            "2026-03-01T10:00:00+02:00",
            "2026-03-07T00:00:01Z",
            (date(2026, 3, 1), date(2026, 3, 8), True),
        ),
        ("2026-03-01T01:00:00+02:00", "2026-03-08", (date(2026, 2, 28), date(2026, 3, 8), True)),
        (
            "2026-03-01 23:59",
            "2026-03-08T01:00:00+02:00",
            (date(2026, 3, 1), date(2026, 3, 8), True),
        ),
    ],
)
def test_periods(since: str | None, until: str | None, expected: tuple[date, date, bool]) -> None:
    period = period_of(since, until, NOW)
    assert (period.since, period.until, period.widened) == expected


@pytest.mark.parametrize(
    ("since", "until", "message"),
    [
        ("soon", None, "since 'soon' is not a date (2026-03-02) or an ISO date-time"),
        (None, "2026-13-01", "until '2026-13-01' is not a date"),
        ("2026-03-08", "2026-03-08", "since (2026-03-08) must be before until (2026-03-08, "),
        ("2026-03-09", "2026-03-08", "must be before"),
        ("2020-01-01", "2026-01-01", "is 2192 days; a report covers at most 731"),
        ("0001-01-02", "0001-01-05", "out of range"),
        (None, "9999-12-31T10:00:00Z", "out of range"),
    ],
)
def test_bad_periods_say_why(since: str | None, until: str | None, message: str) -> None:
    with pytest.raises(ReportError, match=message.replace("(", r"\(").replace(")", r"\)")):
        period_of(since, until, NOW)


def _report(customer: str) -> FrictionReport:
    row = FrictionRow(
        journey="purchase",
        stage="checkout",
        rule_id="checkout_abandoned",
        severity="medium",
        flags=1200,
        customers=3,
        reached=7,
        stage_entries=9,
        rate_per_1000=428.6,
        value_at_risk=Decimal("12345.60"),
        previous_flags=1000,
        change=200,
        change_pct=20.0,
        top_channels=[ChannelFlags(channel="web", flags=1200)],
        examples=[ExampleCustomer(customer_id=customer, flags=1, value_at_risk=Decimal("1.00"))],
    )
    period = period_of("2026-03-09", "2026-03-11", NOW)
    return FrictionReport(
        journey=None,
        since=period.start,
        until=period.end,
        previous_since=period.previous_start,
        days=2,
        generated_at=NOW,
        totals=Totals(
            flags=1200,
            customers=3,
            value_at_risk=Decimal("12345.60"),
            previous_flags=1000,
            change=200,
            change_pct=20.0,
        ),
        rows=[row],
        stages=[
            StageLine(
                journey="purchase",
                stage="checkout",
                flags=1200,
                previous_flags=1000,
                value_at_risk=Decimal("12345.60"),
                stage_entries=9,
                reached=7,
            )
        ],
        daily=[
            DayLine(day=d, flags=600, value_at_risk=Decimal(0), previous_flags=500)
            for d in period.each_day()
        ],
    )


def test_html_escapes_what_the_store_holds() -> None:
    hostile = '<script src="https://evil.example/x.js"></script>'
    page = render(_report(hostile), ReportFormat.html)
    assert "<script" not in page
    assert "&lt;script src=&quot;https://evil.example/x.js&quot;&gt;" in page
    rows, _ = formats.from_html(page)
    assert rows[0]["examples"] == hostile


def test_thousands_separators_do_not_change_the_numbers() -> None:
    report = _report("cus-1")
    html_rows, html_totals = formats.from_html(render(report, ReportFormat.html))
    csv_rows, csv_totals = formats.from_csv(render(report, ReportFormat.csv))
    assert "1,200" in render(report, ReportFormat.html)
    assert html_rows == formats.common(csv_rows, set(html_rows[0]))
    assert html_totals == csv_totals
    assert csv_rows[0]["value_at_risk"] == Decimal("12345.60")
    assert csv_rows[0]["flags"] == 1200
