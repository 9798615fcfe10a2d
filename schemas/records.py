"""Records Touchstream itself writes to its topics (not part of the client contract).

``AcceptedEvent`` goes to ``touchpoints.resolved``; ``DeadLetter`` to
``touchpoints.dlq``. Both name where the input came from, so every accepted
event can be traced to one outcome.
"""

from __future__ import annotations

import hashlib
from typing import Any, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from schemas.errors import FieldError
from schemas.events import TouchpointEvent


class SourceRecord(BaseModel):
    """Where a record was read: topic, partition, offset and the broker's timestamp."""

    model_config = ConfigDict(frozen=True)

    topic: str
    partition: int
    offset: int
    timestamp: AwareDatetime | None = None


class AcceptedEvent(BaseModel):
    """A valid event with what the platform adds; ``customer_id`` is set by identity resolution."""

    model_config = ConfigDict(frozen=True)

    event: TouchpointEvent
    received_at: AwareDatetime
    customer_id: str | None = None
    partition_key: str
    origin: SourceRecord


class DeadLetterError(BaseModel):
    model_config = ConfigDict(frozen=True)

    field: str
    rule: str
    message: str

    @classmethod
    def of(cls, error: FieldError) -> DeadLetterError:
        return cls(field=error.field, rule=error.rule, message=error.message)


class DeadLetter(BaseModel):
    """An input that could not be applied, with the original bytes and why.

    ``stage`` says who refused it: ``validate`` (the worker, reading ``origin``) or
    ``ingest`` (the HTTP gateway, which received it through ``ingress`` from ``source``).
    ``id`` is stable for the record and names it in ``touchstream dlq show|replay``.
    """

    model_config = ConfigDict(frozen=True, ser_json_bytes="base64", val_json_bytes="base64")

    id: str
    reason: str = Field(
        description="Category: invalid_json, contract_violation, unmapped_event or internal_error."
    )
    errors: tuple[DeadLetterError, ...]
    stage: Literal["validate", "ingest", "sink"] = "validate"
    event_id: str | None = Field(
        default=None, description="The payload's event_id when one could be read, for tracing."
    )
    origin: SourceRecord | None = Field(
        default=None, description="The raw record it was read from (validate stage)."
    )
    ingress: str | None = Field(
        default=None, description="Where the gateway received it, e.g. segment /v1/track."
    )
    source: str | None = Field(default=None, description="The authenticated emitting system.")
    key: bytes | None = Field(default=None, description="Original record key (base64 in JSON).")
    payload: bytes = Field(description="Original payload bytes (base64 in JSON).")
    dead_lettered_at: AwareDatetime

    @classmethod
    def create(cls, **fields: Any) -> DeadLetter:
        """A dead letter with its ``id`` derived from where, when and what it was."""
        where = fields.get("origin") or fields.get("ingress") or ""
        if isinstance(where, SourceRecord):
            where = f"{where.topic}/{where.partition}/{where.offset}"
        digest = hashlib.sha1(usedforsecurity=False)
        digest.update(f"{fields.get('stage', 'validate')}|{where}|".encode())
        digest.update(fields["dead_lettered_at"].isoformat().encode())
        digest.update(fields["payload"])
        return cls(id=digest.hexdigest()[:20], **fields)

    def summary(self) -> str:
        return "; ".join(f"{e.field}: {e.message}" for e in self.errors) or self.reason
