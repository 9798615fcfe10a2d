"""Scenario generator benchmark: how long ``services.simulate.generate`` takes for the
demo's and the tests' sizes (``touchstream demo`` and the scenario tests make one each).

    .venv/bin/python bench/simulate.py [--customers 1000] [--days 30] [--repeat 5]

Prints the wall time of each repetition (the same seed, so the same scenario each time),
their median and the events a second, and writes them to ``bench/results/``. The target
is 3 s for 1,000 customers over 30 days on the reference machine: the demo makes its
scenario before any traffic flows, so this is the time a newcomer waits for it.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.common import code_version, write_result  # noqa: E402
from services.simulate import generate  # noqa: E402

TARGET_SECONDS = 3.0  # 1,000 customers over 30 days


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=int, default=1000)
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    if args.customers < 1 or args.days < 1 or args.repeat < 1:
        raise SystemExit("--customers, --days and --repeat must be at least 1")

    seconds: list[float] = []
    events = 0
    for run in range(1, args.repeat + 1):
        started = time.perf_counter()
        scenario = generate(args.customers, args.days, seed=args.seed)
        seconds.append(time.perf_counter() - started)
        events = len(scenario.events) + len(scenario.closing)
        print(f"  run {run}/{args.repeat}: {seconds[-1]:.2f} s, {events:,} events")
    median = statistics.median(seconds)
    result = {
        "code": code_version(),
        "customers": args.customers,
        "days": args.days,
        "seed": args.seed,
        "events": events,
        "seconds": [round(s, 3) for s in seconds],
        "median_s": round(median, 3),
        "events_per_s": round(events / median),
        "target_s": TARGET_SECONDS if (args.customers, args.days) == (1000, 30) else None,
    }
    path = write_result("simulate", result)
    verdict = ""
    if result["target_s"] is not None:
        met = "met" if median <= TARGET_SECONDS else "MISSED"
        verdict = f" (target {TARGET_SECONDS:.0f} s: {met})"
    print(
        f"generate({args.customers:,} customers, {args.days} days): median {median:.2f} s "
        f"of {args.repeat}, {result['events_per_s']:,} events/s{verdict}"
    )
    print(f"written to {path.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
