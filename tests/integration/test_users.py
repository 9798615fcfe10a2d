"""Users of the read API in a store on PostgreSQL and SQLite: a token is returned once and only
its hash is stored; names are unique, roles known, removal final."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa

from services.access.tokens import Role
from services.access.users import TokenResolver, UnknownUser, UserExists, Users
from services.embedded.process import free_port
from services.errors import ConfigurationError, StoreUnavailable
from services.store.db import engine_for, upgrade


@pytest.fixture
def users(store_url: str) -> Users:
    upgrade(store_url)
    return Users(engine_for(store_url))


def test_a_token_is_returned_once_and_only_its_hash_stored(users: Users) -> None:
    before = datetime.now(UTC)
    token = users.add("maria", "Operator")
    assert token.startswith("tsu_")
    assert len(token) >= 4 + 43  # 32 random bytes, URL-safe base64
    with users.engine.connect() as conn:
        rows = conn.execute(sa.text("SELECT * FROM api_users")).mappings().all()
    assert len(rows) == 1
    row = rows[0]
    assert (row["name"], row["role"]) == ("maria", "operator")
    assert row["token_hash"] == hashlib.sha256(token.encode()).hexdigest()
    assert all(token not in str(value) for value in row.values())
    (info,) = users.list()
    assert (info.name, info.role, info.last_used_at) == ("maria", Role.operator, None)
    assert before - timedelta(seconds=1) <= info.created_at <= datetime.now(UTC)
    assert token not in repr(info)
    assert users.add("sam", "viewer") != token


def test_tokens_resolve_until_the_user_is_removed(users: Users) -> None:
    token = users.add("maria", "admin")
    resolver = TokenResolver((), users)
    found = resolver.principal_of(token)
    assert found is not None
    assert (found.name, found.role) == ("maria", Role.admin)
    assert resolver.principal_of(token + "x") is None
    assert users.list()[0].last_used_at is not None
    users.remove("maria")
    assert resolver.principal_of(token) is None
    assert users.list() == []


def test_names_are_unique_and_roles_known(users: Users) -> None:
    users.add("maria", "viewer")
    with pytest.raises(UserExists, match=r"user 'maria' exists; `touchstream users remove maria`"):
        users.add("maria", "admin")
    with pytest.raises(
        ConfigurationError,
        match=r"unknown role 'boss'; roles are viewer, operator, admin",
    ):
        users.add("joe", "boss")
    with pytest.raises(ConfigurationError, match="must be 1-64 characters"):
        users.add("joe:admin", "viewer")
    with pytest.raises(UnknownUser, match=r"no user 'joe'; `touchstream users list`"):
        users.remove("joe")
    assert [(u.name, u.role) for u in users.list()] == [("maria", Role.viewer)]


def test_an_unreachable_store_says_so(tmp_path: Path) -> None:
    users = Users(engine_for(f"postgresql+psycopg2://nobody@127.0.0.1:{free_port()}/nothing"))
    with pytest.raises(StoreUnavailable, match="cannot reach the user store"):
        users.list()
    with pytest.raises(StoreUnavailable):
        users.add("maria", "viewer")
