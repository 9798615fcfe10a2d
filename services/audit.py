"""Account for sent events: each raw record must end exactly once in resolved or dead-letter."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from kafka import KafkaConsumer, TopicPartition

from schemas.records import AcceptedEvent, DeadLetter
from services.identity.stage import is_control
from services.kafka import CLIENT_ID
from services.settings import Topics, bootstrap_servers

Origin = tuple[int, int]  # (partition, offset) in the raw topic


@dataclass
class Audit:
    accepted: dict[Origin, AcceptedEvent] = field(default_factory=dict)
    dead: dict[Origin, DeadLetter] = field(default_factory=dict)
    duplicates: list[Origin] = field(default_factory=list)
    missing: set[Origin] = field(default_factory=set)

    @property
    def complete(self) -> bool:
        return not self.missing


def await_outcomes(
    broker_url: str, topics: Topics, expected: set[Origin], *, timeout: float = 60.0
) -> Audit:
    """Follow the resolved and dead-letter topics until every expected origin is seen: each
    event accepted by validation and resolved to a customer, or dead-lettered."""
    audit = Audit(missing=set(expected))
    consumer = KafkaConsumer(
        bootstrap_servers=bootstrap_servers(broker_url), client_id=CLIENT_ID, group_id=None
    )
    try:
        tps = [
            TopicPartition(topic, p)
            for topic in (topics.resolved, topics.dlq)
            for p in sorted(consumer.partitions_for_topic(topic) or ())
        ]
        consumer.assign(tps)
        consumer.seek_to_beginning(*tps)
        deadline = time.monotonic() + timeout
        while audit.missing and time.monotonic() < deadline:
            for tp, records in consumer.poll(timeout_ms=200).items():
                for record in records:
                    _note(audit, tp.topic == topics.dlq, record.value, topics.raw)
    finally:
        consumer.close()
    return audit


def _note(audit: Audit, dead: bool, value: bytes, raw_topic: str) -> None:
    if not dead and is_control(value):
        return  # identity resolution's merge, transfer and watermark records
    outcome = (
        DeadLetter.model_validate_json(value) if dead else AcceptedEvent.model_validate_json(value)
    )
    if outcome.origin is None or outcome.origin.topic != raw_topic:
        return  # not from the raw topic (e.g. refused by the HTTP gateway)
    origin = (outcome.origin.partition, outcome.origin.offset)
    if origin in audit.accepted or origin in audit.dead:
        audit.duplicates.append(origin)
    elif isinstance(outcome, DeadLetter):
        audit.dead[origin] = outcome
    else:
        audit.accepted[origin] = outcome
    audit.missing.discard(origin)
