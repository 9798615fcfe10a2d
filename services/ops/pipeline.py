"""The pipeline as operations see it: its stages, the consumer group of each, the topics they
read and write."""

from __future__ import annotations

from dataclasses import dataclass

from services.crm.service import sink_group, sink_topics
from services.settings import Settings

__all__ = ["Stage", "monitored_groups", "pipeline_stages"]


@dataclass(frozen=True, slots=True)
class Stage:
    """A stage reads ``inputs`` in consumer group ``group`` and writes ``outputs`` (none: it
    writes the CRM store)."""

    name: str
    group: str
    inputs: tuple[str, ...]
    outputs: tuple[str, ...]


def pipeline_stages(settings: Settings) -> tuple[Stage, ...]:
    """raw -> validate -> valid/dlq -> identity -> resolved/merges -> journey ->
    transitions/flags, and the CRM sink reading resolved, merges, transitions and flags."""
    t, workers = settings.topics, settings.app_id
    return (
        Stage("validate", workers, (t.raw,), (t.valid, t.dlq)),
        Stage("identity", workers, (t.valid,), (t.resolved, t.identity)),
        Stage("journey", workers, (t.resolved,), (t.transitions, t.flags)),
        Stage("sink", sink_group(settings), tuple(sink_topics(settings)), ()),
    )


def monitored_groups(settings: Settings) -> dict[str, tuple[str, ...]]:
    """Consumer group -> the pipeline topics it consumes (the workers' group also reads its
    tables' changelogs, which Faust does not commit: they are left out)."""
    groups: dict[str, tuple[str, ...]] = {}
    for stage in pipeline_stages(settings):
        groups[stage.group] = tuple(dict.fromkeys((*groups.get(stage.group, ()), *stage.inputs)))
    return groups
