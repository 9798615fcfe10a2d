"""A table write is visible at once and kept as one changelog record per key for the outbox."""

from __future__ import annotations

import asyncio
from collections import Counter
from types import SimpleNamespace

from services.worker.outbox import Change, ChangelogTable, Outbox


def test_writes_apply_at_once_and_drain_as_the_last_value_per_key() -> None:
    table = ChangelogTable(SimpleNamespace(data={b"old": b"1"}), "table:journey")
    table[b"a"] = b"1"
    table[b"b"] = b"2"
    table[b"a"] = b"3"  # a profile written twice in one batch is one record
    del table[b"old"]
    assert dict(table) == {b"a": b"3", b"b": b"2"}
    assert b"a" in table
    assert b"old" not in table
    assert table.drain() == [
        Change("table:journey", b"a", b"3"),
        Change("table:journey", b"b", b"2"),
        Change("table:journey", b"old", None),  # a tombstone, as Faust sends for a deletion
    ]
    assert table.drain() == []
    assert table.get(b"missing") is None


class _Batch:
    def __init__(self) -> None:
        self.records: list[tuple[bytes | None, bytes | None]] = []

    def append(self, *, key: bytes | None, value: bytes | None, timestamp: None) -> object:
        self.records.append((key, value))
        return object()


class _SlowProducer:
    """Takes a moment for each batch, as aiokafka's accumulator can; records what it got."""

    def __init__(self) -> None:
        self.sent: list[tuple[int, list[tuple[bytes | None, bytes | None]]]] = []

    async def partitions_for(self, topic: str) -> set[int]:
        return {0, 1}

    def create_batch(self) -> _Batch:
        return _Batch()

    async def send_batch(self, batch: _Batch, topic: str, partition: int) -> asyncio.Future[None]:
        await asyncio.sleep(0.01)
        self.sent.append((partition, batch.records))
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        done.set_result(None)
        return done


def test_two_outboxes_send_a_key_in_the_order_it_was_written() -> None:
    """The journey agent's batch wrote customer k, then the deadline timer wrote k again
    while the agent's records were on their way: the changelog must end with the timer's."""
    producer = _SlowProducer()
    sending = asyncio.Lock()

    def partitioner(key: bytes | None, partitions: list[int], _: list[int]) -> int:
        return 0 if key == b"other" else 1

    def outbox() -> Outbox:
        return Outbox(lambda: producer, {"table:j": "j"}, partitioner, Counter(), sending)  # type: ignore[arg-type, return-value]

    async def run() -> None:
        agent, timer = outbox(), outbox()
        agent.add([Change("table:j", b"other", b"x"), Change("table:j", b"k", b"1")])
        first = asyncio.create_task(agent.flush())
        await asyncio.sleep(0)  # the agent's flush is sending its first batch
        timer.add([Change("table:j", b"k", b"2")])
        await asyncio.gather(first, timer.flush())

    asyncio.run(run())
    assert [records for partition, records in producer.sent if partition == 1] == [
        [(b"k", b"1")],
        [(b"k", b"2")],
    ]
