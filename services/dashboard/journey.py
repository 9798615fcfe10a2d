"""The journey page: the stage funnel with the conversion between stages, and where the
journey hurts (its friction rows), from the friction report of that journey.

Conversion into a stage is the customers who reached it in the period per 100 who reached
the stage before it in the period (``reached``: distinct customers with a move into the
stage, from ``journey_transitions``). It compares the same period's arrivals, not a cohort
followed through the journey, so it can pass 100% (a customer who entered the earlier stage
before the period, or skipped it, as a store sale skips checkout); docs/dashboard.md."""

from __future__ import annotations

from collections.abc import Sequence

from services.dashboard.charts import FunnelStep, funnel_chart
from services.dashboard.html import attrs, card, esc, integer, money, number
from services.dashboard.overview import (
    daily_chart,
    headline,
    period_form,
    rows_table,
    stage_chart,
    top_rows,
)
from services.reports.friction import FrictionReport, StageLine

__all__ = ["conversion", "funnel", "journey_page"]

HOT_SPOTS = 10


def conversion(reached: int, before: int | None) -> float | None:
    """``reached`` per 100 of ``before``, one decimal; None for the first stage or none before."""
    return round(reached * 100 / before, 1) if before else None


def funnel(lines: Sequence[StageLine], journey: str) -> list[FunnelStep]:
    """The journey's stages in funnel order with customers reached, flags and conversion."""
    steps: list[FunnelStep] = []
    before: int | None = None
    for line in lines:
        if line.journey != journey or line.stage is None:
            continue
        reached = line.reached or 0
        steps.append(FunnelStep(line.stage, reached, line.flags, conversion(reached, before)))
        before = reached
    return steps


def _pct(value: float | None) -> str:
    return f"{number(value)}%" if value is not None else number(None)


def _funnel_table(steps: Sequence[FunnelStep], lines: Sequence[StageLine]) -> str:
    by_stage = {line.stage: line for line in lines}
    first = steps[0].reached if steps else 0
    body = []
    for s in steps:
        line = by_stage[s.stage]
        of_first = conversion(s.reached, first)
        body.append(
            f"<tr{attrs(data_stage=s.stage)}><td>{esc(s.stage)}</td>"
            f'<td class="num"{attrs(data_field="reached", data_value=s.reached)}>'
            f"{integer(s.reached)}</td>"
            f'<td class="num"{attrs(data_field="stage_entries", data_value=line.stage_entries)}>'
            f"{integer(line.stage_entries)}</td>"
            f'<td class="num"{attrs(data_field="conversion", data_value=s.conversion)}>'
            f"{_pct(s.conversion)}</td>"
            f'<td class="num"{attrs(data_field="of_first", data_value=of_first)}>'
            f"{_pct(of_first)}</td>"
            f'<td class="num"{attrs(data_field="flags", data_value=s.flags)}>'
            f"{integer(s.flags)}</td>"
            f'<td class="num"{attrs(data_field="value_at_risk", data_value=line.value_at_risk)}>'
            f"{money(line.value_at_risk)}</td></tr>"
        )
    return (
        '<table class="funnel"><thead><tr><th>Stage</th><th class="num">Customers reached</th>'
        '<th class="num">Entries</th><th class="num">Conversion from the stage before</th>'
        f'<th class="num">Of those who reached {esc(steps[0].stage) if steps else "the first"}'
        "</th>"
        '<th class="num">Flags</th><th class="num">Value at risk</th></tr></thead>'
        f"<tbody>{''.join(body)}</tbody></table>"
    )


def journey_page(report: FrictionReport, journey: str, action: str) -> list[str]:
    lines = [s for s in report.stages if s.journey == journey]
    steps = funnel(lines, journey)
    first, last = (steps[0].reached, steps[-1].reached) if steps else (0, 0)
    overall = conversion(last, first) if len(steps) > 1 else None
    cards = (
        '<div class="cards">'
        + card(
            f"reached {steps[0].stage}" if steps else "reached",
            integer(first),
            first,
            "first_reached",
        )
        + card(
            f"overall conversion to {steps[-1].stage}" if steps else "overall conversion",
            _pct(overall),
            overall,
            "overall_conversion",
        )
        + "</div>"
    )
    hot = top_rows(report.rows, HOT_SPOTS)
    return [
        f'<h1 data-journey="{esc(journey)}">Journey: {esc(journey)}</h1>',
        period_form(report, action),
        headline(report),
        cards,
        "<section><h2>Stage funnel</h2>",
        funnel_chart(steps, f"{journey}: customers reaching each stage"),
        _funnel_table(steps, lines),
        '<p class="legend">Customers reached: distinct customers who moved into the stage in '
        "the period. Conversion: customers who reached the stage per 100 who reached the stage "
        "before it, both in the period (arrivals in the same period, not one cohort followed "
        "through, so it can pass 100%: a store sale skips checkout). Of those who reached the "
        "first stage: the same against the funnel's first stage.</p></section>",
        "<section><h2>Friction hot spots</h2>",
        rows_table(hot, report, journey=False),
        "</section>",
        stage_chart(lines, with_journey=False),
        daily_chart(report, f"Friction over time, {journey}"),
    ]
