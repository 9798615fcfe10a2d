"""``report friction``: where journeys hurt, for a period, from the CRM store."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape
from sqlalchemy.exc import OperationalError

from services.cli import app
from services.cli.admin import migrated
from services.errors import ReportError, StoreUnavailable
from services.reports.friction import friction_report
from services.reports.outlines import journey_outlines
from services.reports.output import ReportFormat, render
from services.reports.period import DEFAULT_DAYS, FORMS, period_of
from services.reports.render import as_table
from services.settings import load_settings
from services.store.db import store_engine

out = Console(highlight=False)
err = Console(stderr=True, highlight=False)
report_app = typer.Typer(help="Reports for CX managers, from the CRM store.", no_args_is_help=True)
app.add_typer(report_app, name="report")


@report_app.command("friction")
def report_friction(
    journey: Annotated[
        str | None, typer.Option("--journey", help="Only this journey (default: all).")
    ] = None,
    since: Annotated[
        str | None,
        typer.Option(
            help=f"First day, included: {FORMS}. Default: {DEFAULT_DAYS} days before --until."
        ),
    ] = None,
    until: Annotated[
        str | None,
        typer.Option(help="Day after the last, excluded (same forms). Default: the end of today."),
    ] = None,
    fmt: Annotated[
        ReportFormat, typer.Option("--format", help="table, csv, json or html (one file).")
    ] = ReportFormat.table,
    output: Annotated[
        Path | None,
        typer.Option("--output", help="Write the report to this file instead of stdout."),
    ] = None,
) -> None:
    """Friction per journey, stage and rule for a period (whole UTC days): flags, customers
    affected, rate per 1,000 customers who reached the stage, severity, value at risk, the
    change against the period before, top channels and example customers; with totals.

    Exits 2 on a bad date, an unknown journey or an unreachable store."""
    now = datetime.now(UTC)
    period = period_of(since, until, now)
    settings = load_settings()
    outlines, warning = journey_outlines(settings)
    if warning:
        err.print(f"warning: {escape(warning)}")
    try:
        report = friction_report(
            store_engine(migrated(settings)), period, journey=journey, outlines=outlines, now=now
        )
    except OperationalError as error:
        raise StoreUnavailable(f"cannot read the store: {error.orig}") from error
    if period.widened:
        err.print(
            "note: the report counts whole UTC days; the period was widened to "
            f"{period.since.isoformat()} to {period.until.isoformat()} (exclusive)"
        )
    if output is not None:
        try:
            output.write_text(render(report, fmt), encoding="utf-8")
        except OSError as error:
            raise ReportError(
                f"{output}: cannot write the report: {error.strerror or error}"
            ) from error
        rows, flags = len(report.rows), report.totals.flags
        out.print(
            f"friction report ({fmt.value}, {rows} rows, {flags:,} flags) "
            f"written to {escape(str(output))}"
        )
        return
    if fmt is ReportFormat.table:
        out.print(as_table(report))
    else:
        print(render(report, fmt), end="")
