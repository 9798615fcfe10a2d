"""Fetches that skip offsets are read again.

The pipeline's own topics (raw, valid, resolved, transitions, flags, identity) are neither
compacted nor transactional, so the offsets a consumer reads from one partition follow one
another without gaps. A fetch whose first record lies past the next expected offset means
the broker answered before the records in between were readable: a two-worker run on the
embedded broker once lost 13 valid events that way (the batch produced by one worker
after them was returned while theirs was not yet). :class:`OffsetGuard` notices it, and
the consumer seeks back and fetches again. If the missing offsets never appear (a broker
that lost them), the guard gives up after ``give_up_after`` seconds and says so in the log
as an error with the range, rather than waiting forever."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

log = logging.getLogger("touchstream.fetch")

GIVE_UP_AFTER = 30.0  # seconds a gap is re-fetched before it is taken as lost

TP = TypeVar("TP")


class HasOffset(Protocol):
    @property
    def offset(self) -> int: ...


@dataclass
class _Gap:
    expected: int
    since: float
    retries: int = 0


class OffsetGuard:
    """Tracks the next offset of each partition of ``topics``; see :meth:`check`."""

    def __init__(
        self,
        topics: Iterable[str],
        *,
        give_up_after: float = GIVE_UP_AFTER,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.topics = frozenset(topics)
        self.give_up_after = give_up_after
        self.clock = clock
        self._next: dict[Any, int] = {}
        self._gaps: dict[Any, _Gap] = {}
        self.refetches = 0  # fetches dropped and read again
        self.lost = 0  # offsets given up on

    def forget(self, partitions: Iterable[Any] | None = None) -> None:
        """The consumer was moved (seek, rebalance): the next fetch sets the baseline."""
        if partitions is None:
            self._next.clear()
            self._gaps.clear()
            return
        for tp in partitions:
            self._next.pop(tp, None)
            self._gaps.pop(tp, None)

    def check(
        self, fetched: Mapping[TP, Sequence[HasOffset]]
    ) -> tuple[dict[TP, Any], dict[TP, int]]:
        """Split a fetch into the records to hand on and the partitions to read again from
        an offset (their records in this fetch are dropped)."""
        kept: dict[TP, Any] = {}
        rewind: dict[TP, int] = {}
        for tp, records in fetched.items():
            if not records or getattr(tp, "topic", None) not in self.topics:
                kept[tp] = records
                continue
            expected, first = self._next.get(tp), records[0].offset
            if expected is not None and first > expected and not self._give_up(tp, expected, first):
                rewind[tp] = expected
                self.refetches += 1
                continue
            self._gaps.pop(tp, None)
            self._next[tp] = records[-1].offset + 1
            kept[tp] = records
        return kept, rewind

    def _give_up(self, tp: Any, expected: int, first: int) -> bool:
        gap = self._gaps.get(tp)
        now = self.clock()
        if gap is None or gap.expected != expected:
            gap = self._gaps[tp] = _Gap(expected, now)
            log.warning(
                "%s: fetch began at offset %d, expected %d; reading again from %d",
                tp,
                first,
                expected,
                expected,
            )
        gap.retries += 1
        if now - gap.since < self.give_up_after:
            return False
        self.lost += first - expected
        log.error(
            "%s: offsets %d..%d never became readable in %.0fs (%d fetches); continuing at %d",
            tp,
            expected,
            first - 1,
            now - gap.since,
            gap.retries,
            first,
        )
        del self._gaps[tp]
        return True


def guarded_transport(app: Any, topics: Iterable[str]) -> Any:
    """A Faust aiokafka transport for ``app`` whose consumer re-reads skipped offsets of
    ``topics``. Set it as ``app.transport`` before the app starts."""
    from faust.transport.drivers import aiokafka as driver

    guard = OffsetGuard(topics)

    class GuardedThread(driver.AIOKafkaConsumerThread):
        async def _fetch_records(
            self,
            consumer: Any,
            active_partitions: Any,
            timeout: float | None = None,  # noqa: ASYNC109 (overrides Faust)
            max_records: int | None = None,
        ) -> Any:
            fetched = await super()._fetch_records(
                consumer, active_partitions, timeout=timeout, max_records=max_records
            )
            if not fetched:
                return fetched
            kept, rewind = guard.check(fetched)
            for tp, offset in rewind.items():
                consumer.seek(tp, offset)
            return kept

        def seek(self, partition: Any, offset: int) -> None:
            guard.forget([partition])
            super().seek(partition, offset)

        async def _seek_wait(self, consumer: Any, partitions: Mapping[Any, int]) -> None:
            guard.forget(partitions)
            await super()._seek_wait(consumer, partitions)

        async def seek_to_committed(self) -> Mapping[Any, int]:
            guard.forget()
            return await super().seek_to_committed()

        async def seek_to_beginning(self, *partitions: Any) -> None:
            guard.forget(partitions)
            await super().seek_to_beginning(*partitions)

        async def on_partitions_revoked(self, revoked: Any) -> None:
            guard.forget()
            await super().on_partitions_revoked(revoked)

        async def on_partitions_assigned(self, assigned: Any, generation_id: int = 0) -> None:
            guard.forget()
            await super().on_partitions_assigned(assigned, generation_id)

    class GuardedConsumer(driver.Consumer):
        def _new_consumer_thread(self) -> Any:
            return GuardedThread(self, loop=self.loop, beacon=self.beacon)

    class GuardedTransport(driver.Transport):
        Consumer = GuardedConsumer
        guard: OffsetGuard

    transport = GuardedTransport(app.conf.broker_consumer, app)
    transport.guard = guard
    return transport
