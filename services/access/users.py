"""Users of the read API and dashboard in the store, and who a presented token belongs to."""

from __future__ import annotations

import hmac
import logging
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import Engine, delete, select, update
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlalchemy.orm import Session

from services.access.tokens import (
    Role,
    StaticToken,
    check_user_name,
    generate_token,
    hash_token,
    parse_role,
)
from services.errors import ConfigurationError, StoreUnavailable, TouchstreamError
from services.store.models import ApiUser

__all__ = ["Principal", "TokenResolver", "UnknownUser", "UserExists", "UserInfo", "Users"]

log = logging.getLogger(__name__)
LAST_USED_PRECISION = timedelta(minutes=1)  # at most one write per user and minute


class UnknownUser(TouchstreamError):
    """No user of that name exists in the store."""


class UserExists(TouchstreamError):
    """A user of that name exists already."""


@dataclass(frozen=True, slots=True)
class Principal:
    """Who a request acts as: a user of the store or a static token's name, with a role."""

    name: str
    role: Role


@dataclass(frozen=True, slots=True)
class UserInfo:
    name: str
    role: Role
    created_at: datetime
    last_used_at: datetime | None


def _utc(moment: datetime) -> datetime:
    """SQLite gives naive datetimes back; the store writes UTC only."""
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


class Users:
    """Repository of users and the hashes of their tokens."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    @contextmanager
    def _session(self) -> Iterator[Session]:
        try:
            with Session(self.engine) as session:
                yield session
        except OperationalError as error:
            raise StoreUnavailable(f"cannot reach the user store: {error.orig}") from error

    def add(self, name: str, role: str) -> str:
        """Create ``name`` with ``role`` and return its token; it cannot be shown again."""
        try:
            check_user_name(name)
            parsed = parse_role(role)
        except ValueError as error:
            raise ConfigurationError(str(error)) from None
        token = generate_token()
        exists = UserExists(
            f"user {name!r} exists; `touchstream users remove {name}` first to give it a new "
            "token or role, or choose another name"
        )
        with self._session() as session:
            if session.scalar(select(ApiUser.id).where(ApiUser.name == name)) is not None:
                raise exists
            session.add(
                ApiUser(
                    name=name,
                    role=parsed.value,
                    token_hash=hash_token(token),
                    created_at=datetime.now(UTC),
                )
            )
            try:
                session.commit()
            except IntegrityError:
                raise exists from None
        return token

    def list(self) -> Sequence[UserInfo]:
        with self._session() as session:
            rows = session.scalars(select(ApiUser).order_by(ApiUser.name))
            return [
                UserInfo(
                    r.name,
                    Role(r.role),
                    _utc(r.created_at),
                    _utc(r.last_used_at) if r.last_used_at else None,
                )
                for r in rows
            ]

    def remove(self, name: str) -> None:
        """Delete ``name``; its token is refused from the next request on."""
        with self._session() as session:
            removed = session.execute(delete(ApiUser).where(ApiUser.name == name))
            session.commit()
        if getattr(removed, "rowcount", 0) == 0:
            raise UnknownUser(f"no user {name!r}; `touchstream users list` shows the users")

    def principal_of(self, token_hash: str) -> Principal | None:
        """The user whose token hashes to ``token_hash``; notes when it was last used."""
        now = datetime.now(UTC)
        with self._session() as session:
            row = session.scalars(select(ApiUser).where(ApiUser.token_hash == token_hash)).first()
            if row is None or not hmac.compare_digest(row.token_hash, token_hash):
                return None
            principal = Principal(row.name, Role(row.role))
            last = row.last_used_at
            if last is None or now - _utc(last) >= LAST_USED_PRECISION:
                self._touch(session, row.id, now)
        return principal

    @staticmethod
    def _touch(session: Session, user_id: int, now: datetime) -> None:
        """Record ``now`` as last use; a busy store only makes it miss one."""
        try:
            session.execute(update(ApiUser).where(ApiUser.id == user_id).values(last_used_at=now))
            session.commit()
        except OperationalError as error:
            session.rollback()
            log.warning("could not record the last use of user %s: %s", user_id, error.orig)


class TokenResolver:
    """Token -> principal: static tokens (``TOUCHSTREAM_API_TOKENS``) first, then the users in
    the store. Not cached, so removing a user refuses its token at once."""

    def __init__(self, static: Sequence[StaticToken], users: Users | None) -> None:
        self.static = tuple(static)
        self.users = users

    def principal_of(self, token: str) -> Principal | None:
        digest = hash_token(token)
        found = None
        for known in self.static:
            if hmac.compare_digest(known.token_hash, digest) and found is None:
                found = Principal(known.name, known.role)
        if found is not None or self.users is None:
            return found
        return self.users.principal_of(digest)
