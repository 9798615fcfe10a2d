"""The worker's Faust app takes its stream settings from Touchstream's."""

from __future__ import annotations

import asyncio
from pathlib import Path

from services.settings import Settings
from services.worker.app import create_app


def test_each_agent_buffers_worker_stream_buffer_records(tmp_path: Path) -> None:
    settings = Settings(worker_stream_buffer=123, data_dir=tmp_path)
    app = create_app(settings, "127.0.0.1:9")  # nothing connects until the app starts
    for name in ("validate", "identity", "journey"):
        channel = app.agents[name].channel
        assert channel.queue.maxsize == 123, name


def test_the_worker_consumer_lets_the_broker_hold_a_fetch_worker_fetch_max_wait_ms(
    tmp_path: Path,
) -> None:
    settings = Settings(worker_fetch_max_wait_ms=77, data_dir=tmp_path)
    app = create_app(settings, "127.0.0.1:9")

    async def made() -> int:  # aiokafka makes its consumers in a running loop
        thread = app.consumer._thread  # the consumer's thread, as the worker starts it
        consumer = thread._create_worker_consumer(app.transport)
        try:
            return int(consumer._fetch_max_wait_ms)
        finally:
            await consumer.stop()  # never started: closes nothing but its client

    assert asyncio.run(made()) == 77
