"""Migrations bring an empty PostgreSQL or SQLite store to head with no drift from the models;
source keys are stored as hashes and resolve to their source until revoked."""

from __future__ import annotations

from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic import command

from services.errors import ConfigurationError
from services.ingest.keys import KeyResolver, SourceKeys, UnknownSource, hash_key, static_keys
from services.settings import Settings
from services.store.db import alembic_config, current_revision, engine_for, head_revision, upgrade


def test_migrations_reach_head_without_drift(store_url: str) -> None:
    assert current_revision(store_url) is None
    upgrade(store_url)
    assert current_revision(store_url) == head_revision()
    upgrade(store_url)  # idempotent
    command.check(alembic_config(store_url))  # raises when models and migrations disagree
    tables = set(sa.inspect(engine_for(store_url)).get_table_names())
    assert {"source_keys", "dead_letter_replays", "alembic_version"} <= tables


def test_downgrade_to_base_and_back(store_url: str) -> None:
    upgrade(store_url)
    command.downgrade(alembic_config(store_url), "base")
    assert set(sa.inspect(engine_for(store_url)).get_table_names()) <= {"alembic_version"}
    upgrade(store_url)
    assert current_revision(store_url) == head_revision()


def test_source_keys_store_only_hashes_and_revoke(store_url: str) -> None:
    upgrade(store_url)
    engine = engine_for(store_url)
    keys = SourceKeys(engine)
    key = keys.add("pos-store-12")
    assert key.startswith("tsk_")
    assert len(key) > 40
    with engine.connect() as conn:
        stored = conn.execute(sa.text("SELECT key_hash, key_prefix FROM source_keys")).one()
    assert stored.key_hash == hash_key(key)
    assert key not in stored
    resolver = KeyResolver({}, keys, ttl=0)
    assert resolver.source_of(key) == "pos-store-12"
    assert resolver.source_of(key + "x") is None
    assert keys.revoke("pos-store-12") == 1
    assert resolver.source_of(key) is None
    with pytest.raises(UnknownSource, match="no active key for source 'pos-store-12'"):
        keys.revoke("pos-store-12")
    assert [(s.name, s.revoked_at is not None) for s in keys.list()] == [("pos-store-12", True)]


def test_bad_source_name_is_refused(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'ts.db'}"
    upgrade(url)
    with pytest.raises(ConfigurationError, match="must be 1-64 characters"):
        SourceKeys(engine_for(url)).add("no spaces please")


def test_static_keys() -> None:
    settings = Settings(ingest_keys="web-shop:0123456789abcdef0123,helpdesk:fedcba9876543210fedc")
    resolver = KeyResolver(static_keys(settings), None)
    assert resolver.source_of("0123456789abcdef0123") == "web-shop"
    assert resolver.source_of("fedcba9876543210fedc") == "helpdesk"
    assert resolver.source_of("nope") is None
    with pytest.raises(ConfigurationError, match="name:key pairs"):
        static_keys(Settings(ingest_keys="web-shop:short"))
