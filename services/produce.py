"""Producing many records at once: one record batch per partition, built in this process.

aiokafka's per-record ``send`` (and Faust's ``Topic.send`` on top of it) costs tens of
microseconds a record; appending to a batch built here and handing the whole batch to the
producer costs a few. Both the ingestion API and the worker's agents produce this way."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

from aiokafka import AIOKafkaProducer

Sends = list[tuple["asyncio.Future[Any]", list[int]]]


async def send_batches(
    producer: AIOKafkaProducer,
    topic: str,
    records: Sequence[tuple[bytes | None, bytes | None]],
    partitions: Sequence[int],
) -> Sends:
    """Send ``records[i]`` to partition ``partitions[i]`` of ``topic``: one batch per
    partition (more when one fills up), records in their order. Returns each batch's
    delivery future with the indexes of its records."""
    by_partition: dict[int, list[int]] = {}
    for index, partition in enumerate(partitions):
        by_partition.setdefault(partition, []).append(index)
    sends: Sends = []
    for partition, indexes in by_partition.items():
        batch, members = producer.create_batch(), list[int]()
        for index in indexes:
            key, value = records[index]
            if batch.append(key=key, value=value, timestamp=None) is None:
                sends.append(
                    (await producer.send_batch(batch, topic, partition=partition), members)
                )
                batch, members = producer.create_batch(), list[int]()
                if batch.append(key=key, value=value, timestamp=None) is None:
                    raise ValueError(
                        f"a record of {len(value or b'')} bytes does not fit a batch for {topic}"
                    )
            members.append(index)
        sends.append((await producer.send_batch(batch, topic, partition=partition), members))
    return sends
