"""The ingestion gateway: validate events from HTTP, produce the accepted ones to
``touchpoints.raw`` and answer only after the broker acknowledged them (acks=all)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

import orjson
from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError
from aiokafka.partitioner import DefaultPartitioner

from schemas.errors import ContractViolation, FieldError
from schemas.events import decode_event
from schemas.records import DeadLetter, DeadLetterError
from services.errors import BrokerUnavailable
from services.produce import Sends, send_batches
from services.settings import Settings, bootstrap_servers
from services.worker.triage import partition_key


@dataclass(frozen=True, slots=True)
class Prepared:
    """A valid event ready to produce: its id, partition key and JSON bytes."""

    event_id: str
    key: bytes
    value: bytes


@dataclass(frozen=True, slots=True)
class Rejected:
    event_id: str | None
    reason: str
    errors: tuple[FieldError, ...]


def prepare(item: object, source: str) -> Prepared | Rejected:
    """Stamp the authenticated ``source`` on ``item`` and validate it against contract v1.

    A client may omit ``source`` or repeat its own; claiming another source is refused.
    """
    if not isinstance(item, dict):
        error = FieldError("(event)", "model_type", "an event must be a JSON object")
        return Rejected(None, "contract_violation", (error,))
    event_id = item.get("event_id") if isinstance(item.get("event_id"), str) else None
    claimed = item.get("source", source)
    if claimed != source:
        error = FieldError(
            "source",
            "source_mismatch",
            f"{claimed!r} is not the source of this key ({source!r}); omit source or send "
            "the key of that system",
        )
        return Rejected(event_id, "contract_violation", (error,))
    try:
        value = orjson.dumps({**item, "source": source})
    except orjson.JSONEncodeError as error:  # nested past the encoder's 254 levels
        message = f"Invalid JSON: nested too deeply ({error}); events nest at most about 200 levels"
        return Rejected(
            event_id, "invalid_json", (FieldError("(payload)", "json_invalid", message),)
        )
    try:
        event = decode_event(value)
    except ContractViolation as violation:
        return Rejected(event_id, violation.reason, violation.errors)
    return Prepared(event.event_id, partition_key(*event.identity.strongest()).encode(), value)


def ingest_dead_letter(
    payload: bytes, *, reason: str, errors: Sequence[FieldError], ingress: str, source: str
) -> DeadLetter:
    """A dead letter for input the gateway took but could not turn into a valid event."""
    event_id = None
    with contextlib.suppress(orjson.JSONDecodeError, AttributeError):
        message = orjson.loads(payload)
        candidate = message.get("messageId") or message.get("event_id")
        event_id = str(candidate)[:128] if candidate else None
    return DeadLetter.create(
        reason=reason,
        errors=tuple(DeadLetterError.of(e) for e in errors),
        stage="ingest",
        event_id=event_id,
        ingress=ingress,
        source=source,
        payload=payload,
        dead_lettered_at=datetime.now(UTC),
    )


class Gateway:
    """Produces to the raw and dead-letter topics; started lazily so the API can come up
    (and answer 503) while the broker is away."""

    def __init__(self, settings: Settings, broker_url: str) -> None:
        self.settings = settings
        self.broker_url = broker_url
        self._producer: AIOKafkaProducer | None = None
        self._lock = asyncio.Lock()
        self._partitioner = DefaultPartitioner()

    async def _started(self) -> AIOKafkaProducer:
        if self._producer is not None:
            return self._producer
        async with self._lock:
            if self._producer is None:
                timeout_ms = int(self.settings.ingest_ack_timeout * 1000)
                producer = AIOKafkaProducer(
                    bootstrap_servers=bootstrap_servers(self.broker_url),
                    client_id="touchstream-api",
                    acks="all",
                    linger_ms=5,
                    max_batch_size=512 * 1024,
                    request_timeout_ms=timeout_ms,
                    metadata_max_age_ms=60_000,
                )
                try:
                    await asyncio.wait_for(producer.start(), self.settings.ingest_ack_timeout)
                except (KafkaError, OSError, TimeoutError) as error:
                    with contextlib.suppress(Exception):
                        await producer.stop()
                    raise BrokerUnavailable(
                        f"broker {self.broker_url} unavailable: {error}"
                    ) from error
                self._producer = producer
            return self._producer

    async def produce(
        self, topic: str, records: Sequence[tuple[bytes | None, bytes]]
    ) -> list[bool]:
        """Send ``(key, value)`` records; return per record whether the broker acknowledged it
        within the ack timeout. Raises BrokerUnavailable if the broker cannot be reached.

        Records are grouped into one batch per partition (murmur2 of the key, the partitioner
        kafka-python and Faust use too), which costs far less than a send per record."""
        if not records:
            return []
        producer = await self._started()
        timeout = self.settings.ingest_ack_timeout
        try:
            sends = await asyncio.wait_for(self._send(producer, topic, records), timeout)
            results = await asyncio.wait_for(
                asyncio.gather(*(future for future, _ in sends), return_exceptions=True), timeout
            )
        except (KafkaError, TimeoutError) as error:
            raise BrokerUnavailable(
                f"broker {self.broker_url} did not acknowledge: {error}"
            ) from error
        acked = [False] * len(records)
        for (_, members), result in zip(sends, results, strict=True):
            if not isinstance(result, BaseException):
                for index in members:
                    acked[index] = True
        return acked

    async def _send(
        self, producer: AIOKafkaProducer, topic: str, records: Sequence[tuple[bytes | None, bytes]]
    ) -> Sends:
        partitions = sorted(await producer.partitions_for(topic))
        chosen = [self._partitioner(key, partitions, partitions) for key, _ in records]
        return await send_batches(producer, topic, records, chosen)

    async def dead_letter(self, letters: Sequence[DeadLetter]) -> list[bool]:
        records = [(None, letter.model_dump_json().encode()) for letter in letters]
        return await self.produce(self.settings.topics.dlq, records)

    async def close(self) -> None:
        if self._producer is not None:
            await self._producer.stop()
            self._producer = None
