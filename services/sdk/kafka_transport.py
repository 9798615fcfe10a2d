"""The Kafka transport: kafka-python's batching producer with acks=all, keyed records."""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

from kafka import KafkaProducer
from kafka.errors import KafkaError, KafkaTimeoutError

from services.errors import BrokerUnavailable
from services.kafka import producer
from services.sdk.transport import DeliveryReport, DeliveryTimeout, Record, Tally, describe

log = logging.getLogger(__name__)

CLIENT_ID = "touchstream-sdk"
BATCH_SIZE = 256 * 1024
SETTLE_EVERY = 10_000


class KafkaTransport:
    """Sends records to one topic without blocking per record.

    kafka-python batches records per partition (``linger_ms``, ``batch_size``) and retries
    transient errors itself (idempotent producer, acks=all). Each send's future is kept until
    it settles; done futures are swept into a :class:`Tally` every ``settle_every`` sends, so
    memory stays bounded by what is still in flight, however long the stream.
    """

    def __init__(
        self, client: KafkaProducer, topic: str, *, settle_every: int = SETTLE_EVERY
    ) -> None:
        if settle_every < 1:
            raise ValueError("settle_every must be at least 1")
        self.topic = topic
        self._client = client
        self._settle_every = settle_every
        self._sweep_at = settle_every
        self._pending: list[tuple[str, Any]] = []
        self._lock = threading.Lock()
        self._tally = Tally()
        self._closed = False

    @classmethod
    def connect(
        cls,
        broker_url: str,
        topic: str,
        *,
        connect_timeout: float = 10.0,
        settle_every: int = SETTLE_EVERY,
        **producer_config: Any,
    ) -> KafkaTransport:
        """A producer for ``topic`` at ``broker_url``, with the topic's metadata loaded.

        Raises :class:`~services.errors.BrokerUnavailable` when no broker answers within
        ``connect_timeout`` seconds, or the topic's partitions cannot be learned.
        """
        config: dict[str, Any] = {"client_id": CLIENT_ID, "batch_size": BATCH_SIZE}
        config.update(producer_config)
        client = producer(broker_url, timeout=connect_timeout, **config)
        try:
            client.partitions_for(topic)
        except KafkaError as error:
            client.close(timeout=0)
            raise BrokerUnavailable(
                f"the broker at {broker_url} answered, but topic {topic!r} is not available "
                f"({describe(error)}). Does it exist? `touchstream up` creates the pipeline "
                "topics; a cluster without automatic topic creation needs them created first."
            ) from error
        if not client.config.get("enable_idempotence") and (
            client.config.get("max_in_flight_requests_per_connection", 1) > 1
        ):
            log.warning(
                "idempotence is off and max_in_flight_requests_per_connection > 1: a retried "
                "batch may overtake a later one, so one customer's events can be reordered"
            )
        return cls(client, topic, settle_every=settle_every)

    def send(self, record: Record, /) -> None:
        """Queue one record; a send the producer refuses at once is counted as failed."""
        try:
            future = self._client.send(self.topic, key=record.key, value=record.value)
        except KafkaError as error:
            self._tally.failed(record.event_id, describe(error))
            return
        with self._lock:
            self._pending.append((record.event_id, future))
            if len(self._pending) >= self._sweep_at:
                self._sweep()

    def flush(self, timeout: float | None = None) -> DeliveryReport:
        """Wait until every record sent so far is acknowledged or failed; report them.

        Raises :class:`DeliveryTimeout` if ``timeout`` seconds pass first; the records not
        acknowledged yet stay queued and are reported by a later ``flush`` or ``close``.
        """
        try:
            self._client.flush(timeout)
        except KafkaTimeoutError as error:
            with self._lock:
                self._sweep()
                waiting = len(self._pending)
            raise DeliveryTimeout(
                f"{waiting} events were not acknowledged by the broker within {timeout}s; "
                "they stay queued: flush() again to keep waiting, or close() to give up"
            ) from error
        with self._lock:
            self._sweep()
        return self._tally.report()

    def close(self, timeout: float | None = None) -> DeliveryReport:
        """Flush (up to ``timeout`` seconds), close the producer and report the rest.

        Records still unacknowledged when ``timeout`` runs out count as failed: whether the
        broker got them is unknown, so sending them again may duplicate them.
        """
        if self._closed:
            return self._tally.report()
        self._closed = True
        started = time.monotonic()
        try:
            self._client.flush(timeout)
            flushed = True
        except KafkaTimeoutError:
            flushed = False
        with self._lock:
            self._sweep()
            for event_id, _ in self._pending:
                self._tally.failed(
                    event_id,
                    f"not acknowledged within the close timeout ({timeout}s); delivery unknown",
                )
            self._pending = []
        if flushed:
            left = None if timeout is None else max(0.0, timeout - (time.monotonic() - started))
            try:
                self._client.close(timeout=left)
            except KafkaTimeoutError:  # something was sent while closing
                self._force_close()
        else:
            self._force_close()
        return self._tally.report()

    def _force_close(self) -> None:
        """Close a producer whose broker stopped answering.

        kafka-python's ``close()`` flushes first and so times out again; stopping its sender
        thread with ``force_close()`` fails the queued batches and lets ``close()`` finish.
        """
        sender = getattr(self._client, "_sender", None)
        if sender is None or not hasattr(sender, "force_close"):
            log.warning("Kafka producer not closed: the broker did not acknowledge in time")
            return
        sender.force_close()
        sender.join(5.0)
        try:
            self._client.close(timeout=0)
        except KafkaError as error:
            log.warning("Kafka producer not closed cleanly: %s", describe(error))

    def _sweep(self) -> None:
        """Move settled futures into the tally (caller holds the lock)."""
        waiting: list[tuple[str, Any]] = []
        delivered = 0
        for event_id, future in self._pending:
            if not future.is_done:
                waiting.append((event_id, future))
            elif future.exception is None:
                delivered += 1
            else:
                self._tally.failed(event_id, describe(future.exception))
        self._tally.delivered(delivered)
        self._pending = waiting
        self._sweep_at = max(self._settle_every, 2 * len(waiting))
