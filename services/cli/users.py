"""``users``: who may read the API and the dashboard, with which role."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from services.access.tokens import ROLES
from services.access.users import Users
from services.cli import app
from services.cli.admin import migrated
from services.settings import load_settings
from services.store.db import store_engine

out = Console(highlight=False)
users_app = typer.Typer(
    help="Users of the read API and dashboard, and their login tokens.", no_args_is_help=True
)
app.add_typer(users_app, name="users")


def _users() -> Users:
    return Users(store_engine(migrated(load_settings())))


@users_app.command("add")
def users_add(
    name: Annotated[str, typer.Argument(help="The user, e.g. maria or cx-team@example.com.")],
    role: Annotated[
        str,
        typer.Option(help=f"One of {', '.join(ROLES)}; each includes the ones before."),
    ],
) -> None:
    """Create a user and print its login token once; only the token's hash is stored."""
    token = _users().add(name, role)
    out.print(
        f"user [bold]{name}[/] ({role.strip().lower()}): token (shown only now, store it safely):"
    )
    print(token)


@users_app.command("list")
def users_list() -> None:
    """List the users with their roles, when they were created and last used (never tokens)."""
    rows = _users().list()
    table = Table("user", "role", "created", "last used")
    for row in rows:
        last = row.last_used_at.strftime("%Y-%m-%d %H:%M") if row.last_used_at else "never"
        table.add_row(row.name, row.role, row.created_at.strftime("%Y-%m-%d %H:%M"), last)
    out.print(table)
    if not rows:
        out.print("no users yet; `touchstream users add NAME --role viewer` creates one")


@users_app.command("remove")
def users_remove(
    name: Annotated[str, typer.Argument(help="The user to remove.")],
) -> None:
    """Remove a user; its token is refused from the next request on."""
    _users().remove(name)
    out.print(f"removed user {name}")
