"""What a transport is: a small object with ``send``, ``flush`` and ``close``.

The :class:`~services.sdk.emitter.Emitter` validates and encodes events, then hands each one
to its transport as a :class:`Record`. A transport delivers records and accounts for every
one of them in a :class:`DeliveryReport`; :class:`Tally` is the thread-safe bookkeeping that
the Kafka transport (and any later one) uses for that.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import NamedTuple, Protocol

from schemas.errors import TouchstreamError


class Record(NamedTuple):
    """One validated event, ready to send: its id, partition key and exact JSON bytes."""

    event_id: str
    key: bytes
    value: bytes


@dataclass(frozen=True)
class DeliveryReport:
    """Outcomes settled since the previous report: how many events the broker acknowledged,
    and ``(event_id, reason)`` for each one it did not."""

    sent: int
    failed: list[tuple[str, str]] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """True when no event failed."""
        return not self.failed

    def __str__(self) -> str:
        if not self.failed:
            return f"{self.sent} sent, 0 failed"
        shown = "; ".join(f"{event_id}: {reason}" for event_id, reason in self.failed[:5])
        more = f"; and {len(self.failed) - 5} more" if len(self.failed) > 5 else ""
        return f"{self.sent} sent, {len(self.failed)} failed ({shown}{more})"


class DeliveryTimeout(TouchstreamError, TimeoutError):
    """``flush(timeout)`` ran out of time; the unacknowledged events stay queued."""


class Transport(Protocol):
    """Delivers records. ``send`` must not block per record; ``flush`` waits until every
    record sent so far is acknowledged or failed and reports them; ``close`` flushes, releases
    the connection and reports what is left (events it could not deliver count as failed)."""

    def send(self, record: Record, /) -> None: ...

    def flush(self, timeout: float | None = None) -> DeliveryReport: ...

    def close(self, timeout: float | None = None) -> DeliveryReport: ...


class Tally:
    """Thread-safe count of delivered events and list of failed ones, until reported."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._sent = 0
        self._failed: list[tuple[str, str]] = []

    def delivered(self, count: int = 1) -> None:
        with self._lock:
            self._sent += count

    def failed(self, event_id: str, reason: str) -> None:
        with self._lock:
            self._failed.append((event_id, reason))

    def report(self) -> DeliveryReport:
        """Everything settled since the previous report; starts a new count."""
        with self._lock:
            report = DeliveryReport(self._sent, self._failed)
            self._sent, self._failed = 0, []
        return report


def describe(error: BaseException) -> str:
    """A failure reason for a report: the error's class and message."""
    name, message = type(error).__name__, str(error)
    return message if message.startswith(name) else f"{name}: {message}"
