"""A fetch that skips offsets of a pipeline topic is read again, not passed on."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace
from typing import NamedTuple

import faust
from intervaltree import IntervalTree

from services.worker.fetch_guard import (
    KeepQueuedFlowControl,
    OffsetGuard,
    StallWatch,
    _ReadOffsets,
    deliver_now,
    guarded_transport,
)


class TP(NamedTuple):
    topic: str
    partition: int


class Rec(NamedTuple):
    offset: int


VALID = TP("valid", 0)


def recs(*offsets: int) -> list[Rec]:
    return [Rec(o) for o in offsets]


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_contiguous_fetches_pass_through() -> None:
    guard = OffsetGuard(["valid"])
    assert guard.check({VALID: recs(0, 1, 2)}) == ({VALID: recs(0, 1, 2)}, {})
    assert guard.check({VALID: recs(3, 4)}) == ({VALID: recs(3, 4)}, {})
    assert guard.refetches == 0


def test_a_fetch_past_the_next_offset_is_dropped_and_read_again() -> None:
    """The embedded broker once answered a fetch at 2600 with the batch at 2613."""
    guard = OffsetGuard(["valid"])
    guard.check({VALID: recs(2598, 2599)})
    kept, rewind = guard.check({VALID: recs(2613, 2614)})
    assert (kept, rewind) == ({}, {VALID: 2600})
    assert guard.check({VALID: recs(2600, 2601)}) == ({VALID: recs(2600, 2601)}, {})
    assert (guard.refetches, guard.lost) == (1, 0)


def test_other_topics_and_partitions_are_not_held_back() -> None:
    guard = OffsetGuard(["valid"])
    changelog, other = TP("state-changelog", 0), TP("valid", 1)
    guard.check({VALID: recs(0), changelog: recs(0), other: recs(0)})
    kept, rewind = guard.check({VALID: recs(5), changelog: recs(7), other: recs(1)})
    assert rewind == {VALID: 1}
    assert kept == {changelog: recs(7), other: recs(1)}  # compacted topics may have gaps


def test_after_a_seek_the_next_fetch_sets_the_baseline() -> None:
    guard = OffsetGuard(["valid"])
    guard.check({VALID: recs(0, 1)})
    guard.forget([VALID])  # e.g. seek to the committed offset of another worker
    assert guard.check({VALID: recs(40)}) == ({VALID: recs(40)}, {})
    guard.forget()
    assert guard.check({VALID: recs(10)}) == ({VALID: recs(10)}, {})  # re-read: fine


def test_offsets_that_never_appear_are_given_up_on_and_counted() -> None:
    clock = Clock()
    guard = OffsetGuard(["valid"], give_up_after=30, clock=clock)
    guard.check({VALID: recs(0)})
    for at in (0.0, 10.0, 29.0):
        clock.now = at
        assert guard.check({VALID: recs(5, 6)}) == ({}, {VALID: 1})
    clock.now = 31.0
    assert guard.check({VALID: recs(5, 6)}) == ({VALID: recs(5, 6)}, {})
    assert (guard.lost, guard.refetches) == (4, 3)
    assert guard.check({VALID: recs(7)}) == ({VALID: recs(7)}, {})


def _offsets_state(committed: int, acked: list[int]) -> SimpleNamespace:
    """What Faust's Consumer keeps per partition to decide the offset it commits."""
    return SimpleNamespace(
        _acked={VALID: list(acked)},
        _acked_index={VALID: set(acked)},
        _committed_offset={VALID: committed},
        _gap={VALID: IntervalTree()},
    )


def test_faust_alone_commits_past_an_offset_that_was_not_processed() -> None:
    """Why the worker's consumer decides commits itself on the pipeline topics: committed at
    10 (the next offset to read), 11 and 12 processed, 10 still in flight. Faust commits 13,
    and a worker killed now never reads 10 again; the guarded consumer waits for 10."""
    from faust.transport.consumer import Consumer

    assert Consumer._new_offset(_offsets_state(10, [11, 12]), VALID) == 13  # type: ignore[arg-type]
    app = faust.App("fetch-guard-test", broker="kafka://localhost:1")
    guarded = guarded_transport(app, ["valid"]).Consumer
    state = _offsets_state(10, [11, 12])
    assert guarded._new_offset(state, VALID) is None
    state._acked[VALID].append(10)
    state._acked_index[VALID].add(10)
    assert guarded._new_offset(state, VALID) == 13
    assert state._acked[VALID] == []
    assert state._acked_index[VALID] == set()


def test_faust_takes_no_offsets_as_read_on_the_pipeline_topics() -> None:
    """Faust drops a record below the last offset it read and counts the offsets between two
    reads as processed; on the guarded topics it is never told a last offset."""
    read = _ReadOffsets(frozenset({"valid"}))
    read[VALID] = 40
    read[TP("state-changelog", 0)] = 40
    assert read[VALID] is None
    assert read[TP("state-changelog", 0)] == 40


def test_a_partition_whose_commit_stays_behind_what_was_fetched_is_read_again() -> None:
    """A restarted worker once processed raw offset 2 but never offset 1 (committed 1): the
    partition stayed behind for good. After ``after`` seconds it is read again from 1."""
    clock = Clock()
    watch = StallWatch(after=20, clock=clock)
    assert watch.check({VALID: (1, 3)}) == {}
    clock.now += 19
    assert watch.check({VALID: (1, 3)}) == {}
    clock.now += 1
    assert watch.check({VALID: (1, 3)}) == {VALID: 1}
    assert watch.rereads == 1
    assert watch.check({VALID: (1, None)}) == {}  # the seek made the guard forget: no baseline
    clock.now += 60
    assert watch.check({VALID: (1, 3)}) == {}  # stalled again: the time starts over
    clock.now += 20
    assert watch.check({VALID: (1, 3)}) == {VALID: 1}


def test_a_commit_that_moves_or_has_nothing_fetched_past_it_is_no_stall() -> None:
    clock = Clock()
    watch = StallWatch(after=20, clock=clock)
    other = TP("valid", 1)
    for committed in range(1, 10):  # busy: the commit moves every 15 s
        assert watch.check({VALID: (committed, committed + 100), other: (5, 5)}) == {}
        clock.now += 15
    assert watch.check({VALID: (9, 109), other: (5, 5)}) == {}
    clock.now += 60  # other is idle, caught up; never committed is not known
    assert watch.check({other: (5, 5), TP("valid", 2): (None, 4)}) == {}
    assert watch.rereads == 0


def test_the_guarded_consumer_seeks_a_stalled_partition_back_in_the_consumer_thread() -> None:
    app = faust.App("fetch-guard-stall-test", broker="kafka://localhost:1")
    transport = guarded_transport(app, ["valid"])
    clock = Clock()
    transport.stalls.clock = clock
    transport.guard.check({VALID: recs(1, 2)})
    seeks: list[dict[TP, int]] = []

    async def seek_wait(partitions: dict[TP, int]) -> None:
        seeks.append(dict(partitions))

    state = SimpleNamespace(
        _committed_offset={VALID: 1, TP("other", 0): 0},
        _thread=SimpleNamespace(seek_wait=seek_wait),
        assignment=lambda: {VALID, TP("other", 0)},
    )
    reread = transport.Consumer.reread_stalled
    asyncio.run(reread(state))
    clock.now += transport.stalls.after
    asyncio.run(reread(state))
    assert seeks == [{VALID: 1}]


def test_resuming_flow_that_was_not_suspended_keeps_what_was_queued() -> None:
    """Faust resumes flow again after seeking a rebalanced worker's stream partitions, with
    the fetcher running: its own flow control then dropped the records queued meanwhile."""
    from mode.utils.queues import FlowControlEvent, FlowControlQueue

    async def queued_after_a_second_resume(control: FlowControlEvent) -> int:
        queue: FlowControlQueue[int] = FlowControlQueue(flow_control=control, clear_on_resume=True)
        control.resume()  # to read changelogs
        await queue.put(5)  # fetched while the stream partitions are sought
        control.resume()  # after the seek
        return queue.qsize()

    assert asyncio.run(queued_after_a_second_resume(FlowControlEvent())) == 0  # Faust's
    assert asyncio.run(queued_after_a_second_resume(KeepQueuedFlowControl())) == 1

    async def queued_after_a_rebalance() -> int:
        control = KeepQueuedFlowControl()
        queue: FlowControlQueue[int] = FlowControlQueue(flow_control=control, clear_on_resume=True)
        control.resume()
        await queue.put(5)
        control.suspend()  # a rebalance: what was queued belongs to the old assignment
        control.resume()
        return queue.qsize()

    assert asyncio.run(queued_after_a_rebalance()) == 0


def test_a_record_is_delivered_without_wait_first_only_when_nothing_would_wait() -> None:
    """The drain loop's plain ``await`` is for deliveries that cannot block; anything that
    could (suspended flow, a full stream queue, an overfull producer buffer) keeps Faust's
    ``wait_first``, which gives way to a rebalance."""
    from mode.utils.queues import FlowControlQueue

    async def check() -> list[bool]:
        app = faust.App("fetch-guard-deliver-test", broker="kafka://localhost:1")
        app.flow_control = KeepQueuedFlowControl()
        app.transport = guarded_transport(app, ["valid"])
        consumer = app.consumer
        queue: FlowControlQueue[int] = FlowControlQueue(  # as a stream's channel makes it
            maxsize=1, flow_control=app.flow_control, clear_on_resume=True
        )
        app.flow_control.resume()
        seen = [deliver_now(consumer)]  # flow running, queue empty
        queue.put_nowait(1)
        seen.append(deliver_now(consumer))  # the queue is full
        queue.get_nowait()
        app.flow_control.suspend()
        seen.append(deliver_now(consumer))  # a rebalance suspended the flow
        app.flow_control.resume()
        consumer.suspend_flow.set()
        seen.append(deliver_now(consumer))
        consumer.suspend_flow.clear()
        buffer = app.producer.buffer
        buffer.max_messages = 0
        buffer.pending.put_nowait(SimpleNamespace())
        seen.append(deliver_now(consumer))  # the producer's buffer is over its limit
        consumer._thread.thread_loop.close()  # made for the consumer's thread, never started
        return seen

    assert asyncio.run(check()) == [True, False, False, False, False]
