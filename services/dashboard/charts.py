"""SVG charts of the dashboard that the report page does not have: labelled bars of any
quantity, the stage funnel, the health gauge, a journey's stage track and the cross-channel
timeline. Inline SVG, no script; labels are escaped."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from services.dashboard.html import esc
from services.reports.charts import PALETTE

__all__ = ["FunnelStep", "Mark", "funnel_chart", "gauge", "hbar_chart", "stage_track", "timeline"]

INK, FAINT, GRID, HOT = "#222", "#888", "#e3e3e3", "#c2484f"
CHANNEL_COLOURS = {"web": PALETTE[0], "store": PALETTE[2], "billing": PALETTE[1]}


def _svg(width: int, height: int, label: str, body: list[str]) -> str:
    return (
        f'<svg class="chart" viewBox="0 0 {width} {height}" width="{width}" height="{height}" '
        f'role="img" aria-label="{esc(label)}" font-family="sans-serif" font-size="12">'
        f"<title>{esc(label)}</title>{''.join(body)}</svg>"
    )


def hbar_chart(
    items: Sequence[tuple[str, float, str]],
    label: str,
    colour: str = PALETTE[0],
    width: int = 640,
    empty: str = "nothing to show",
    left: int = 200,
) -> str:
    """Horizontal bars: ``(label, value, value as shown)`` each, longest for the largest;
    ``left`` is the room for the labels."""
    right, row, top = 90, 22, 6
    span = width - left - right
    largest = max([0.0, *(abs(v) for _, v, _ in items)]) or 1.0
    body: list[str] = []
    for n, (name, value, shown) in enumerate(items):
        y = top + n * row
        length = round(span * abs(value) / largest, 1)
        body += [
            f'<text x="{left - 8}" y="{y + 15}" text-anchor="end" fill="{INK}">{esc(name)}</text>',
            f'<rect x="{left}" y="{y + 3}" width="{length}" height="{row - 6}" fill="{colour}">'
            f"<title>{esc(name)}: {esc(shown)}</title></rect>",
            f'<text x="{left + length + 6}" y="{y + 15}" fill="{INK}">{esc(shown)}</text>',
        ]
    if not items:
        body.append(f'<text x="{left}" y="{top + 15}" fill="{FAINT}">{esc(empty)}</text>')
    return _svg(width, top * 2 + row * max(len(items), 1), label, body)


@dataclass(frozen=True, slots=True)
class FunnelStep:
    stage: str
    reached: int
    flags: int
    conversion: float | None  # percent of the step before that reached this one


def funnel_chart(steps: Sequence[FunnelStep], label: str, width: int = 720) -> str:
    """A centred bar per stage, as wide as the customers who reached it, the conversion from
    the stage before between them and the stage's flags on the right."""
    row, gap, top, side = 34, 20, 4, 170
    span = width - 2 * side
    largest = max([1, *(s.reached for s in steps)])
    body: list[str] = []
    for n, s in enumerate(steps):
        y = top + n * (row + gap)
        length = max(2.0, round(span * s.reached / largest, 1))
        x = round(side + (span - length) / 2, 1)
        if n and s.conversion is not None:
            body.append(
                f'<text x="{width / 2}" y="{y - 6}" text-anchor="middle" fill="{FAINT}">'
                f"&#8595; {s.conversion:,.1f}%</text>"
            )
        flags = f"{s.flags:,} flags" if s.flags else "no flags"
        body += [
            f'<text x="{side - 10}" y="{y + 22}" text-anchor="end" fill="{INK}">'
            f"{esc(s.stage)}</text>",
            f'<rect x="{x}" y="{y}" width="{length}" height="{row}" fill="{PALETTE[0]}" rx="3">'
            f"<title>{esc(s.stage)}: {s.reached:,} customers reached it</title></rect>",
            f'<text x="{width / 2}" y="{y + 22}" text-anchor="middle" fill="#fff" '
            f'font-weight="600">{s.reached:,}</text>',
            f'<text x="{width - side + 10}" y="{y + 22}" '
            f'fill="{HOT if s.flags else FAINT}">{flags}</text>',
        ]
    if not steps:
        body.append(f'<text x="{side}" y="20" fill="{FAINT}">no stages</text>')
    height = top * 2 + max(len(steps), 1) * (row + gap) - gap
    return _svg(width, height, label, body)


def gauge(score: int, label: str = "Health score", size: int = 150) -> str:
    """A half ring filled to ``score`` of 100: red below 40, amber below 70, else green."""
    r, cx, cy, stroke = size * 0.38, size / 2, size * 0.55, size * 0.11
    share = min(max(score, 0), 100) / 100
    colour = "#c2484f" if score < 40 else "#d9822b" if score < 70 else "#3a9a5b"

    def point(fraction: float) -> tuple[float, float]:
        angle = math.pi * (1 - fraction)
        return round(cx + r * math.cos(angle), 2), round(cy - r * math.sin(angle), 2)

    (x0, y0), (x1, y1), (xs, ys) = point(0), point(1), point(share)
    body = [
        f'<path d="M {x0} {y0} A {r} {r} 0 0 1 {x1} {y1}" fill="none" stroke="{GRID}" '
        f'stroke-width="{stroke}"/>',
        f'<path d="M {x0} {y0} A {r} {r} 0 0 1 {xs} {ys}" fill="none" stroke="{colour}" '
        f'stroke-width="{stroke}"/>'
        if share > 0
        else "",
        f'<text x="{cx}" y="{cy - 4}" text-anchor="middle" font-size="{round(size * 0.2)}" '
        f'font-weight="700" fill="{INK}">{score}</text>',
        f'<text x="{cx}" y="{cy + 16}" text-anchor="middle" fill="{FAINT}">of 100</text>',
    ]
    return _svg(size, round(size * 0.72), f"{label}: {score} of 100", body)


def stage_track(stages: Sequence[str], current: str, label: str, width: int = 460) -> str:
    """A journey's stages as dots on a line, the customer's current one filled."""
    stages = list(stages) if current in stages else [*stages, current]
    pad = 50
    step = (width - 2 * pad) / max(len(stages) - 1, 1)
    y = 16
    body = [
        f'<line x1="{pad}" x2="{pad + step * (len(stages) - 1)}" y1="{y}" y2="{y}" '
        f'stroke="{GRID}" stroke-width="3"/>'
    ]
    reached = True
    for n, stage in enumerate(stages):
        x = round(pad + n * step, 1)
        here = stage == current
        fill = PALETTE[0] if reached else "#fff"
        weight = ' font-weight="700"' if here else ""
        body += [
            f'<circle cx="{x}" cy="{y}" r="{8 if here else 6}" fill="{fill}" '
            f'stroke="{PALETTE[0]}" stroke-width="2"/>',
            f'<text x="{x}" y="{y + 24}" text-anchor="middle" '
            f'fill="{INK if here else FAINT}"{weight}>'
            f"{esc(stage)}</text>",
        ]
        reached = reached and not here
    return _svg(width, 48, label, body)


@dataclass(frozen=True, slots=True)
class Mark:
    """One interaction on the timeline."""

    channel: str
    at: datetime
    text: str


def timeline(marks: Sequence[Mark], channels: Sequence[str], label: str, width: int = 900) -> str:
    """One lane per channel, a dot per interaction at its time (oldest left)."""
    left, right, lane, top = 70, 20, 26, 6
    lanes = list(channels) + sorted({m.channel for m in marks} - set(channels))
    height = top + lane * len(lanes) + 22
    body: list[str] = []
    for n, channel in enumerate(lanes):
        y = top + n * lane + lane / 2
        body += [
            f'<text x="{left - 8}" y="{y + 4}" text-anchor="end" fill="{INK}">'
            f"{esc(channel)}</text>",
            f'<line x1="{left}" x2="{width - right}" y1="{y}" y2="{y}" stroke="{GRID}"/>',
        ]
    if marks:
        first = min(m.at for m in marks)
        last = max(m.at for m in marks)
        seconds = max((last - first).total_seconds(), 1.0)
        span = width - left - right - 12
        for m in sorted(marks, key=lambda m: m.at):
            x = round(left + 6 + span * (m.at - first).total_seconds() / seconds, 1)
            y = top + lanes.index(m.channel) * lane + lane / 2
            colour = CHANNEL_COLOURS.get(m.channel, PALETTE[3])
            body.append(
                f'<circle cx="{x}" cy="{y}" r="5" fill="{colour}" fill-opacity="0.8">'
                f"<title>{esc(m.text)}</title></circle>"
            )
        base = top + lane * len(lanes) + 16
        body += [
            f'<text x="{left}" y="{base}" fill="{FAINT}">{first:%Y-%m-%d %H:%M}</text>',
            f'<text x="{width - right}" y="{base}" text-anchor="end" fill="{FAINT}">'
            f"{last:%Y-%m-%d %H:%M} UTC</text>",
        ]
    else:
        body.append(f'<text x="{left}" y="{height - 6}" fill="{FAINT}">no interactions</text>')
    return _svg(width, height, label, body)
