"""The demo's simulated traffic: a generated omnichannel scenario sent to the raw topic with a
progress bar, then waited for until the CRM store holds it and the friction flags have
settled, and the friction report over its weeks printed. The scenario is the one
``touchstream simulate`` writes, so what the demo shows can be reproduced."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

import orjson
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from sqlalchemy import Engine, func, select

from services.emit import emit_lines
from services.errors import TouchstreamError
from services.reports.friction import FrictionReport, friction_report
from services.reports.outlines import journey_outlines
from services.reports.period import period_of
from services.settings import Settings
from services.simulate import Scenario, generate
from services.store.db import store_engine
from services.store.models import Interaction

__all__ = ["await_store", "report_of", "send_traffic", "simulated"]

CHUNK = 2000  # events a send; the bar moves per chunk


def _bar(console: Console) -> Progress:
    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
    )


def simulated(customers: int, days: int, seed: int) -> Scenario:
    """The scenario for ``customers`` over ``days`` (ids ``sim-<seed>-...``)."""
    return generate(customers, days, seed=seed)


def send_traffic(console: Console, broker_url: str, topic: str, scenario: Scenario) -> int:
    """Send the scenario's events (its closing events last) to ``topic``; how many."""
    events = scenario.events + scenario.closing
    with _bar(console) as progress:
        task = progress.add_task("Sending simulated traffic", total=len(events))
        for start in range(0, len(events), CHUNK):
            chunk = events[start : start + CHUNK]
            lines = ((start + n, orjson.dumps(e)) for n, e in enumerate(chunk, 1))
            result = emit_lines(broker_url, topic, lines)
            if result.failed:
                line, reason = result.failed[0]
                raise TouchstreamError(
                    f"{len(result.failed)} simulated events could not be sent "
                    f"(event {line}: {reason})"
                )
            progress.advance(task, len(chunk))
    return len(events)


def _stored(engine: Engine, prefix: str) -> int:
    with engine.connect() as conn:
        found = conn.execute(
            select(func.count()).where(Interaction.event_id.like(f"{prefix}%"))
        ).scalar()
    return int(found or 0)


def await_store(console: Console, settings: Settings, scenario: Scenario, timeout: float) -> None:
    """Wait until every distinct event of ``scenario`` is an interaction in the CRM store."""
    ids = {e["event_id"] for e in scenario.events + scenario.closing}
    prefix = next(iter(ids)).rsplit("-", 1)[0] + "-"
    deadline = time.monotonic() + timeout
    engine = store_engine(settings)  # one engine for every poll, not one each second
    try:
        with _bar(console) as progress:
            task = progress.add_task("Pipeline and CRM store catching up", total=len(ids))
            while (stored := _stored(engine, prefix)) < len(ids):
                progress.update(task, completed=stored)
                if time.monotonic() > deadline:
                    raise TouchstreamError(
                        f"the CRM store holds {stored:,} of {len(ids):,} simulated events "
                        f"after {timeout:.0f}s; see {settings.log_dir / 'worker.log'}"
                    )
                time.sleep(1.0)
            progress.update(task, completed=len(ids))
    finally:
        engine.dispose()


def report_of(settings: Settings, scenario: Scenario) -> FrictionReport:
    """The friction report over the scenario's days (every journey)."""
    times = [e["occurred_at"] for e in scenario.events]
    first = datetime.fromisoformat(min(times)).astimezone(UTC).date()
    last = datetime.fromisoformat(max(times)).astimezone(UTC).date()
    now = datetime.now(UTC)
    period = period_of(first.isoformat(), (last + timedelta(days=1)).isoformat(), now)
    outlines, _ = journey_outlines(settings)
    return friction_report(store_engine(settings), period, outlines=outlines, now=now)
