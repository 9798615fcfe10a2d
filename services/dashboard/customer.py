"""The Customer 360 page (the same view as ``GET /v1/customers/{id}``) and the lookup form."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import orjson

from services.crm.view import Customer360, InteractionItem
from services.dashboard.charts import Mark, gauge, stage_track, timeline
from services.dashboard.flags import flag_table
from services.dashboard.html import NONE, attrs, card, esc, integer, money, when
from services.reports.friction import JourneyOutline

__all__ = ["CHANNELS", "customer_page", "lookup_page"]

CHANNELS = ("web", "store", "billing", "support")
ATTRIBUTES_SHOWN = 160  # characters of an interaction's attributes in the timeline table


def lookup_page(query: str, missing: bool) -> list[str]:
    found = (
        f'<p class="error" role="alert">No customer is known by {esc(query)}.</p>'
        if missing
        else ""
    )
    return [
        "<h1>Find a customer</h1>",
        '<form class="lookup-big" method="get" action="/ui/customers">'
        f'<input name="q" value="{esc(query)}" placeholder="Customer id, e-mail, phone, '
        'loyalty card, billing account or anonymous id" aria-label="Customer" autofocus>'
        "<button>Find</button></form>",
        found,
        '<p class="legend">An e-mail is matched without regard to case, a phone in E.164 '
        "(+4915112345678); an id merged into another profile finds that profile.</p>",
    ]


def _flag(value: bool | None) -> str:
    return NONE if value is None else ("yes" if value else "no")


def _json(value: Any) -> str:
    return value if isinstance(value, str) else orjson.dumps(value, default=str).decode()


def _profile(view: Customer360) -> str:
    p = view.profile
    rows: list[tuple[str, str]] = [
        ("E-mail", esc(p.email) if p.email else NONE),
        ("Phone", esc(p.phone) if p.phone else NONE),
        ("Segment", esc(p.segment) if p.segment else NONE),
        ("Tier", esc(p.tier) if p.tier else NONE),
        ("Account owner", esc(p.account_owner) if p.account_owner else NONE),
        (
            "Consent: e-mail / SMS / tracking",
            " / ".join(_flag(c) for c in (p.consent_email, p.consent_sms, p.consent_tracking)),
        ),
        ("First seen", when(p.first_seen_at)),
        ("CRM import", when(p.crm_imported_at)),
    ]
    rows += [(f"CRM: {k}", esc(_json(v))) for k, v in sorted(p.custom.items())]
    body = "".join(f'<tr><th scope="row">{esc(k)}</th><td>{v}</td></tr>' for k, v in rows)
    return f'<section><h2>Profile</h2><table class="kv">{body}</table></section>'


def _identifiers(view: Customer360) -> str:
    body = "".join(
        f"<tr{attrs(data_kind=i.kind, data_identifier=i.value)}><td>{esc(i.kind)}</td>"
        f"<td>{esc(i.value)}</td><td>{when(i.first_seen_at)}</td></tr>"
        for i in view.identifiers
    )
    merged = "".join(
        f"<li{attrs(data_merged=m.customer_id)}>{esc(m.customer_id)} on {when(m.merged_at)} "
        f"({esc(m.reason)}, event {esc(m.event_id)})</li>"
        for m in view.merged_ids
    )
    return (
        '<section><h2>Identifiers</h2><table class="identifiers"><thead><tr><th>Kind</th>'
        f"<th>Value</th><th>First seen</th></tr></thead><tbody>{body}</tbody></table>"
        + (f"<h3>Profiles merged into this one</h3><ul>{merged}</ul>" if merged else "")
        + "</section>"
    )


def _signed(value: float) -> str:
    return f"{value:+.1f}" if isinstance(value, float) else f"{value:+d}"


def _metrics(view: Customer360) -> str:
    m = view.metrics
    currency = f" {esc(m.currency)}" if m.currency else ""
    cards = [
        card(
            "lifetime spend" + (f" ({m.currency})" if m.currency else ""),
            money(m.lifetime_spend),
            m.lifetime_spend,
            "lifetime_spend",
        ),
        card("orders", integer(m.orders), m.orders, "orders"),
        card("returns", integer(m.returns), m.returns, "returns"),
        card(
            "open invoices",
            integer(m.open_invoices),
            m.open_invoices,
            "open_invoices",
            f"<br>{money(m.amount_open)}{currency} open",
        ),
        card("overdue", money(m.amount_overdue), m.amount_overdue, "amount_overdue"),
        card("open tickets", integer(m.open_tickets), m.open_tickets, "open_tickets"),
        card("last CSAT", integer(m.last_csat), m.last_csat, "last_csat"),
        card("last NPS", integer(m.last_nps), m.last_nps, "last_nps"),
        card(
            "interactions",
            integer(m.interactions),
            m.interactions,
            "interactions",
            f"<br>last contact {when(m.last_contact_at)}",
        ),
    ]
    parts = ""
    if m.health is not None:
        parts = "".join(
            f'<tr{attrs(data_part=name)}><th scope="row">{esc(name)}</th>'
            f'<td class="num">{_signed(value)}</td></tr>'
            for name, value in m.health.model_dump().items()
        )
    score = (
        f'<div class="health"{attrs(data_metric="health_score", data_value=m.health_score)}>'
        f'{gauge(m.health_score)}<table class="kv parts">{parts}</table></div>'
    )
    return (
        f'<section class="relationship"><h2>Relationship</h2><div class="split">{score}'
        f'<div class="cards">{"".join(cards)}</div></div></section>'
    )


def _journeys(view: Customer360, outlines: Mapping[str, JourneyOutline]) -> str:
    rows = []
    for name, where in view.journeys.items():
        outline = outlines.get(name)
        track = stage_track(outline.stages if outline else (), where.stage, f"{name} stages")
        rows.append(
            f"<tr{attrs(data_journey=name, data_stage=where.stage)}><td>{esc(name)}</td>"
            f"<td>{esc(where.stage)}</td><td>{when(where.entered_at)}</td><td>{track}</td></tr>"
        )
    body = "".join(rows) or '<tr><td colspan="4">On no journey yet.</td></tr>'
    return (
        '<section><h2>Journeys</h2><table class="stages"><thead><tr><th>Journey</th>'
        "<th>Stage</th><th>Since</th><th>Where on the journey</th></tr></thead>"
        f"<tbody>{body}</tbody></table></section>"
    )


def _summary(item: InteractionItem) -> str:
    text = ", ".join(f"{k}={_json(v)}" for k, v in item.attributes.items())
    return text if len(text) <= ATTRIBUTES_SHOWN else text[: ATTRIBUTES_SHOWN - 1] + "…"


def _timeline(view: Customer360) -> str:
    marks = [
        Mark(i.channel, i.occurred_at, f"{i.occurred_at:%Y-%m-%d %H:%M} {i.type}")
        for i in view.interactions
    ]
    rows = "".join(
        f"<tr{attrs(data_event_id=i.event_id, data_channel=i.channel)}>"
        f"<td>{when(i.occurred_at)}</td><td>{esc(i.channel)}</td><td>{esc(i.type)}</td>"
        f'<td>{esc(i.source)}</td><td class="attrs">{esc(_summary(i))}</td></tr>'
        for i in view.interactions
    )
    rows = rows or '<tr><td colspan="5">No interactions yet.</td></tr>'
    return (
        f'<section><h2>Cross-channel timeline</h2><p class="legend">The latest '
        f"{len(view.interactions):,} interactions, newest first in the table.</p>"
        + timeline(marks, CHANNELS, "Interactions per channel over time")
        + '<table class="timeline"><thead><tr><th>When (UTC)</th><th>Channel</th><th>Type</th>'
        f"<th>Source</th><th>Attributes</th></tr></thead><tbody>{rows}</tbody></table></section>"
    )


def customer_page(
    view: Customer360, outlines: Mapping[str, JourneyOutline], operator: bool
) -> list[str]:
    p = view.profile
    facts = " · ".join(esc(v) for v in (p.segment, p.tier) if v)
    note = (
        ""
        if operator
        else '<p class="note">Acknowledging and resolving flags needs the operator role.</p>'
    )
    return [
        f"<h1{attrs(data_customer_id=view.customer_id)}>{esc(p.name or view.customer_id)}</h1>",
        f'<p class="sub">{esc(view.customer_id)}{" · " + facts if facts else ""} · as of '
        f"{when(view.as_of)}</p>",
        _metrics(view),
        '<div class="split">',
        _profile(view),
        _identifiers(view),
        "</div>",
        _journeys(view, outlines),
        f'<section class="open-friction"><h2>Open friction ({len(view.open_friction):,})</h2>',
        note,
        flag_table(view.open_friction, operator, customer=False),
        "</section>",
        '<section class="recent-friction"><h2>Recent friction</h2>',
        flag_table(view.recent_friction, False, customer=False),
        "</section>",
        _timeline(view),
    ]
