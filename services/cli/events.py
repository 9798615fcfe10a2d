"""``emit`` and ``dlq``: putting events in, and seeing what was dead-lettered."""

from __future__ import annotations

import sys
from collections import Counter
from collections.abc import Iterator
from enum import StrEnum
from pathlib import Path
from typing import Annotated, BinaryIO

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from schemas.records import DeadLetter
from services.cli import app
from services.cli.options import BrokerOption, load_settings
from services.emit import emit_lines, jsonl_lines
from services.errors import ConfigurationError
from services.kafka import read_to_end
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


def _read(handle: BinaryIO) -> Iterator[bytes]:
    yield from handle


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
    progress = Progress(
        TextColumn("sending"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=Console(stderr=True),
        transient=True,
    )
    with progress:
        task = progress.add_task("emit", total=total)
        handle = sys.stdin.buffer if stdin else file.open("rb")
        try:
            result = emit_lines(
                broker_url,
                settings.topics.raw,
                jsonl_lines(_read(handle)),
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


@dlq_app.command("list")
def dlq_list(
    broker: BrokerOption = None,
    limit: Annotated[int, typer.Option(min=1, help="Show at most this many, newest last.")] = 50,
    output: Annotated[Format, typer.Option("--format", help="table or json (one per line).")] = (
        Format.table
    ),
) -> None:
    """List dead-lettered payloads with their reasons."""
    settings = load_settings(broker_url=broker)
    broker_url = resolve_broker_url(settings)
    letters = [
        (record.partition, record.offset, DeadLetter.model_validate_json(record.value))
        for record in read_to_end(broker_url, settings.topics.dlq)
    ]
    letters.sort(key=lambda item: item[2].dead_lettered_at)
    shown = letters[-limit:]
    if output is Format.json:
        for _, _, letter in shown:
            out.print_json(letter.model_dump_json(), indent=None)
        return
    table = Table(
        title=f"{settings.topics.dlq}: {len(letters)} dead-lettered", title_justify="left"
    )
    for column in ("at", "origin", "event_id", "reason", "what was wrong", "payload"):
        table.add_column(column, overflow="fold")
    for _, _, letter in shown:
        o = letter.origin
        table.add_row(
            letter.dead_lettered_at.strftime("%Y-%m-%d %H:%M:%S"),
            f"{o.topic}[{o.partition}]@{o.offset}",
            letter.event_id or "-",
            letter.reason,
            letter.summary(),
            letter.payload[:80].decode("utf-8", errors="replace"),
        )
    out.print(table)
    reasons = Counter(letter.reason for _, _, letter in letters)
    if reasons:
        out.print("by reason: " + ", ".join(f"{r} {n}" for r, n in reasons.most_common()))
