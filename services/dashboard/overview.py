"""The overview page and the friction-report pieces the journey page shares: the period form,
headline cards, charts over time and per stage, and tables of report rows. Every number is
the friction report's (``services.reports.friction``), as ``GET /v1/reports/friction`` gives
it for the same period."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta
from decimal import Decimal

from services.dashboard.charts import hbar_chart
from services.dashboard.html import NONE, attrs, card, esc, integer, link, money, number, path
from services.reports.charts import PALETTE, Bar, bar_chart, trend_chart
from services.reports.friction import FrictionReport, FrictionRow, StageLine
from services.reports.render import period_text, signed

__all__ = [
    "daily_chart",
    "headline",
    "overview_page",
    "period_form",
    "period_query",
    "rows_table",
    "stage_chart",
]

TOP_ROWS = 10


def period_query(report: FrictionReport) -> dict[str, str]:
    """The report's period as ``since``/``until`` query values (``until`` excluded)."""
    return {"since": f"{report.since:%Y-%m-%d}", "until": f"{report.until:%Y-%m-%d}"}


def period_form(report: FrictionReport, action: str) -> str:
    """The period in words and a form to pick another (whole UTC days, ``until`` excluded)."""
    last = report.until - timedelta(days=1)
    return (
        f'<p class="period" data-since="{esc(report.since.isoformat())}" '
        f'data-until="{esc(report.until.isoformat())}">{esc(period_text(report))}</p>'
        f'<form class="period" method="get" action="{esc(action)}">'
        f'<label>From <input type="date" name="since" value="{report.since:%Y-%m-%d}"></label>'
        f'<label>until (not included) <input type="date" name="until" '
        f'value="{report.until:%Y-%m-%d}"></label><button>Show</button>'
        f'<span class="hint">last day shown: {last:%Y-%m-%d}</span></form>'
    )


def _change(change: int, pct: float | None) -> str:
    trend = "up" if change > 0 else "down" if change < 0 else ""
    return f'<span class="{trend}">{esc(signed(change, pct))}</span>'


def headline(report: FrictionReport) -> str:
    """Cards with the totals: flags (and their change), customers affected, value at risk."""
    t = report.totals
    return (
        '<div class="cards">'
        + card(
            "flags",
            integer(t.flags),
            t.flags,
            "flags",
            f" {_change(t.change, t.change_pct)} vs {integer(t.previous_flags)} before",
        )
        + card("customers affected", integer(t.customers), t.customers, "customers")
        + card("value at risk", money(t.value_at_risk), t.value_at_risk, "value_at_risk")
        + card(
            "flags in the previous period",
            integer(t.previous_flags),
            t.previous_flags,
            "previous_flags",
        )
        + "</div>"
    )


def daily_chart(report: FrictionReport, title: str = "Friction over time") -> str:
    days = [f"{d.day:%m-%d}" for d in report.daily]
    chart = trend_chart(
        days,
        [d.flags for d in report.daily],
        [d.previous_flags for d in report.daily],
        f"{title}: flags per day",
        width=900,
    )
    values = "".join(
        f"<li{attrs(data_day=d.day.isoformat(), data_flags=d.flags, data_value=d.value_at_risk)}>"
        f"</li>"
        for d in report.daily
    )
    return (
        f'<section><h2>{esc(title)}</h2>{chart}<ul class="series" hidden>{values}</ul>'
        '<p class="legend">Columns: flags per UTC day (event time). Dashed line: the same day '
        "of the previous period.</p></section>"
    )


def _stage_name(line: StageLine | FrictionRow) -> str:
    return line.stage or "(no stage)"


def stage_chart(lines: Sequence[StageLine], with_journey: bool = True) -> str:
    """Flags per journey stage (a tick for the previous period) and value at risk per stage."""
    colours: dict[str, str] = {}
    for line in lines:
        colours.setdefault(line.journey, PALETTE[len(colours) % len(PALETTE)])

    def name(line: StageLine) -> str:
        return f"{line.journey} · {_stage_name(line)}" if with_journey else _stage_name(line)

    bars = [Bar(name(s), s.flags, s.previous_flags, colours[s.journey]) for s in lines]
    at_risk = [
        (name(s), float(s.value_at_risk), money(s.value_at_risk))
        for s in lines
        if s.value_at_risk > 0
    ]
    return (
        '<section class="pair"><div><h2>Flags per journey stage</h2>'
        + bar_chart(bars, "Flags per journey stage", width=620)
        + '<p class="legend">Bars: this period. Black tick: the previous period.</p></div>'
        + "<div><h2>Value at risk per journey stage</h2>"
        + hbar_chart(
            at_risk,
            "Value at risk per journey stage",
            PALETTE[4],
            width=620,
            empty="nothing at risk",
        )
        + '<p class="legend">Each flag\'s value at risk (docs/customer-360.md), summed as '
        "stored.</p></div></section>"
    )


def _friction_link(row: FrictionRow, report: FrictionReport) -> str:
    query = {"journey": row.journey, "stage": row.stage, "rule": row.rule_id}
    return link("/ui/friction", {**query, **period_query(report)})


def _examples(row: FrictionRow) -> str:
    return ", ".join(
        f'<a href="{esc(path("customers", e.customer_id))}">{esc(e.customer_id)}</a>'
        for e in row.examples
    )


def _cell(field: str, value: object, shown: str, numeric: bool = True) -> str:
    kind = ' class="num"' if numeric else ""
    return f"<td{kind}{attrs(data_field=field, data_value=value)}>{shown}</td>"


def _severity(severity: str | None) -> str:
    return f'<td><span class="sev sev-{esc(severity or "")}">{esc(severity or "")}</span></td>'


def rows_table(rows: Sequence[FrictionRow], report: FrictionReport, journey: bool = True) -> str:
    """Report rows with their numbers in ``data-value``; each links to its flags."""
    head: tuple[tuple[str, bool], ...] = (("Journey", False),) if journey else ()
    head += (
        ("Stage", False),
        ("Rule", False),
        ("Severity", False),
        ("Flags", True),
        ("Customers", True),
        ("Reached stage", True),
        ("Per 1,000 reached", True),
        ("Value at risk", True),
        ("Change", True),
        ("Top channels", False),
        ("Example customers", False),
    )
    header = "".join(f'<th{" class=num" if n else ""} scope="col">{t}</th>' for t, n in head)
    body = []
    for r in rows:
        cells = [f"<td>{esc(r.journey)}</td>"] if journey else []
        channels = ", ".join(f"{esc(c.channel)} {c.flags:,}" for c in r.top_channels)
        cells += [
            f"<td>{esc(r.stage) if r.stage else NONE}</td>",
            f'<td><a href="{esc(_friction_link(r, report))}">{esc(r.rule_id)}</a></td>',
            _severity(r.severity),
            _cell("flags", r.flags, integer(r.flags)),
            _cell("customers", r.customers, integer(r.customers)),
            _cell("reached", r.reached, integer(r.reached)),
            _cell("rate_per_1000", r.rate_per_1000, number(r.rate_per_1000)),
            _cell("value_at_risk", r.value_at_risk, money(r.value_at_risk)),
            _cell("change", r.change, _change(r.change, r.change_pct)),
            f"<td>{channels or NONE}</td>",
            f"<td>{_examples(r) or NONE}</td>",
        ]
        key = attrs(data_journey=r.journey, data_stage=r.stage or "", data_rule=r.rule_id)
        body.append(f"<tr{key}>{''.join(cells)}</tr>")
    rows_html = "".join(body) or f'<tr><td colspan="{len(head)}">No friction flags.</td></tr>'
    return f'<table class="rows"><thead><tr>{header}</tr></thead><tbody>{rows_html}</tbody></table>'


def top_rows(rows: Sequence[FrictionRow], limit: int = TOP_ROWS) -> list[FrictionRow]:
    """The rows with the most flags in the period (then the most value at risk)."""
    found = [r for r in rows if r.flags]
    return sorted(found, key=lambda r: (-r.flags, -r.value_at_risk))[:limit]


def _journeys(report: FrictionReport) -> str:
    """Per journey: flags now and before and value at risk, from the stage lines."""
    sums: dict[str, list[int | Decimal]] = {}
    for s in report.stages:
        flags, previous, value = sums.setdefault(s.journey, [0, 0, Decimal(0)])
        sums[s.journey] = [flags + s.flags, previous + s.previous_flags, value + s.value_at_risk]
    body = "".join(
        f"<tr{attrs(data_journey=name)}>"
        f'<td><a href="{esc(link(path("journeys", name), period_query(report)))}">'
        f"{esc(name)}</a></td>"
        + _cell("flags", flags, integer(int(flags)))
        + _cell("previous_flags", previous, integer(int(previous)))
        + _cell("value_at_risk", Decimal(value), money(Decimal(value)))
        + "</tr>"
        for name, (flags, previous, value) in sums.items()
    )
    return (
        '<section><h2>Journeys</h2><table class="journeys"><thead><tr><th>Journey</th>'
        '<th class="num">Flags</th><th class="num">Previous period</th>'
        f'<th class="num">Value at risk</th></tr></thead><tbody>{body}</tbody></table></section>'
    )


def overview_page(report: FrictionReport) -> list[str]:
    """Friction over time, the top friction points by journey stage, value at risk, totals."""
    return [
        "<h1>Friction overview</h1>",
        period_form(report, "/ui/"),
        headline(report),
        daily_chart(report),
        "<section><h2>Top friction points</h2>",
        rows_table(top_rows(report.rows), report),
        '<p class="legend">The journey stages and rules with the most flags in the period. '
        "Per 1,000 reached: customers affected per 1,000 customers who moved into the stage in "
        "the period. Follow a rule to its flags.</p></section>",
        stage_chart(report.stages),
        _journeys(report),
    ]
