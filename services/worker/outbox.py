"""What an agent produces for one batch of events, sent together before the batch is acked.

Faust's ``Topic.send`` per record was the largest share of the worker's CPU (bench/README.md,
stage throughput). The outbox keeps a batch's outputs in order, sends each topic's records
as one record batch per partition (:func:`services.produce.send_batches`) and waits until
the broker has them all: an agent yields (and Faust may ack and commit the batch) only after
every output of it is stored. A failed send raises, and the agent exits uncommitted."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping, MutableMapping
from dataclasses import dataclass
from typing import Any

from aiokafka import AIOKafkaProducer

from services.produce import send_batches
from services.routing import Output

Partitioner = Callable[[bytes | None, list[int], list[int]], int]


@dataclass(frozen=True, slots=True)
class Change:
    """A table write as its changelog record; ``value`` None is a deletion (a tombstone)."""

    route: str
    key: bytes
    value: bytes | None
    partition: int | None = None  # the partitioner's, on the key


class Outbox:
    """Outputs of the current batch by route; :meth:`flush` sends and confirms them."""

    def __init__(
        self,
        producer: Callable[[], AIOKafkaProducer],
        topics: Mapping[str, str],
        partitioner: Partitioner,
        counts: Counter[str],
        sending: asyncio.Lock,
    ) -> None:
        self.producer = producer  # the app's producer, once the app has started it
        self.topics = topics
        self.partitioner = partitioner
        self.counts = counts
        # shared by every outbox of the app: see flush
        self.sending = sending
        self._pending: dict[str, list[Output | Change]] = {}
        self._partitions: dict[str, list[int]] = {}

    def add(self, outputs: Iterable[Output | Change]) -> None:
        for out in outputs:
            self._pending.setdefault(out.route, []).append(out)

    async def flush(self) -> None:
        """Send what was added and wait until the broker acknowledged every record.

        Outboxes hand their records to the producer one at a time, in the order their
        flushes began (the lock is fair, and a flush asks for it before its first await):
        an agent and a timer writing the same table key then reach the changelog in the
        order they wrote it, and its last record is the table's value."""
        if not self._pending:
            return
        pending, self._pending = self._pending, {}
        futures: list[asyncio.Future[Any]] = []
        async with self.sending:
            producer = self.producer()
            for route, outs in pending.items():
                topic = self.topics[route]
                partitions = self._partitions.get(topic)
                if partitions is None:
                    partitions = sorted(await producer.partitions_for(topic))
                    self._partitions[topic] = partitions
                chosen = [
                    out.partition
                    if out.partition is not None
                    else self.partitioner(out.key, partitions, partitions)
                    for out in outs
                ]
                records = [(out.key, out.value) for out in outs]
                futures.extend(f for f, _ in await send_batches(producer, topic, records, chosen))
        await asyncio.gather(*futures)
        for route, outs in pending.items():
            self.counts[route] += len(outs)


class ChangelogTable(MutableMapping[bytes, bytes]):
    """A Faust table (``key_type``/``value_type`` bytes, so raw on the wire) whose writes skip
    Faust's changelog send per write: the table's contents change at once, and the write is
    kept, last value per key, as a changelog record for the writer's :class:`Outbox`
    (:meth:`drain`). The record and its partition are those Faust would send (the producer's
    partitioner on the key; a deletion is a tombstone); they only reach the broker in one
    batch per partition with the batch's other outputs, before the batch is acked."""

    def __init__(self, table: Any, route: str) -> None:
        self.table = table
        self.route = route
        self._changes: dict[bytes, bytes | None] = {}

    def __getitem__(self, key: bytes) -> bytes:
        value: bytes = self.table.data[key]
        return value

    def __setitem__(self, key: bytes, value: bytes) -> None:
        self.table.data[key] = value
        self._changes[key] = value

    def __delitem__(self, key: bytes) -> None:
        del self.table.data[key]
        self._changes[key] = None

    def __contains__(self, key: object) -> bool:
        return key in self.table.data

    def __iter__(self) -> Iterator[bytes]:
        return iter(self.table.data)

    def __len__(self) -> int:
        return len(self.table.data)

    def drain(self) -> list[Change]:
        """The changelog records of the writes since the last drain."""
        changes, self._changes = self._changes, {}
        return [Change(self.route, key, value) for key, value in changes.items()]
