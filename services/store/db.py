"""Engines and migrations for PostgreSQL (production) and SQLite (embedded mode)."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

import orjson
from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.exc import OperationalError

from services.errors import StoreUnavailable
from services.settings import Settings


def engine_for(url: str, *, pre_ping: bool = True) -> Engine:
    """An engine for ``url``; SQLite gets its directory created and foreign keys enforced.
    ``pre_ping`` tests a pooled PostgreSQL connection with a round trip before each use; a
    caller that retries on a lost connection anyway (the CRM sink) goes without it."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, json_serializer=_json)

        @event.listens_for(engine, "connect")
        def _pragmas(dbapi_connection: object, _record: object) -> None:
            cursor = dbapi_connection.cursor()  # type: ignore[attr-defined]
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.close()

        return engine
    return create_engine(
        url, pool_pre_ping=pre_ping, executemany_mode="values_plus_batch", json_serializer=_json
    )


def _json(value: object) -> str:
    """JSON columns through orjson: several times faster than ``json.dumps``."""
    return orjson.dumps(value, default=str).decode()


def alembic_config(url: str) -> Config:
    config = Config()
    config.set_main_option("script_location", str(resources.files("services.store") / "migrations"))
    config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return config


def upgrade(url: str, revision: str = "head") -> None:
    """Bring the store at ``url`` to ``revision`` (idempotent)."""
    try:
        command.upgrade(alembic_config(url), revision)
    except OperationalError as error:
        raise StoreUnavailable(f"cannot migrate the store at {_safe(url)}: {error.orig}") from error


def current_revision(url: str) -> str | None:
    with engine_for(url).connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def head_revision() -> str | None:
    return ScriptDirectory.from_config(alembic_config("sqlite://")).get_current_head()


def _safe(url: str) -> str:
    return make_url(url).render_as_string(hide_password=True)


def store_engine(settings: Settings) -> Engine:
    return engine_for(settings.store_url())
