"""Re-submit dead letters whose cause is fixed: each is checked again with the current contract
and Segment mapping; those that pass go back to ``touchpoints.raw`` once, the rest are reported."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime

import orjson
from sqlalchemy import select
from sqlalchemy.orm import Session

from schemas.records import DeadLetter
from services.emit import emit_lines
from services.ingest.gateway import Prepared, prepare
from services.ingest.segment import Mapped, SegmentMapping, load_mapping, to_v1
from services.kafka import read_to_end
from services.settings import Settings
from services.store.db import store_engine, upgrade
from services.store.models import DeadLetterReplay


@dataclass
class ReplayReport:
    resubmitted: list[DeadLetter] = field(default_factory=list)
    still_failing: list[tuple[DeadLetter, str]] = field(default_factory=list)
    already_replayed: int = 0
    not_selected: int = 0


def dead_letters(settings: Settings, broker_url: str) -> list[DeadLetter]:
    """Every record of the dead-letter topic, oldest first."""
    letters = [
        DeadLetter.model_validate_json(record.value)
        for record in read_to_end(broker_url, settings.topics.dlq)
    ]
    return sorted(letters, key=lambda letter: letter.dead_lettered_at)


def _recheck(letter: DeadLetter, mapping: SegmentMapping) -> Prepared | str:
    """The letter as a valid raw event now, or why it still fails."""
    if letter.stage == "ingest" and (letter.ingress or "").startswith("segment"):
        try:
            message = orjson.loads(letter.payload)
        except orjson.JSONDecodeError as error:
            return f"payload is not JSON: {error}"
        mapped = to_v1(
            message,
            source=letter.source or "segment",
            mapping=mapping,
            received_at=letter.dead_lettered_at,
        )
        if not isinstance(mapped, Mapped):
            return f"{mapped.reason}: {mapped.detail}"
        outcome = prepare(mapped.event, letter.source or "segment")
    else:
        try:
            event = orjson.loads(letter.payload)
        except orjson.JSONDecodeError as error:
            return f"invalid_json: {error}"
        source = event.get("source") if isinstance(event, dict) else None
        outcome = prepare(event, source if isinstance(source, str) else "")
    if isinstance(outcome, Prepared):
        return outcome
    return "; ".join(f"{e.field}: {e.message}" for e in outcome.errors)


def replay(
    settings: Settings,
    broker_url: str,
    *,
    reasons: Iterable[str] = (),
    ids: Iterable[str] = (),
    dry_run: bool = False,
) -> ReplayReport:
    """Re-check the selected dead letters and re-submit those that now pass."""
    upgrade(settings.store_url())
    engine = store_engine(settings)
    with Session(engine) as session:
        done = set(session.scalars(select(DeadLetterReplay.letter_id)))
    wanted_reasons, wanted_ids = set(reasons), set(ids)
    mapping = load_mapping(settings.segment_mapping_file)
    report = ReplayReport()
    ready: list[tuple[DeadLetter, Prepared]] = []
    for letter in dead_letters(settings, broker_url):
        if (wanted_reasons and letter.reason not in wanted_reasons) or (
            wanted_ids and letter.id not in wanted_ids
        ):
            report.not_selected += 1
        elif letter.id in done:
            report.already_replayed += 1
        else:
            checked = _recheck(letter, mapping)
            if isinstance(checked, Prepared):
                ready.append((letter, checked))
            else:
                report.still_failing.append((letter, checked))
    if dry_run or not ready:
        report.resubmitted = [letter for letter, _ in ready]
        return report
    result = emit_lines(
        broker_url,
        settings.topics.raw,
        ((i, prepared.value) for i, (_, prepared) in enumerate(ready)),
        connect_timeout=settings.startup_timeout,
    )
    failed = {line for line, _ in result.failed}
    now = datetime.now(UTC)
    with Session(engine) as session, session.begin():
        for i, (letter, _) in enumerate(ready):
            if i in failed:
                report.still_failing.append((letter, "the broker did not acknowledge it"))
                continue
            session.add(
                DeadLetterReplay(
                    letter_id=letter.id,
                    reason=letter.reason,
                    outcome="resubmitted",
                    replayed_at=now,
                )
            )
            report.resubmitted.append(letter)
    return report
