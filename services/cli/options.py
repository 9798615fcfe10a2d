"""Options shared by several commands, and how they become Settings."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from services.settings import Settings

BrokerOption = Annotated[
    str | None,
    typer.Option(
        "--broker",
        help="Kafka bootstrap servers (host:port,...). Overrides TOUCHSTREAM_BROKER_URL; "
        "when neither is set the embedded broker is used.",
        show_default=False,
    ),
]


def load_settings(**overrides: Any) -> Settings:
    """Settings from the environment, with command-line options (those not None) on top."""
    given = {key: value for key, value in overrides.items() if value is not None}
    return Settings(**given)
