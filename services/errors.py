"""Errors raised by Touchstream's services; all derive from :class:`TouchstreamError`."""

from __future__ import annotations

from schemas.errors import TouchstreamError

__all__ = [
    "BrokerUnavailable",
    "ConfigurationError",
    "CrmImportError",
    "EmbeddedStackError",
    "FrictionTransitionRefused",
    "ReportError",
    "SinkBehind",
    "StoreUnavailable",
    "TouchstreamError",
    "UnknownFriction",
]


class ConfigurationError(TouchstreamError):
    """A setting is missing or wrong; the message says which and how to fix it."""


class BrokerUnavailable(TouchstreamError):
    """The Kafka broker could not be reached within the allowed time."""


class EmbeddedStackError(TouchstreamError):
    """A process of the embedded stack (broker, worker, API) failed to start or died."""


class StoreUnavailable(TouchstreamError):
    """The relationship store (PostgreSQL or SQLite) cannot be reached or migrated."""


class UnknownFriction(TouchstreamError):
    """No friction event has the given flag id."""


class FrictionTransitionRefused(TouchstreamError):
    """A friction event cannot move to the asked status from the one it is in."""


class CrmImportError(TouchstreamError):
    """A CRM import cannot start or go on: its file, format or column mapping is wrong."""


class ReportError(TouchstreamError):
    """A report cannot be made as asked: a bad period or an unknown journey; the message
    says which and what is accepted."""


class SinkBehind(TouchstreamError):
    """The CRM sink did not commit what it was waited for in time; the message says how many
    records were left."""
