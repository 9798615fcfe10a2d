"""Whether the CRM store answers, and at which schema revision."""

from __future__ import annotations

import time
from dataclasses import dataclass

from alembic.runtime.migration import MigrationContext
from sqlalchemy import Engine, create_engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import SQLAlchemyError

from services.store.db import engine_for, head_revision

__all__ = ["StoreCheck", "StoreProbe"]

CONNECT_TIMEOUT = 3  # seconds: a store that does not answer by then is reported unreachable


@dataclass(frozen=True, slots=True)
class StoreCheck:
    reachable: bool
    seconds: float
    revision: str | None
    head: str | None
    detail: str | None

    @property
    def problem(self) -> str | None:
        """What an operator should know, or None when the store is reachable and migrated."""
        if not self.reachable:
            return f"unreachable ({self.detail})"
        if self.revision != self.head:
            return (
                f"schema at revision {self.revision or 'none'}, expected {self.head}: run "
                "`touchstream db upgrade` (a worker's CRM sink does it when it starts)"
            )
        return None


class StoreProbe:
    """``SELECT 1`` and the Alembic revision, on an engine of its own with a short connect
    timeout (the API's engine would wait as long as the driver does)."""

    def __init__(self, url: str) -> None:
        parsed = make_url(url)
        if parsed.get_backend_name() == "postgresql":
            self.engine: Engine = create_engine(
                url,
                pool_pre_ping=True,
                pool_size=1,
                max_overflow=1,
                connect_args={"connect_timeout": CONNECT_TIMEOUT},
            )
        else:
            self.engine = engine_for(url)
        self.head = head_revision()

    def check(self) -> StoreCheck:
        started = time.perf_counter()
        try:
            with self.engine.connect() as conn:
                conn.execute(text("SELECT 1"))
                revision = MigrationContext.configure(conn).get_current_revision()
        except SQLAlchemyError as error:
            reason = str(getattr(error, "orig", None) or error).strip().splitlines()
            return StoreCheck(
                False, time.perf_counter() - started, None, self.head, reason[0] if reason else ""
            )
        return StoreCheck(True, time.perf_counter() - started, revision, self.head, None)

    def close(self) -> None:
        self.engine.dispose()
