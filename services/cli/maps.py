"""``maps``: check the journey maps and show what one of them says (docs/journey-maps.md)."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from services.cli import app
from services.cli.options import load_settings
from services.errors import ConfigurationError
from services.journeys.loader import configured_maps_dir, load_map, load_maps
from services.journeys.maps import (
    AbsenceRule,
    CountRule,
    EventRule,
    JourneyMap,
    Rule,
    SequenceRule,
    StallRule,
)

out = Console(highlight=False, soft_wrap=True)
maps_app = typer.Typer(
    help="Journey maps: stages and friction rules (docs/journey-maps.md).", no_args_is_help=True
)
app.add_typer(maps_app, name="maps")

DirOption = Annotated[
    Path | None,
    typer.Option(
        "--dir",
        help="Directory of journey maps. Overrides TOUCHSTREAM_JOURNEY_MAPS_DIR; when neither "
        "is set the shipped journey_maps/ is used.",
        show_default=False,
    ),
]


@maps_app.command("validate")
def validate(
    path: Annotated[
        Path | None,
        typer.Argument(
            help="A map file or a directory of maps; default: TOUCHSTREAM_JOURNEY_MAPS_DIR, "
            "else the shipped journey_maps/.",
            show_default=False,
        ),
    ] = None,
) -> None:
    """Check journey maps; print one line per map, or every problem (exit 2)."""
    target = path if path is not None else configured_maps_dir(load_settings())
    if target.is_file():
        journeys = {(m := load_map(target)).journey: m}
        note = " (flag: references to other maps are checked when validating a directory)"
    else:
        journeys = load_maps(target)
        note = ""
    for journey in journeys.values():
        stages = ", ".join(stage.id for stage in journey.stages)
        rules = ", ".join(rule.id for rule in journey.rules) or "none"
        out.print(
            f"{journey.journey}: {len(journey.stages)} stages ({stages}); "
            f"{len(journey.rules)} rules ({rules})"
        )
    count = len(journeys)
    out.print(f"{count} journey map{'s' if count != 1 else ''} in {target}: valid{note}")


@maps_app.command("show")
def show(
    journey: Annotated[str, typer.Argument(help="Journey name, e.g. purchase.")],
    directory: DirOption = None,
) -> None:
    """Print a journey's stages and its friction rules with their thresholds."""
    folder = directory if directory is not None else configured_maps_dir(load_settings())
    journeys = load_maps(folder)
    found = journeys.get(journey)
    if found is None:
        raise ConfigurationError(
            f"no journey {journey!r} in {folder}; its journeys are: {', '.join(journeys)}"
        )
    out.print(stages_table(found))
    out.print(rules_table(found))


def stages_table(journey: JourneyMap) -> Table:
    title = f"{journey.journey}: stages" + (
        f" - {journey.description}" if journey.description else ""
    )
    table = Table(title=title, title_justify="left")
    for column in ("#", "stage", "entered by", "budget"):
        table.add_column(column, overflow="fold")
    for number, stage in enumerate(journey.stages, start=1):
        budget = duration(stage.budget) if stage.budget is not None else "-"
        table.add_row(str(number), stage.id, ", ".join(stage.entered_by), budget)
    return table


def rules_table(journey: JourneyMap) -> Table:
    table = Table(title=f"{journey.journey}: friction rules", title_justify="left")
    for column in ("rule", "kind", "severity", "fires when", "description"):
        table.add_column(column, overflow="fold")
    for rule in journey.rules:
        table.add_row(
            rule.id, rule.kind, rule.severity, thresholds(rule, journey), rule.description
        )
    return table


def thresholds(rule: Rule, journey: JourneyMap) -> str:
    """What a rule waits for, with its thresholds, in one line."""
    if isinstance(rule, EventRule):
        when = rule.when
        condition = f" with {when.attribute} {when.op} {when.value}" if when is not None else ""
        return f"{' or '.join(rule.on)}{condition}"
    if isinstance(rule, CountRule):
        per = f" per {rule.per}" if rule.per else ""
        return f"{rule.count} x {rule.on} within {duration(rule.within)}{per}"
    if isinstance(rule, AbsenceRule):
        deadline = (
            f"within {duration(rule.within)}"
            if rule.within is not None
            else f"by its {rule.deadline_attribute}"
        )
        match = f" (same {rule.match})" if rule.match else ""
        return f"{' or '.join(rule.start)} without {' or '.join(rule.complete)}{match} {deadline}"
    if isinstance(rule, SequenceRule):
        after = " or ".join(rule.after)
        return f"{' or '.join(rule.then)} within {duration(rule.within)} after {after}"
    assert isinstance(rule, StallRule)
    budgets = [f"{s.id} > {duration(s.budget)}" for s in journey.stages if s.budget is not None]
    return "a stay in " + ", ".join(budgets)


def duration(value: timedelta) -> str:
    """``timedelta(minutes=30)`` -> ``30m``: whole days from 3 days up, else hours, minutes."""
    seconds = int(value.total_seconds())
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds % size == 0 and (unit != "d" or seconds >= 3 * 86400):
            return f"{seconds // size}{unit}"
    return f"{seconds}s"
