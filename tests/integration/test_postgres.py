"""The throwaway PostgreSQL cluster the suite runs on is real and isolated per test."""

from __future__ import annotations

import sqlalchemy as sa

from services.embedded.postgres import ThrowawayPostgres


def test_each_test_gets_an_empty_database_of_its_own(database_url: str, postgres_url: str) -> None:
    engine = sa.create_engine(database_url)
    with engine.begin() as conn:
        version = conn.execute(sa.text("SHOW server_version_num")).scalar_one()
        assert int(version) >= 150000
        assert (
            conn.execute(
                sa.text("SELECT count(*) FROM pg_tables WHERE schemaname='public'")
            ).scalar_one()
            == 0
        )
        conn.execute(sa.text("CREATE TABLE probe (event_id text PRIMARY KEY)"))
        conn.execute(sa.text("INSERT INTO probe VALUES ('e-1') ON CONFLICT DO NOTHING"))
        conn.execute(sa.text("INSERT INTO probe VALUES ('e-1') ON CONFLICT DO NOTHING"))
        assert conn.execute(sa.text("SELECT count(*) FROM probe")).scalar_one() == 1
    engine.dispose()
    assert sa.make_url(database_url).database != sa.make_url(postgres_url).database


def test_a_cluster_starts_and_leaves_nothing_behind() -> None:
    cluster = ThrowawayPostgres().start()
    try:
        engine = sa.create_engine(cluster.url)
        with engine.connect() as conn:
            assert conn.execute(sa.text("SELECT 1")).scalar_one() == 1
        engine.dispose()
    finally:
        cluster.stop()
    assert not cluster.base.exists()
