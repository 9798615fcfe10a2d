"""The journey agent's parts: resolved records to touchpoints, and a Faust table as the
journey stage's byte store."""

from __future__ import annotations

from collections.abc import Iterator, MutableMapping
from datetime import UTC, datetime
from typing import Any

import orjson
from aiokafka.partitioner import DefaultPartitioner, murmur2

from services.journeys.stage import Expected, Item, Merged, Transfer, Watermark, owner_key
from services.journeys.state import Touchpoint


def _at(ms: int) -> datetime:
    return datetime.fromtimestamp(ms / 1000, UTC)


def item_of(value: bytes, partition: int) -> Item:
    """What a ``touchpoints.resolved`` record means to the journey stage: an event of a
    customer, or a control record of identity resolution (merge, expect, transfer,
    watermark)."""
    record = orjson.loads(value)
    control = record.get("control")
    if control is None:
        return touchpoint_of(record)
    if control == "watermark":
        return Watermark(partition, {c: _at(ms) for c, ms in record["channels"].items()})
    if control == "merge":
        return Merged(record["winner"], record["loser"], record["event_id"])
    if control == "expect":
        return Expected(record["winner"], record["loser"])
    if control == "transfer":
        state = orjson.dumps(record["state"])
        return Transfer(record["winner"], record["loser"], state, record.get("awaiting", {}))
    raise ValueError(f"unknown control record {control!r} on the resolved topic")


def touchpoint_of(record: dict[str, Any]) -> tuple[str, Touchpoint]:
    """``(customer, touchpoint)`` from an AcceptedEvent record. The customer is the resolved
    ``customer_id`` (the partition key for a record that bypassed identity resolution)."""
    event = record["event"]
    customer = record.get("customer_id") or record["partition_key"]
    occurred_at = datetime.fromisoformat(event["occurred_at"])
    return customer, Touchpoint(event["event_id"], event["type"], occurred_at, event["attributes"])


_KAFKA_DEFAULT = DefaultPartitioner()


def partition_of(key: bytes | None, partitions: int) -> int:
    """Kafka's default partition of ``key``'s owner (murmur2, as the Java client and aiokafka
    hash): a customer's events, state and control entries share one partition."""
    if key is None:
        raise ValueError("a journey-state record needs a key")
    if partitions == 1:  # `valid` and the identity changelog: no hash (pure Python) needed
        return 0
    return int(murmur2(owner_key(key)) & 0x7FFFFFFF) % partitions


def owner_partitioner(key: bytes | None, all_partitions: list[int], available: list[int]) -> int:
    """The worker's producer partitioner: Kafka's default for every key but the journey
    stage's control keys, which go to the partition of the customer they belong to. Without
    it, a customer's held events could sit in another partition's changelog and stay behind
    with another worker after a rebalance (lost to the customer's new owner)."""
    if key is None:
        return int(_KAFKA_DEFAULT(None, all_partitions, available))  # any available one
    return all_partitions[partition_of(key, len(all_partitions))]


class TableStore(MutableMapping[str, bytes]):
    """A Faust table keyed by the customer key's bytes, seen as ``str -> bytes``.

    The table must use ``use_partitioner=True`` and the app :func:`owner_partitioner`: a
    write then goes to the changelog partition of the customer the key belongs to, which is
    the source partition of that customer's events, whatever event of a batch is current.
    """

    def __init__(self, table: Any) -> None:
        self.table = table

    def __getitem__(self, key: str) -> bytes:
        value: bytes = self.table[key.encode()]
        return value

    def __setitem__(self, key: str, value: bytes) -> None:
        self.table[key.encode()] = value

    def __delitem__(self, key: str) -> None:
        del self.table[key.encode()]

    def __contains__(self, key: object) -> bool:
        return isinstance(key, str) and key.encode() in self.table

    def get(self, key: str, default: Any = None) -> Any:
        return self.table.get(key.encode(), default)

    def __iter__(self) -> Iterator[str]:
        return (key.decode() for key in self.table)

    def __len__(self) -> int:
        return len(self.table)
