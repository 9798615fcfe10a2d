"""What an agent produces for one batch of events, sent together before the batch is acked.

Faust's ``Topic.send`` per record was the largest share of the worker's CPU (bench/README.md,
stage throughput). The outbox keeps a batch's outputs in order, sends each topic's records
as one record batch per partition (:func:`services.produce.send_batches`) and waits until
the broker has them all: an agent yields (and Faust may ack and commit the batch) only after
every output of it is stored. A failed send raises, and the agent exits uncommitted."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from aiokafka import AIOKafkaProducer

from services.produce import send_batches
from services.routing import Output

Partitioner = Callable[[bytes | None, list[int], list[int]], int]


class Outbox:
    """Outputs of the current batch by route; :meth:`flush` sends and confirms them."""

    def __init__(
        self,
        producer: Callable[[], AIOKafkaProducer],
        topics: Mapping[str, str],
        partitioner: Partitioner,
        counts: Counter[str],
    ) -> None:
        self.producer = producer  # the app's producer, once the app has started it
        self.topics = topics
        self.partitioner = partitioner
        self.counts = counts
        self._pending: dict[str, list[Output]] = {}
        self._partitions: dict[str, list[int]] = {}

    def add(self, outputs: Iterable[Output]) -> None:
        for out in outputs:
            self._pending.setdefault(out.route, []).append(out)

    async def flush(self) -> None:
        """Send what was added and wait until the broker acknowledged every record."""
        if not self._pending:
            return
        pending, self._pending = self._pending, {}
        producer = self.producer()
        futures: list[asyncio.Future[Any]] = []
        for route, outs in pending.items():
            topic = self.topics[route]
            partitions = self._partitions.get(topic)
            if partitions is None:
                partitions = self._partitions[topic] = sorted(await producer.partitions_for(topic))
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
