"""Identity graph benchmark: how fast the pure graph resolves events (the ceiling of the
single-partition identity coordinator, docs/adr/0001-identity-resolution.md).

    .venv/bin/python bench/identity.py [--people 100000] [--events 500000]
"""

from __future__ import annotations

import argparse
import random
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.common import write_result  # noqa: E402
from services.identity.graph import IdentityGraph  # noqa: E402


def identities(people: int, events: int, seed: int = 1) -> list[dict[str, str]]:
    """Mostly anonymous browsing (two devices a person), a quarter with a login email, a tenth
    at a till with a loyalty card (half of those also giving the email)."""
    rng = random.Random(seed)
    out = []
    for _ in range(events):
        person = rng.randrange(people)
        identity = {"anonymous_id": f"anon-{person}-{rng.randrange(2)}"}
        roll = rng.random()
        if roll < 0.25:
            identity["email"] = f"p{person}@example.com"
        elif roll < 0.35:
            identity = {"loyalty_id": f"LOY-{person}"}
            if rng.random() < 0.5:
                identity["email"] = f"p{person}@example.com"
        out.append(identity)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--people", type=int, default=100_000)
    parser.add_argument("--events", type=int, default=500_000)
    args = parser.parse_args()
    batch = identities(args.people, args.events)
    graph = IdentityGraph()
    merges = refusals = 0
    started = time.perf_counter()
    for i, identity in enumerate(batch):
        resolution = graph.resolve(identity, f"e{i}")
        merges += len(resolution.merges)
        refusals += len(resolution.refusals)
    elapsed = time.perf_counter() - started
    result = {
        "people": args.people,
        "events": args.events,
        "seconds": round(elapsed, 2),
        "events_per_s": round(args.events / elapsed),
        "profiles": len(graph.profiles),
        "identifiers": len(graph.owner),
        "merges": merges,
        "refusals": refusals,
    }
    path = write_result("identity", result)
    print(
        f"identity graph: {result['events_per_s']:,} events/s ({args.events:,} events, "
        f"{args.people:,} people, {elapsed:.1f} s); {len(graph.profiles):,} profiles, "
        f"{merges:,} merges, {refusals:,} refusals"
    )
    print(f"written to {path.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
