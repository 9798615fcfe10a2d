"""What the newest records of a few topics tell operations, as plain functions over record
timestamps and values (no Kafka here; :mod:`services.ops.probe` reads the records).

- **Processing latency**: an event on the resolved topic carries ``received_at``, the broker
  timestamp of the raw record it came from; the resolved record's own timestamp is when the
  identity stage wrote it. Their difference is the time from acceptance to resolution
  (validate + identity). A journey transition names its event; its timestamp less that
  event's ``received_at`` is the time from acceptance to the journey stage's output.
- **Event time per channel**: the identity stage's ``watermark`` control records on the
  resolved topic carry, per channel, the event time every active raw partition reached less
  the allowed lateness; adding the lateness back gives how far each feed has got.
- **Recent dead letters** from the dead-letter topic, with their reasons.
"""

from __future__ import annotations

from collections import OrderedDict, deque
from dataclasses import dataclass
from datetime import UTC, datetime

import orjson
from pydantic import ValidationError

from schemas.records import DeadLetter
from services.identity.stage import is_control

__all__ = ["ChannelTime", "RecentLetter", "Tail"]

IDENTITY, JOURNEY = "identity", "journey"


@dataclass(frozen=True, slots=True)
class ChannelTime:
    """Event time a channel reached (epoch ms), and the timestamp of the record that said so."""

    reached_ms: int
    seen_ms: int


@dataclass(frozen=True, slots=True)
class RecentLetter:
    id: str
    at: datetime
    stage: str
    reason: str
    event_id: str | None
    summary: str


class Tail:
    """Accumulates what sampled records tell: latency observations (kept for summaries and
    handed out once each by :meth:`drain`), event time per channel, recent dead letters.
    Memory is bounded by ``keep_latencies``, ``keep_letters`` and ``remember`` (events whose
    ``received_at`` is kept to time their transitions)."""

    def __init__(
        self,
        *,
        lateness: float,
        keep_latencies: int = 2000,
        keep_letters: int = 20,
        remember: int = 20_000,
    ) -> None:
        self.lateness_ms = int(lateness * 1000)
        self.latencies: dict[str, deque[float]] = {
            IDENTITY: deque(maxlen=keep_latencies),
            JOURNEY: deque(maxlen=keep_latencies),
        }
        self.channels: dict[str, ChannelTime] = {}
        self.letters: deque[RecentLetter] = deque(maxlen=keep_letters)
        self._received: OrderedDict[str, int] = OrderedDict()
        self._remember = remember
        self._keep = keep_latencies
        self._new = self._fresh()

    def resolved(self, timestamp_ms: int, value: bytes) -> None:
        """A record of the resolved topic: an event (latency) or a watermark (event time)."""
        try:
            record = orjson.loads(value)
        except orjson.JSONDecodeError:
            return
        if not isinstance(record, dict):
            return
        if is_control(value):
            if record.get("control") == "watermark":
                self._watermark(timestamp_ms, record.get("channels") or {})
            return
        received = _epoch_ms(record.get("received_at"))
        event_id = (record.get("event") or {}).get("event_id")
        if received is None or not isinstance(event_id, str):
            return
        self._observe(IDENTITY, timestamp_ms - received)
        self._received[event_id] = received
        self._received.move_to_end(event_id)
        while len(self._received) > self._remember:
            self._received.popitem(last=False)

    def transition(self, timestamp_ms: int, value: bytes) -> None:
        """A journey transition: timed against its event's ``received_at`` when it was seen."""
        try:
            event_id = orjson.loads(value).get("event_id")
        except (orjson.JSONDecodeError, AttributeError):
            return
        received = self._received.get(event_id) if isinstance(event_id, str) else None
        if received is not None:
            self._observe(JOURNEY, timestamp_ms - received)

    def dead_letter(self, timestamp_ms: int, value: bytes) -> None:
        try:
            letter = DeadLetter.model_validate_json(value)
        except ValidationError:
            at = datetime.fromtimestamp(timestamp_ms / 1000, UTC)
            self.letters.append(
                RecentLetter("?", at, "unknown", "unreadable_dead_letter", None, "")
            )
            return
        self.letters.append(
            RecentLetter(
                letter.id,
                letter.dead_lettered_at,
                letter.stage,
                letter.reason,
                letter.event_id,
                letter.summary()[:300],
            )
        )

    def drain(self) -> dict[str, list[float]]:
        """Latency observations (seconds) since the last call, per stage (the newest
        ``keep_latencies`` of each when nobody asked for a while)."""
        new, self._new = self._new, self._fresh()
        return {stage: list(values) for stage, values in new.items()}

    def _fresh(self) -> dict[str, deque[float]]:
        return {IDENTITY: deque(maxlen=self._keep), JOURNEY: deque(maxlen=self._keep)}

    def _observe(self, stage: str, millis: int) -> None:
        seconds = max(0, millis) / 1000
        self.latencies[stage].append(seconds)
        self._new[stage].append(seconds)

    def _watermark(self, timestamp_ms: int, channels: dict[str, object]) -> None:
        for channel, mark in channels.items():
            if not isinstance(mark, int):
                continue
            reached = mark + self.lateness_ms
            known = self.channels.get(channel)
            if known is None or reached >= known.reached_ms:
                self.channels[channel] = ChannelTime(reached, timestamp_ms)


def _epoch_ms(value: object) -> int | None:
    if not isinstance(value, str):
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    if parsed.tzinfo is None:
        return None
    return int(parsed.timestamp() * 1000)
