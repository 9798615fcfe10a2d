"""kafka-python helpers: waiting for a broker, provisioning topics, reading a topic to its end."""

from __future__ import annotations

import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from kafka import KafkaConsumer, KafkaProducer, TopicPartition
from kafka.admin import KafkaAdminClient, NewTopic
from kafka.consumer.fetcher import ConsumerRecord
from kafka.errors import KafkaError, TopicAlreadyExistsError

from services.errors import BrokerUnavailable
from services.settings import Settings, bootstrap_servers

CLIENT_ID = "touchstream-cli"


@dataclass(frozen=True, slots=True)
class TopicSpec:
    name: str
    partitions: int
    retention_hours: int


def topic_specs(settings: Settings) -> list[TopicSpec]:
    """Every pipeline topic with its partitions and retention."""
    t = settings.topics
    long_lived = {t.dlq, t.identity}
    return [
        TopicSpec(
            name,
            1 if name == t.valid else settings.partitions,  # one total order of identity decisions
            settings.dlq_retention_hours if name in long_lived else settings.raw_retention_hours,
        )
        for name in t.all()
    ]


class AdminClient(KafkaAdminClient):  # type: ignore[misc]
    """kafka-python's admin client, leaving out the operations a principal may perform on a
    group or topic: the embedded broker answers DescribeGroups with operation codes
    kafka-python cannot decode, which failed the whole call. Touchstream does not use them."""

    def _process_acl_operations(self, obj: dict[str, Any]) -> dict[str, Any]:
        obj.pop("authorized_operations", None)
        return obj


def admin_client(broker_url: str, *, timeout: float = 10.0) -> KafkaAdminClient:
    """An admin client, retried until ``timeout``; :class:`BrokerUnavailable` after that."""
    deadline = time.monotonic() + timeout
    last: Exception | None = None
    while (remaining := deadline - time.monotonic()) > 0:
        try:
            return AdminClient(
                bootstrap_servers=bootstrap_servers(broker_url),
                client_id=CLIENT_ID,
                request_timeout_ms=5000,
                bootstrap_timeout_ms=max(200, int(remaining * 1000)),
            )
        except KafkaError as error:
            last = error
            time.sleep(0.2)
    raise _unreachable(broker_url, timeout, last or TimeoutError())


def ensure_topics(settings: Settings, broker_url: str) -> dict[str, bool]:
    """Create missing pipeline topics; return ``{topic: created}``. Safe to run repeatedly."""
    admin = admin_client(broker_url, timeout=settings.startup_timeout)
    try:
        existing = set(admin.list_topics())
        result: dict[str, bool] = {}
        for spec in topic_specs(settings):
            if spec.name in existing:
                result[spec.name] = False
                continue
            topic = NewTopic(
                spec.name,
                num_partitions=spec.partitions,
                replication_factor=settings.replication_factor,
                topic_configs={"retention.ms": str(spec.retention_hours * 3_600_000)},
            )
            try:
                admin.create_topics([topic])
                result[spec.name] = True
            except TopicAlreadyExistsError:
                result[spec.name] = False
        return result
    finally:
        admin.close()


def _unreachable(broker_url: str, timeout: float, error: Exception) -> BrokerUnavailable:
    return BrokerUnavailable(
        f"no Kafka broker answered at {broker_url} within {timeout:.0f}s ({error}). "
        "Is it running? Start the embedded one with `touchstream up`, or set "
        "TOUCHSTREAM_BROKER_URL to a reachable broker."
    )


def producer(broker_url: str, *, timeout: float = 10.0, **config: object) -> KafkaProducer:
    """A producer that waits for every replica (acks=all) and retries transient errors;
    :class:`BrokerUnavailable` if no broker answers within ``timeout`` seconds."""
    options: dict[str, object] = {
        "bootstrap_servers": bootstrap_servers(broker_url),
        "client_id": CLIENT_ID,
        "acks": "all",
        "linger_ms": 10,
        "retries": 5,
        "bootstrap_timeout_ms": int(timeout * 1000),
    }
    options.update(config)
    try:
        return KafkaProducer(**options)
    except KafkaError as error:
        raise _unreachable(broker_url, timeout, error) from error


def read_to_end(
    broker_url: str,
    topic: str,
    *,
    timeout: float = 30.0,
    start: Mapping[int, int] | None = None,
) -> Iterator[ConsumerRecord]:
    """Yield every record of ``topic`` from the beginning (or, for the partitions in
    ``start``, from that offset) to the end seen at the start.

    The end is the high watermark a fetch response reports: the embedded broker's
    ListOffsets(latest) answer is the base offset of the last batch plus one, not the
    log end, so ``end_offsets()`` would stop early there.
    """
    consumer = KafkaConsumer(
        bootstrap_servers=bootstrap_servers(broker_url),
        client_id=CLIENT_ID,
        enable_auto_commit=False,
        group_id=None,
    )
    try:
        partitions = consumer.partitions_for_topic(topic)
        if not partitions:
            return
        tps = [TopicPartition(topic, p) for p in sorted(partitions)]
        consumer.assign(tps)
        consumer.seek_to_beginning(*tps)
        for tp in tps:
            if start and tp.partition in start:
                consumer.seek(tp, start[tp.partition])
        ends: dict[TopicPartition, int] = {}
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            batch = consumer.poll(timeout_ms=200)
            for records in batch.values():
                yield from records
            for tp in tps:
                if tp not in ends and consumer.highwater(tp) is not None:
                    ends[tp] = consumer.highwater(tp)
            if len(ends) == len(tps) and all(consumer.position(tp) >= ends[tp] for tp in tps):
                return
        raise BrokerUnavailable(f"reading {topic} did not reach its end within {timeout:.0f}s")
    finally:
        consumer.close()
