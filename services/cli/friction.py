"""``friction list``: the flags raised so far (read from the flags topic until the CRM store
holds them)."""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, Any

import orjson
import typer
from rich.console import Console
from rich.table import Table

from services.cli import app
from services.cli.customer import change_flag
from services.cli.options import BrokerOption, load_settings
from services.kafka import read_to_end
from services.runstate import resolve_broker_url
from services.settings import Topics

out = Console(highlight=False)
friction_app = typer.Typer(
    help="Friction flags raised by the journey engine.", no_args_is_help=True
)
app.add_typer(friction_app, name="friction")


class Format(StrEnum):
    table = "table"
    json = "json"


def read_flags(broker_url: str, topics: Topics) -> list[dict[str, Any]]:
    """The flags on the flags topic, once each (a redelivered event re-sends the same flag
    id), under the customer's current id: a flag raised before two profiles merged names
    the winner, and ``raised_as`` the id it was raised under."""
    winner: dict[str, str] = {}
    for record in read_to_end(broker_url, topics.identity):
        decision = orjson.loads(record.value)
        if decision.get("kind") == "merge":
            winner[decision["loser"]] = decision["winner"]
    unique: dict[str, dict[str, Any]] = {}
    for record in read_to_end(broker_url, topics.flags):
        flag = orjson.loads(record.value)
        unique.setdefault(flag["flag_id"], flag)
    for flag in unique.values():
        current, hops = flag["customer_id"], 0
        while current in winner and hops < len(winner):  # a merged winner may lose again
            current, hops = winner[current], hops + 1
        if current != flag["customer_id"]:
            flag["raised_as"], flag["customer_id"] = flag["customer_id"], current
    return sorted(unique.values(), key=lambda f: (f["occurred_at"], f["rule_id"]))


def flags_table(flags: list[dict[str, Any]], title: str) -> Table:
    table = Table(title=title, title_justify="left")
    for column in (
        "event time",
        "rule",
        "severity",
        "customer",
        "journey / stage",
        "channel",
        "evidence",
    ):
        table.add_column(column, overflow="fold")
    for f in flags:
        table.add_row(
            f["occurred_at"][:19].replace("T", " "),
            f["rule_id"],
            f["severity"],
            f["customer_id"],
            f"{f['journey']} / {f['stage'] or '-'}",
            f["channel"],
            ", ".join(f["evidence"]),
        )
    return table


@friction_app.command("list")
def friction_list(
    broker: BrokerOption = None,
    customer: Annotated[str | None, typer.Option("--customer", help="Only this customer.")] = None,
    rule: Annotated[str | None, typer.Option("--rule", help="Only this rule id.")] = None,
    limit: Annotated[int, typer.Option(min=1, help="At most this many, newest last.")] = 50,
    output: Annotated[Format, typer.Option("--format", help="table or json (one per line).")] = (
        Format.table
    ),
) -> None:
    """List friction flags: rule, severity, customer, journey and stage, event time, evidence.

    Customers are shown by their current id (flags raised before a merge included)."""
    settings = load_settings(broker_url=broker)
    flags = [
        f
        for f in read_flags(resolve_broker_url(settings), settings.topics)
        if (customer is None or f["customer_id"] == customer)
        and (rule is None or f["rule_id"] == rule)
    ][-limit:]
    if output is Format.json:
        for flag in flags:
            print(orjson.dumps(flag).decode())
        return
    out.print(flags_table(flags, f"{len(flags)} friction flags"))


FlagId = Annotated[str, typer.Argument(help="The flag id (see `touchstream customer show`).")]
Note = Annotated[str, typer.Option("--note", help="What was done or why; kept in the history.")]
Actor = Annotated[
    str | None, typer.Option("--actor", help="Who does it (default: $USER, else cli).")
]


@friction_app.command("ack")
def friction_ack(flag_id: FlagId, note: Note, actor: Actor = None) -> None:
    """Acknowledge a flag in the CRM store: someone is on it. Exits 1 if there is no such flag."""
    change_flag(flag_id, "acknowledged", note, actor)


@friction_app.command("resolve")
def friction_resolve(flag_id: FlagId, note: Note, actor: Actor = None) -> None:
    """Resolve a flag in the CRM store: the loop is closed. Exits 1 if there is no such flag."""
    change_flag(flag_id, "resolved", note, actor)


@friction_app.command("reopen")
def friction_reopen(flag_id: FlagId, note: Note, actor: Actor = None) -> None:
    """Reopen an acknowledged or resolved flag. Exits 1 if there is no such flag."""
    change_flag(flag_id, "open", note, actor)
