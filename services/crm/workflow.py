"""The friction workflow: a CX team acknowledges, resolves or reopens a flag with a note;
every change is kept in the flag's history."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Literal

from pydantic import BaseModel
from sqlalchemy import Engine, insert, select, update
from sqlalchemy.orm import Session

from services.crm.view import FrictionItem, friction_item, utc
from services.errors import FrictionTransitionRefused, UnknownFriction
from services.store.models import FrictionEvent, FrictionNote

__all__ = ["FrictionDetail", "HistoryEntry", "Status", "change_status", "friction", "history"]

Status = Literal["open", "acknowledged", "resolved"]
ALLOWED: dict[str, frozenset[str]] = {
    "open": frozenset({"acknowledged", "resolved"}),
    "acknowledged": frozenset({"resolved", "open"}),
    "resolved": frozenset({"open"}),
}
VERB = {"acknowledged": "acknowledge", "resolved": "resolve", "open": "reopen"}
ACTOR_MAX = 64


class HistoryEntry(BaseModel):
    status: str
    note: str
    actor: str
    at: datetime


class FrictionDetail(FrictionItem):
    """A friction event with every status change made to it, oldest first."""

    history: list[HistoryEntry]


def _history(session: Session, flag_id: str) -> list[HistoryEntry]:
    rows = session.scalars(
        select(FrictionNote)
        .where(FrictionNote.flag_id == flag_id)
        .order_by(FrictionNote.at, FrictionNote.id)
    ).all()
    return [HistoryEntry(status=r.status, note=r.note, actor=r.actor, at=utc(r.at)) for r in rows]


def _detail(session: Session, flag_id: str) -> FrictionDetail:
    row = session.get(FrictionEvent, flag_id, populate_existing=True)
    if row is None:
        raise UnknownFriction(
            f"no friction event with flag id {flag_id!r}; "
            "`touchstream customer show` lists a customer's flags with their ids"
        )
    return FrictionDetail(**friction_item(row).model_dump(), history=_history(session, flag_id))


def friction(engine: Engine, flag_id: str) -> FrictionDetail:
    """The friction event ``flag_id`` with its history; :class:`UnknownFriction` if none."""
    with Session(engine) as session:
        return _detail(session, flag_id)


def history(engine: Engine, flag_id: str) -> list[HistoryEntry]:
    """The status changes of ``flag_id``, oldest first; :class:`UnknownFriction` if none."""
    return friction(engine, flag_id).history


def change_status(
    engine: Engine,
    flag_id: str,
    status: Status,
    note: str,
    actor: str,
    now: datetime | None = None,
) -> FrictionDetail:
    """Move ``flag_id`` to ``status`` (acknowledged, resolved, or open to reopen it) and
    record who did it, when and why. Refused when the flag is already there or a resolved
    flag is acknowledged (reopen it first), and when ``note`` or ``actor`` is empty."""
    if status not in ALLOWED:
        raise ValueError(f"unknown friction status {status!r}; one of {', '.join(ALLOWED)}")
    verb = VERB[status]
    note, actor = note.strip(), actor.strip()
    if not note:
        raise FrictionTransitionRefused(
            f"cannot {verb} flag {flag_id!r} without a note: say what was done or why"
        )
    if not actor or len(actor) > ACTOR_MAX:
        raise FrictionTransitionRefused(f"the actor must be 1-{ACTOR_MAX} characters")
    at = datetime.now(UTC) if now is None else utc(now)
    with Session(engine) as session, session.begin():
        current = session.scalar(
            select(FrictionEvent.status).where(FrictionEvent.flag_id == flag_id)
        )
        if current is None:
            _detail(session, flag_id)  # raises UnknownFriction
        if status not in ALLOWED.get(str(current), frozenset()):
            hint = " (reopen it first)" if current == "resolved" else ""
            raise FrictionTransitionRefused(
                f"cannot {verb} flag {flag_id!r}: it is {current}{hint}"
            )
        changed = session.execute(
            update(FrictionEvent)
            .where(FrictionEvent.flag_id == flag_id, FrictionEvent.status == current)
            .values(status=status, status_changed_at=at, status_changed_by=actor)
        )
        if changed.rowcount != 1:  # type: ignore[attr-defined]
            raise FrictionTransitionRefused(
                f"flag {flag_id!r} changed status meanwhile; look at it again and retry"
            )
        session.execute(
            insert(FrictionNote).values(
                flag_id=flag_id, status=status, note=note, actor=actor, at=at
            )
        )
    with Session(engine) as session:
        return _detail(session, flag_id)
