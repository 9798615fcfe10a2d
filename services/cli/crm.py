"""``crm import``: customers from a CRM export (CSV or JSON lines) into the store."""

from __future__ import annotations

import csv
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any, TextIO

import orjson
import typer
from rich.console import Console
from rich.markup import escape

from services.cli import app
from services.cli.admin import migrated
from services.cli.options import load_settings, progress_bar
from services.crm.importer import ImportReport, import_customers
from services.crm.rows import (
    FIELDS,
    Format,
    Rejected,
    SourceRow,
    detect_format,
    parse_mapping,
    read_csv,
    read_jsonl,
)
from services.errors import CrmImportError
from services.store.db import store_engine

out = Console(highlight=False, soft_wrap=True)
crm_app = typer.Typer(help="Customer profiles from the CRM.", no_args_is_help=True)
app.add_typer(crm_app, name="crm")

SHOWN = 10


class MatchOn(StrEnum):
    customer_id = "customer_id"
    email = "email"


@crm_app.command("import")
def crm_import(
    file: Annotated[Path, typer.Argument(help="CRM export: CSV with a header row, or JSON lines.")],
    maps: Annotated[
        list[str] | None,
        typer.Option(
            "--map",
            metavar="SOURCE=FIELD",
            help="Fill a customer field from a column (repeatable), e.g. "
            f"'Full Name=name'; SOURCE= leaves a column out. Fields: {', '.join(FIELDS)}.",
            show_default=False,
        ),
    ] = None,
    match: Annotated[
        MatchOn,
        typer.Option(help="Find the customer a row updates by its customer_id or its email."),
    ] = MatchOn.customer_id,
    file_format: Annotated[
        Format | None,
        typer.Option("--format", help="csv or jsonl; by default from the file's extension."),
    ] = None,
    rejects: Annotated[
        Path | None,
        typer.Option(
            help="Write rejected rows (line, reason, row) here: CSV if it ends in .csv, "
            "else JSON lines.",
            show_default=False,
        ),
    ] = None,
    batch_size: Annotated[int, typer.Option(min=1, help="Rows per transaction.")] = 1000,
) -> None:
    """Upsert customers from a CRM export and link their identifiers to the event-built
    profiles. Exit 0 when every row was imported, 1 when some were rejected."""
    mapping = parse_mapping(maps or [])
    fmt = detect_format(file, file_format)
    if not file.is_file():
        raise CrmImportError(f"{file}: no such file; give a CSV or JSON-lines CRM export")
    total = sum(1 for _ in _rows(file, fmt, mapping))  # also finds unreadable files early
    engine = store_engine(migrated(load_settings()))
    progress = progress_bar("importing customers")
    with progress, _rows_of(file, fmt, mapping) as rows:
        task = progress.add_task("import", total=total)
        report = import_customers(
            engine,
            rows,
            mapping=mapping,
            match=match.value,
            now=datetime.now(UTC),
            batch_size=batch_size,
            on_progress=lambda n: progress.advance(task, n),
        )
    _summary(file, report)
    if rejects is not None:
        _write_rejects(rejects, report.rejected)
        out.print(f"rejected rows written to {escape(str(rejects))}")
    elif len(report.rejected) > SHOWN:
        out.print("pass --rejects FILE to keep every rejected row with its reason")
    if report.rejected:
        raise typer.Exit(1)


def _rows(file: Path, fmt: Format, mapping: dict[str, str]) -> Iterator[SourceRow]:
    with _rows_of(file, fmt, mapping) as rows:
        yield from rows


@contextmanager
def _rows_of(file: Path, fmt: Format, mapping: dict[str, str]) -> Iterator[Iterator[SourceRow]]:
    """The file's rows; unreadable text or a broken CSV becomes a CrmImportError."""
    try:
        handle = file.open(encoding="utf-8-sig", newline="")
    except OSError as error:
        raise CrmImportError(f"{file}: cannot read it: {error.strerror or error}") from error
    with handle:
        yield _guarded(file, handle, fmt, mapping)


def _guarded(
    file: Path, handle: TextIO, fmt: Format, mapping: dict[str, str]
) -> Iterator[SourceRow]:
    line = 0
    try:
        rows = read_csv(handle, mapping)[1] if fmt is Format.csv else read_jsonl(handle)
        for row in rows:
            line = row.line
            yield row
    except UnicodeDecodeError as error:
        raise CrmImportError(
            f"{file}: line {_first_undecodable(file)} is not UTF-8 text ({error.reason}); "
            "save the export as UTF-8"
        ) from error
    except csv.Error as error:
        raise CrmImportError(f"{file}: not a readable CSV after line {line}: {error}") from error
    except CrmImportError as error:
        raise CrmImportError(f"{file}: {error}") from error


def _first_undecodable(file: Path) -> int:
    with file.open("rb") as handle:
        for number, line in enumerate(handle, start=1):
            try:
                line.decode("utf-8")
            except UnicodeDecodeError:
                return number
    return 0


def _summary(file: Path, report: ImportReport) -> None:
    out.print(
        f"{escape(str(file))}: {report.read} rows read: {report.inserted} customers added, "
        f"{report.updated} updated, {len(report.rejected)} rows rejected"
    )
    for rejected in report.rejected[:SHOWN]:
        out.print(f"  line {rejected.line}: {escape(rejected.reason)}")
    if len(report.rejected) > SHOWN:
        out.print(f"  ... and {len(report.rejected) - SHOWN} more rejected")
    if report.warnings:
        out.print(f"{len(report.warnings)} warning(s):")
        for notice in report.warnings[:SHOWN]:
            out.print(f"  line {notice.line}: {escape(notice.message)}")
        if len(report.warnings) > SHOWN:
            out.print(f"  ... and {len(report.warnings) - SHOWN} more")


def _write_rejects(path: Path, rejected: list[Rejected]) -> None:
    """Rejected rows with line and reason: CSV (the file's columns) or JSON lines."""
    try:
        if path.suffix.lower() == ".csv":
            _write_rejects_csv(path, rejected)
        else:
            with path.open("wb") as handle:
                for r in rejected:
                    record: dict[str, Any] = {"line": r.line, "reason": r.reason, "row": r.row}
                    if r.raw is not None:
                        record["raw"] = r.raw
                    handle.write(orjson.dumps(record, default=str) + b"\n")
    except OSError as error:
        raise CrmImportError(
            f"{path}: cannot write the rejected rows: {error.strerror or error}"
        ) from error


def _write_rejects_csv(path: Path, rejected: list[Rejected]) -> None:
    columns = list(dict.fromkeys(column for r in rejected for column in r.row))
    raw = any(r.raw is not None for r in rejected)
    with path.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["line", "reason", *columns, *(["raw"] if raw else [])])
        for r in rejected:
            cells = [_cell(r.row.get(column)) for column in columns]
            writer.writerow([r.line, r.reason, *cells, *([r.raw or ""] if raw else [])])


def _cell(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    return orjson.dumps(value, default=str).decode()
