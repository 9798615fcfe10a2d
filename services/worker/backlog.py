"""Which raw partitions still have records the validate stage has not committed past.

The identity coordinator lets a raw partition that delivered nothing for a while stop
holding event time back (idleness, services/identity/stage.py). Quiet is not the same as
caught up: a partition whose worker was killed, or whose new owner is still reading
changelogs, delivers nothing either, while its records wait. Letting event time pass them
raised deadline flags (a stage stall, an overdue invoice) before the events that would have
met the deadline were read. So the coordinator asks the broker: a partition whose end lies
past the workers' committed offset has a backlog and is never idle.

Committed offsets trail processing by up to a commit interval; that only keeps a partition
active a little longer than it needs. A dead-lettered record is committed past like any
other, so invalid input at a partition's end leaves no backlog behind."""

from __future__ import annotations

import logging
import time

from services.errors import BrokerUnavailable
from services.ops.probe import BrokerProbe

log = logging.getLogger("touchstream.worker")

BACKLOG_CHECK_INTERVAL = 2.0  # seconds between samples (on the coordinator's worker only)
WARN_EVERY = 60.0  # seconds between warnings while the broker does not answer


class RawBacklog:
    """Samples ``raw_topic``'s end offsets and ``group``'s committed offsets on it."""

    def __init__(self, broker_url: str, raw_topic: str, group: str, *, timeout: float = 5.0):
        self.raw_topic = raw_topic
        self.group = group
        self.probe = BrokerProbe(
            broker_url, [raw_topic], {group: [raw_topic]}, timeout=timeout, members=False
        )
        self._warned = 0.0

    def partitions(self) -> frozenset[str] | None:
        """The raw partitions (``topic/partition``) with a backlog; None when the broker did
        not answer (the caller keeps what it knew). Blocking: run it in a thread."""
        try:
            sample = self.probe.snapshot()
        except BrokerUnavailable as error:
            now = time.monotonic()
            if now - self._warned > WARN_EVERY:
                self._warned = now
                log.warning("raw backlog: %s; event time keeps the last backlog known", error)
            return None
        committed = sample.committed.get(self.group, {})
        return frozenset(
            f"{tp.topic}/{tp.partition}"
            for tp, end in sample.ends.items()
            if tp.topic == self.raw_topic and end > committed.get(tp, 0)
        )

    def close(self) -> None:
        self.probe.close()
