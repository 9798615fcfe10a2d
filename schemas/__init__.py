"""Touchstream's event contract v1: models, decoding, JSON Schema and examples."""

from schemas.errors import ContractViolation, FieldError, TouchstreamError
from schemas.events import (
    CATALOGUE,
    EVENT_ADAPTER,
    EVENT_TYPES,
    IDENTITY_KINDS,
    Identity,
    TouchpointEvent,
    decode_event,
    json_schema,
)

__all__ = [
    "CATALOGUE",
    "EVENT_ADAPTER",
    "EVENT_TYPES",
    "IDENTITY_KINDS",
    "ContractViolation",
    "FieldError",
    "Identity",
    "TouchpointEvent",
    "TouchstreamError",
    "decode_event",
    "json_schema",
]
