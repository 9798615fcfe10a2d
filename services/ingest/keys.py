"""Source keys: each emitting system authenticates with its own key; only a hash is stored."""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import Engine, select, update
from sqlalchemy.orm import Session

from services.errors import ConfigurationError, TouchstreamError
from services.settings import Settings
from services.store.models import SourceKey

KEY_PREFIX = "tsk_"
SOURCE_NAME = re.compile(r"^[A-Za-z0-9._:-]{1,64}$")


class UnknownSource(TouchstreamError):
    """No active key of that source exists."""


def generate_key() -> str:
    """A new random key: 256 bits, URL-safe, recognisable by its prefix."""
    return KEY_PREFIX + secrets.token_urlsafe(32)


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def static_keys(settings: Settings) -> dict[str, str]:
    """``TOUCHSTREAM_INGEST_KEYS=name:key,...`` as ``{key hash: source name}``."""
    if settings.ingest_keys is None:
        return {}
    keys: dict[str, str] = {}
    for item in settings.ingest_keys.get_secret_value().split(","):
        name, sep, key = item.strip().partition(":")
        if not item.strip():
            continue
        if not sep or not SOURCE_NAME.match(name) or len(key) < 16:
            raise ConfigurationError(
                "TOUCHSTREAM_INGEST_KEYS must be name:key pairs separated by commas, with names "
                f"of [A-Za-z0-9._:-] and keys of at least 16 characters; got an entry {name!r}"
            )
        keys[hash_key(key)] = name
    return keys


@dataclass(frozen=True, slots=True)
class SourceInfo:
    name: str
    key_prefix: str
    created_at: datetime
    revoked_at: datetime | None


class SourceKeys:
    """Repository of source keys in the store."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def add(self, name: str) -> str:
        """Create a key for ``name`` and return it; it cannot be shown again."""
        if not SOURCE_NAME.match(name):
            raise ConfigurationError(
                f"source name {name!r} must be 1-64 characters of letters, digits and . _ : -"
            )
        key = generate_key()
        with Session(self.engine) as session, session.begin():
            session.add(
                SourceKey(
                    name=name,
                    key_hash=hash_key(key),
                    key_prefix=key[: len(KEY_PREFIX) + 6],
                    created_at=datetime.now(UTC),
                )
            )
        return key

    def list(self) -> Sequence[SourceInfo]:
        with Session(self.engine) as session:
            rows = session.scalars(select(SourceKey).order_by(SourceKey.name, SourceKey.id))
            return [SourceInfo(r.name, r.key_prefix, r.created_at, r.revoked_at) for r in rows]

    def revoke(self, name: str) -> int:
        """Revoke every active key of ``name``; return how many."""
        with Session(self.engine) as session, session.begin():
            result = session.execute(
                update(SourceKey)
                .where(SourceKey.name == name, SourceKey.revoked_at.is_(None))
                .values(revoked_at=datetime.now(UTC))
            )
        count: int = getattr(result, "rowcount", 0)
        if count == 0:
            raise UnknownSource(
                f"no active key for source {name!r}; see `touchstream sources list`"
            )
        return count

    def active_source(self, key_hash: str) -> str | None:
        with Session(self.engine) as session:
            return session.scalar(
                select(SourceKey.name).where(
                    SourceKey.key_hash == key_hash, SourceKey.revoked_at.is_(None)
                )
            )


class KeyResolver:
    """Key -> source name: static keys first, then the store, cached for ``ttl`` seconds so a
    revocation takes effect within that time."""

    def __init__(self, static: dict[str, str], keys: SourceKeys | None, ttl: float = 5.0) -> None:
        self.static = static
        self.keys = keys
        self.ttl = ttl
        self._cache: dict[str, tuple[float, str | None]] = {}

    def source_of(self, key: str) -> str | None:
        digest = hash_key(key)
        for known, name in self.static.items():
            if hmac.compare_digest(known, digest):
                return name
        if self.keys is None:
            return None
        now = time.monotonic()
        cached = self._cache.get(digest)
        if cached is not None and now - cached[0] < self.ttl:
            return cached[1]
        found = self.keys.active_source(digest)
        if len(self._cache) > 10_000:
            self._cache.clear()
        self._cache[digest] = (now, found)
        return found
