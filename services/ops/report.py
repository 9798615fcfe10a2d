"""The stream-health report: ``GET /v1/ops/streams`` and ``touchstream health --json``
(docs/operations.md describes every field)."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, Field

from services.ops.evaluate import LagStatus

__all__ = [
    "BrokerReport",
    "ChannelDelay",
    "DeadLetterReport",
    "GroupReport",
    "LatencySummary",
    "PartitionLag",
    "RecentDeadLetter",
    "StageReport",
    "StoreReport",
    "StreamsReport",
    "WindowReport",
]

HealthName = Literal["healthy", "degraded", "down"]


class PartitionLag(BaseModel):
    topic: str
    partition: int
    committed: int = Field(description="The group's committed offset (the log start if none).")
    end: int = Field(description="The partition's end: the high watermark of a fetch.")
    lag: int
    status: LagStatus
    reason: str


class GroupReport(BaseModel):
    group: str
    role: str = Field(description="`workers` (validate, identity, journey) or `crm-sink`.")
    status: LagStatus
    lag: int = Field(description="Sum of the partitions' lag.")
    members: list[str] | None = Field(description="Member ids; null when the broker did not say.")
    complete: float = Field(description="How full the evaluation window is, 0 to 1.")
    partitions: list[PartitionLag]


class StageReport(BaseModel):
    stage: str
    group: str
    inputs: list[str]
    outputs: list[str]
    input_per_second: float = Field(description="Records appended to the inputs, per second.")
    output_per_second: float = Field(
        description="Records appended to the outputs per second (the sink: records it wrote)."
    )
    consumed_per_second: float = Field(description="Advance of the group's committed offsets.")
    lag: int = Field(description="The group's lag on the stage's inputs.")
    input_records: int = Field(description="Sum of the inputs' end offsets.")
    output_records: int = Field(
        description="Sum of the outputs' end offsets (the sink: committed)."
    )


class RecentDeadLetter(BaseModel):
    id: str
    at: datetime
    stage: str
    reason: str
    event_id: str | None
    summary: str


class DeadLetterReport(BaseModel):
    per_second: float = Field(description="Records appended to the dead-letter topic, per second.")
    in_window: int = Field(description="Dead letters appended during the window.")
    total: int = Field(description="The dead-letter topic's end offsets, summed.")
    reasons: dict[str, int] = Field(description="Reasons among the recent dead letters.")
    recent: list[RecentDeadLetter] = Field(description="The newest dead letters, newest last.")


class ChannelDelay(BaseModel):
    channel: str
    reached: datetime = Field(
        description="Event time the channel's feed has reached: the identity watermark plus "
        "the allowed lateness."
    )
    delay_seconds: float = Field(description="Now less `reached`.")
    reported_at: datetime = Field(description="When the identity stage wrote that watermark.")


class LatencySummary(BaseModel):
    stage: str = Field(description="`identity`: accepted to resolved; `journey`: to transition.")
    samples: int
    p50_seconds: float | None
    p95_seconds: float | None
    max_seconds: float | None


class BrokerReport(BaseModel):
    url: str
    reachable: bool
    detail: str | None = None


class StoreReport(BaseModel):
    reachable: bool
    seconds: float = Field(description="How long the check took.")
    revision: str | None
    head: str | None
    detail: str | None = None


class WindowReport(BaseModel):
    samples: int
    size: int
    seconds: float = Field(description="Time between the oldest and the newest sample.")
    interval_seconds: float


class StreamsReport(BaseModel):
    status: HealthName
    exit_code: int = Field(description="0 healthy, 1 degraded, 2 down (`touchstream health`).")
    problems: list[str]
    sampled_at: datetime
    window: WindowReport
    broker: BrokerReport
    store: StoreReport | None
    groups: list[GroupReport]
    stages: list[StageReport]
    dead_letters: DeadLetterReport
    event_time: list[ChannelDelay]
    latency: list[LatencySummary]
    sink_backlog: int | None = Field(
        description="Records on the sink's topics it has not committed (its group's lag)."
    )
