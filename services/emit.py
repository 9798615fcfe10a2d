"""Produce touchpoint events from JSON lines to ``touchpoints.raw`` with kafka-python."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

import orjson
from kafka.errors import KafkaError

from schemas.events import IDENTITY_KINDS
from services.identity.graph import normalised
from services.kafka import producer
from services.worker.triage import partition_key


@dataclass(frozen=True, slots=True)
class Sent:
    """Where one input line landed in the raw topic."""

    line: int
    partition: int
    offset: int


@dataclass
class EmitResult:
    sent: list[Sent] = field(default_factory=list)
    failed: list[tuple[int, str]] = field(default_factory=list)


def raw_key(payload: bytes) -> bytes | None:
    """Key by the strongest identifier so one person's events share a partition (and order).

    Payloads that are not objects with an identity are sent unkeyed; the worker judges them.
    """
    try:
        identity = orjson.loads(payload).get("identity")
    except (orjson.JSONDecodeError, AttributeError):
        return None
    if not isinstance(identity, dict):
        return None
    for kind in IDENTITY_KINDS:
        value = identity.get(kind)
        if isinstance(value, str) and value:
            return partition_key(kind, normalised(kind, value)).encode()
    return None


def emit_lines(
    broker_url: str,
    topic: str,
    lines: Iterable[tuple[int, bytes]],
    *,
    on_sent: Callable[[int], None] | None = None,
    flush_every: int = 5000,
    connect_timeout: float = 10.0,
) -> EmitResult:
    """Send each ``(line_number, payload)``; report where each landed or why it failed."""
    result = EmitResult()
    client = producer(broker_url, timeout=connect_timeout, linger_ms=20, batch_size=256 * 1024)
    pending: list[tuple[int, object]] = []

    def settle() -> None:
        client.flush()
        for line, future in pending:
            try:
                meta = future.get(timeout=30)  # type: ignore[attr-defined]
                result.sent.append(Sent(line, meta.partition, meta.offset))
            except KafkaError as error:
                result.failed.append((line, f"{type(error).__name__}: {error}"))
        if on_sent is not None:
            on_sent(len(pending))
        pending.clear()

    try:
        for line, payload in lines:
            try:
                pending.append((line, client.send(topic, key=raw_key(payload), value=payload)))
            except KafkaError as error:
                result.failed.append((line, f"{type(error).__name__}: {error}"))
            if len(pending) >= flush_every:
                settle()
        settle()
    finally:
        client.close(timeout=10)
    return result


def jsonl_lines(chunks: Iterable[bytes]) -> Iterable[tuple[int, bytes]]:
    """Number the non-blank lines of a JSON-lines stream (1-based), without their newline."""
    for number, line in enumerate(chunks, start=1):
        stripped = line.rstrip(b"\r\n")
        if stripped.strip():
            yield number, stripped
