"""Records Touchstream itself writes to its topics (not part of the client contract).

``AcceptedEvent`` goes to ``touchpoints.resolved``; ``DeadLetter`` to
``touchpoints.dlq``. Both name where the input came from, so every accepted
event can be traced to one outcome.
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal

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
    """An input that could not be applied, with the original bytes and why."""

    model_config = ConfigDict(frozen=True, ser_json_bytes="base64", val_json_bytes="base64")

    reason: str = Field(description="Category: invalid_json, contract_violation or internal_error.")
    errors: tuple[DeadLetterError, ...]
    stage: Literal["validate"] = "validate"
    event_id: str | None = Field(
        default=None, description="The payload's event_id when one could be read, for tracing."
    )
    origin: SourceRecord
    key: bytes | None = Field(default=None, description="Original record key (base64 in JSON).")
    payload: bytes = Field(description="Original payload bytes (base64 in JSON).")
    dead_lettered_at: datetime

    def summary(self) -> str:
        return "; ".join(f"{e.field}: {e.message}" for e in self.errors) or self.reason
