"""The validate stage as a pure, total function: raw bytes in, accepted event or dead letter out.

It never raises: contract violations and unexpected failures alike become dead
letters with the original bytes and the reason (the poison-message policy).
"""

from __future__ import annotations

import re
from datetime import UTC, datetime

from schemas.errors import ContractViolation, FieldError
from schemas.events import decode_event
from schemas.records import AcceptedEvent, DeadLetter, DeadLetterError, SourceRecord
from services.routing import Output

_EVENT_ID = re.compile(rb'"event_id"\s*:\s*"([A-Za-z0-9._:-]{1,128})"')


def partition_key(kind: str, value: str) -> str:
    """The key that keeps one person's events on one partition, e.g. ``email:ana@example.com``."""
    return f"{kind}:{value}"


def triage(
    raw: bytes,
    origin: SourceRecord,
    *,
    key: bytes | None = None,
    now: datetime | None = None,
) -> Output:
    """Validate ``raw``; route it to ``valid`` keyed by its strongest identifier, or to
    ``dlq`` with the original bytes and every field-level reason."""
    try:
        event = decode_event(raw)
        pkey = partition_key(*event.identity.strongest())
        accepted = AcceptedEvent(
            event=event,
            received_at=origin.timestamp or now or datetime.now(UTC),
            partition_key=pkey,
            origin=origin,
        )
        return Output("valid", pkey.encode(), accepted.model_dump_json().encode())
    except ContractViolation as violation:
        return _dead(raw, origin, key, now, violation.reason, violation.errors)
    except Exception as error:  # a poison message must not stop the stream
        failure = FieldError("(payload)", type(error).__name__, str(error)[:500])
        return _dead(raw, origin, key, now, "internal_error", (failure,))


def _dead(
    raw: bytes,
    origin: SourceRecord,
    key: bytes | None,
    now: datetime | None,
    reason: str,
    errors: tuple[FieldError, ...],
) -> Output:
    found = _EVENT_ID.search(raw)
    letter = DeadLetter.create(
        reason=reason,
        errors=tuple(DeadLetterError.of(e) for e in errors),
        event_id=found.group(1).decode() if found else None,
        origin=origin,
        key=key,
        payload=raw,
        dead_lettered_at=now or datetime.now(UTC),
    )
    return Output("dlq", key, letter.model_dump_json().encode())
