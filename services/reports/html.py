"""The friction report as one self-contained HTML page: inline CSS and SVG charts, no script,
no font, image or style fetched from anywhere, so it can travel as an e-mail attachment."""

from __future__ import annotations

from decimal import Decimal
from html import escape

from services.reports.charts import PALETTE, Bar, bar_chart, trend_chart
from services.reports.friction import FrictionReport, FrictionRow
from services.reports.render import channels_text, examples_text, period_text, signed

__all__ = ["COLUMNS", "as_html"]

STYLE = """
body { font-family: -apple-system, "Segoe UI", Helvetica, Arial, sans-serif; color: #222;
       margin: 24px auto; max-width: 1180px; padding: 0 16px; }
h1 { font-size: 22px; margin: 0 0 4px; }
h2 { font-size: 16px; margin: 28px 0 8px; }
p.period { color: #555; margin: 0 0 16px; }
.cards { display: flex; gap: 12px; flex-wrap: wrap; }
.card { border: 1px solid #ddd; border-radius: 6px; padding: 10px 14px; min-width: 160px; }
.card .value { font-size: 22px; font-weight: 600; }
.card .label { color: #555; font-size: 12px; }
.up { color: #b3261e; } .down { color: #1e7b34; }
table { border-collapse: collapse; width: 100%; font-size: 13px; }
th, td { border-bottom: 1px solid #e3e3e3; padding: 5px 8px; text-align: left;
         vertical-align: top; }
th { background: #f5f5f5; font-weight: 600; }
td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
tfoot td { font-weight: 600; border-top: 2px solid #ccc; }
.sev-high { color: #b3261e; font-weight: 600; } .sev-medium { color: #a35a00; }
.legend { color: #555; font-size: 12px; }
footer { color: #666; font-size: 12px; margin-top: 28px; }
"""

# field, header, numeric: the table's columns, as named in the JSON and the CSV
COLUMNS = (
    ("journey", "Journey", False),
    ("stage", "Stage", False),
    ("rule_id", "Rule", False),
    ("severity", "Severity", False),
    ("flags", "Flags", True),
    ("customers", "Customers affected", True),
    ("reached", "Reached stage", True),
    ("rate_per_1000", "Per 1,000 reached", True),
    ("value_at_risk", "Value at risk", True),
    ("previous_flags", "Previous flags", True),
    ("change", "Change", True),
    ("change_pct", "Change %", True),
    ("top_channels", "Top channels", False),
    ("examples", "Example customers", False),
)


NONE = "&ndash;"  # an empty cell: no stage, no reach, nothing before


def _text(value: str | None) -> str:
    return NONE if value is None else escape(value)


def _pct(value: float | None) -> str:
    return NONE if value is None else f"{value:+,.1f}"


def _number(value: int | float | Decimal | None) -> str:
    if value is None:
        return NONE
    if isinstance(value, Decimal):
        return f"{value:,.2f}"
    if isinstance(value, float):
        return f"{value:,.1f}"
    return f"{value:,}"


def _cells(r: FrictionRow) -> dict[str, str]:
    return {
        "journey": escape(r.journey),
        "stage": _text(r.stage),
        "rule_id": escape(r.rule_id),
        "severity": f'<span class="sev-{escape(r.severity or "")}">{_text(r.severity)}</span>',
        "flags": _number(r.flags),
        "customers": _number(r.customers),
        "reached": _number(r.reached),
        "rate_per_1000": _number(r.rate_per_1000),
        "value_at_risk": _number(r.value_at_risk),
        "previous_flags": _number(r.previous_flags),
        "change": f"{r.change:+,}",
        "change_pct": _pct(r.change_pct),
        "top_channels": escape(channels_text(r)),
        "examples": escape(examples_text(r)),
    }


def _table(report: FrictionReport) -> str:
    head = "".join(
        f'<th{" class=num" if num else ""} scope="col">{title}</th>' for _, title, num in COLUMNS
    )
    rows = []
    for r in report.rows:
        cells = _cells(r)
        rows.append(
            "<tr>"
            + "".join(
                f'<td{" class=num" if num else ""} data-field="{name}">{cells[name]}</td>'
                for name, _, num in COLUMNS
            )
            + "</tr>"
        )
    t = report.totals
    total = {
        "flags": _number(t.flags),
        "customers": _number(t.customers),
        "value_at_risk": _number(t.value_at_risk),
        "previous_flags": _number(t.previous_flags),
        "change": f"{t.change:+,}",
        "change_pct": _pct(t.change_pct),
    }
    foot = "".join(
        f'<td{" class=num" if num else ""} data-field="{name}">'
        f"{'Total' if name == 'journey' else total.get(name, '')}</td>"
        for name, _, num in COLUMNS
    )
    body = "".join(rows) or f'<tr><td colspan="{len(COLUMNS)}">No friction flags.</td></tr>'
    return (
        f'<table id="friction"><thead><tr>{head}</tr></thead><tbody>{body}</tbody>'
        f"<tfoot><tr>{foot}</tr></tfoot></table>"
    )


def _card(value: str, label: str, extra: str = "") -> str:
    return (
        f'<div class="card"><div class="value">{value}</div>'
        f'<div class="label">{label}{extra}</div></div>'
    )


def _charts(report: FrictionReport) -> str:
    colours: dict[str, str] = {}
    for line in report.stages:
        colours.setdefault(line.journey, PALETTE[len(colours) % len(PALETTE)])
    bars = [
        Bar(
            f"{s.journey} · {s.stage or '(no stage)'}",
            s.flags,
            s.previous_flags,
            colours[s.journey],
        )
        for s in report.stages
    ]
    days = [f"{d.day:%m-%d}" for d in report.daily]
    return (
        "<h2>Flags per journey stage</h2>"
        + bar_chart(bars, "Flags per journey stage")
        + '<p class="legend">Bars: this period. Black tick: the previous period.</p>'
        + "<h2>Flags per day</h2>"
        + trend_chart(
            days,
            [d.flags for d in report.daily],
            [d.previous_flags for d in report.daily],
            "Flags per day",
        )
        + '<p class="legend">Columns: this period, per UTC day. Dashed line: the same day of '
        "the previous period.</p>"
    )


def as_html(report: FrictionReport) -> str:
    """The whole page: period, totals, the two charts and the table."""
    t = report.totals
    trend = "up" if t.change > 0 else "down" if t.change < 0 else ""
    title = f"Friction report {period_text(report).partition(' (')[0]}"
    if report.journey:
        title += f", {report.journey}"
    cards = (
        _card(
            _number(t.flags),
            "flags",
            f' <span class="{trend}">{escape(signed(t.change, t.change_pct))}</span>'
            f" vs {_number(t.previous_flags)}",
        )
        + _card(_number(t.customers), "customers affected")
        + _card(_number(t.value_at_risk), "value at risk")
    )
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{escape(title)}</title><style>{STYLE}</style></head><body>"
        f'<h1>Friction report</h1><p class="period">{escape(period_text(report))}</p>'
        f'<div class="cards">{cards}</div>'
        f"{_charts(report)}"
        "<h2>Friction by journey, stage and rule</h2>"
        f"{_table(report)}"
        "<footer>Flags and value at risk: friction_daily. Customers affected and examples: "
        "friction_events. Reached stage: distinct customers moving into the stage "
        "(journey_transitions). Per 1,000 reached: customers affected per 1,000 customers "
        "who reached the stage. Value at risk is summed as stored, each flag in its "
        f"customer's currency. Generated {report.generated_at:%Y-%m-%d %H:%M} UTC by "
        "Touchstream.</footer></body></html>\n"
    )
