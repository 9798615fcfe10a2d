"""The Faust application: topics and thin agents around the pure pipeline stages.

Built by :func:`create_app` from settings, so tests and production wire it the
same way (one composition root) and each test can use its own topics and group.
"""

from __future__ import annotations

import logging
import os
from collections import Counter
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, NoReturn, cast

import faust
import orjson
from faust.streams import Stream
from faust.types import StreamT
from mode.types.signals import BaseSignalT

from schemas.records import SourceRecord
from services.journeys.engine import Engine
from services.journeys.loader import configured_maps_dir, load_maps
from services.journeys.stage import JourneyStage
from services.settings import Settings, bootstrap_servers
from services.worker.journey import TableStore, touchpoint_of
from services.worker.triage import triage

log = logging.getLogger("touchstream.worker")
EXIT_AGENT_FAILED = 70  # EX_SOFTWARE


def ready_marker(settings: Settings, pid: int | None = None) -> Path:
    """File a worker writes once it owns partitions and processes events."""
    return settings.run_dir / f"worker-{pid or os.getpid()}.ready"


def _origin(message: Any) -> SourceRecord:
    stamp = message.timestamp
    return SourceRecord(
        topic=message.topic,
        partition=message.partition,
        offset=message.offset,
        timestamp=datetime.fromtimestamp(stamp, UTC) if stamp else None,
    )


def create_app(settings: Settings, broker_url: str) -> faust.App:
    """The worker's Faust app: topics, the ``validate`` and ``journey`` agents, the journey
    state table and the deadline timer."""
    app = faust.App(
        settings.app_id,
        broker=[f"kafka://{server}" for server in bootstrap_servers(broker_url)],
        store=settings.table_store,
        datadir=str(settings.data_dir / "faust"),
        topic_partitions=settings.partitions,
        topic_replication_factor=settings.replication_factor,
        consumer_auto_offset_reset="earliest",
        producer_acks=-1,
        broker_session_timeout=settings.consumer_session_timeout,
        broker_heartbeat_interval=settings.consumer_session_timeout / 5,
        broker_rebalance_timeout=max(30.0, settings.consumer_session_timeout),
        web_enabled=False,
        autodiscover=False,
    )
    topics = settings.topics

    def bytes_topic(name: str) -> faust.TopicT:
        return app.topic(
            name,
            partitions=settings.partitions,
            key_type=bytes,
            value_type=bytes,
            key_serializer="raw",
            value_serializer="raw",
        )

    raw_topic = bytes_topic(topics.raw)
    outputs = {"resolved": bytes_topic(topics.resolved), "dlq": bytes_topic(topics.dlq)}
    counts: Counter[str] = Counter()

    async def validate(stream: StreamT[bytes]) -> AsyncIterator[None]:
        """Route each raw event to ``resolved`` or, with its reasons, to ``dlq``.

        ``triage`` never raises. Should sending fail, the process exits at once without
        committing: Faust would otherwise ack the batch, and a restart must re-read it.
        """
        try:
            async for events in cast(Stream[bytes], stream).take_events(
                settings.worker_batch_size, within=settings.worker_batch_timeout
            ):
                for event in events:
                    routed = triage(event.value, _origin(event.message), key=event.message.key)
                    await outputs[routed.route].send(key=routed.key, value=routed.value)
                    counts[routed.route] += 1
                yield None
        except Exception:
            _exit_uncommitted("validate")

    app.agent(raw_topic, name="validate")(validate)
    stage = _journey_stage(app, settings)
    journey_outputs = {
        "transitions": bytes_topic(topics.transitions),
        "flags": bytes_topic(topics.flags),
    }

    async def journey(stream: StreamT[bytes]) -> AsyncIterator[None]:
        """Move customers through the journey maps; send transitions and flags."""
        try:
            async for events in cast(Stream[bytes], stream).take_events(
                settings.worker_batch_size, within=settings.worker_batch_timeout
            ):
                for out in stage.apply(touchpoint_of(event.value) for event in events):
                    await journey_outputs[out.route].send(key=out.key, value=out.value)
                    counts[out.route] += 1
                yield None
        except Exception:
            _exit_uncommitted("journey")

    app.agent(outputs["resolved"], name="journey")(journey)

    async def expire_deadlines() -> None:
        try:
            for out in stage.tick():
                await journey_outputs[out.route].send(key=out.key, value=out.value)
                counts[out.route] += 1
        except Exception:
            _exit_uncommitted("journey deadlines")

    app.timer(interval=settings.deadline_check_interval)(expire_deadlines)

    async def report_progress() -> None:
        if counts:
            log.info("processed so far: %s", orjson.dumps(dict(counts)).decode())

    app.timer(interval=10.0)(report_progress)

    async def mark_ready(sender: Any, /, *_: Any, signal: BaseSignalT[Any], **__: Any) -> None:
        stage.rebuild_index(stage.store)
        marker = ready_marker(settings)
        marker.parent.mkdir(parents=True, exist_ok=True)
        marker.write_text(datetime.now(UTC).isoformat())

    app.on_rebalance_complete.connect(mark_ready)
    return app


def _journey_stage(app: faust.App, settings: Settings) -> JourneyStage:
    """The journey stage over a changelog-backed table of customer state bytes."""
    engine = Engine(
        load_maps(configured_maps_dir(settings)),
        lateness=timedelta(seconds=settings.allowed_lateness),
    )
    table = app.Table(
        "journey-state",
        partitions=settings.partitions,
        key_type=bytes,  # bytes keys and values: the raw serializer
        value_type=bytes,
        use_partitioner=True,
    )
    return JourneyStage(engine, TableStore(table))


def _exit_uncommitted(agent: str) -> NoReturn:
    """An agent failed: exit now, so Faust cannot ack (and commit) the batch on the way down;
    the restarted worker re-reads it, and idempotent state makes that harmless."""
    log.critical(
        "%s agent failed; exiting uncommitted so the batch is re-read", agent, exc_info=True
    )
    logging.shutdown()
    os._exit(EXIT_AGENT_FAILED)
