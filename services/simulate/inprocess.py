"""A scenario through the validate, identity and journey stages in this process, as one
worker runs them (chunks of events, a flush and a deadline tick after each), collecting
every record the CRM sink consumes. For benchmarks and store tests that need what
production writes, without a broker."""

from __future__ import annotations

import zlib
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

import orjson

from schemas.records import SourceRecord
from services.emit import raw_key
from services.identity.stage import IdentityStage
from services.journeys.engine import Engine
from services.journeys.loader import default_maps_dir, load_maps
from services.journeys.stage import JourneyStage
from services.routing import Output
from services.worker.journey import item_of
from services.worker.triage import triage

__all__ = ["SINK_KINDS", "InProcessPipeline"]

SINK_KINDS = {
    "resolved": "event",
    "identity": "identity",
    "transitions": "transition",
    "flags": "flag",
}  # topic role -> the record kind the sink decodes it as


def _own(value: bytes) -> bytes:
    """A copy of ``value``: orjson's bytes keep a ~4 KiB buffer each (see bench/README.md)."""
    return b"".join((value, b""))


class InProcessPipeline:
    """Validate, identity and journey stages over ``partitions`` raw partitions; ``records``
    collects ``(kind, value)`` for every record the sink would read, in the order sent."""

    def __init__(self, partitions: int = 4) -> None:
        self.partitions = partitions
        self.identity = IdentityStage({}, clock=lambda: 0.0, idle_timeout=1e9)
        engine = Engine(load_maps(default_maps_dir()))
        self.journeys = JourneyStage(engine, {}, event_time="records")
        self.queue: list[tuple[int, bytes]] = []
        self.records: list[tuple[str, bytes]] = []
        self.dead_letters = 0

    def run(self, events: list[dict[str, Any]], chunk: int = 500) -> list[tuple[str, bytes]]:
        for start in range(0, len(events), chunk):
            for position, event in enumerate(events[start : start + chunk], start):
                raw = orjson.dumps(event)
                origin = SourceRecord(
                    topic="touchpoints.raw",
                    partition=zlib.crc32(raw_key(raw) or b"") % self.partitions,
                    offset=position,
                    timestamp=datetime.now(UTC),
                )
                accepted = triage(raw, origin)
                if accepted.route != "valid":
                    self.dead_letters += 1
                    continue
                self._route(self.identity.resolve(accepted.value, position))
            self._route(self.identity.flush(self.partitions))
            self._drain()
            self._route(self.journeys.tick())
            self._drain()
        return self.records

    def _route(self, outputs: Iterable[Output]) -> None:
        for out in outputs:
            self.records.append((SINK_KINDS[out.route], _own(out.value)))
            if out.route == "resolved":
                partition = out.partition
                if partition is None:
                    partition = zlib.crc32(out.key or b"") % self.partitions
                self.queue.append((partition, out.value))

    def _drain(self) -> None:
        while self.queue:
            batch, self.queue = self.queue, []
            self._route(self.journeys.apply(item_of(v, p) for p, v in batch))
