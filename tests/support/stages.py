"""A scenario's sink records into a store through the real CRM sink (the records come from
:class:`services.simulate.inprocess.InProcessPipeline`)."""

from __future__ import annotations

from typing import Any

from services.crm.records import Batch, decode
from services.crm.sink import CrmSink
from services.simulate.inprocess import InProcessPipeline
from services.store.db import engine_for, upgrade


def sink_all(sink: CrmSink, records: list[tuple[str, bytes]], size: int = 1000) -> None:
    """Write ``records`` through the CRM sink in batches of ``size``, as its consumer does."""
    for start in range(0, len(records), size):
        batch = Batch()
        for kind, value in records[start : start + size]:
            decode(kind, value, batch)
        sink.write(batch)


def reference_store(events: list[dict[str, Any]], url: str) -> None:
    """``events`` through the validate, identity and journey stages in this process (as one
    worker runs them, without a broker) and the real sink into the empty store at ``url``:
    the store of an uninterrupted run, to compare a run through real processes with."""
    upgrade(url)
    engine = engine_for(url)
    try:
        sink_all(CrmSink(engine), InProcessPipeline().run(events), size=5000)
    finally:
        engine.dispose()
