"""Waiting for the CRM sink on a real broker: ``wait_sink`` ends once the sink's group has
committed what was on its topics when the wait began, even while records keep coming (a
running worker's identity stage sends watermark records every few seconds, so "a backlog
of 0" may never be seen twice in a row); and says how far behind it is when it times out.
The sink's commits are made here by hand, with its group id."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import pytest
from kafka import KafkaConsumer, TopicPartition
from kafka.structs import OffsetAndMetadata

from services.crm.service import sink_backlog, sink_group, wait_sink
from services.errors import SinkBehind
from services.kafka import ensure_topics, producer
from services.settings import Settings, bootstrap_servers

pytestmark = pytest.mark.broker


@pytest.fixture
def committer(settings: Settings) -> Iterator[KafkaConsumer]:
    """A client of the sink's group, to commit offsets as the sink would."""
    ensure_topics(settings, settings.broker_url or "")
    consumer = KafkaConsumer(
        bootstrap_servers=bootstrap_servers(settings.broker_url or ""),
        group_id=sink_group(settings),
        enable_auto_commit=False,
    )
    yield consumer
    consumer.close()


def _send(settings: Settings, count: int, partition: int = 0) -> int:
    """``count`` records on ``resolved``; the end offset of ``partition`` after them."""
    sender = producer(settings.broker_url or "")
    try:
        for _ in range(count):
            meta = sender.send(
                settings.topics.resolved, b'{"control":"watermark"}', partition=partition
            ).get(timeout=10)
        return int(meta.offset) + 1
    finally:
        sender.close()


def _commit(consumer: KafkaConsumer, topic: str, offset: int, partition: int = 0) -> None:
    tp = TopicPartition(topic, partition)
    consumer.assign([tp])
    consumer.commit({tp: OffsetAndMetadata(offset, "", -1)})


def test_behind_says_how_many_records_are_left(
    settings: Settings, committer: KafkaConsumer
) -> None:
    end = _send(settings, 3)
    _commit(committer, settings.topics.resolved, end - 1)
    assert sink_backlog(settings, settings.broker_url or "") == 1
    with pytest.raises(SinkBehind, match=r"still behind after 2s: 1 record left"):
        wait_sink(settings, settings.broker_url or "", timeout=2.0)
    _commit(committer, settings.topics.resolved, end)
    wait_sink(settings, settings.broker_url or "", timeout=10.0, rounds=2, pause=0.5)


def test_records_that_keep_coming_do_not_hold_the_wait_back(
    settings: Settings, committer: KafkaConsumer
) -> None:
    """A record every 0.2 s, each committed 1 s after it was sent: the backlog is never 0,
    yet each round ends once what was there when it began is committed."""
    stop = threading.Event()
    sent: list[tuple[float, int]] = []  # (when, end offset after it)
    backlogs: list[int | None] = []

    def traffic() -> None:
        sender = producer(settings.broker_url or "")
        try:
            while not stop.is_set():
                meta = sender.send(settings.topics.resolved, b"{}", partition=0).get(timeout=10)
                sent.append((time.monotonic(), int(meta.offset) + 1))
                due = [end for at, end in sent if at < time.monotonic() - 1.0]
                if due:
                    _commit(committer, settings.topics.resolved, due[-1])
                stop.wait(0.2)
        finally:
            sender.close()

    thread = threading.Thread(target=traffic, daemon=True)
    thread.start()
    try:
        while len(sent) < 10:
            time.sleep(0.1)
        started = time.monotonic()
        wait_sink(settings, settings.broker_url or "", timeout=30.0, rounds=2, pause=1.0)
        took = time.monotonic() - started
        backlogs = [sink_backlog(settings, settings.broker_url or "") for _ in range(3)]
    finally:
        stop.set()
        thread.join(15)
    assert took < 15, took
    assert all(b is not None and b > 0 for b in backlogs), backlogs  # the traffic went on
