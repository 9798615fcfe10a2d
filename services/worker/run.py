"""Run one worker process in the foreground until SIGTERM or Ctrl-C."""

from __future__ import annotations

import contextlib

import faust

from services.kafka import ensure_topics
from services.settings import Settings
from services.worker.app import create_app, ready_marker


def run_worker(settings: Settings, broker_url: str) -> None:
    """Provision the topics (idempotent), then run the Faust worker."""
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    ensure_topics(settings, broker_url)
    app = create_app(settings, broker_url)
    worker = faust.Worker(app, loglevel=settings.log_level.lower(), quiet=True)
    try:
        worker.execute_from_commandline()
    finally:
        with contextlib.suppress(FileNotFoundError):
            ready_marker(settings).unlink()
