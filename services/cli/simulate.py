"""``simulate``: a generated month of customers as files: events, expected flags, meta."""

from __future__ import annotations

import dataclasses
import re
from collections import Counter
from datetime import timedelta
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from schemas.events import CHANNELS
from services.cli import app
from services.cli.options import progress_bar
from services.simulate import generate
from services.simulate.scenario import sidecars

out = Console(highlight=False)
_DURATION = re.compile(r"^(\d+)(s|m|h|d)$")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days"}


def parse_delay(value: str) -> timedelta:
    """``90s``, ``30m``, ``6h``, ``1d`` -> timedelta."""
    match = _DURATION.match(value.strip())
    if not match:
        raise typer.BadParameter(
            f"{value!r} is not a duration such as 90s, 30m, 6h or 1d",
            param_hint="'--billing-delay'",
        )
    return timedelta(**{_UNITS[match.group(2)]: int(match.group(1))})


@app.command()
def simulate(
    out_file: Annotated[
        Path,
        typer.Option(
            "--out",
            help="Events file to write (JSON lines: the events, then the closing clock events). "
            "<stem>.expected.jsonl and <stem>.meta.json are written beside it.",
            show_default=False,
        ),
    ],
    customers: Annotated[
        int, typer.Option(min=1, help="People to generate; a tenth are anonymous visitors.")
    ] = 1000,
    days: Annotated[int, typer.Option(min=1, help="Days of activity, from 2026-03-02.")] = 30,
    seed: Annotated[int, typer.Option(help="The same seed gives the same files.")] = 7,
    billing_delay: Annotated[
        str | None,
        typer.Option(
            "--billing-delay",
            help="Write the billing feed as if it arrived this much later (e.g. 6h); the "
            "expected flags stay the same.",
            show_default=False,
        ),
    ] = None,
) -> None:
    """Generate customers' events over web, store, billing and support, with the friction
    flags the platform must raise for them; send the file with ``touchstream emit``."""
    delay = parse_delay(billing_delay) if billing_delay is not None else None
    folder = out_file.parent
    if not folder.is_dir():
        raise typer.BadParameter(
            f"directory {folder} does not exist; create it or choose another --out",
            param_hint="'--out'",
        )
    progress = progress_bar("generating")
    with progress:
        task = progress.add_task("people", total=customers)
        scenario = generate(
            customers,
            days,
            seed=seed,
            progress=lambda done: progress.update(task, completed=done),
        )
        if delay is not None:
            scenario = dataclasses.replace(
                scenario, events=scenario.delayed("billing", delay), delay=("billing", delay)
            )
        scenario.write(out_file)
    expected, meta = sidecars(out_file)
    late, copies = len(scenario.late), len(scenario.duplicates)
    out.print(
        f"{out_file}: {len(scenario.events):,} events ({late:,} late, {copies:,} sent twice"
        + (f", billing {billing_delay} behind" if delay is not None else "")
        + f") and {len(scenario.closing)} closing events"
    )
    out.print(f"{expected}: {len(scenario.expected):,} expected flags; {meta}: what was generated")
    out.print(_summary(scenario.events, [f.rule_id for f in scenario.expected]))


def _summary(events: list[dict[str, object]], rules: list[str]) -> Table:
    per_channel = Counter(str(e["type"]).partition(".")[0] for e in events)
    table = Table(title="events per channel, expected flags per rule", title_justify="left")
    table.add_column("channel")
    table.add_column("events", justify="right")
    table.add_column("rule")
    table.add_column("flags", justify="right")
    by_rule = sorted(Counter(rules).items(), key=lambda item: (-item[1], item[0]))
    for i in range(max(len(CHANNELS), len(by_rule))):
        channel = CHANNELS[i] if i < len(CHANNELS) else ""
        rule, count = by_rule[i] if i < len(by_rule) else ("", 0)
        table.add_row(
            channel,
            f"{per_channel[channel]:,}" if channel else "",
            rule,
            f"{count:,}" if rule else "",
        )
    return table
