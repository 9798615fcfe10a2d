"""Counts of the dead-letter topic by stage and reason, kept current by tailing it."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import Counter

import orjson
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.errors import KafkaError

from services.api.metrics import ApiMetrics
from services.settings import Settings, bootstrap_servers

log = logging.getLogger("touchstream.api")


async def watch_dead_letters(settings: Settings, broker_url: str, metrics: ApiMetrics) -> None:
    """Read the DLQ from its start and follow it; reconnect when the broker goes away."""
    counts: Counter[tuple[str, str]] = Counter()
    positions: dict[int, int] = {}
    while True:
        consumer = AIOKafkaConsumer(
            bootstrap_servers=bootstrap_servers(broker_url),
            client_id="touchstream-api-dlq-watch",
            group_id=None,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
        )
        try:
            await consumer.start()
            partitions = consumer.partitions_for_topic(settings.topics.dlq) or set()
            if not partitions:
                await asyncio.sleep(5)
                continue
            tps = [TopicPartition(settings.topics.dlq, p) for p in sorted(partitions)]
            consumer.assign(tps)
            for tp in tps:
                if tp.partition in positions:
                    consumer.seek(tp, positions[tp.partition])
                else:
                    await consumer.seek_to_beginning(tp)
            async for record in consumer:
                positions[record.partition] = record.offset + 1
                try:
                    letter = orjson.loads(record.value or b"{}")
                    key = (
                        str(letter.get("stage", "validate")),
                        str(letter.get("reason", "unknown")),
                    )
                except orjson.JSONDecodeError:
                    key = ("unknown", "unreadable_dead_letter")
                counts[key] += 1
                metrics.dead_letters.labels(*key).set(counts[key])
        except asyncio.CancelledError:
            raise
        except (KafkaError, OSError) as error:
            log.warning("dead-letter watch lost the broker (%s); retrying in 5 s", error)
            await asyncio.sleep(5)
        finally:
            with contextlib.suppress(Exception):
                await consumer.stop()
