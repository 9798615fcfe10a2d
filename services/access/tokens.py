"""Roles and login tokens, without I/O: the role order, token generation and hashing, and the
``TOUCHSTREAM_API_TOKENS`` format. Only a token's SHA-256 is ever kept."""

from __future__ import annotations

import hashlib
import re
import secrets
from dataclasses import dataclass
from enum import StrEnum

__all__ = [
    "ROLES",
    "TOKEN_PREFIX",
    "USER_NAME",
    "Role",
    "StaticToken",
    "check_user_name",
    "generate_token",
    "hash_token",
    "parse_role",
    "parse_static_tokens",
]

TOKEN_PREFIX = "tsu_"  # noqa: S105 - a public marker, not a secret
USER_NAME = re.compile(r"^[A-Za-z0-9._@-]{1,64}$")
MIN_STATIC_TOKEN = 16
STATIC_TOKEN = re.compile(rf"^[A-Za-z0-9._~+/=:-]{{{MIN_STATIC_TOKEN},}}$")


class Role(StrEnum):
    """What a user may do; each role includes the ones before it."""

    viewer = "viewer"  # reads customers, friction and reports
    operator = "operator"  # also works friction flags (acknowledge, resolve, reopen)
    admin = "admin"  # everything

    def includes(self, needed: Role) -> bool:
        return ROLES.index(self) >= ROLES.index(needed)


ROLES: tuple[Role, ...] = (Role.viewer, Role.operator, Role.admin)


def parse_role(text: str) -> Role:
    """``text`` as a role; ``ValueError`` listing the valid ones otherwise."""
    try:
        return Role(text.strip().lower())
    except ValueError:
        raise ValueError(
            f"unknown role {text!r}; roles are {', '.join(ROLES)} (each includes the ones before)"
        ) from None


def check_user_name(name: str) -> str:
    """``name`` if it can name a user; ``ValueError`` saying what is allowed otherwise."""
    if not USER_NAME.match(name):
        raise ValueError(
            f"user name {name!r} must be 1-64 characters of letters, digits and . _ @ -"
        )
    return name


def generate_token() -> str:
    """A new random login token: 256 bits, URL-safe, recognisable by its prefix."""
    return TOKEN_PREFIX + secrets.token_urlsafe(32)


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


@dataclass(frozen=True, slots=True)
class StaticToken:
    """A token configured in ``TOUCHSTREAM_API_TOKENS``; only its hash is kept."""

    name: str
    role: Role
    token_hash: str


def parse_static_tokens(text: str) -> tuple[StaticToken, ...]:
    """``name:role:token,...`` as static tokens. A ``ValueError`` names the entry and what is
    wrong with it, never the token itself."""
    tokens: list[StaticToken] = []
    seen: dict[str, int] = {}
    entries = [entry.strip() for entry in text.split(",")]
    for number, entry in enumerate(entries, start=1):
        if not entry:
            continue
        parts = entry.split(":", 2)
        if len(parts) != 3:
            raise ValueError(
                f"entry {number} is not name:role:token; give entries like "
                "`ana:viewer:<token>,ci:operator:<token>` separated by commas"
            )
        name, role, token = (part.strip() for part in parts)
        where = f"entry {number} ({name!r})"
        try:
            check_user_name(name)
        except ValueError as error:
            raise ValueError(f"{where}: {error}") from None
        try:
            parsed = parse_role(role)
        except ValueError:  # not repeated: it may be a token given in the wrong place
            raise ValueError(
                f"{where}: the second part must be a role ({', '.join(ROLES)}); "
                "the order is name:role:token"
            ) from None
        if not STATIC_TOKEN.match(token):
            raise ValueError(
                f"{where}: the token must be at least {MIN_STATIC_TOKEN} characters of letters, "
                "digits and . _ ~ + / = : - (it travels in headers and cookies)"
            )
        digest = hash_token(token)
        if digest in seen:
            raise ValueError(f"{where}: same token as entry {seen[digest]}; give each its own")
        seen[digest] = number
        tokens.append(StaticToken(name, parsed, digest))
    return tuple(tokens)
