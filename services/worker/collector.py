"""The garbage collector in the stream processes (worker, sink).

With Python's default thresholds a worker under load ran a full collection every 2-3 s,
120-220 ms each, during which no agent runs: records in flight (fetched, batched, being
written) live just long enough to be promoted out of the young generation, and enough
promotions make Python scan the whole heap. A higher first threshold lets most of them
die young; freezing what exists at start-up (modules, the app, the journey maps) keeps it
out of every later scan. Cyclic garbage is still collected; only its timing changes."""

from __future__ import annotations

import gc


def tune_collector(young: int) -> None:
    """Freeze the objects made so far and collect the young generation after ``young``
    allocations (0: leave Python's defaults)."""
    if young <= 0:
        return
    gc.collect()  # what is garbage already is not frozen with the rest
    gc.freeze()
    _, middle, old = gc.get_threshold()
    gc.set_threshold(young, middle, old)
