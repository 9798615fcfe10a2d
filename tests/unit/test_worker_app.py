"""The worker's Faust app takes its stream settings from Touchstream's."""

from __future__ import annotations

from pathlib import Path

from services.settings import Settings
from services.worker.app import create_app


def test_each_agent_buffers_worker_stream_buffer_records(tmp_path: Path) -> None:
    settings = Settings(worker_stream_buffer=123, data_dir=tmp_path)
    app = create_app(settings, "127.0.0.1:9")  # nothing connects until the app starts
    for name in ("validate", "identity", "journey"):
        channel = app.agents[name].channel
        assert channel.queue.maxsize == 123, name
