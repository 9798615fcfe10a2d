"""A scenario's sink records into a store through the real CRM sink (the records come from
:class:`services.simulate.inprocess.InProcessPipeline`)."""

from __future__ import annotations

from services.crm.records import Batch, decode
from services.crm.sink import CrmSink


def sink_all(sink: CrmSink, records: list[tuple[str, bytes]], size: int = 1000) -> None:
    """Write ``records`` through the CRM sink in batches of ``size``, as its consumer does."""
    for start in range(0, len(records), size):
        batch = Batch()
        for kind, value in records[start : start + size]:
            decode(kind, value, batch)
        sink.write(batch)
