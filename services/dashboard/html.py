"""The dashboard's HTML building blocks: escaping, number and time formats, links, and the
page frame. Every value that reaches a page goes through :func:`esc` (customer data is
untrusted); markup is only ever built from constants and escaped values."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from html import escape
from urllib.parse import quote, urlencode

from services.access.users import Principal

__all__ = [
    "NONE",
    "Frame",
    "attrs",
    "card",
    "esc",
    "integer",
    "link",
    "money",
    "number",
    "page",
    "path",
    "when",
]

NONE = "&ndash;"  # an empty cell
Query = Mapping[str, str | int | None]


def esc(value: object) -> str:
    """``value`` as HTML text or attribute content: ``& < > " '`` escaped."""
    return escape(str(value), quote=True)


def _attr(value: object) -> str:
    return ("true" if value else "false") if isinstance(value, bool) else esc(value)


def attrs(**values: object) -> str:
    """`` name="value"`` pairs, escaped (booleans as ``true``/``false``, as in JSON); ``None``
    leaves one out; ``data_x`` becomes ``data-x``."""
    return "".join(
        f' {name.rstrip("_").replace("_", "-")}="{_attr(value)}"'
        for name, value in values.items()
        if value is not None
    )


def path(*segments: str) -> str:
    """A URL path under ``/ui`` with each segment percent-encoded (an id may hold ``/``)."""
    return "/ui/" + "/".join(quote(s, safe="") for s in segments)


def link(base: str, query: Query | None = None) -> str:
    """``base`` with the non-empty values of ``query``; escape it before putting it in HTML."""
    pairs = [(k, str(v)) for k, v in (query or {}).items() if v is not None and v != ""]
    return f"{base}?{urlencode(pairs)}" if pairs else base


def integer(value: int | None) -> str:
    return NONE if value is None else f"{value:,}"


def money(value: Decimal | None) -> str:
    return NONE if value is None else f"{value:,.2f}"


def number(value: float | None, places: int = 1) -> str:
    return NONE if value is None else f"{value:,.{places}f}"


def when(at: datetime | None) -> str:
    """A ``<time>`` element in UTC, minutes shown, the exact moment in its attribute."""
    if at is None:
        return NONE
    at = at.replace(tzinfo=UTC) if at.tzinfo is None else at.astimezone(UTC)
    return f'<time datetime="{esc(at.isoformat())}">{at:%Y-%m-%d %H:%M}</time>'


def card(label: str, shown: str, value: object, metric: str, extra: str = "") -> str:
    """A headline number; ``value`` (the API's value, as text) goes in ``data-value``."""
    return (
        f'<div class="card"{attrs(data_metric=metric, data_value=value)}>'
        f'<div class="value">{shown}</div><div class="label">{esc(label)}{extra}</div></div>'
    )


@dataclass(frozen=True)
class Frame:
    """What every page's frame shows: who is signed in, which section is open, the journeys
    for the menu, and the period to carry along in links."""

    user: Principal
    journeys: tuple[str, ...]
    section: str = ""
    carry: dict[str, str] = field(default_factory=dict)


SECTIONS = (
    ("overview", "Overview", "/ui/"),
    ("friction", "Friction", "/ui/friction"),
    ("customers", "Customers", "/ui/customers"),
    ("ops", "Operations", "/ui/ops"),
)


def _nav(frame: Frame) -> str:
    items = []
    for key, title, base in SECTIONS:
        current = ' aria-current="page"' if frame.section == key else ""
        href = link(base, frame.carry) if key in ("overview", "friction") else base
        items.append(f'<a href="{esc(href)}"{current}>{title}</a>')
        if key == "overview":
            for name in frame.journeys:
                here = ' aria-current="page"' if frame.section == f"journey:{name}" else ""
                target = link(path("journeys", name), frame.carry)
                items.append(f'<a class="sub" href="{esc(target)}"{here}>{esc(name)}</a>')
    lookup = (
        '<form class="lookup" method="get" action="/ui/customers" role="search">'
        '<input name="q" placeholder="Customer id, e-mail or phone" aria-label="Find a customer">'
        "</form>"
    )
    who = (
        f'<span class="who" data-user="{esc(frame.user.name)}" data-role="{esc(frame.user.role)}">'
        f"{esc(frame.user.name)} <small>({esc(frame.user.role)})</small></span>"
        '<form method="post" action="/ui/logout"><button class="link">Sign out</button></form>'
    )
    return (
        f'<header><a class="brand" href="/ui/">Touchstream</a><nav>{"".join(items)}</nav>'
        f"{lookup}{who}</header>"
    )


def page(title: str, body: Iterable[str], frame: Frame | None = None, script: bool = False) -> str:
    """A whole page: the frame (if signed in) around ``body``; ``script`` loads the dashboard's
    one script (working friction flags)."""
    head = (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{esc(title)} · Touchstream</title>"
        '<link rel="icon" href="data:,"><link rel="stylesheet" href="/ui/static/dashboard.css">'
        + ('<script src="/ui/static/dashboard.js" defer></script>' if script else "")
        + "</head><body>"
    )
    top = _nav(frame) if frame is not None else ""
    return f"{head}{top}<main>{''.join(body)}</main></body></html>\n"
