"""``up``, ``worker``, ``api`` and ``demo``: running the platform."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import sys
import threading
import time
from collections.abc import Callable
from importlib import resources
from types import FrameType
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from services.access.users import UnknownUser, Users
from services.audit import Audit, await_outcomes
from services.cli import app
from services.cli import demo_traffic as traffic
from services.cli.admin import migrated
from services.cli.friction import flags_table, read_flags
from services.cli.options import BrokerOption, load_settings
from services.crm.service import wait_sink
from services.embedded.stack import EmbeddedStack, StackInfo
from services.emit import emit_lines, jsonl_lines
from services.errors import TouchstreamError
from services.reports.render import as_table
from services.runstate import resolve_broker_url
from services.settings import ENV_PREFIX, Settings
from services.store.db import store_engine

out = Console(highlight=False)
DEMO_USER = "demo"
DEMO_REPORT_ROWS = 12  # the demo prints the rows with the most flags


class _Stopper:
    """SIGINT/SIGTERM handler: sets ``event``; while ``interrupting``, also raises
    KeyboardInterrupt so start-up or the demo stops at once and cleans up."""

    def __init__(self) -> None:
        self.event = threading.Event()
        self.interrupting = True

    def __call__(self, signum: int, frame: FrameType | None) -> None:
        self.event.set()
        if self.interrupting:
            self.interrupting = False
            raise KeyboardInterrupt


def _print_stack(settings: Settings, info: StackInfo) -> None:
    table = Table(title="Touchstream is up", show_header=True, title_justify="left")
    table.add_column("part")
    table.add_column("where")
    table.add_column("pid", justify="right")
    broker_note = " (embedded Tansu, in memory)" if info.embedded_broker else ""
    table.add_row(
        "broker", f"{info.broker_url}{broker_note}", str(info.processes.get("broker", "-"))
    )
    table.add_row(
        "worker",
        f"group {settings.app_id}, {settings.partitions} partitions/topic",
        str(info.processes["worker"]),
    )
    if info.api_url:
        table.add_row(
            "API", f"{info.api_url}  (OpenAPI at {info.api_url}/docs)", str(info.processes["api"])
        )
        table.add_row(
            "ingest",
            f"POST {info.api_url}/v1/events; Segment-compatible {info.api_url}/v1/batch "
            f"(a key: {_self_command()} sources add NAME)",
            "",
        )
    table.add_row("logs", str(settings.log_dir), "")
    out.print(table)
    created = [t for t, new in info.topics_created.items() if new]
    out.print(
        f"topics: {', '.join(info.topics_created)}"
        + (f"  ({len(created)} created)" if created else "")
    )


AfterStart = Callable[[StackInfo, threading.Event], None]


def _run_until_signalled(settings: Settings, after_start: AfterStart | None = None) -> None:
    stopper = _Stopper()
    previous = {sig: signal.signal(sig, stopper) for sig in (signal.SIGINT, signal.SIGTERM)}
    stack = EmbeddedStack(settings)
    try:
        info = stack.start()
        _print_stack(settings, info)
        if after_start is not None:
            after_start(info, stopper.event)
        stopper.interrupting = False
        if not stopper.event.is_set():
            out.print("[bold]Running.[/] Press Ctrl-C to stop.")
            stack.supervise(stopper.event)
    except KeyboardInterrupt:
        pass
    finally:
        stopper.interrupting = False
        out.print("Stopping: API, worker, broker ...")
        stack.stop()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        out.print("Stopped.")


@app.command()
def up(broker: BrokerOption = None) -> None:
    """Start the whole stack in the foreground: broker (unless --broker), worker and API."""
    _run_until_signalled(load_settings(broker_url=broker))


@app.command()
def worker(broker: BrokerOption = None) -> None:
    """Run one Faust worker against the broker (scale out with one per partition at most)."""
    from services.worker.run import run_worker

    settings = load_settings(broker_url=broker)
    run_worker(settings, resolve_broker_url(settings))


@app.command()
def sink(broker: BrokerOption = None) -> None:
    """Run the CRM sink alone (workers run one each unless TOUCHSTREAM_CRM_SINK_ENABLED=false):
    resolved events, merges, transitions and flags into the store, until Ctrl-C."""
    import asyncio
    import contextlib
    import logging

    from services.crm.service import run_sink

    settings = load_settings(broker_url=broker)
    logging.basicConfig(level=settings.log_level, format="%(asctime)s %(levelname)s %(message)s")
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(run_sink(settings, resolve_broker_url(settings), []))


@app.command()
def api(
    broker: BrokerOption = None,
    host: Annotated[str | None, typer.Option(help="Interface (TOUCHSTREAM_API_HOST).")] = None,
    port: Annotated[int | None, typer.Option(help="Port (TOUCHSTREAM_API_PORT).")] = None,
) -> None:
    """Run the HTTP API."""
    import uvicorn

    from services.api.app import create_app

    settings = load_settings(broker_url=broker, api_host=host, api_port=port)
    if settings.database_url is None:
        migrated(settings)  # embedded SQLite store; a production store is migrated on its own
    application = create_app(settings, resolve_broker_url(settings))
    uvicorn.run(
        application,
        host=settings.api_host,
        port=settings.api_port,
        log_level=settings.log_level.lower(),
        access_log=False,
    )


def _demo_lines() -> list[tuple[str, bytes]]:
    """The shipped examples (one per type), then the deliberately broken samples."""
    root = resources.files("schemas") / "examples"
    lines = [
        (f"examples/{item.name}", item.read_bytes().replace(b"\n", b""))
        for item in sorted(root.iterdir(), key=lambda i: i.name)
        if item.name.endswith(".json")
    ]
    broken = (root / "invalid" / "demo.jsonl").read_bytes().splitlines()
    lines += [(f"invalid/demo.jsonl:{n}", line) for n, line in jsonl_lines(broken)]
    return lines


def _print_audit(audit: Audit, labels: dict[tuple[int, int], str]) -> None:
    accepted = Table(title=f"Processed: {len(audit.accepted)} events", title_justify="left")
    for column in ("type", "event_id", "partition key"):
        accepted.add_column(column)
    for item in sorted(audit.accepted.values(), key=lambda a: a.event.type):
        accepted.add_row(item.event.type, item.event.event_id, item.partition_key)
    out.print(accepted)
    dead = Table(title=f"Dead-lettered: {len(audit.dead)} payloads", title_justify="left")
    for column in ("input", "reason", "fields"):
        dead.add_column(column)
    for origin, letter in sorted(audit.dead.items(), key=lambda item: labels.get(item[0], "")):
        dead.add_row(labels.get(origin, "?"), letter.reason, letter.summary())
    out.print(dead)


def _settled_flags(broker_url: str, settings: Settings) -> list[dict[str, Any]]:
    """The flags once none has arrived for as long as deadline flags can take: the raw
    partitions must go idle before event time passes the last deadlines (a burst of demo
    traffic has no later events to move it), then the timer runs."""
    quiet = settings.watermark_idle_timeout + 2 * settings.deadline_check_interval + 1
    deadline, quiet_since = time.monotonic() + 20 + quiet, time.monotonic()
    flags: list[dict[str, Any]] = []
    while time.monotonic() < deadline and time.monotonic() - quiet_since < quiet:
        time.sleep(0.5)
        latest = read_flags(broker_url, settings.topics)
        if len(latest) != len(flags):
            flags, quiet_since = latest, time.monotonic()
    return flags


def _self_command() -> str:
    """How the user can call this program again: ``touchstream`` if it is on PATH."""
    argv0 = sys.argv[0]
    if shutil.which("touchstream") == argv0 or not argv0.endswith("touchstream"):
        return "touchstream"
    return os.path.relpath(argv0)


@app.command()
def demo(
    exit_after: Annotated[
        bool, typer.Option("--exit", help="Stop the stack after printing the outcome.")
    ] = False,
    customers: Annotated[
        int, typer.Option(min=0, help="Simulated customers (0: only the example events).")
    ] = 2000,
    days: Annotated[int, typer.Option(min=1, max=90, help="Days of simulated traffic.")] = 14,
    seed: Annotated[int, typer.Option(help="Seed of the simulated traffic.")] = 7,
    timeout: Annotated[
        float, typer.Option(help="Seconds to wait for the pipeline at each step.")
    ] = 300.0,
) -> None:
    """Start the embedded stack, send the example events and broken ones and show what
    happened; then simulated omnichannel traffic (friction included), the friction report
    over its weeks, and the dashboard's address with a login token."""
    settings = load_settings()
    if not customers and f"{ENV_PREFIX}WATERMARK_IDLE_TIMEOUT" not in os.environ:
        # one burst of traffic: its partitions are caught up as soon as it is read. Not with
        # simulated traffic: a partition the worker is behind on could be called idle, and
        # deadlines judged before its events arrive.
        settings = settings.model_copy(update={"watermark_idle_timeout": 2.0})

    period = [""]  # the dashboard's query for the simulated weeks

    def send_and_show(info: StackInfo, stop: threading.Event) -> None:
        lines = _demo_lines()
        out.print(f"Sending {len(lines)} payloads to {settings.topics.raw} ...")
        numbered = list(enumerate((payload for _, payload in lines), start=1))
        result = emit_lines(info.broker_url, settings.topics.raw, numbered)
        if result.failed:
            raise TouchstreamError(
                f"{len(result.failed)} payloads could not be sent: {result.failed[:3]}"
            )
        labels = {(s.partition, s.offset): lines[s.line - 1][0] for s in result.sent}
        audit = await_outcomes(info.broker_url, settings.topics, set(labels), timeout=timeout)
        _print_audit(audit, labels)
        if not audit.complete or audit.duplicates:
            raise TouchstreamError(
                f"the pipeline did not account for every payload within {timeout:.0f}s: "
                f"{len(audit.missing)} missing, {len(audit.duplicates)} seen twice; "
                f"see {settings.log_dir / 'worker.log'}"
            )
        out.print(
            f"[bold green]All {len(lines)} payloads accounted for:[/] {len(audit.accepted)} "
            f"processed + {len(audit.dead)} dead-lettered = {len(lines)} sent."
        )
        if customers:
            period[0] = _simulate(info)
        else:
            flags = _settled_flags(info.broker_url, settings)
            out.print(flags_table(flags, f"Friction flagged by the journey maps: {len(flags)}"))
        if info.api_url and settings.crm_sink_enabled:
            token = _demo_token(settings)
            out.print(
                f"[bold]Dashboard:[/] {info.api_url}/ui/{period[0]}  (sign in with the token "
                f"[bold]{token}[/], role admin; `touchstream users add` makes more)",
                soft_wrap=True,  # the address and token stay whole, to copy
            )
        if exit_after:
            stop.set()
        elif info.api_url:
            out.print(f"Try: {_self_command()} dlq list    ·  API health: {info.api_url}/ready")

    def _simulate(info: StackInfo) -> str:
        scenario = traffic.simulated(customers, days, seed)
        out.print(
            f"Simulating {customers:,} customers over {days} days: "
            f"{len(scenario.events) + len(scenario.closing):,} events on four channels, "
            f"{len(scenario.expected):,} friction points woven in"
        )
        traffic.send_traffic(out, info.broker_url, settings.topics.raw, scenario)
        if not settings.crm_sink_enabled:
            flags = _settled_flags(info.broker_url, settings)
            out.print(f"{len(flags):,} friction flags raised (the CRM sink is off: no report)")
            return ""
        traffic.await_store(out, settings, scenario, timeout)
        _settled_flags(info.broker_url, settings)
        wait_sink(settings, info.broker_url, timeout)  # the last flags written
        report = traffic.report_of(settings, scenario)
        out.print(as_table(report, brief=True, limit=DEMO_REPORT_ROWS))
        first, until = report.since.date(), report.until.date()
        out.print(
            f"The whole report: {_self_command()} report friction --since {first} "
            f"--until {until} [--format html --output report.html]"
        )
        return f"?since={first}&until={until}"

    _run_until_signalled(settings, send_and_show)


def _demo_token(settings: Settings) -> str:
    """A fresh login token for the ``demo`` admin user (made again on every demo run)."""
    users = Users(store_engine(migrated(settings)))
    with contextlib.suppress(UnknownUser):
        users.remove(DEMO_USER)
    return users.add(DEMO_USER, "admin")
