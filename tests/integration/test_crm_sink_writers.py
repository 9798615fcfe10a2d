"""The CRM sink's writers on PostgreSQL: a large batch written through two connections at
once leaves exactly the store one connection leaves, also when one writer fails after the
other committed and the batch is written again (as the sink service retries it)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
import sqlalchemy as sa

from services.crm.records import Batch, decode
from services.crm.sink import SHARD_FROM, CrmSink, Written
from services.simulate import generate
from services.simulate.inprocess import InProcessPipeline
from services.store.db import engine_for, upgrade
from tests.support.crm_truth import content_differences, contents

NOW = datetime(2026, 4, 2, tzinfo=UTC)
BATCH = 5000

pytestmark = pytest.mark.postgres


@pytest.fixture(scope="module")
def records() -> list[tuple[str, bytes]]:
    scenario = generate(400, 14, seed=5)
    return InProcessPipeline().run(scenario.events + scenario.closing)


@pytest.fixture
def second_database(postgres_url: str) -> Iterator[str]:
    name = "ts_test_writers_reference"
    admin = sa.create_engine(postgres_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    yield sa.make_url(postgres_url).set(database=name).render_as_string(hide_password=False)
    with admin.connect() as conn:
        conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


def batches(records: list[tuple[str, bytes]]) -> Iterator[Batch]:
    for start in range(0, len(records), BATCH):
        batch = Batch()
        for kind, value in records[start : start + BATCH]:
            decode(kind, value, batch)
        yield batch


def store(url: str, writers: int) -> tuple[CrmSink, sa.Engine, list[int]]:
    """A sink on a migrated store at ``url``, and a list that counts its transactions."""
    upgrade(url)
    engine = engine_for(url)
    begun: list[int] = []
    sa.event.listen(engine, "begin", lambda conn: begun.append(1))
    return CrmSink(engine, clock=lambda: NOW, writers=writers), engine, begun


def health(url: str) -> dict[str, Any]:
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            sql = "SELECT customer_id, health_score FROM relationship_metrics"
            return dict(conn.execute(sa.text(sql)).all())
    finally:
        engine.dispose()


def test_two_writers_leave_the_store_one_writer_leaves(
    records: list[tuple[str, bytes]], database_url: str, second_database: str
) -> None:
    one, one_engine, _ = store(second_database, writers=1)
    two, two_engine, begun = store(database_url, writers=2)
    written_one, written_two = [], []
    large = 0
    for batch in batches(records):
        large += len(batch) - len(batch.merges) >= SHARD_FROM
        written_one.append(one.write(batch))
        written_two.append(two.write(batch))
    assert large >= 3, "the scenario must make batches large enough to share out"
    # each large batch: the merges' transaction and one a writer
    assert len(begun) >= large * 3
    assert written_two == written_one
    assert sum(w.merges for w in written_one) > 0, "the scenario must merge profiles"
    assert content_differences(contents(database_url), contents(second_database)) == {}
    assert health(database_url) == health(second_database)
    again = [two.write(batch) for batch in batches(records)]
    assert all(w == Written() for w in again), "a redelivery through two writers wrote rows"
    assert content_differences(contents(database_url), contents(second_database)) == {}
    for sink, engine in ((one, one_engine), (two, two_engine)):
        sink.close()
        engine.dispose()


def test_a_writer_failing_after_the_other_committed_is_made_good_by_the_retry(
    records: list[tuple[str, bytes]],
    database_url: str,
    second_database: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    reference, reference_engine, _ = store(second_database, writers=1)
    two, two_engine, _ = store(database_url, writers=2)
    write_share = two._write_share
    calls: list[int] = []

    def flaky(batch: Batch, final: dict[str, str], now: datetime) -> Written:
        """The 2nd, 4th and 6th share written fail (their transaction is not committed);
        the share beside each is written and committed."""
        calls.append(1)
        if len(calls) in (2, 4, 6):
            raise sa.exc.OperationalError("INSERT ...", {}, Exception("connection lost"))
        return write_share(batch, final, now)

    monkeypatch.setattr(two, "_write_share", flaky)
    failed = 0
    for batch in batches(records):
        reference.write(batch)
        while True:
            try:
                two.write(batch)
                break
            except sa.exc.OperationalError:
                failed += 1
    assert failed == 3
    differences = content_differences(contents(database_url), contents(second_database))
    assert differences == {}
    assert health(database_url) == health(second_database)
    for sink, engine in ((reference, reference_engine), (two, two_engine)):
        sink.close()
        engine.dispose()
