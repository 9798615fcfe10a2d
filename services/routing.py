"""What a pipeline stage hands its agent to send: a topic role, a key and the value bytes.

Stages are pure; the Faust agents map each role to a topic (see ``services.worker.app``)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Output:
    """A record for the topic of ``route``. ``partition`` set: sent there, not by key (a
    watermark goes to every partition)."""

    route: str
    key: bytes | None
    value: bytes
    partition: int | None = None
