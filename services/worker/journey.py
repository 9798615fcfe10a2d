"""The journey agent's parts: resolved records to touchpoints, and a Faust table as the
journey stage's byte store."""

from __future__ import annotations

from collections.abc import Iterator, MutableMapping
from datetime import datetime
from typing import Any

import orjson

from services.journeys.state import Touchpoint


def touchpoint_of(value: bytes) -> tuple[str, Touchpoint]:
    """``(customer, touchpoint)`` from an AcceptedEvent record. The customer is the resolved
    ``customer_id`` once identity resolution sets it, else the partition key."""
    record = orjson.loads(value)
    event = record["event"]
    customer = record.get("customer_id") or record["partition_key"]
    occurred_at = datetime.fromisoformat(event["occurred_at"].replace("Z", "+00:00"))
    return customer, Touchpoint(event["event_id"], event["type"], occurred_at, event["attributes"])


class TableStore(MutableMapping[str, bytes]):
    """A Faust table keyed by the customer key's bytes, seen as ``str -> bytes``.

    The table must use ``use_partitioner=True``: a write then goes to the changelog
    partition of its key, which is the source partition of that customer's events, whatever
    event of a batch is current."""

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
