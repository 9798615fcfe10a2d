"""Options shared by several commands, and how they become Settings."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
)

from services.settings import load_settings

__all__ = ["BrokerOption", "load_settings"]

BrokerOption = Annotated[
    str | None,
    typer.Option(
        "--broker",
        help="Kafka bootstrap servers (host:port,...). Overrides TOUCHSTREAM_BROKER_URL; "
        "when neither is set the embedded broker is used.",
        show_default=False,
    ),
]


def progress_bar(label: str) -> Progress:
    """The CLI's progress bar for long work: on stderr, gone when done."""
    return Progress(
        TextColumn(label),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=Console(stderr=True),
        transient=True,
    )
