"""Local validation: an event in, the exact bytes the broker will get out, or InvalidEvent.

The bytes that are validated are the bytes that are sent, so the worker's ``validate``
stage (which runs the same :func:`schemas.decode_event`) accepts every event the SDK sends.
"""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal
from typing import Any

import orjson
from pydantic import BaseModel, TypeAdapter, ValidationError

from schemas.errors import ContractViolation, FieldError
from schemas.events import EventBase, decode_event
from schemas.fields import Source
from services.errors import ConfigurationError
from services.sdk.transport import Record
from services.worker.triage import partition_key

#: What ``emit`` accepts: a JSON-like mapping or one of the contract's pydantic event models.
Event = Mapping[str, Any] | EventBase

SCHEMA_VERSION = 1

_SOURCE: TypeAdapter[str] = TypeAdapter(Source)


class InvalidEvent(ContractViolation):
    """An event broke the contract and was not sent.

    Raised by ``emit``/``emit_many`` before anything is sent. ``reason`` and ``errors`` are
    those of :class:`schemas.ContractViolation` (every broken field, its rule and a sentence);
    ``event_id`` is the event's id when it could be read.
    """

    def __init__(
        self, reason: str, errors: tuple[FieldError, ...], *, event_id: str | None = None
    ) -> None:
        super().__init__(reason, errors)
        self.event_id = event_id
        which = f"event {event_id!r}" if event_id else "event"
        self.args = (f"{which} not sent: {self.args[0]}",)


def check_source(source: str) -> str:
    """The emitter's own source name, checked against the contract (1-64 printable chars)."""
    try:
        return _SOURCE.validate_python(source)
    except ValidationError as error:
        problem = error.errors(include_url=False)[0]["msg"]
        raise ConfigurationError(
            f"source {source!r} is not a valid event source: {problem} "
            "(1-64 printable characters naming the emitting system, e.g. billing-core)"
        ) from None


def prepare(event: Event, source: str) -> Record:
    """Fill ``source`` and ``schema_version``, encode as compact JSON and validate those bytes.

    Raises :class:`InvalidEvent` naming every broken field; never does I/O.
    """
    if isinstance(event, BaseModel):
        return _prepare_model(event, source)
    if not isinstance(event, Mapping):
        raise InvalidEvent(
            "contract_violation",
            (
                FieldError(
                    "(payload)",
                    "event_type",
                    f"an event is a mapping or a schemas.events model, not {type(event).__name__}",
                ),
            ),
        )
    fields = dict(event)
    found = fields.get("event_id")
    event_id = found if isinstance(found, str) else None
    errors: list[FieldError] = []
    claimed = fields.get("source")
    if claimed is None:
        fields["source"] = source
    elif claimed != source:
        errors.append(_source_mismatch(claimed, source))
    if fields.get("schema_version") is None:
        fields["schema_version"] = SCHEMA_VERSION
    try:
        value = orjson.dumps(fields, default=_json_default)
    except orjson.JSONEncodeError as error:
        errors.append(FieldError("(payload)", "not_json_serializable", str(error)))
        raise InvalidEvent("contract_violation", tuple(errors), event_id=event_id) from None
    return _validated(value, errors, event_id)


def _prepare_model(event: BaseModel, source: str) -> Record:
    event_id = getattr(event, "event_id", None)
    errors: list[FieldError] = []
    claimed = getattr(event, "source", None)
    if claimed is None:
        event = event.model_copy(update={"source": source})
    elif claimed != source:
        errors.append(_source_mismatch(claimed, source))
    # Re-validated: a model built with model_construct() was never checked.
    return _validated(event.model_dump_json(warnings=False).encode(), errors, event_id)


def _validated(value: bytes, errors: list[FieldError], event_id: str | None) -> Record:
    try:
        valid = decode_event(value)
    except ContractViolation as violation:
        raise InvalidEvent(
            violation.reason, (*errors, *violation.errors), event_id=event_id
        ) from None
    if errors:
        raise InvalidEvent("contract_violation", tuple(errors), event_id=valid.event_id)
    # The key of services.emit.raw_key, from the validated identity (email already lower-case).
    key = partition_key(*valid.identity.strongest()).encode()
    return Record(valid.event_id, key, value)


def _source_mismatch(claimed: object, source: str) -> FieldError:
    return FieldError(
        "source",
        "source_mismatch",
        f"{claimed!r} is not this emitter's source {source!r}; leave source out "
        "(the emitter fills it) or emit it through an Emitter for that source",
    )


def _json_default(value: object) -> object:
    """JSON for what orjson does not encode itself: Decimal stays an exact number."""
    if isinstance(value, Decimal):
        return orjson.Fragment(str(value)) if value.is_finite() else str(value)
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json")
    raise TypeError(f"Type is not JSON serializable: {type(value).__name__}")
