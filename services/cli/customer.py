"""``customer show``: the Customer 360 view in the terminal; and the friction workflow's
rendering, which ``friction ack|resolve|reopen`` share."""

from __future__ import annotations

import os
from datetime import datetime
from decimal import Decimal
from enum import StrEnum
from typing import Annotated

import orjson
import typer
from rich.columns import Columns
from rich.console import Console, Group
from rich.panel import Panel
from rich.table import Table

from services.cli import app
from services.cli.admin import migrated
from services.crm.view import Customer360, FrictionItem, customer_360, lookup
from services.crm.workflow import FrictionDetail, Status, change_status
from services.errors import UnknownFriction
from services.settings import load_settings
from services.store.db import store_engine

out = Console(highlight=False)
err = Console(stderr=True, highlight=False)
customer_app = typer.Typer(
    help="Customers in the CRM store: the Customer 360 view.", no_args_is_help=True
)
app.add_typer(customer_app, name="customer")


class Format(StrEnum):
    table = "table"
    json = "json"


def _when(at: datetime | None) -> str:
    return at.strftime("%Y-%m-%d %H:%M") if at else "-"


def _money(amount: Decimal, currency: str | None) -> str:
    return f"{amount:,.2f} {currency or ''}".rstrip()


def _opt(value: int | None) -> str:
    return "-" if value is None else str(value)


def _flag(value: bool | None) -> str:
    return "-" if value is None else ("yes" if value else "no")


def _pairs(title: str, rows: list[tuple[str, str]]) -> Panel:
    table = Table.grid(padding=(0, 2))
    table.add_column(style="bold")
    table.add_column(overflow="fold")
    for key, value in rows:
        table.add_row(key, value)
    return Panel(table, title=title, title_align="left", expand=False)


def _table(title: str, *columns: str) -> Table:
    table = Table(title=title, title_justify="left", title_style="bold")
    for column in columns:
        table.add_column(column, overflow="fold")
    return table


def _profile(view: Customer360) -> Panel:
    p = view.profile
    return _pairs(
        f"Customer {view.customer_id}",
        [
            ("name", p.name or "-"),
            ("email", p.email or "-"),
            ("phone", p.phone or "-"),
            ("segment / tier", f"{p.segment or '-'} / {p.tier or '-'}"),
            ("account owner", p.account_owner or "-"),
            (
                "consent",
                f"email {_flag(p.consent_email)}, sms {_flag(p.consent_sms)}, "
                f"tracking {_flag(p.consent_tracking)}",
            ),
            ("first seen", _when(p.first_seen_at)),
            ("CRM import", _when(p.crm_imported_at)),
            ("merged ids", ", ".join(m.customer_id for m in view.merged_ids) or "-"),
        ],
    )


def _metrics(view: Customer360) -> Panel:
    m = view.metrics
    parts = m.health
    breakdown = (
        f"friction {parts.friction:+g}, csat {parts.csat:+d}, nps {parts.nps:+d}, "
        f"payment {parts.payment:+d}, engagement {parts.engagement:+d}"
        if parts
        else ""
    )
    colour = "green" if m.health_score >= 70 else "yellow" if m.health_score >= 40 else "red"
    return _pairs(
        "Relationship",
        [
            ("health score", f"[bold {colour}]{m.health_score}[/] / 100  ({breakdown})"),
            ("lifetime spend", _money(m.lifetime_spend, m.currency)),
            ("orders / returns", f"{m.orders} / {m.returns} ({_money(m.returned_amount, None)})"),
            ("open invoices", f"{m.open_invoices}: {_money(m.amount_open, m.currency)}"),
            ("overdue", _money(m.amount_overdue, m.currency)),
            ("failed payments", str(m.failed_payments)),
            ("open tickets", str(m.open_tickets)),
            ("last CSAT / NPS", f"{_opt(m.last_csat)} / {_opt(m.last_nps)}"),
            ("last contact", _when(m.last_contact_at)),
            ("interactions", str(m.interactions)),
        ],
    )


def friction_table(title: str, flags: list[FrictionItem]) -> Table:
    table = _table(
        title, "flag id", "event time", "rule", "severity", "journey / stage", "status", "at risk"
    )
    for f in flags:
        table.add_row(
            f.flag_id,
            _when(f.occurred_at),
            f.rule_id,
            f.severity,
            f"{f.journey} / {f.stage or '-'}",
            f.status,
            _money(f.value_at_risk, None),
        )
    return table


def render(view: Customer360) -> Group:
    identifiers = _table("Identifiers", "kind", "value", "first seen")
    for ident in view.identifiers:
        identifiers.add_row(ident.kind, ident.value, _when(ident.first_seen_at))
    journeys = _table("Journeys", "journey", "stage", "since")
    for name, state in view.journeys.items():
        journeys.add_row(name, state.stage, _when(state.entered_at))
    timeline = _table(
        f"Last {len(view.interactions)} interactions",
        "time",
        "channel",
        "type",
        "source",
        "details",
    )
    for i in view.interactions:
        details = orjson.dumps(i.attributes, option=orjson.OPT_SORT_KEYS).decode()
        timeline.add_row(_when(i.occurred_at), i.channel, i.type, i.source, details)
    return Group(
        Columns([_profile(view), _metrics(view)]),
        Columns([identifiers, journeys]),
        friction_table(f"Open friction ({len(view.open_friction)})", view.open_friction),
        timeline,
    )


@customer_app.command("show")
def customer_show(
    customer_id: Annotated[str | None, typer.Option("--id", help="Customer id.")] = None,
    email: Annotated[str | None, typer.Option(help="Email (any case).")] = None,
    phone: Annotated[str | None, typer.Option(help="Phone (E.164).")] = None,
    loyalty_id: Annotated[str | None, typer.Option(help="Loyalty id.")] = None,
    account_id: Annotated[str | None, typer.Option(help="Account id.")] = None,
    anonymous_id: Annotated[str | None, typer.Option(help="Anonymous (device) id.")] = None,
    interactions: Annotated[
        int, typer.Option(min=1, max=200, help="How many latest interactions to show.")
    ] = 20,
    output: Annotated[Format, typer.Option("--format", help="table or json.")] = Format.table,
) -> None:
    """Show one customer: profile, identifiers, health, journeys, open friction, timeline.

    Give exactly one identifier. Exits 1 if no customer has it."""
    given = {
        kind: value
        for kind, value in (
            ("customer_id", customer_id),
            ("email", email),
            ("phone", phone),
            ("loyalty_id", loyalty_id),
            ("account_id", account_id),
            ("anonymous_id", anonymous_id),
        )
        if value is not None
    }
    if len(given) != 1:
        raise typer.BadParameter(
            "give exactly one of --id, --email, --phone, --loyalty-id, --account-id, --anonymous-id"
        )
    ((kind, value),) = given.items()
    engine = store_engine(migrated(load_settings()))
    found = lookup(engine, kind, value)
    view = customer_360(engine, found, interactions=interactions) if found else None
    if view is None:
        err.print(f"no customer with {kind} {value!r} in the store")
        raise typer.Exit(1)
    if output is Format.json:
        print(view.model_dump_json(indent=2))
        return
    out.print(render(view))


def default_actor() -> str:
    return os.environ.get("USER") or "cli"


def change_flag(flag_id: str, status: Status, note: str, actor: str | None) -> None:
    """Change a flag's status from the command line; exit 1 if there is no such flag."""
    engine = store_engine(migrated(load_settings()))
    try:
        detail = change_status(engine, flag_id, status, note, actor or default_actor())
    except UnknownFriction as error:
        err.print(str(error))
        raise typer.Exit(1) from None
    out.print(detail_text(detail))


def detail_text(detail: FrictionDetail) -> Group:
    history = _table("History", "at", "status", "actor", "note")
    for h in detail.history:
        history.add_row(_when(h.at), h.status, h.actor, h.note)
    head = (
        f"flag [bold]{detail.flag_id}[/] ({detail.rule_id}, {detail.severity}, customer "
        f"{detail.customer_id}) is now [bold]{detail.status}[/]"
    )
    return Group(head, history)
