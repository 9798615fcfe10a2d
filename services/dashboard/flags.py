"""The friction list: flags filtered by journey, stage, rule, status, customer and period,
newest first, a page at a time, with the acknowledge / resolve / reopen forms operators use
(the script posts them to ``POST /v1/friction/{flag_id}/...``)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime

import orjson
from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session
from sqlalchemy.sql.elements import ColumnElement

from services.crm.view import IDENTIFIER_KINDS, FrictionItem, friction_item, lookup
from services.crm.workflow import ALLOWED, VERB
from services.dashboard.html import NONE, attrs, esc, integer, link, money, path, when
from services.errors import ReportError
from services.reports.period import period_of
from services.store.models import FrictionEvent

__all__ = [
    "PAGE_SIZE",
    "STATUSES",
    "FlagFilter",
    "FlagsView",
    "find_customer",
    "flag_filter",
    "flag_table",
    "flags_page",
    "list_flags",
]

PAGE_SIZE = 50
STATUSES = ("open", "acknowledged", "resolved")
MOVES = ("acknowledged", "resolved", "open")  # the order of the buttons


@dataclass(frozen=True)
class FlagFilter:
    """Which flags to list; ``start``/``end`` bound the event time (``end`` excluded)."""

    journey: str | None = None
    stage: str | None = None
    rule: str | None = None
    status: str | None = None
    customer: str | None = None
    start: datetime | None = None
    end: datetime | None = None

    def where(self) -> list[ColumnElement[bool]]:
        fe = FrictionEvent
        columns = (
            (fe.journey, self.journey),
            (fe.stage, self.stage),
            (fe.rule_id, self.rule),
            (fe.status, self.status),
            (fe.customer_id, self.customer),
        )
        found = [column == value for column, value in columns if value is not None]
        if self.start is not None:
            found.append(fe.occurred_at >= self.start)
        if self.end is not None:
            found.append(fe.occurred_at < self.end)
        return found


def list_flags(
    engine: Engine, which: FlagFilter, page: int = 1, size: int = PAGE_SIZE
) -> tuple[int, list[FrictionItem]]:
    """How many flags match, and those of page ``page`` (from 1), newest first."""
    with Session(engine) as session:
        total = session.scalar(
            select(func.count()).select_from(FrictionEvent).where(*which.where())
        )
        rows = session.scalars(
            select(FrictionEvent)
            .where(*which.where())
            .order_by(FrictionEvent.occurred_at.desc(), FrictionEvent.flag_id)
            .offset((page - 1) * size)
            .limit(size)
        ).all()
        return int(total or 0), [friction_item(r) for r in rows]


def flag_filter(
    engine: Engine, query: Mapping[str, str], now: datetime
) -> tuple[FlagFilter, str | None]:
    """The filter the list's query asks for (``journey``, ``stage``, ``rule``, ``status``,
    ``customer``, ``since``, ``until``), and what is wrong with the query, if anything. The
    customer may be named by any identifier; the period follows the report's rules."""
    error, start, end = None, None, None
    if query.get("status", STATUSES[0]) not in STATUSES:
        error = f"no status {query['status']!r}; one of {', '.join(STATUSES)}"
    if "since" in query or "until" in query:
        try:
            period = period_of(query.get("since"), query.get("until"), now)
            start, end = period.start, period.end
        except ReportError as bad:
            error = str(bad)
    named = query.get("customer")
    which = FlagFilter(
        journey=query.get("journey"),
        stage=query.get("stage"),
        rule=query.get("rule"),
        status=query.get("status"),
        customer=(find_customer(engine, named) or named) if named else None,
        start=start,
        end=end,
    )
    return which, error


def find_customer(engine: Engine, text: str) -> str | None:
    """The customer ``text`` names: an e-mail (has ``@``), a phone (starts with ``+``), else a
    customer id, loyalty card, billing account or anonymous id, tried in that order."""
    text = text.strip()
    if not text:
        return None
    if "@" in text:
        kinds: Sequence[str] = ("email",)
    elif text.startswith("+"):
        kinds = ("phone",)
    else:
        kinds = [k for k in IDENTIFIER_KINDS if k != "email"]
    for kind in kinds:
        found = lookup(engine, kind, text)
        if found is not None:
            return found
    return None


def _moves(status: str) -> list[str]:
    return [VERB[to] for to in MOVES if to in ALLOWED.get(status, frozenset())]


def _work_form(item: FrictionItem) -> str:
    buttons = "".join(
        f'<button name="action" value="{verb}">{verb.capitalize()}</button>'
        for verb in _moves(item.status)
    )
    return (
        f'<form class="work"{attrs(data_flag=item.flag_id)}>'
        '<input name="note" required maxlength="4000" placeholder="Note (required)" '
        f'aria-label="Note"><span class="buttons">{buttons}</span>'
        '<span class="msg" role="status"></span></form>'
    )


def flag_table(items: Sequence[FrictionItem], operator: bool, customer: bool = True) -> str:
    """Flags as table rows (``data-flag-id``, ``data-status``); operators get the forms."""
    actions = {status: _moves(status) for status in STATUSES}
    head = ["When (UTC)", "Severity", "Journey", "Stage", "Rule", "Channel"]
    head += ["Customer"] if customer else []
    head += ["Value at risk", "Status", "Changed by"] + (["Work the flag"] if operator else [])
    header = "".join(f'<th scope="col">{h}</th>' for h in head)
    body = []
    for f in items:
        cells = [
            when(f.occurred_at),
            f'<span class="sev sev-{esc(f.severity)}">{esc(f.severity)}</span>',
            esc(f.journey),
            esc(f.stage) if f.stage else NONE,
            f'<span title="flag {esc(f.flag_id)}">{esc(f.rule_id)}</span>',
            esc(f.channel),
        ]
        if customer:
            cells.append(
                f'<a href="{esc(path("customers", f.customer_id))}">{esc(f.customer_id)}</a>'
            )
        cells_html = "".join(f"<td>{c}</td>" for c in cells)
        by = esc(f.status_changed_by) if f.status_changed_by else NONE
        cells_html += (
            f'<td class="num"{attrs(data_field="value_at_risk", data_value=f.value_at_risk)}>'
            f"{money(f.value_at_risk)}</td>"
            f'<td data-field="status"><span class="status st-{esc(f.status)}">{esc(f.status)}'
            f'</span></td><td data-field="changed_by">{by}</td>'
        )
        if operator:
            cells_html += f"<td>{_work_form(f)}</td>"
        body.append(f"<tr{attrs(data_flag_id=f.flag_id, data_status=f.status)}>{cells_html}</tr>")
    rows = "".join(body) or f'<tr><td colspan="{len(head)}">No friction flags.</td></tr>'
    table_attrs = attrs(data_actions=orjson.dumps(actions).decode())
    return (
        f'<table class="flags"{table_attrs}><thead><tr>{header}</tr></thead>'
        f"<tbody>{rows}</tbody></table>"
    )


def _select(name: str, label: str, options: Sequence[str], current: str | None) -> str:
    values = list(options) + ([current] if current and current not in options else [])
    chosen = "".join(
        f'<option value="{esc(v)}"{" selected" if v == current else ""}>{esc(v)}</option>'
        for v in values
    )
    return (
        f'<label>{esc(label)} <select name="{name}"><option value="">any</option>{chosen}'
        "</select></label>"
    )


def _filters(query: Mapping[str, str], journeys: Sequence[str], rules: Sequence[str]) -> str:
    def text(name: str, label: str, kind: str = "text") -> str:
        return (
            f'<label>{esc(label)} <input type="{kind}" name="{name}" '
            f'value="{esc(query.get(name, ""))}"></label>'
        )

    return (
        '<form class="filters" method="get" action="/ui/friction">'
        + _select("journey", "Journey", journeys, query.get("journey"))
        + text("stage", "Stage")
        + _select("rule", "Rule", rules, query.get("rule"))
        + _select("status", "Status", STATUSES, query.get("status"))
        + text("customer", "Customer")
        + text("since", "From", "date")
        + text("until", "until (not included)", "date")
        + '<button>Filter</button> <a href="/ui/friction">clear</a></form>'
    )


def _pager(total: int, page: int, size: int, query: Mapping[str, str]) -> str:
    pages = max(1, -(-total // size))
    first = (page - 1) * size + 1 if total else 0
    last = min(page * size, total)
    links = []
    if page > 1:
        links.append(
            f'<a rel="prev" href="{esc(link("/ui/friction", {**query, "page": page - 1}))}">'
            "&larr; newer</a>"
        )
    if page < pages:
        links.append(
            f'<a rel="next" href="{esc(link("/ui/friction", {**query, "page": page + 1}))}">'
            "older &rarr;</a>"
        )
    return (
        f'<p class="pager"{attrs(data_total=total, data_page=page, data_pages=pages)}>'
        f"Flags {integer(first)}&ndash;{integer(last)} of {integer(total)} "
        f"(page {page:,} of {pages:,}) {' '.join(links)}</p>"
    )


@dataclass(frozen=True)
class FlagsView:
    total: int
    items: list[FrictionItem]
    page: int
    query: dict[str, str]
    error: str | None = None


def flags_page(
    view: FlagsView, operator: bool, journeys: Sequence[str], rules: Sequence[str]
) -> list[str]:
    note = (
        ""
        if operator
        else '<p class="note">Acknowledging and resolving flags needs the operator role.</p>'
    )
    error = f'<p class="error" role="alert">{esc(view.error)}</p>' if view.error else ""
    return [
        "<h1>Friction flags</h1>",
        _filters(view.query, journeys, rules),
        error,
        _pager(view.total, view.page, PAGE_SIZE, view.query),
        note,
        flag_table(view.items, operator),
        _pager(view.total, view.page, PAGE_SIZE, view.query) if view.total > PAGE_SIZE else "",
    ]
