"""The raw backlog the identity coordinator asks the broker for (services/worker/backlog.py),
on the embedded broker: a partition has one while its end lies past the group's commit."""

from __future__ import annotations

import pytest
from kafka import KafkaConsumer, TopicPartition
from kafka.structs import OffsetAndMetadata

from services.embedded.process import free_port
from services.kafka import ensure_topics, producer
from services.settings import Settings, bootstrap_servers
from services.worker.backlog import RawBacklog


def _commit(broker: str, group: str, offsets: dict[TopicPartition, int]) -> None:
    consumer = KafkaConsumer(
        bootstrap_servers=bootstrap_servers(broker), group_id=group, enable_auto_commit=False
    )
    try:
        consumer.commit({tp: OffsetAndMetadata(o, "", -1) for tp, o in offsets.items()})
    finally:
        consumer.close()


def test_a_raw_partition_has_a_backlog_until_the_group_committed_its_end(
    settings: Settings, broker: str
) -> None:
    ensure_topics(settings, broker)
    raw = settings.topics.raw
    send = producer(broker)
    for _ in range(3):
        send.send(raw, b"{}", partition=0)
    send.send(raw, b"{}", partition=2)
    send.flush()
    backlog = RawBacklog(broker, raw, settings.app_id)
    try:
        # the group never committed: everything from the log start waits
        assert backlog.partitions() == {f"{raw}/0", f"{raw}/2"}
        _commit(broker, settings.app_id, {TopicPartition(raw, 0): 2, TopicPartition(raw, 2): 1})
        assert backlog.partitions() == {f"{raw}/0"}
        _commit(broker, settings.app_id, {TopicPartition(raw, 0): 3})
        assert backlog.partitions() == frozenset()
        send.send(raw, b"{}", partition=1)
        send.flush()
        assert backlog.partitions() == {f"{raw}/1"}
        assert backlog.probe.snapshot().members == {settings.app_id: None}  # not asked
    finally:
        send.close()
        backlog.close()


def test_without_a_broker_the_backlog_is_unknown_and_said_so(
    settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    backlog = RawBacklog(f"127.0.0.1:{free_port()}", settings.topics.raw, "g", timeout=1.0)
    try:
        assert backlog.partitions() is None
    finally:
        backlog.close()
    assert "raw backlog: no Kafka broker answered" in caplog.text
