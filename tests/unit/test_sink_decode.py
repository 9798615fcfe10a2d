"""The sink service decodes a large batch in chunks, letting the event loop run between them
(in the worker, the loop also runs the agents)."""

from __future__ import annotations

import asyncio
from typing import Any

import orjson
from aiokafka import ConsumerRecord
from sqlalchemy import create_engine

from services.crm import service
from services.crm.service import SinkService
from services.settings import Settings


def _transition(settings: Settings, offset: int) -> ConsumerRecord[bytes, bytes]:
    value = orjson.dumps(
        {
            "event_id": f"e{offset}",
            "journey": "purchase",
            "customer_id": f"c{offset % 7}",
            "from_stage": None,
            "to_stage": "browsing",
            "occurred_at": "2026-11-24T03:00:00+00:00",
        }
    )
    return ConsumerRecord(
        settings.topics.transitions, 0, offset, 0, 0, None, value, None, 0, len(value), ()
    )


def test_a_large_batch_is_decoded_with_turns_for_the_loop_between_chunks() -> None:
    settings = Settings()
    sink = SinkService(settings, "localhost:9092", create_engine("sqlite://"))
    records = [_transition(settings, i) for i in range(service.DECODE_CHUNK * 3 + 10)]
    producer: Any = None  # no record is undecodable, so nothing is dead-lettered

    async def run() -> tuple[int, int]:
        turns = 0
        finished = False

        async def other_agent() -> None:
            nonlocal turns
            while not finished:
                turns += 1
                await asyncio.sleep(0)

        other = asyncio.create_task(other_agent())
        batch = await sink._decode(records, producer)
        seen = turns  # the other task's turns while the batch was being decoded
        finished = True
        await other
        return seen, len(batch.transitions)

    turns, decoded = asyncio.run(run())
    assert decoded == len(records)
    assert turns >= 3  # one after each full chunk; without them it never ran
    sink.sink.close()
