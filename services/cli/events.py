"""``emit`` and ``dlq``: putting events in, and seeing what was dead-lettered."""

from __future__ import annotations

import re
import sys
from collections import Counter
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import orjson
import typer
from rich.console import Console
from rich.table import Table

from schemas.records import DeadLetter
from services.cli import app
from services.cli.options import BrokerOption, load_settings, progress_bar
from services.emit import emit_lines, jsonl_lines
from services.errors import ConfigurationError
from services.ingest.replay import dead_letters, replay
from services.runstate import resolve_broker_url

out = Console(highlight=False)
dlq_app = typer.Typer(help="Inspect dead-lettered payloads.", no_args_is_help=True)
app.add_typer(dlq_app, name="dlq")


class Format(StrEnum):
    table = "table"
    json = "json"


def _count_lines(path: Path) -> int:
    with path.open("rb") as handle:
        return sum(1 for line in handle if line.strip())


@app.command()
def emit(
    file: Annotated[
        Path, typer.Argument(help="JSON-lines file of touchpoint events; '-' reads standard input.")
    ],
    broker: BrokerOption = None,
) -> None:
    """Send events from a JSON-lines file to the raw topic (the worker validates them)."""
    settings = load_settings(broker_url=broker)
    broker_url = resolve_broker_url(settings)
    stdin = str(file) == "-"
    if not stdin and not file.is_file():
        raise ConfigurationError(f"{file}: no such file; give a JSON-lines file of events or '-'")
    total = None if stdin else _count_lines(file)
    progress = progress_bar("sending")
    with progress:
        task = progress.add_task("emit", total=total)
        handle = sys.stdin.buffer if stdin else file.open("rb")
        try:
            result = emit_lines(
                broker_url,
                settings.topics.raw,
                jsonl_lines(handle),
                on_sent=lambda n: progress.advance(task, n),
                connect_timeout=settings.startup_timeout,
            )
        finally:
            if not stdin:
                handle.close()
    out.print(
        f"sent {len(result.sent)} events to {settings.topics.raw} at {broker_url}; "
        f"{len(result.failed)} failed"
    )
    for line, reason in result.failed[:20]:
        out.print(f"  line {line}: {reason}")
    if result.failed:
        raise typer.Exit(1)


def _since(value: str | None) -> datetime | None:
    """A date (``2026-11-20``), a time with offset, or a duration back from now (``2h``, ``7d``)."""
    if value is None:
        return None
    match = re.fullmatch(r"(\d+)([smhd])", value.strip())
    if match:
        unit = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days"}[match.group(2)]
        return datetime.now(UTC) - timedelta(**{unit: int(match.group(1))})
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise typer.BadParameter(
            f"{value!r}: give a date (2026-11-20), a time with offset, or a duration (90m, 2h, 7d)"
        ) from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


ReasonOption = Annotated[
    list[str] | None,
    typer.Option("--reason", help="Only this reason (repeatable), e.g. unmapped_event."),
]


@dlq_app.command("list")
def dlq_list(
    broker: BrokerOption = None,
    reason: ReasonOption = None,
    since: Annotated[
        str | None, typer.Option(help="Only newer: a date, a time, or a duration (2h, 7d).")
    ] = None,
    limit: Annotated[int, typer.Option(min=1, help="Show at most this many, newest last.")] = 50,
    output: Annotated[Format, typer.Option("--format", help="table or json (one per line).")] = (
        Format.table
    ),
) -> None:
    """List dead-lettered payloads with their reasons."""
    settings = load_settings(broker_url=broker)
    after = _since(since)
    letters = [
        letter
        for letter in dead_letters(settings, resolve_broker_url(settings))
        if (not reason or letter.reason in reason)
        and (after is None or letter.dead_lettered_at >= after)
    ]
    shown = letters[-limit:]
    if output is Format.json:
        for letter in shown:
            out.print_json(letter.model_dump_json(), indent=None)
        return
    table = Table(
        title=f"{settings.topics.dlq}: {len(letters)} dead-lettered", title_justify="left"
    )
    for column in ("id", "at", "from", "event_id", "reason", "what was wrong"):
        table.add_column(column, overflow="fold")
    for letter in shown:
        table.add_row(
            letter.id,
            letter.dead_lettered_at.strftime("%Y-%m-%d %H:%M:%S"),
            _where(letter),
            letter.event_id or "-",
            letter.reason,
            letter.summary(),
        )
    out.print(table)
    reasons = Counter(letter.reason for letter in letters)
    if reasons:
        out.print("by reason: " + ", ".join(f"{r} {n}" for r, n in reasons.most_common()))


def _where(letter: DeadLetter) -> str:
    if letter.origin is not None:
        o = letter.origin
        return f"{o.topic}[{o.partition}]@{o.offset}"
    return f"{letter.ingress or letter.stage} ({letter.source or '?'})"


@dlq_app.command("show")
def dlq_show(
    letter_id: Annotated[str, typer.Argument(metavar="ID", help="The id from `dlq list`.")],
    broker: BrokerOption = None,
) -> None:
    """Show one dead letter in full, with its payload decoded."""
    settings = load_settings(broker_url=broker)
    found = [
        letter
        for letter in dead_letters(settings, resolve_broker_url(settings))
        if letter.id.startswith(letter_id)
    ]
    if len(found) != 1:
        problem = "no dead letter" if not found else f"{len(found)} dead letters"
        raise ConfigurationError(f"{problem} with id {letter_id!r}; see `touchstream dlq list`")
    record = found[0].model_dump(mode="json")
    try:
        record["payload"] = orjson.loads(found[0].payload)
    except orjson.JSONDecodeError:
        record["payload_text"] = found[0].payload.decode("utf-8", errors="replace")
    out.print_json(orjson.dumps(record).decode())


@dlq_app.command("replay")
def dlq_replay(
    broker: BrokerOption = None,
    reason: ReasonOption = None,
    letter_id: Annotated[
        list[str] | None, typer.Option("--id", help="Only this dead letter (repeatable).")
    ] = None,
    dry_run: Annotated[bool, typer.Option(help="Check and report, send nothing.")] = False,
) -> None:
    """Re-check dead letters with the current contract and Segment mapping and re-submit those
    that now pass (each at most once); report the ones that still fail and why."""
    settings = load_settings(broker_url=broker)
    report = replay(
        settings,
        resolve_broker_url(settings),
        reasons=reason or (),
        ids=letter_id or (),
        dry_run=dry_run,
    )
    verb = "would re-submit" if dry_run else "re-submitted"
    out.print(
        f"{verb} {len(report.resubmitted)} to {settings.topics.raw}; "
        f"{len(report.still_failing)} still failing; {report.already_replayed} replayed before"
    )
    for letter, why in report.still_failing[:50]:
        out.print(f"  {letter.id} ({letter.reason}): {why}")
    if report.still_failing:
        raise typer.Exit(1)
