"""``db`` and ``sources``: the store's schema and the emitting systems' keys."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from services.cli import app
from services.ingest.keys import SourceKeys
from services.settings import Settings, load_settings
from services.store.db import current_revision, head_revision, store_engine, upgrade

out = Console(highlight=False)
db_app = typer.Typer(
    help="The relationship store's schema (Alembic migrations).", no_args_is_help=True
)
sources_app = typer.Typer(help="Keys of the systems that emit events.", no_args_is_help=True)
app.add_typer(db_app, name="db")
app.add_typer(sources_app, name="sources")


def migrated(settings: Settings) -> Settings:
    """Bring the store to the latest schema (idempotent) and return the settings."""
    upgrade(settings.store_url())
    return settings


@db_app.command("upgrade")
def db_upgrade(
    revision: Annotated[str, typer.Argument(help="Target revision.")] = "head",
) -> None:
    """Migrate the store (TOUCHSTREAM_DATABASE_URL, or the embedded SQLite file) to a revision."""
    settings = load_settings()
    upgrade(settings.store_url(), revision)
    out.print(
        f"store at revision {current_revision(settings.store_url())} (head {head_revision()})"
    )


@db_app.command("current")
def db_current() -> None:
    """Print the store's revision and the newest one this version knows."""
    settings = load_settings()
    current = current_revision(settings.store_url())
    head = head_revision()
    state = "up to date" if current == head else "needs `touchstream db upgrade`"
    out.print(f"store revision {current or 'none'}, head {head}: {state}")


@sources_app.command("add")
def sources_add(
    name: Annotated[str, typer.Argument(help="The emitting system, e.g. pos-store-12.")],
) -> None:
    """Create a key for a source and print it once; only its hash is stored."""
    key = SourceKeys(store_engine(migrated(load_settings()))).add(name)
    out.print(f"source [bold]{name}[/]: key (shown only now, store it safely):")
    print(key)


@sources_app.command("list")
def sources_list() -> None:
    """List sources and their keys' prefixes."""
    rows = SourceKeys(store_engine(migrated(load_settings()))).list()
    table = Table("source", "key prefix", "created", "revoked")
    for row in rows:
        revoked = row.revoked_at.strftime("%Y-%m-%d %H:%M") if row.revoked_at else "-"
        table.add_row(
            row.name, row.key_prefix + "…", row.created_at.strftime("%Y-%m-%d %H:%M"), revoked
        )
    out.print(table)


@sources_app.command("revoke")
def sources_revoke(
    name: Annotated[str, typer.Argument(help="The source whose keys to revoke.")],
) -> None:
    """Revoke every active key of a source (takes effect in the API within 5 seconds)."""
    count = SourceKeys(store_engine(migrated(load_settings()))).revoke(name)
    out.print(f"revoked {count} key(s) of {name}")
