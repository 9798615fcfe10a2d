"""The Emitter: validate touchpoint events locally, then send them through a transport."""

from __future__ import annotations

import atexit
import logging
from collections.abc import Iterable
from types import TracebackType
from typing import Any

from schemas.errors import FieldError
from services.sdk.http_transport import HttpTransport
from services.sdk.kafka_transport import BATCH_SIZE, SETTLE_EVERY, KafkaTransport
from services.sdk.prepare import Event, InvalidEvent, check_source, prepare
from services.sdk.transport import DeliveryReport, Record, Transport

log = logging.getLogger("services.sdk")

RAW_TOPIC = "touchpoints.raw"


class Emitter:
    """Validates events locally, then sends them to touchpoints.raw.

    ``emit`` raises :class:`InvalidEvent` before anything is sent; delivery is asynchronous
    and batched, and ``flush``/``close`` report what the broker acknowledged. Use it as a
    context manager, or call ``close()``; an emitter left open is closed at interpreter exit
    (``exit_timeout`` seconds), so a script that just ends does not lose its last events.
    """

    def __init__(
        self,
        source: str,
        transport: Transport,
        *,
        close_at_exit: bool = True,
        exit_timeout: float = 30.0,
    ) -> None:
        self.source = check_source(source)
        self._transport = transport
        self._exit_timeout = exit_timeout
        self._closed = False
        self._at_exit_registered = close_at_exit
        if close_at_exit:
            atexit.register(self._close_at_exit)

    @classmethod
    def kafka(
        cls,
        source: str,
        broker_url: str,
        *,
        topic: str = RAW_TOPIC,
        linger_ms: int = 20,
        batch_size: int = BATCH_SIZE,
        compression_type: str | None = "gzip",
        connect_timeout: float = 10.0,
        settle_every: int = SETTLE_EVERY,
        **producer_config: Any,
    ) -> Emitter:
        """An emitter that sends to ``topic`` on the Kafka cluster at ``broker_url``.

        Connects at once: raises :class:`~services.errors.BrokerUnavailable` when no broker
        answers within ``connect_timeout`` seconds. ``producer_config`` goes to
        :class:`kafka.KafkaProducer` (e.g. ``max_block_ms``, ``delivery_timeout_ms``,
        ``security_protocol``); acks=all and retries come from
        :func:`services.kafka.producer`.
        """
        checked = check_source(source)  # before connecting: a bad source is a bug, not I/O
        transport = KafkaTransport.connect(
            broker_url,
            topic,
            connect_timeout=connect_timeout,
            settle_every=settle_every,
            linger_ms=linger_ms,
            batch_size=batch_size,
            compression_type=compression_type,
            **producer_config,
        )
        return cls(checked, transport)

    @classmethod
    def http(
        cls,
        source: str,
        base_url: str,
        key: str,
        *,
        batch_size: int = 500,
        timeout: float = 15.0,
        max_retries: int = 5,
        flush_interval: float | None = None,
    ) -> Emitter:
        """An emitter that POSTs batches of ``batch_size`` events to ``{base_url}/v1/events``.

        ``key`` is a source key of ``source`` (``Authorization: Bearer``). No I/O until the
        first batch; a refused key raises :class:`~services.sdk.Unauthorized` from ``flush``
        and later ``emit`` calls. See :class:`~services.sdk.http_transport.HttpTransport`.
        """
        checked = check_source(source)
        transport = HttpTransport(
            base_url,
            key,
            batch_size=batch_size,
            timeout=timeout,
            max_retries=max_retries,
            flush_interval=flush_interval,
        )
        return cls(checked, transport)

    def emit(self, event: Event, /) -> None:
        """Validate one event and queue it for sending; never blocks on the broker.

        Raises :class:`InvalidEvent` (nothing sent) if it breaks the contract or claims
        another source.
        """
        record = prepare(event, self.source)
        self._send(record)

    def emit_many(self, events: Iterable[Event]) -> None:
        """Validate all ``events``, then queue them in order.

        All or nothing on validation: if any event is invalid, :class:`InvalidEvent` names
        every broken field of every invalid event (as ``[position].field``) and nothing is
        sent. For unbounded streams call ``emit`` per event instead.
        """
        records: list[Record] = []
        errors: list[FieldError] = []
        for position, event in enumerate(events):
            try:
                records.append(prepare(event, self.source))
            except InvalidEvent as invalid:
                errors.extend(
                    FieldError(f"[{position}].{e.field}", e.rule, e.message) for e in invalid.errors
                )
        if errors:
            raise InvalidEvent("contract_violation", tuple(errors))
        for record in records:
            self._send(record)

    def flush(self, timeout: float | None = None) -> DeliveryReport:
        """Wait for the broker's acks of everything emitted so far.

        Returns the events settled since the previous report (from ``flush`` or ``close``):
        how many were acknowledged, and ``(event_id, reason)`` for each that failed. Raises
        :class:`~services.sdk.transport.DeliveryTimeout` if ``timeout`` seconds pass first.
        """
        if self._closed:
            return DeliveryReport(0, [])
        return self._transport.flush(timeout)

    def close(self, timeout: float | None = None) -> DeliveryReport:
        """Flush, release the connection and report what the last flush did not.

        Events not acknowledged within ``timeout`` seconds are reported as failed. Closing
        twice is harmless; emitting after close raises :class:`RuntimeError`.
        """
        if self._closed:
            return DeliveryReport(0, [])
        self._closed = True
        if self._at_exit_registered:
            atexit.unregister(self._close_at_exit)
            self._at_exit_registered = False
        return self._transport.close(timeout)

    def __enter__(self) -> Emitter:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        _log_failures(self.close(), "on leaving the with-block")

    def _send(self, record: Record) -> None:
        if self._closed:
            raise RuntimeError(f"this Emitter for {self.source!r} is closed")
        self._transport.send(record)

    def _close_at_exit(self) -> None:
        self._at_exit_registered = False  # atexit has already dropped it
        try:
            report = self.close(self._exit_timeout)
        except Exception:
            log.exception("closing the Emitter for %r at exit failed", self.source)
            return
        _log_failures(report, "at interpreter exit")


def _log_failures(report: DeliveryReport, when: str) -> None:
    """Failures nobody asked for (close by ``with`` or at exit) are logged, never dropped."""
    if report.failed:
        shown = "; ".join(f"{event_id} ({reason})" for event_id, reason in report.failed[:50])
        more = f"; and {len(report.failed) - 50} more" if len(report.failed) > 50 else ""
        log.error(
            "%d touchpoint events were not delivered %s: %s%s",
            len(report.failed),
            when,
            shown,
            more,
        )
