"""Roles and the ``TOUCHSTREAM_API_TOKENS`` format: order, parsing, and messages that say what
is wrong without repeating a token."""

from __future__ import annotations

import re

import pytest

from services.access.tokens import (
    ROLES,
    Role,
    generate_token,
    hash_token,
    parse_role,
    parse_static_tokens,
)
from services.errors import ConfigurationError
from services.settings import load_settings

TOKEN = "s3cret-token-0123456789"


def test_each_role_includes_the_ones_before() -> None:
    assert [role.value for role in ROLES] == ["viewer", "operator", "admin"]
    allowed = {(have, need) for have in ROLES for need in ROLES if have.includes(need)}
    assert allowed == {
        (Role.viewer, Role.viewer),
        (Role.operator, Role.viewer),
        (Role.operator, Role.operator),
        (Role.admin, Role.viewer),
        (Role.admin, Role.operator),
        (Role.admin, Role.admin),
    }
    assert parse_role(" Operator ") is Role.operator
    with pytest.raises(ValueError, match=r"unknown role 'root'; roles are viewer, operator, admin"):
        parse_role("root")


def test_generated_tokens_are_random_and_hashed_with_sha256() -> None:
    first, second = generate_token(), generate_token()
    assert first != second
    assert first.startswith("tsu_")
    assert len(first) == 4 + 43
    assert hash_token("abc") == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"


def test_static_tokens() -> None:
    parsed = parse_static_tokens(f" ci:Operator:{TOKEN}, ana@example.com:viewer:x{TOKEN}/=,")
    assert [(t.name, t.role, t.token_hash) for t in parsed] == [
        ("ci", Role.operator, hash_token(TOKEN)),
        ("ana@example.com", Role.viewer, hash_token(f"x{TOKEN}/=")),
    ]
    assert parse_static_tokens("") == ()
    assert parse_static_tokens(f"ci:admin:{TOKEN}:with:colons")[0].token_hash == hash_token(
        f"{TOKEN}:with:colons"
    )


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        (f"ci:{TOKEN}", "entry 1 is not name:role:token"),
        (f"ci:viewer:{TOKEN},{TOKEN}", "entry 2 is not name:role:token"),
        (f"ci:boss:{TOKEN}", "entry 1 ('ci'): the second part must be a role (viewer, operator"),
        (f"ci:{TOKEN}:viewer", "entry 1 ('ci'): the second part must be a role"),
        ("ci:viewer:short", "entry 1 ('ci'): the token must be at least 16 characters"),
        (f"ci:viewer:{TOKEN} x", "entry 1 ('ci'): the token must be at least 16 characters"),
        (f"c i:viewer:{TOKEN}", "entry 1 ('c i'): user name 'c i' must be 1-64 characters"),
        (f"a:viewer:{TOKEN},b:admin:{TOKEN}", "entry 2 ('b'): same token as entry 1"),
    ],
)
def test_bad_static_tokens_say_why_without_the_token(value: str, reason: str) -> None:
    with pytest.raises(ValueError, match=re.escape(reason)) as raised:
        parse_static_tokens(value)
    assert TOKEN not in str(raised.value)
    with pytest.raises(ConfigurationError) as configured:
        load_settings(api_tokens=value)
    message = str(configured.value)
    assert message.startswith("invalid configuration: TOUCHSTREAM_API_TOKENS=****: ")
    assert reason in message
    assert TOKEN not in message


def test_the_setting_keeps_tokens_secret(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TOUCHSTREAM_API_TOKENS", f"ci:operator:{TOKEN}")
    settings = load_settings()
    assert settings.api_tokens is not None
    assert TOKEN not in repr(settings)
    assert settings.to_env()["TOUCHSTREAM_API_TOKENS"] == f"ci:operator:{TOKEN}"
