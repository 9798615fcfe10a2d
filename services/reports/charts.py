"""Small inline SVG charts, drawn here so a report page needs no script and no network."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from html import escape

__all__ = ["PALETTE", "Bar", "bar_chart", "trend_chart"]

PALETTE = ("#2f6db3", "#d9822b", "#3a9a5b", "#8e5bb5", "#c2484f", "#5f7d8c")
INK, FAINT, GRID = "#222", "#888", "#e3e3e3"


@dataclass(frozen=True, slots=True)
class Bar:
    label: str
    value: int
    previous: int
    colour: str


def _svg(width: int, height: int, label: str, body: list[str]) -> str:
    return (
        f'<svg viewBox="0 0 {width} {height}" width="{width}" height="{height}" role="img" '
        f'aria-label="{escape(label)}" font-family="sans-serif" font-size="12">'
        f"<title>{escape(label)}</title>{''.join(body)}</svg>"
    )


def bar_chart(bars: Sequence[Bar], label: str, width: int = 720) -> str:
    """Horizontal bars (this period) with a dark tick where the previous period stood."""
    left, right, row, top = 220, 70, 22, 6
    span = width - left - right
    top_value = max([1, *(b.value for b in bars), *(b.previous for b in bars)])
    height = top * 2 + row * max(len(bars), 1)
    body: list[str] = []
    for n, b in enumerate(bars):
        y = top + n * row
        length = round(span * b.value / top_value, 1)
        tick = round(left + span * b.previous / top_value, 1)
        after = max(left + length, tick) + 6
        tip = f"{b.label}: {b.value:,} flags (previous period {b.previous:,})"
        body += [
            f'<text x="{left - 8}" y="{y + 15}" text-anchor="end" fill="{INK}">'
            f"{escape(b.label)}</text>",
            f'<rect x="{left}" y="{y + 3}" width="{length}" height="{row - 6}" '
            f'fill="{b.colour}"><title>{escape(tip)}</title></rect>',
            f'<line x1="{tick}" x2="{tick}" y1="{y + 1}" y2="{y + row - 1}" stroke="{INK}" '
            'stroke-width="2"/>',
            f'<text x="{after}" y="{y + 15}" fill="{INK}">{b.value:,}</text>',
        ]
    if not bars:
        body.append(f'<text x="{left}" y="{top + 15}" fill="{FAINT}">no stages</text>')
    return _svg(width, height, label, body)


def trend_chart(
    days: Sequence[str],
    values: Sequence[int],
    previous: Sequence[int],
    label: str,
    width: int = 720,
    height: int = 180,
) -> str:
    """Columns per day (this period) and a line for the same days of the previous one."""
    left, right, top, bottom = 44, 12, 10, 28
    plot_w, plot_h = width - left - right, height - top - bottom
    top_value = max([1, *values, *previous])
    step = plot_w / max(len(days), 1)
    base = top + plot_h

    def y(value: int) -> float:
        return round(base - plot_h * value / top_value, 1)

    body = [
        f'<line x1="{left}" x2="{width - right}" y1="{base}" y2="{base}" stroke="{FAINT}"/>',
        f'<line x1="{left}" x2="{width - right}" y1="{top}" y2="{top}" stroke="{GRID}"/>',
        f'<text x="{left - 6}" y="{top + 4}" text-anchor="end" fill="{FAINT}">{top_value:,}</text>',
        f'<text x="{left - 6}" y="{base + 4}" text-anchor="end" fill="{FAINT}">0</text>',
    ]
    for n, (day, value) in enumerate(zip(days, values, strict=True)):
        x = round(left + n * step + step * 0.15, 1)
        body.append(
            f'<rect x="{x}" y="{y(value)}" width="{round(step * 0.7, 1)}" '
            f'height="{round(base - y(value), 1)}" fill="{PALETTE[0]}">'
            f"<title>{escape(day)}: {value:,} flags</title></rect>"
        )
    points = " ".join(
        f"{round(left + n * step + step / 2, 1)},{y(v)}" for n, v in enumerate(previous)
    )
    if points:
        body.append(
            f'<polyline points="{points}" fill="none" stroke="{INK}" stroke-width="1.5" '
            'stroke-dasharray="4 3"/>'
        )
    for n in sorted({0, len(days) // 2, len(days) - 1}):
        if 0 <= n < len(days):
            x = round(left + n * step + step / 2, 1)
            body.append(
                f'<text x="{x}" y="{height - 8}" text-anchor="middle" fill="{FAINT}">'
                f"{escape(days[n])}</text>"
            )
    return _svg(width, height, label, body)
