"""What a running ``touchstream up`` announces, so other commands on the machine can find it."""

from __future__ import annotations

import contextlib
import os

import psutil
from pydantic import BaseModel

from services.errors import ConfigurationError
from services.settings import Settings

STATE_FILE = "stack.json"


class StackState(BaseModel):
    pid: int
    broker_url: str
    embedded_broker: bool
    api_url: str | None
    processes: dict[str, int]


def write_state(settings: Settings, state: StackState) -> None:
    settings.run_dir.mkdir(parents=True, exist_ok=True)
    path = settings.run_dir / STATE_FILE
    tmp = path.with_suffix(".tmp")
    tmp.write_text(state.model_dump_json(indent=2))
    tmp.replace(path)


def read_state(settings: Settings) -> StackState | None:
    """The state of a ``touchstream up`` that is still running, or None."""
    path = settings.run_dir / STATE_FILE
    try:
        state = StackState.model_validate_json(path.read_bytes())
    except (FileNotFoundError, ValueError):
        return None
    return state if psutil.pid_exists(state.pid) and state.pid != os.getpid() else None


def clear_state(settings: Settings) -> None:
    with contextlib.suppress(FileNotFoundError):
        (settings.run_dir / STATE_FILE).unlink()


def resolve_broker_url(settings: Settings) -> str:
    """The configured broker, else the one a running ``touchstream up`` announced."""
    if settings.broker_url:
        return settings.broker_url
    state = read_state(settings)
    if state is not None:
        return state.broker_url
    raise ConfigurationError(
        "no Kafka broker to talk to: set TOUCHSTREAM_BROKER_URL (or pass --broker), or start "
        f"the embedded stack with `touchstream up` (it announces itself in {settings.run_dir})."
    )
