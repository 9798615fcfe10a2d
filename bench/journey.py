"""Journey stage benchmark, without Kafka: how fast the pure engine and the stage (state
bytes in a dict store, deadline index, output records) run, and how big state gets.

This is the ceiling the journey agent works under; the end-to-end pipeline benchmark
(broker, identity, sink) is separate. Writes bench/results/journey-<UTC time>.json.

    .venv/bin/python bench/journey.py [--customers 100000] [--events 500000]
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.common import write_result  # noqa: E402
from services.journeys.engine import Engine  # noqa: E402
from services.journeys.loader import default_maps_dir, load_maps  # noqa: E402
from services.journeys.stage import JourneyStage  # noqa: E402
from services.journeys.state import Touchpoint  # noqa: E402

T0 = datetime(2026, 11, 2, tzinfo=UTC)
EXAMPLES = ROOT / "schemas" / "examples"


def traffic(customers: int, events: int, seed: int = 1) -> list[tuple[str, Touchpoint]]:
    """Events of the shipped example types, spread over customers and two weeks, in time order."""
    rng = random.Random(seed)
    templates = [json.loads(p.read_text()) for p in sorted(EXAMPLES.glob("*.json"))]
    weights = [8 if t["type"].startswith("web.") else 2 for t in templates]
    span = 14 * 24 * 3600
    out = []
    for i in range(events):
        template = rng.choices(templates, weights)[0]
        at = T0 + timedelta(seconds=span * i / events)
        attributes: dict[str, Any] = dict(template["attributes"])
        if "score" in attributes:
            attributes["score"] = rng.randint(0, 5)
        out.append(
            (
                f"cus-{rng.randrange(customers)}",
                Touchpoint(f"ev-{i}", template["type"], at, attributes),
            )
        )
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=int, default=100_000)
    parser.add_argument("--events", type=int, default=500_000)
    parser.add_argument("--batch", type=int, default=1000)
    args = parser.parse_args()

    maps = load_maps(default_maps_dir())
    events = traffic(args.customers, args.events)
    store: dict[str, bytes] = {}
    stage = JourneyStage(Engine(maps), store)
    flags = transitions = 0
    started = time.perf_counter()
    for i in range(0, len(events), args.batch):
        for out in stage.apply(events[i : i + args.batch]):
            flags += out.route == "flags"
            transitions += out.route == "transitions"
        flags += len(stage.tick())
    elapsed = time.perf_counter() - started
    sizes = sorted(len(v) for v in store.values())
    result = {
        "customers": len(store),
        "events": len(events),
        "seconds": round(elapsed, 2),
        "events_per_s": round(len(events) / elapsed),
        "flags": flags,
        "transitions": transitions,
        "state_bytes_mean": round(sum(sizes) / len(sizes)),
        "state_bytes_p99": sizes[int(len(sizes) * 0.99)],
        "state_bytes_max": sizes[-1],
        "targets": {"state_bytes_mean_max": 2048},
    }
    path = write_result("journey", result)
    print(
        f"journey stage: {result['events_per_s']:,} events/s over {len(events):,} events and "
        f"{len(store):,} customers ({elapsed:.1f} s); {flags:,} flags, "
        f"{transitions:,} transitions; "
        f"state {result['state_bytes_mean']} B mean, {result['state_bytes_p99']} B p99, "
        f"{result['state_bytes_max']} B max (target mean <= 2048)"
    )
    print(f"written to {path.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
