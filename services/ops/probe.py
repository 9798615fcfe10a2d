"""One sample of the broker for stream health: end offsets, committed offsets and members of
the monitored groups, and the newest records of a few topics. kafka-python, synchronous;
the clients are kept between samples and rebuilt after the broker went away.

The end of a partition is the high watermark of a fetch response, not ListOffsets(latest):
the embedded broker answers the latter with the base offset of the last batch plus one
(docs/architecture.md, broker notes). Reading the newest records is bounded: at most
``tail_records`` per partition and sample, from where the previous sample stopped."""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from kafka import KafkaConsumer, TopicPartition
from kafka.admin import KafkaAdminClient
from kafka.errors import KafkaError

from services.errors import BrokerUnavailable
from services.kafka import admin_client
from services.settings import bootstrap_servers

__all__ = ["BrokerProbe", "RecordSink", "Snapshot"]

log = logging.getLogger("touchstream.ops")
CLIENT_ID = "touchstream-ops"
RecordSink = Callable[[int, bytes], None]  # (broker timestamp in ms, value)


@dataclass(frozen=True, slots=True)
class Snapshot:
    """The broker at ``at`` (epoch seconds): end offset per partition, per group the
    committed offset of each partition it consumes (the log start where it never
    committed), and per group its member ids (None: the broker did not say, or the probe
    was made not to ask)."""

    at: float
    ends: dict[TopicPartition, int]
    committed: dict[str, dict[TopicPartition, int]]
    members: dict[str, list[str] | None]


class BrokerProbe:
    """Samples ``topics`` and the consumer ``groups`` (group -> topics it consumes); feeds
    the newest records of each topic in ``tails`` to its sink, topic by topic in the order
    of ``tails`` (a later topic's sink may rely on what an earlier one saw in the same
    sample: a journey transition is timed by its event's resolved record). Without
    ``members`` the groups are not described (one request less a sample)."""

    def __init__(
        self,
        broker_url: str,
        topics: Sequence[str],
        groups: Mapping[str, Sequence[str]],
        *,
        tails: Mapping[str, RecordSink] | None = None,
        tail_records: int = 200,
        timeout: float = 5.0,
        members: bool = True,
    ) -> None:
        self.broker_url = broker_url
        self.topics = tuple(topics)
        self.groups = {group: tuple(consumed) for group, consumed in groups.items()}
        self.tails = dict(tails or {})
        self.tail_records = tail_records
        self.timeout = timeout
        self.members = members
        self._admin: KafkaAdminClient | None = None
        self._ends: KafkaConsumer | None = None
        self._tail: KafkaConsumer | None = None
        self._read: dict[TopicPartition, int] = {}  # tail: next offset to read

    def snapshot(self) -> Snapshot:
        """Sample the broker; :class:`BrokerUnavailable` when it does not answer in time."""
        try:
            admin, ends, tail = self._clients()
            partitions = self._partitions(ends)
            committed = self._committed(admin, ends, partitions)
            members = self._members(admin) if self.members else dict.fromkeys(self.groups)
            at = time.time()
            end_offsets = self._end_offsets(ends, partitions)
            self._read_tails(tail, end_offsets)
        except (KafkaError, OSError) as error:
            self.close()
            raise BrokerUnavailable(
                f"no answer from the Kafka broker at {self.broker_url} ({error!r})"
            ) from error
        return Snapshot(at, end_offsets, committed, members)

    def close(self) -> None:
        for client in (self._tail, self._ends, self._admin):
            if client is not None:
                with contextlib.suppress(Exception):
                    client.close()
        self._admin = self._ends = self._tail = None

    def _clients(self) -> tuple[KafkaAdminClient, KafkaConsumer, KafkaConsumer]:
        if self._admin is None:
            self._admin = admin_client(self.broker_url, timeout=self.timeout)
        if self._ends is None:
            self._ends = self._consumer()
        if self._tail is None:
            self._tail = self._consumer()
        return self._admin, self._ends, self._tail

    def _consumer(self) -> KafkaConsumer:
        try:
            return KafkaConsumer(
                bootstrap_servers=bootstrap_servers(self.broker_url),
                client_id=CLIENT_ID,
                group_id=None,
                enable_auto_commit=False,
                auto_offset_reset="earliest",
                fetch_max_wait_ms=50,  # a fetch at the end returns at once with the watermark
                # only watermarks are read, never a record: checking the CRCs of what a fetch
                # brings (in Python, up to 1 MiB a partition) took 5 % of a worker's CPU
                check_crcs=False,
                request_timeout_ms=int(self.timeout * 1000) + 1000,
                bootstrap_timeout_ms=int(self.timeout * 1000),
            )
        except KafkaError as error:
            raise BrokerUnavailable(
                f"no Kafka broker answered at {self.broker_url} within {self.timeout:.0f}s "
                f"({error!r})"
            ) from error

    def _partitions(self, consumer: KafkaConsumer) -> list[TopicPartition]:
        """Every partition of the topics that exist (a missing topic has none yet)."""
        return [
            TopicPartition(topic, p)
            for topic in self.topics
            for p in sorted(consumer.partitions_for_topic(topic) or ())
        ]

    def _committed(
        self, admin: KafkaAdminClient, consumer: KafkaConsumer, partitions: list[TopicPartition]
    ) -> dict[str, dict[TopicPartition, int]]:
        answered = admin.list_group_offsets(dict.fromkeys(self.groups))
        committed: dict[str, dict[TopicPartition, int]] = {}
        never: set[TopicPartition] = set()
        for group, consumed in self.groups.items():
            offsets = answered.get(group, {})
            mine = [tp for tp in partitions if tp.topic in consumed]
            committed[group] = {}
            for tp in mine:
                meta = offsets.get(tp)
                if meta is not None and meta.offset >= 0:
                    committed[group][tp] = meta.offset
                else:
                    never.add(tp)
        if never:  # a group that never committed starts at the log start (earliest)
            starts = consumer.beginning_offsets(sorted(never))
            for group, consumed in self.groups.items():
                for tp in never:
                    if tp.topic in consumed and tp not in committed[group]:
                        committed[group][tp] = starts.get(tp, 0)
        return committed

    def _members(self, admin: KafkaAdminClient) -> dict[str, list[str] | None]:
        try:
            described = admin.describe_groups(list(self.groups))
        except (KafkaError, ValueError) as error:
            log.warning("stream health: describing the consumer groups failed: %r", error)
            return dict.fromkeys(self.groups)
        members: dict[str, list[str] | None] = {}
        for group in self.groups:
            found = described.get(group) or {}
            listed = found.get("members")
            members[group] = (
                None
                if found.get("error") or listed is None
                else [str(m.get("member_id", "")) for m in listed]
            )
        return members

    def _end_offsets(
        self, consumer: KafkaConsumer, partitions: list[TopicPartition]
    ) -> dict[TopicPartition, int]:
        """High watermarks from fetch responses. The assignment is renewed first, so every
        watermark read comes from a fetch of this sample."""
        if not partitions:
            return {}
        consumer.unsubscribe()
        consumer.assign(partitions)
        consumer.seek_to_end(*partitions)
        deadline = time.monotonic() + self.timeout
        while True:
            consumer.poll(timeout_ms=100, max_records=1)
            ends = {tp: consumer.highwater(tp) for tp in partitions}
            if all(end is not None for end in ends.values()):
                return {tp: int(end) for tp, end in ends.items() if end is not None}
            if time.monotonic() > deadline:
                missing = sorted(
                    f"{tp.topic}/{tp.partition}" for tp, e in ends.items() if e is None
                )
                raise BrokerUnavailable(
                    f"the broker at {self.broker_url} did not report the end of "
                    f"{', '.join(missing[:5])} within {self.timeout:.0f}s"
                )

    def _read_tails(self, consumer: KafkaConsumer, ends: dict[TopicPartition, int]) -> None:
        """Feed each tailed topic's records from where the last sample stopped (at most
        ``tail_records`` back from the end) up to this sample's end."""
        todo: dict[TopicPartition, tuple[int, int]] = {}
        for tp, end in ends.items():
            if tp.topic not in self.tails:
                continue
            start = max(self._read.get(tp, 0), end - self.tail_records, 0)
            self._read[tp] = end
            if start < end:
                todo[tp] = (start, end)
        if not todo:
            return
        consumer.unsubscribe()
        consumer.assign(list(todo))
        for tp, (start, _) in todo.items():
            consumer.seek(tp, start)
        read: dict[str, list[tuple[int, bytes]]] = {topic: [] for topic in self.tails}
        deadline = time.monotonic() + self.timeout
        while todo and time.monotonic() < deadline:
            for tp, records in consumer.poll(timeout_ms=100).items():
                if tp not in todo:
                    continue
                start, end = todo[tp]
                read[tp.topic].extend(
                    (r.timestamp, r.value or b"") for r in records if start <= r.offset < end
                )
            for tp in list(todo):
                if consumer.position(tp) >= todo[tp][1]:
                    del todo[tp]
                    consumer.pause(tp)
        for topic, records in read.items():  # the poll interleaves topics; the sinks do not
            sink = self.tails[topic]
            for timestamp, value in records:
                sink(timestamp, value)
