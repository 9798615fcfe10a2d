"""Options shared by several commands, and how they become Settings."""

from __future__ import annotations

from typing import Annotated

import typer

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
