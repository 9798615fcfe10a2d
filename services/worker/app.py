"""The Faust application: topics and thin agents around the pure pipeline stages.

Built by :func:`create_app` from settings, so tests and production wire it the
same way (one composition root) and each test can use its own topics and group.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections import Counter
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, NoReturn, cast

import faust
import orjson
from faust.exceptions import ConsumerNotStarted
from faust.streams import Stream
from faust.types import StreamT
from mode.types.signals import BaseSignalT

from schemas.records import SourceRecord
from services.crm.service import SinkService, run_sink
from services.identity.graph import GuardRails
from services.identity.stage import IdentityStage
from services.journeys.engine import Engine
from services.journeys.loader import configured_maps_dir, load_maps
from services.journeys.stage import JourneyStage
from services.settings import Settings, bootstrap_servers
from services.worker.backlog import BACKLOG_CHECK_INTERVAL, RawBacklog
from services.worker.fetch_guard import (
    STALL_CHECK_INTERVAL,
    KeepQueuedFlowControl,
    guarded_transport,
)
from services.worker.journey import TableStore, item_of, owner_partitioner, partition_of
from services.worker.outbox import ChangelogTable, Outbox
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
    """The worker's Faust app: topics, the ``validate``, ``identity`` and ``journey`` agents,
    their tables and the deadline timer."""
    app = faust.App(
        settings.app_id,
        broker=[f"kafka://{server}" for server in bootstrap_servers(broker_url)],
        store=settings.table_store,
        datadir=str(settings.data_dir / "faust"),
        topic_partitions=settings.partitions,
        topic_replication_factor=settings.replication_factor,
        consumer_auto_offset_reset="earliest",
        producer_acks=-1,
        # records to many partitions: wait a little to send them in few requests
        producer_linger_ms=settings.producer_linger_ms,
        producer_max_batch_size=512 * 1024,
        # a customer's control entries in the journey table go to the customer's partition
        producer_partitioner=owner_partitioner,
        broker_session_timeout=settings.consumer_session_timeout,
        broker_heartbeat_interval=settings.consumer_session_timeout / 5,
        broker_rebalance_timeout=max(30.0, settings.consumer_session_timeout),
        stream_buffer_maxsize=settings.worker_stream_buffer,
        web_enabled=False,
        autodiscover=False,
    )
    # before any stream queue exists: the queues register with it
    app.flow_control = KeepQueuedFlowControl(loop=app.loop)
    topics = settings.topics
    # a fetch that skips offsets of these (never compacted) topics is read again
    transport = app.transport = guarded_transport(
        app,
        [topics.raw, topics.valid, topics.resolved],
        fetch_max_wait_ms=settings.worker_fetch_max_wait_ms,
    )

    def bytes_topic(name: str, partitions: int = settings.partitions) -> faust.TopicT:
        return app.topic(
            name,
            partitions=partitions,
            key_type=bytes,
            value_type=bytes,
            key_serializer="raw",
            value_serializer="raw",
        )

    raw_topic = bytes_topic(topics.raw)
    outputs = {
        "valid": bytes_topic(topics.valid, partitions=1),
        "resolved": bytes_topic(topics.resolved),
        "identity": bytes_topic(topics.identity),
        "dlq": bytes_topic(topics.dlq),
        "transitions": bytes_topic(topics.transitions),
        "flags": bytes_topic(topics.flags),
    }
    counts: Counter[str] = Counter()
    identity, identity_table = _identity_stage(app, settings)
    stage, journey_table = _journey_stage(app, settings)
    names = {route: topic.get_topic_name() for route, topic in outputs.items()}
    for changelog in (identity_table, journey_table):
        names[changelog.route] = changelog.table.changelog_topic.get_topic_name()

    sending = asyncio.Lock()  # outboxes send one after another (Outbox.flush)

    def outbox() -> Outbox:
        """Where an agent or timer puts a batch's outputs (one each: they run concurrently)."""
        producer = lambda: cast(Any, app.producer)._ensure_producer()  # noqa: E731
        return Outbox(producer, names, owner_partitioner, counts, sending)

    async def validate(stream: StreamT[bytes]) -> AsyncIterator[None]:
        """Route each raw event to ``valid`` or, with its reasons, to ``dlq``.

        ``triage`` never raises. Should sending fail, the process exits at once without
        committing: Faust would otherwise ack the batch, and a restart must re-read it.
        """
        out = outbox()
        try:
            async for events in cast(Stream[bytes], stream).take_events(
                settings.worker_batch_size, within=settings.worker_batch_timeout
            ):
                out.add(triage(e.value, _origin(e.message), key=e.message.key) for e in events)
                await out.flush()
                yield None
        except Exception:
            _exit_uncommitted("validate")

    app.agent(raw_topic, name="validate")(validate)

    async def resolve(stream: StreamT[bytes]) -> AsyncIterator[None]:
        """The identity coordinator: one partition, so every identity decision is ordered."""
        out = outbox()
        try:
            async for events in cast(Stream[bytes], stream).take_events(
                settings.worker_batch_size, within=settings.worker_batch_timeout
            ):
                for event in events:
                    out.add(identity.resolve(event.value, event.message.offset))
                out.add(identity.flush(settings.partitions))
                out.add(identity_table.drain())
                await out.flush()
                yield None
        except Exception:
            _exit_uncommitted("identity")

    app.agent(outputs["valid"], name="identity")(resolve)

    async def journey(stream: StreamT[bytes]) -> AsyncIterator[None]:
        """Move customers through the journey maps; send transitions, flags and transfers."""
        out = outbox()
        try:
            async for events in cast(Stream[bytes], stream).take_events(
                settings.worker_batch_size, within=settings.worker_batch_timeout
            ):
                out.add(stage.apply(item_of(e.value, e.message.partition) for e in events))
                out.add(journey_table.drain())
                await out.flush()
                yield None
        except Exception:
            _exit_uncommitted("journey")

    app.agent(outputs["resolved"], name="journey")(journey)

    deadlines = outbox()

    async def expire_deadlines() -> None:
        try:
            deadlines.add(stage.tick())
            deadlines.add(journey_table.drain())
            await deadlines.flush()
        except Exception:
            _exit_uncommitted("journey deadlines")

    app.timer(interval=settings.deadline_check_interval)(expire_deadlines)

    watermarks = outbox()

    async def advance_event_time() -> None:
        """Watermarks also move when raw partitions go idle, with no batch to trigger it."""
        if not identity.owned:
            return
        try:
            watermarks.add(identity.flush(settings.partitions))
            watermarks.add(identity_table.drain())
            await watermarks.flush()
        except Exception:
            _exit_uncommitted("identity watermarks")

    app.timer(interval=settings.deadline_check_interval)(advance_event_time)

    backlog = RawBacklog(broker_url, topics.raw, settings.app_id)

    async def watch_raw_backlog() -> None:
        """Raw partitions with records still to validate hold event time back (see
        :mod:`services.worker.backlog`)."""
        if not identity.owned:
            return
        try:
            found = await asyncio.to_thread(backlog.partitions)
        except Exception:  # a sample gone wrong must not stop the worker
            log.exception("raw backlog: sampling the broker failed; keeping the last known")
            return
        if found is not None:
            identity.backlog = found

    app.timer(interval=BACKLOG_CHECK_INTERVAL)(watch_raw_backlog)

    async def close_backlog(sender: Any, /, *_: Any, **__: Any) -> None:
        backlog.close()

    app.on_before_shutdown.connect(close_backlog)

    sinks: list[SinkService] = []
    if settings.crm_sink_enabled:

        async def crm_sink() -> None:
            """The CRM sink, in this process with its own consumer group (see its module)."""
            try:
                await run_sink(settings, broker_url, sinks)
            except asyncio.CancelledError:
                raise
            except Exception:
                _exit_uncommitted("crm sink")

        app.task(crm_sink)

    async def report_progress() -> None:
        if counts:
            log.info("processed so far: %s", orjson.dumps(dict(counts)).decode())
        guard = transport.guard
        if guard.refetches or guard.lost or transport.stalls.rereads:
            log.warning(
                "fetches that skipped offsets: %d read again, %d offsets never readable; "
                "partitions read again after their commit stalled: %d",
                guard.refetches,
                guard.lost,
                transport.stalls.rereads,
            )
        if stage.too_late:
            log.warning(
                "journey: %d events more than TOUCHSTREAM_TOO_LATE_AFTER behind the watermark "
                "were not applied to journeys; the CRM store still has them",
                stage.too_late,
            )
        for sink in sinks:
            s = sink.stats
            state = f"store down, retry {s.retries}" if s.store_down_since else "ok"
            log.info(
                "crm sink (%s): %d records, %d new rows %s, %d dead letters",
                state,
                s.records,
                s.rows,
                orjson.dumps(s.written).decode(),
                s.dead_letters,
            )

    app.timer(interval=10.0)(report_progress)

    async def reread_stalled() -> None:
        """A fetched record that was never processed is read again (StallWatch)."""
        if app.rebalancing:
            return
        with contextlib.suppress(ConsumerNotStarted):  # not yet: nothing fetched to judge
            await cast(Any, app.consumer).reread_stalled()

    app.timer(interval=STALL_CHECK_INTERVAL)(reread_stalled)

    recovered = outbox()

    async def mark_ready(sender: Any, /, *_: Any, signal: BaseSignalT[Any], **__: Any) -> None:
        assigned = app.consumer.assignment()
        stage.assign(tp.partition for tp in assigned if tp.topic == topics.resolved)
        stage.rebuild_index(stage.store, lambda key: partition_of(key, settings.partitions))
        identity.owned = any(tp.topic == topics.valid for tp in assigned)
        identity.expect(f"{topics.raw}/{p}" for p in range(settings.partitions))
        identity.recover()
        recovered.add(identity_table.drain())  # nothing, unless recovering wrote state
        recovered.add(journey_table.drain())
        await recovered.flush()
        marker = ready_marker(settings)
        marker.parent.mkdir(parents=True, exist_ok=True)
        marker.write_text(datetime.now(UTC).isoformat())

    async def revoked(sender: Any, /, *_: Any, **__: Any) -> None:
        stage.revoke()  # marks from before would misjudge records read again

    app.on_partitions_revoked.connect(revoked)
    app.on_rebalance_complete.connect(mark_ready)
    return app


def _identity_stage(app: faust.App, settings: Settings) -> tuple[IdentityStage, ChangelogTable]:
    """The identity stage over a one-partition changelog-backed table (graph + event time)."""
    table = ChangelogTable(
        app.Table(
            "identity-graph",
            partitions=1,
            key_type=bytes,
            value_type=bytes,
            use_partitioner=True,
        ),
        "table:identity",
    )
    rails = GuardRails(
        max_emails=settings.identity_max_emails,
        max_phones=settings.identity_max_phones,
        max_anonymous_ids=settings.identity_max_anonymous_ids,
        max_accounts=settings.identity_max_account_ids,
        max_loyalty_ids=settings.identity_max_loyalty_ids,
    )
    stage = IdentityStage(
        table,
        rails=rails,
        lateness=timedelta(seconds=settings.allowed_lateness),
        idle_timeout=settings.watermark_idle_timeout,
    )
    return stage, table


def _journey_stage(app: faust.App, settings: Settings) -> tuple[JourneyStage, ChangelogTable]:
    """The journey stage over a changelog-backed table of customer state bytes."""
    engine = Engine(
        load_maps(configured_maps_dir(settings)),
        lateness=timedelta(seconds=settings.allowed_lateness),
    )
    table = ChangelogTable(
        app.Table(
            "journey-state",
            partitions=settings.partitions,
            key_type=bytes,  # bytes keys and values: the raw serializer
            value_type=bytes,
            use_partitioner=True,
        ),
        "table:journey",
    )
    stage = JourneyStage(
        engine,
        TableStore(table),
        event_time="records",
        too_late_after=timedelta(seconds=settings.too_late_after),
    )
    return stage, table


def _exit_uncommitted(agent: str) -> NoReturn:
    """An agent failed: exit now, so Faust cannot ack (and commit) the batch on the way down;
    the restarted worker re-reads it, and idempotent state makes that harmless."""
    log.critical(
        "%s agent failed; exiting uncommitted so the batch is re-read", agent, exc_info=True
    )
    logging.shutdown()
    os._exit(EXIT_AGENT_FAILED)
