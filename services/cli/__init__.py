"""The ``touchstream`` command line."""

from __future__ import annotations

import sys

import typer
from rich.console import Console

from services.errors import TouchstreamError

app = typer.Typer(
    name="touchstream",
    help="Touchstream: omnichannel customer-experience platform on Kafka and Faust.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
err = Console(stderr=True)


def main() -> None:
    """Entry point: run a command; a TouchstreamError becomes a one-paragraph message, exit 2."""
    from services.cli import (  # noqa: F401
        admin,
        config,
        crm,
        customer,
        events,
        friction,
        health,
        maps,
        report,
        simulate,
        stack,
        users,
    )

    try:
        app()
    except TouchstreamError as error:
        err.print(f"[bold red]error:[/] {error}", highlight=False, soft_wrap=True)
        sys.exit(2)
