"""The friction report as a terminal table, CSV or JSON, and the wording every format shares."""

from __future__ import annotations

import csv
import io
from datetime import datetime, timedelta
from decimal import Decimal

from rich.console import Console, Group
from rich.table import Table
from rich.text import Text

from services.reports.friction import FrictionReport, FrictionRow

__all__ = [
    "CSV_COLUMNS",
    "as_csv",
    "as_json",
    "as_table",
    "channels_text",
    "examples_text",
    "period_text",
    "signed",
    "table_text",
]


CSV_COLUMNS = (
    "since",
    "until",
    "journey",
    "stage",
    "rule_id",
    "severity",
    "flags",
    "customers",
    "reached",
    "stage_entries",
    "rate_per_1000",
    "value_at_risk",
    "previous_flags",
    "change",
    "change_pct",
    "top_channels",
    "examples",
)
TOTAL = "TOTAL"  # the CSV's last row; journey ids are lower case, so it names none


def period_text(report: FrictionReport) -> str:
    """The period in words, days inclusive (``until`` is exclusive)."""

    def span(first: datetime, after: datetime) -> str:
        return f"{first:%Y-%m-%d} to {after - timedelta(days=1):%Y-%m-%d}"

    journey = f"journey {report.journey}" if report.journey else "all journeys"
    return (
        f"{span(report.since, report.until)} ({report.days} days, UTC), {journey}; "
        f"compared with {span(report.previous_since, report.since)}"
    )


def signed(change: int, pct: float | None) -> str:
    """``+21 (+27.6%)``; the percentage is left out when there was nothing before."""
    return f"{change:+d}" + (f" ({pct:+.1f}%)" if pct is not None else "")


def channels_text(row: FrictionRow) -> str:
    return "; ".join(f"{c.channel}:{c.flags}" for c in row.top_channels)


def examples_text(row: FrictionRow) -> str:
    return "; ".join(e.customer_id for e in row.examples)


def _utc(at: datetime) -> str:
    """RFC 3339 with ``Z``, as the JSON has it."""
    return at.isoformat().replace("+00:00", "Z")


def _opt(value: object) -> str:
    return "" if value is None else str(value)


# -- CSV and JSON ---------------------------------------------------------------------------


def as_csv(report: FrictionReport) -> str:
    """One row per journey, stage and rule, then a ``TOTAL`` row; numbers as in the JSON."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    period = [_utc(report.since), _utc(report.until)]
    for r in report.rows:
        writer.writerow(
            [
                *period,
                r.journey,
                _opt(r.stage),
                r.rule_id,
                _opt(r.severity),
                r.flags,
                r.customers,
                _opt(r.reached),
                _opt(r.stage_entries),
                _opt(r.rate_per_1000),
                r.value_at_risk,
                r.previous_flags,
                r.change,
                _opt(r.change_pct),
                channels_text(r),
                examples_text(r),
            ]
        )
    t = report.totals
    writer.writerow(
        [
            *period,
            TOTAL,
            *("",) * 3,
            t.flags,
            t.customers,
            *("",) * 3,
            t.value_at_risk,
            t.previous_flags,
            t.change,
            _opt(t.change_pct),
            "",
            "",
        ]
    )
    return buffer.getvalue()


def as_json(report: FrictionReport) -> str:
    return report.model_dump_json(indent=2) + "\n"


# -- terminal -------------------------------------------------------------------------------


def _change(change: int, pct: float | None) -> Text:
    style = "red" if change > 0 else "green" if change < 0 else ""
    return Text(signed(change, pct), style=style)


def _money(value: Decimal) -> str:
    return f"{value:,.2f}"


BRIEF = ("journey / stage", "rule", "severity", "flags", "customers", "per 1,000", "value at risk")


def as_table(report: FrictionReport, *, brief: bool = False, limit: int | None = None) -> Group:
    """Rich renderables: the period, the totals, and one line per journey, stage and rule.
    ``brief``: only the columns that fit a terminal of 80 characters; ``limit``: the rows
    with the most flags, and how many more there are."""
    t = report.totals
    head = Text.assemble(
        ("Friction report ", "bold"),
        period_text(report),
        "\n",
        f"{t.flags:,} flags ",
        _change(t.change, t.change_pct),
        f" against {t.previous_flags:,} before; {t.customers:,} customers affected; "
        f"{_money(t.value_at_risk)} at risk",
    )
    if not report.rows:
        return Group(head, Text("No friction flags in this period or the one before."))
    table = Table(title_justify="left", show_lines=False)
    columns = (
        ("journey / stage", "left"),
        ("rule", "left"),
        ("severity", "left"),
        ("flags", "right"),
        ("customers", "right"),
        ("reached", "right"),
        ("per 1,000", "right"),
        ("value at risk", "right"),
        ("previous", "right"),
        ("change", "right"),
        ("top channels", "left"),
        ("examples", "left"),
    )
    shown = [n for n, (column, _) in enumerate(columns) if not brief or column in BRIEF]
    for n in shown:
        column, justify = columns[n]
        table.add_column(column, justify=justify, overflow="fold")  # type: ignore[arg-type]
    rows = report.rows
    if limit is not None:
        rows = sorted(rows, key=lambda r: -r.flags)[:limit]
    for r in rows:
        cells = (
            f"{r.journey} / {r.stage or '-'}",
            r.rule_id,
            r.severity or "-",
            f"{r.flags:,}",
            f"{r.customers:,}",
            "-" if r.reached is None else f"{r.reached:,}",
            "-" if r.rate_per_1000 is None else f"{r.rate_per_1000:.1f}",
            _money(r.value_at_risk),
            f"{r.previous_flags:,}",
            _change(r.change, r.change_pct),
            channels_text(r).replace(";", ","),
            examples_text(r).replace(";", ","),
        )
        table.add_row(*(cells[n] for n in shown))
    more = len(report.rows) - len(rows)
    if more:
        return Group(head, table, Text(f"... and {more} more rows with fewer flags"))
    return Group(head, table)


def table_text(report: FrictionReport, width: int = 200) -> str:
    """The terminal table as plain text (for ``--output``)."""
    console = Console(file=io.StringIO(), width=width, no_color=True, highlight=False)
    console.print(as_table(report))
    return console.file.getvalue()  # type: ignore[attr-defined, no-any-return]
