"""The CRM sink as a running service: reads the pipeline's output topics with its own
consumer group, writes each batch in one transaction, and commits offsets only after the
store committed (at least once; the writer makes it effectively once).

It has its own consumer group rather than being a Faust agent of the worker's app: an agent
shares the worker's consumer, so a store outage would hold back journey processing and
friction flags with it. Here, while the store is down, the sink waits and retries with
backoff, the journey stage goes on, and nothing is skipped (docs/adr/0002-crm-sink.md)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRecord, TopicPartition
from aiokafka.errors import CommitFailedError, IllegalStateError
from kafka import TopicPartition as KafkaPartition
from sqlalchemy import Engine
from sqlalchemy.exc import DataError, DBAPIError, IntegrityError, OperationalError

from schemas.records import DeadLetter, DeadLetterError, SourceRecord
from services.crm.records import Batch, Undecodable, decode
from services.crm.sink import CrmSink, Written
from services.errors import BrokerUnavailable, SinkBehind, StoreUnavailable
from services.ops.probe import BrokerProbe
from services.settings import Settings, bootstrap_servers
from services.store.db import engine_for, upgrade

log = logging.getLogger(__name__)
STOP_TIMEOUT = 5.0  # seconds each Kafka client gets to stop


def sink_group(settings: Settings) -> str:
    return f"{settings.app_id}-crm-sink"


def sink_topics(settings: Settings) -> dict[str, str]:
    """Topic name -> the kind of record on it."""
    t = settings.topics
    return {
        t.resolved: "event",
        t.identity: "identity",
        t.transitions: "transition",
        t.flags: "flag",
    }


@dataclass
class SinkStats:
    """What the sink has done since it started (for logs, /metrics and tests)."""

    batches: int = 0
    records: int = 0
    rows: int = 0
    dead_letters: int = 0
    retries: int = 0
    store_down_since: float | None = None
    last_error: str | None = None
    written: dict[str, int] = field(default_factory=dict)


class SinkService:
    """Consume, write, commit; wait out store outages. ``run`` until cancelled."""

    def __init__(
        self,
        settings: Settings,
        broker_url: str,
        engine: Engine,
        *,
        clock: Callable[[], datetime] | None = None,
    ) -> None:
        self.settings = settings
        self.broker_url = broker_url
        self.sink = CrmSink(engine, clock=clock, writers=settings.crm_sink_writers)
        self.kinds = sink_topics(settings)
        self.stats = SinkStats()

    async def run(self) -> None:
        consumer = AIOKafkaConsumer(
            *self.kinds,
            bootstrap_servers=bootstrap_servers(self.broker_url),
            group_id=sink_group(self.settings),
            client_id="touchstream-crm-sink",
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            max_poll_records=self.settings.crm_sink_batch_size,
            session_timeout_ms=int(self.settings.consumer_session_timeout * 1000),
            max_poll_interval_ms=3_600_000,  # a store outage is waited out, not a failure
        )
        producer = AIOKafkaProducer(bootstrap_servers=bootstrap_servers(self.broker_url))
        await consumer.start()
        await producer.start()
        writing: asyncio.Task[Written] | None = None
        in_flight: list[ConsumerRecord[bytes, bytes]] = []
        try:
            while True:
                # the next batch is fetched and decoded while the last one is written (the
                # writer thread waits on the store most of the time)
                records = await self._fill(consumer)
                batch = await self._decode(records, producer) if records else None
                if writing is not None:
                    written = await writing
                    writing = None
                    self._count(len(in_flight), written)
                    await _commit(consumer, in_flight)
                if batch is not None:
                    writing = asyncio.create_task(
                        self._write_or_set_aside(batch, records, producer)
                    )
                    in_flight = records
        finally:  # bounded: a worker asked to stop must stop, even if the broker is gone
            if writing is not None:  # its offsets stay uncommitted: read again, no effect
                writing.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await writing
            for client in (consumer, producer):
                try:
                    await asyncio.wait_for(client.stop(), timeout=STOP_TIMEOUT)
                except Exception as error:  # a timeout or a broker gone: shutting down anyway
                    log.warning(
                        "crm sink: %s did not stop cleanly: %r", type(client).__name__, error
                    )
            self.sink.close()

    async def _fill(self, consumer: AIOKafkaConsumer) -> list[ConsumerRecord[bytes, bytes]]:
        """Up to ``crm_sink_batch_size`` records, waiting at most ``crm_sink_max_delay``."""
        size, delay = self.settings.crm_sink_batch_size, self.settings.crm_sink_max_delay
        records: list[ConsumerRecord[bytes, bytes]] = []
        deadline = time.monotonic() + delay
        while len(records) < size:
            left = deadline - time.monotonic()
            if left <= 0:
                break
            fetched = await consumer.getmany(
                timeout_ms=int(left * 1000), max_records=size - len(records)
            )
            for part in fetched.values():
                records.extend(part)
        return records

    async def _decode(
        self, records: list[ConsumerRecord[bytes, bytes]], producer: AIOKafkaProducer
    ) -> Batch:
        batch = Batch()
        for record in records:
            try:
                decode(self.kinds[record.topic], record.value or b"", batch)
            except Undecodable as error:
                await self._dead_letter(producer, record, str(error))
        return batch

    async def _dead_letter(
        self, producer: AIOKafkaProducer, record: ConsumerRecord[bytes, bytes], reason: str
    ) -> None:
        """A record the sink cannot read goes to the dead-letter topic, with why."""
        letter = DeadLetter.create(
            reason="internal_error",
            errors=(DeadLetterError(field="record", rule="crm_sink", message=reason),),
            stage="sink",
            origin=SourceRecord(
                topic=record.topic,
                partition=record.partition,
                offset=record.offset,
                timestamp=datetime.fromtimestamp(record.timestamp / 1000, UTC),
            ),
            key=record.key,
            payload=record.value or b"",
            dead_lettered_at=datetime.now(UTC),
        )
        await producer.send_and_wait(
            self.settings.topics.dlq, letter.model_dump_json().encode(), key=record.key
        )
        self.stats.dead_letters += 1
        log.error("crm sink: %s/%s/%s dead-lettered: %s", *letter_where(record), reason)

    async def _write_or_set_aside(
        self,
        batch: Batch,
        records: list[ConsumerRecord[bytes, bytes]],
        producer: AIOKafkaProducer,
    ) -> Written:
        """Write ``batch`` (decoded from ``records``). If the store refuses its data (a value
        out of a column's range, a constraint), find the records it refuses by halving the
        batch, in order, and dead-letter them with the store's reason; the rest is written.
        Halves already written are written again without effect (the writes are
        idempotent), so nothing is lost and nothing counts twice."""
        try:
            return await self._write(batch)
        except (DataError, IntegrityError) as error:
            if len(records) == 1:
                reason = str(error.orig or error).strip().splitlines()[0]
                await self._dead_letter(producer, records[0], f"the store refused it: {reason}")
                return Written()
            log.warning(
                "crm sink: the store refused a batch of %d records; finding which: %s",
                len(records),
                str(error.orig or error).strip().splitlines()[0],
            )
        middle = len(records) // 2
        written = Written()
        for half in (records[:middle], records[middle:]):
            part = Batch()
            for record in half:
                with contextlib.suppress(Undecodable):  # dead-lettered when first decoded
                    decode(self.kinds[record.topic], record.value or b"", part)
            written += await self._write_or_set_aside(part, half, producer)
        return written

    async def _write(self, batch: Batch) -> Written:
        """Write ``batch``; while the store is unreachable, wait and try again (doubling the
        pause up to ``crm_sink_max_backoff``). The batch is one transaction, so a retry
        after a failure in the middle starts clean."""
        pause = 0.2
        while True:
            try:
                written = await asyncio.to_thread(self.sink.write, batch)
            except (OperationalError, DBAPIError) as error:
                if not _transient(error):
                    raise
                self.stats.retries += 1
                self.stats.last_error = str(error.orig or error).strip().splitlines()[0]
                if self.stats.store_down_since is None:
                    self.stats.store_down_since = time.monotonic()
                    log.warning("crm sink: store unavailable, retrying: %s", self.stats.last_error)
                await asyncio.sleep(pause)
                pause = min(pause * 2, self.settings.crm_sink_max_backoff)
                continue
            if self.stats.store_down_since is not None:
                down = time.monotonic() - self.stats.store_down_since
                log.warning("crm sink: store back after %.1fs; resuming", down)
                self.stats.store_down_since = None
            return written

    def _count(self, records: int, written: Written) -> None:
        s = self.stats
        s.batches += 1
        s.records += records
        s.rows += written.rows
        for name in ("interactions", "transitions", "flags", "merges"):
            s.written[name] = s.written.get(name, 0) + getattr(written, name)


async def _commit(consumer: AIOKafkaConsumer, records: list[ConsumerRecord[bytes, bytes]]) -> None:
    """Commit past ``records`` (a batch the store has committed), and no further: the next
    batch is already fetched but not written."""
    offsets: dict[TopicPartition, int] = {}
    for record in records:
        tp = TopicPartition(record.topic, record.partition)
        offsets[tp] = max(offsets.get(tp, 0), record.offset + 1)
    owned = consumer.assignment()
    offsets = {tp: offset for tp, offset in offsets.items() if tp in owned}
    if not offsets:
        return
    try:
        await consumer.commit(offsets)
    except (CommitFailedError, IllegalStateError) as error:  # rebalanced: read again, no effect
        log.warning("crm sink: commit after a rebalance failed (%s)", error)


def letter_where(record: ConsumerRecord[bytes, bytes]) -> tuple[str, int, int]:
    return record.topic, record.partition, record.offset


def _transient(error: DBAPIError) -> bool:
    """A lost or refused connection, a deadlock, a serialization failure: worth a retry.
    Anything else (a bug, a constraint the writer should have handled) is raised."""
    if error.connection_invalidated or isinstance(error, OperationalError):
        return True
    code = getattr(error.orig, "pgcode", None)
    return code in {"40001", "40P01", "57P01", "57P02", "57P03"}


async def run_sink(settings: Settings, broker_url: str, service: list[SinkService]) -> None:
    """Migrate the store (waiting for it if it is down), then run the sink until cancelled.
    ``service`` receives the running :class:`SinkService` (for progress reports)."""
    url = settings.store_url()
    pause = 0.5
    while True:
        try:
            await asyncio.to_thread(upgrade, url)
            break
        except StoreUnavailable as error:
            log.warning("crm sink: waiting for the store: %s", error)
            await asyncio.sleep(pause)
            pause = min(pause * 2, settings.crm_sink_max_backoff)
    # no pre-ping (a round trip a transaction): a lost connection fails the write, which
    # is retried on a new one
    sink = SinkService(settings, broker_url, engine_for(url, pre_ping=False))
    service.append(sink)
    await sink.run()


@dataclass(frozen=True)
class SinkOffsets:
    """Where the sink's group has committed on each partition of its topics, and where each
    partition ends."""

    committed: dict[KafkaPartition, int]
    ends: dict[KafkaPartition, int]

    @property
    def backlog(self) -> int:
        """Records on the sink's topics it has not committed yet."""
        return self.short_of(self.ends)

    def short_of(self, target: dict[KafkaPartition, int]) -> int:
        """Records before ``target`` (offsets per partition) not committed yet."""
        return sum(max(0, end - self.committed.get(tp, 0)) for tp, end in target.items())


def sink_probe(settings: Settings, broker_url: str, *, timeout: float = 10.0) -> BrokerProbe:
    """A broker probe of the sink's group on its topics (no members, no tails)."""
    topics = list(sink_topics(settings))
    group = sink_group(settings)
    return BrokerProbe(broker_url, topics, {group: topics}, timeout=timeout, members=False)


def sink_offsets(
    settings: Settings,
    broker_url: str,
    *,
    timeout: float = 10.0,
    probe: BrokerProbe | None = None,
) -> SinkOffsets | None:
    """The sink group's committed offsets and the ends of its partitions (None: the broker
    did not answer in time), sampled by ``probe`` (kept by the caller between samples; the
    timeout it was made with applies) or a probe made for this one with ``timeout``. A
    partition the group never committed on counts from its log start; the end is a fetch's
    high watermark (see :mod:`services.ops.probe`)."""
    own = probe is None
    sampler = sink_probe(settings, broker_url, timeout=timeout) if probe is None else probe
    try:
        snapshot = sampler.snapshot()
    except BrokerUnavailable:
        return None
    finally:
        if own:
            sampler.close()
    return SinkOffsets(snapshot.committed[sink_group(settings)], snapshot.ends)


def sink_backlog(settings: Settings, broker_url: str, *, timeout: float = 10.0) -> int | None:
    """Records on the sink's topics it has not committed yet (None: the broker did not say
    within ``timeout``). Rarely 0 for long while a worker runs: the identity stage sends a
    watermark record to every ``resolved`` partition every few seconds, idle or not; to wait
    for the sink, use :func:`wait_sink`."""
    offsets = sink_offsets(settings, broker_url, timeout=timeout)
    return None if offsets is None else offsets.backlog


def wait_sink(
    settings: Settings, broker_url: str, timeout: float, *, rounds: int = 1, pause: float = 2.0
) -> None:
    """Until the sink has committed every record that was on its topics when the wait began;
    with ``rounds`` > 1, ``pause`` seconds later the same again for what came meanwhile (a
    journey stage still sending its last flags), and so on. The target is fixed when a round
    begins, not "a backlog of 0": records that keep coming (the identity stage's periodic
    watermarks) would put that off for as long as they come. :class:`SinkBehind` after
    ``timeout`` seconds, with how many records are left."""
    deadline = time.monotonic() + timeout
    left: int | None = None
    probe = sink_probe(settings, broker_url, timeout=min(10.0, timeout))
    try:
        for round_ in range(rounds):
            if round_:
                time.sleep(pause)
            target: dict[KafkaPartition, int] | None = None
            while True:
                offsets = sink_offsets(settings, broker_url, probe=probe)
                if offsets is not None:
                    target = offsets.ends if target is None else target
                    left = offsets.short_of(target)
                    if left == 0:
                        break
                if time.monotonic() > deadline:
                    said = (
                        "the broker did not say how far"
                        if left is None
                        else f"{left:,} record{'' if left == 1 else 's'} left"
                    )
                    raise SinkBehind(f"the CRM sink is still behind after {timeout:.0f}s: {said}")
                time.sleep(0.5)
    finally:
        probe.close()
