"""``health``: is the pipeline keeping up? Exit 0 healthy, 1 degraded, 2 down."""

from __future__ import annotations

import time
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from services.cli import app
from services.cli.options import BrokerOption, load_settings
from services.ops.evaluate import LagStatus
from services.ops.monitor import StreamMonitor
from services.ops.report import StreamsReport
from services.runstate import resolve_broker_url

out = Console(highlight=False)
STYLE = {"healthy": "bold green", "degraded": "bold yellow", "down": "bold red"}
STATUS_STYLE = {
    LagStatus.OK: "green",
    LagStatus.WARN: "yellow",
    LagStatus.STALLED: "red",
    LagStatus.STOPPED: "red",
}


@app.command()
def health(
    as_json: Annotated[bool, typer.Option("--json", help="Print the report as JSON.")] = False,
    broker: BrokerOption = None,
    samples: Annotated[
        int, typer.Option(min=2, max=120, help="Samples in the evaluation window.")
    ] = 6,
    interval: Annotated[
        float, typer.Option(min=0.1, max=60.0, help="Seconds between samples.")
    ] = 1.0,
) -> None:
    """Sample the broker and the store over a short window and judge the stream's health:
    consumer lag and each group's status, rates per stage, dead letters, event-time delay,
    latency, members, sink backlog. Exit code 0 healthy, 1 degraded, 2 down."""
    settings = load_settings(broker_url=broker)
    monitor = StreamMonitor(
        settings, resolve_broker_url(settings), window=samples, interval=interval
    )
    try:
        report = monitor.sample()
        for _ in range(samples - 1):
            if not report.broker.reachable:
                break
            time.sleep(interval)
            report = monitor.sample()
    finally:
        monitor.close()
    if as_json:
        print(report.model_dump_json(indent=2))
    else:
        _print(report)
    raise typer.Exit(report.exit_code)


def _print(report: StreamsReport) -> None:
    out.print(
        f"[{STYLE[report.status]}]{report.status.upper()}[/] (exit {report.exit_code}) over "
        f"{report.window.samples} samples in {report.window.seconds:.1f}s"
    )
    for problem in report.problems:
        out.print(f"  - {problem}")
    broker = "reachable" if report.broker.reachable else "unreachable"
    out.print(f"broker {report.broker.url}: {broker}")
    if report.store is not None:
        store = report.store
        state = f"revision {store.revision or 'none'} (head {store.head})"
        out.print(f"store: {state if store.reachable else 'unreachable'}")
    if not report.broker.reachable:
        return
    out.print(_groups(report))
    out.print(_stages(report))
    lagging = _lagging(report)
    if lagging.row_count:
        out.print(lagging)
    d = report.dead_letters
    reasons = ", ".join(f"{r} {n}" for r, n in d.reasons.items()) or "none recently"
    out.print(
        f"dead letters: {d.per_second:.2f}/s, {d.in_window} in the window, {d.total} in the "
        f"topic; recent reasons: {reasons}"
    )
    if report.event_time:
        out.print(
            "event time behind now: "
            + ", ".join(f"{c.channel} {_duration(c.delay_seconds)}" for c in report.event_time)
        )
    for latency in report.latency:
        if latency.samples:
            out.print(
                f"latency to {latency.stage}: p50 {latency.p50_seconds}s, p95 "
                f"{latency.p95_seconds}s, max {latency.max_seconds}s ({latency.samples} sampled)"
            )


def _groups(report: StreamsReport) -> Table:
    table = Table(title="consumer groups", title_justify="left")
    for column in ("group", "role", "status", "lag", "members", "window"):
        table.add_column(column)
    for g in report.groups:
        style = STATUS_STYLE[g.status]
        table.add_row(
            g.group,
            g.role,
            f"[{style}]{g.status}[/]",
            str(g.lag),
            "?" if g.members is None else str(len(g.members)),
            f"{g.complete:.0%}",
        )
    return table


def _stages(report: StreamsReport) -> Table:
    table = Table(title="stages (records per second over the window)", title_justify="left")
    for column in ("stage", "in/s", "out/s", "consumed/s", "lag"):
        table.add_column(column, justify="left" if column == "stage" else "right")
    for s in report.stages:
        table.add_row(
            s.stage,
            f"{s.input_per_second:.1f}",
            f"{s.output_per_second:.1f}",
            f"{s.consumed_per_second:.1f}",
            str(s.lag),
        )
    return table


def _lagging(report: StreamsReport) -> Table:
    table = Table(title="partitions not OK", title_justify="left")
    for column in ("group", "topic", "partition", "lag", "status", "why"):
        table.add_column(column, overflow="fold")
    for g in report.groups:
        for p in g.partitions:
            if p.status is not LagStatus.OK:
                table.add_row(
                    g.group, p.topic, str(p.partition), str(p.lag), str(p.status), p.reason
                )
    return table


def _duration(seconds: float) -> str:
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if abs(seconds) >= size:
            return f"{seconds / size:.1f}{unit}"
    return f"{seconds:.0f}s"
