"""The CRM bench's statement timer: statements run at once on two connections (as the
sink's writers run them) are each timed from their own start."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from bench.crm import Statements


def test_concurrent_statements_are_timed_each_from_its_own_start(tmp_path: Path) -> None:
    engine = sa.create_engine(f"sqlite:///{tmp_path / 'timer.db'}")

    @sa.event.listens_for(engine, "connect")
    def _sleep(dbapi_connection: Any, _: Any) -> None:
        dbapi_connection.create_function("sleep", 1, time.sleep)

    with engine.begin() as conn:
        conn.execute(sa.text("CREATE TABLE quick (x INTEGER)"))
    statements = Statements(engine)
    started = threading.Event()

    def slow() -> None:
        with engine.connect() as conn:
            started.set()
            conn.execute(sa.text("SELECT sleep(0.4)"))

    thread = threading.Thread(target=slow)
    thread.start()
    started.wait()
    with engine.connect() as conn:
        for _ in range(20):  # each starts while the slow one runs
            conn.execute(sa.text("SELECT x FROM quick"))
            time.sleep(0.005)
    thread.join()
    engine.dispose()
    assert statements.calls == {"SELECT": 1, "SELECT quick": 20}
    assert statements.seconds["SELECT"] >= 0.4
    assert statements.seconds["SELECT quick"] < 0.2
