"""Fetches that skip offsets are read again.

The pipeline's own topics (raw, valid, resolved, transitions, flags, identity) are neither
compacted nor transactional, so the offsets a consumer reads from one partition follow one
another without gaps. A fetch whose first record lies past the next expected offset means
the broker answered before the records in between were readable: a two-worker run on the
embedded broker once lost 13 valid events that way (the batch produced by one worker
after them was returned while theirs was not yet). :class:`OffsetGuard` notices it, and
the consumer seeks back and fetches again. If the missing offsets never appear (a broker
that lost them), the guard gives up after ``give_up_after`` seconds and says so in the log
as an error with the range, rather than waiting forever.

The same premise (offsets follow one another) also governs what the worker commits on these
topics. Faust counts the offsets between two records it read as processed ("gaps", meant
for compacted and transactional topics) and drops a record whose offset is below the last
one it read. Both go wrong when a worker starts or rebalances: Faust delivers records
before it seeks its partitions back to the committed offsets, and records fetched before
the seek keep arriving after it. The offsets between the committed one and such a record
then counted as processed, some of them never were, and they were committed: a killed and
restarted worker lost events that way (and its commits crept forward one offset per
commit interval, behind duplicate entries). So on these topics the worker's consumer drops
nothing as read already (a record read twice is processed twice, which every stage
tolerates) and commits only offsets that were processed, one after another from the
committed offset (:func:`next_commit`), skipping only offsets the guard gave up on."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any, Protocol, TypeVar

from faust.transport.consumer import CONSUMER_FETCHING
from mode.utils.queues import FlowControlEvent

log = logging.getLogger("touchstream.fetch")

GIVE_UP_AFTER = 30.0  # seconds a gap is re-fetched before it is taken as lost
REREAD_AFTER = 20.0  # seconds a commit may stay behind what was fetched (StallWatch)
STALL_CHECK_INTERVAL = 5.0  # seconds between the worker's StallWatch checks

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
        self._unreadable: dict[Any, tuple[int, int]] = {}  # the last range given up on

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
        self._unreadable[tp] = (expected, first)
        return True

    def fetched(self) -> dict[Any, int]:
        """The next offset to fetch per partition, as far as handed on (a copy: the consumer
        thread updates it)."""
        return self._next.copy()

    def unreadable(self, tp: Any, offset: int) -> bool:
        """Whether ``offset`` of ``tp`` lies in the last range given up on as never readable."""
        lost = self._unreadable.get(tp)
        return lost is not None and lost[0] <= offset < lost[1]


class KeepQueuedFlowControl(FlowControlEvent):
    """Faust's flow control of stream queues, except that resuming a flow that is not
    suspended leaves the queues as they are.

    Faust clears every stream queue whenever flow is resumed. After a rebalance it resumes
    flow twice: to read changelogs, and once more after seeking the stream partitions to
    their committed offsets, while the fetcher is already running. Records delivered into a
    queue during that seek were dropped by the second resume: a restarted worker lost the
    first raw record of its first fetch that way (the rest of the fetch came after the
    clear), and its commit never got past it. Queues are still cleared on a resume after
    a suspension (a rebalance), as Faust means them to be."""

    def resume(self) -> None:
        suspended = not self.is_active()
        self._suspend.clear()
        self._resume.set()
        if suspended:
            self.clear()


class StallWatch:
    """Notices a partition whose commit stays at an offset the consumer has fetched past.

    Records of a partition are processed one after another, so the committed offset of a
    guarded topic follows what was fetched within a commit interval or two. If it stays at
    ``committed`` for ``after`` seconds while the fetches went past it, the record there was
    handed on but never processed: a restarted worker once left one raw record that way
    (the record after it was processed; :class:`KeepQueuedFlowControl` is the cause found),
    and its partition stalled for good. This is the safety net for any other such way.
    :meth:`check` answers the partitions to read again from their committed offset; a
    record read twice is processed twice, which every stage tolerates."""

    def __init__(
        self, *, after: float = REREAD_AFTER, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.after = after
        self.clock = clock
        self._since: dict[Any, tuple[int, float]] = {}  # tp -> (committed, stalled since)
        self.rereads = 0

    def check(self, positions: Mapping[TP, tuple[int | None, int | None]]) -> dict[TP, int]:
        """``positions``: per partition, its committed offset and the next offset to fetch
        (None: not known)."""
        now = self.clock()
        reread: dict[TP, int] = {}
        for tp, (committed, fetched) in positions.items():
            if committed is None or fetched is None or fetched <= committed:
                self._since.pop(tp, None)
                continue
            stalled = self._since.get(tp)
            if stalled is None or stalled[0] != committed:
                self._since[tp] = (committed, now)
            elif now - stalled[1] >= self.after:
                log.warning(
                    "%s: offsets %d..%d were fetched but the commit stayed at %d for %.0fs; "
                    "reading again from %d",
                    tp,
                    committed,
                    fetched - 1,
                    committed,
                    now - stalled[1],
                    committed,
                )
                reread[tp] = committed
                self.rereads += 1
                del self._since[tp]
        for tp in set(self._since) - set(positions):
            del self._since[tp]
        return reread


def next_commit(
    acked: Iterable[int], committed: int | None, unreadable: Callable[[int], bool]
) -> int | None:
    """The offset to commit on a partition whose offsets follow one another: past the run of
    processed (``acked``) or unreadable offsets that starts at ``committed``, the offset the
    partition was committed at. ``None``: nothing to commit, the next offset is still being
    processed. Without a committed offset (none yet, or 0), the run starts at the lowest
    processed offset, as Faust's own reckoning does."""
    done = set(acked)
    if not done:
        return None
    start = committed if committed else min(done)
    offset = start
    while offset in done or unreadable(offset):
        offset += 1
    return offset if offset > start else None


class _ReadOffsets(dict[Any, Any]):
    """Faust's last offset read per partition, which it uses to drop records it takes for
    read already and to count the offsets between two reads as processed: on ``topics`` it
    always answers None, so neither happens there (see the module's docstring)."""

    def __init__(self, topics: frozenset[str]) -> None:
        super().__init__()
        self.topics = topics

    def __getitem__(self, tp: Any) -> Any:
        if getattr(tp, "topic", None) in self.topics:
            return None
        return self.get(tp)


async def fetched_ends(
    servers: list[str], listed: Mapping[Any, int], *, within: float = 10.0
) -> dict[Any, int]:
    """The end of each partition as fetch responses give it (their high watermark), at least
    ``listed``. The embedded broker answers ListOffsets(latest) with the base offset of the
    last record batch plus one (docs/architecture.md, broker notes), and Faust recovers a
    table's changelog up to that answer: short of the end, it restored part of the last
    batch, and a worker that had written past it refused to start the partition at all
    (ConsistencyError: persisted offset higher than the highwater), which stopped a worker
    that took partitions back after a rebalance."""
    from aiokafka import AIOKafkaConsumer

    ends = dict(listed)
    todo = [tp for tp, end in ends.items() if end]
    if not todo:
        return ends
    probe = AIOKafkaConsumer(
        bootstrap_servers=servers, enable_auto_commit=False, client_id="touchstream-ends"
    )
    await probe.start()
    try:
        probe.assign(todo)
        for tp in todo:
            probe.seek(tp, ends[tp] - 1)  # inside the last batch: the fetch says where it ends
        deadline = time.monotonic() + within
        while todo and time.monotonic() < deadline:
            await probe.getmany(timeout_ms=100, max_records=1)
            for tp in list(todo):
                end = probe.highwater(tp)
                if end is not None:
                    ends[tp] = max(ends[tp], end)
                    todo.remove(tp)
    finally:
        await probe.stop()
    return ends


def deliver_now(consumer: Any) -> bool:
    """Whether the conductor can hand a record to its streams without waiting.

    Faust delivers every fetched record inside ``Service.wait_first(callback(record),
    suspend_flow.wait())``: four tasks, an ``asyncio.wait`` and three cancellations a record,
    so that a delivery blocked on a full stream queue gives way when a rebalance suspends the
    flow. That was 16 % of the worker's CPU (bench/README.md). A delivery waits only while
    flow is suspended, a stream queue is full or the producer's buffer is over its limit; with
    none of these the record is delivered by a plain ``await``, and nothing between this check
    and the delivery lets another task run."""
    app = consumer.app
    flow = app.flow_control
    if consumer.suspend_flow.is_set() or not flow.is_active():
        return False
    if any(queue.full() for queue in flow._queues):
        return False
    buffer = app.producer.buffer
    return not buffer.size > buffer.max_messages


async def drain_messages(consumer: Any, fetcher: Any) -> None:  # pragma: no cover
    """``Consumer._drain_messages`` of faust-streaming 0.15 with :func:`deliver_now`; the
    commit, gap and read-offset handling is Faust's, line for line."""
    callback = consumer.callback
    getmany = consumer.getmany
    consumer_should_stop = consumer._stopped.is_set
    fetcher_should_stop = fetcher._stopped.is_set
    get_read_offset = consumer._read_offset.__getitem__
    set_read_offset = consumer._read_offset.__setitem__
    set_flag = consumer.diag.set_flag
    unset_flag = consumer.diag.unset_flag
    commit_every = consumer._commit_every
    acks_enabled_for = consumer.app.topics.acks_enabled_for
    yield_every = 100
    num_since_yield = 0
    sleep = asyncio.sleep
    try:
        while not (consumer_should_stop() or fetcher_should_stop()):
            set_flag(CONSUMER_FETCHING)
            ait = getmany(timeout=1.0)
            await consumer.sleep(0)
            if not consumer.should_stop:
                async for tp, message in ait:
                    num_since_yield += 1
                    if num_since_yield > yield_every:
                        await sleep(0)
                        num_since_yield = 0
                    offset = message.offset
                    r_offset = get_read_offset(tp)
                    if r_offset is None or offset >= r_offset:
                        gap = offset - (r_offset or 0)
                        if gap > 1 and r_offset and acks_enabled_for(message.topic):
                            await consumer._add_gap(tp, r_offset + 1, offset)
                        if commit_every is not None and consumer._n_acked >= commit_every:
                            consumer._n_acked = 0
                            await consumer.commit()
                        if deliver_now(consumer):
                            await callback(message)
                        else:
                            await consumer.wait_first(
                                callback(message), consumer.suspend_flow.wait()
                            )
                        set_read_offset(tp, offset)
                unset_flag(CONSUMER_FETCHING)
    except consumer.consumer_stopped_errors:
        if consumer.transport.app.should_stop:
            consumer.log.info("Broker stopped consumer, shutting down...")
            return
        raise
    except asyncio.CancelledError:
        if consumer.transport.app.should_stop:
            consumer.log.info("Consumer shutting down for user cancel.")
            return
        raise
    except Exception as exc:
        consumer.log.exception("Drain messages raised: %r", exc)
        raise
    finally:
        unset_flag(CONSUMER_FETCHING)


def guarded_transport(
    app: Any, topics: Iterable[str], *, fetch_max_wait_ms: int | None = None
) -> Any:
    """A Faust aiokafka transport for ``app`` whose consumer re-reads skipped offsets of
    ``topics`` and, if given, lets the broker hold a fetch at most ``fetch_max_wait_ms``
    (Faust fixes it at 1,500). Set it as ``app.transport`` before the app starts."""
    from faust.transport.drivers import aiokafka as driver

    guard = OffsetGuard(topics)
    stalls = StallWatch()
    servers = [f"{url.host}:{url.port or 9092}" for url in app.conf.broker_consumer]

    class GuardedThread(driver.AIOKafkaConsumerThread):
        def _create_worker_consumer(self, transport: Any) -> Any:
            consumer = super()._create_worker_consumer(transport)
            if fetch_max_wait_ms is not None:  # read by the consumer's fetcher when it starts
                consumer._fetch_max_wait_ms = fetch_max_wait_ms
            return consumer

        async def _highwaters(self, partitions: Any) -> Mapping[Any, int]:
            """Where table changelogs end, for recovery: see :func:`fetched_ends`."""
            return await fetched_ends(servers, await super()._highwaters(partitions))

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
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            self._read_offset = _ReadOffsets(guard.topics)

        def _new_offset(self, tp: Any) -> int | None:
            """Commit only processed offsets of the guarded topics (see the module)."""
            if tp.topic not in guard.topics:
                return super()._new_offset(tp)
            acked = self._acked[tp]
            offset = next_commit(acked, self._committed_offset[tp], partial(guard.unreadable, tp))
            if offset is not None:
                self._acked_index[tp].difference_update(o for o in acked if o < offset)
                acked[:] = [o for o in acked if o >= offset]
            return offset

        def _new_consumer_thread(self) -> Any:
            return GuardedThread(self, loop=self.loop, beacon=self.beacon)

        async def _drain_messages(self, fetcher: Any) -> None:  # pragma: no cover
            """Faust's loop handing fetched records to the streams, with a cheaper step per
            record (see :func:`deliver_now`); otherwise as in faust-streaming 0.15."""
            await drain_messages(self, fetcher)

        async def reread_stalled(self) -> None:
            """Read again the guarded partitions :class:`StallWatch` finds stalled."""
            fetched = guard.fetched()
            positions = {
                tp: (self._committed_offset.get(tp), fetched.get(tp))
                for tp in self.assignment()
                if tp.topic in guard.topics
            }
            reread = stalls.check(positions)
            if reread:  # in the consumer's own thread, as Faust's seeks after a rebalance
                await self._thread.seek_wait(reread)

    class GuardedTransport(driver.Transport):
        Consumer = GuardedConsumer
        guard: OffsetGuard
        stalls: StallWatch

    transport = GuardedTransport(app.conf.broker_consumer, app)
    transport.guard = guard
    transport.stalls = stalls
    return transport
