"""Ingestion benchmark: sustained accepted events/s over HTTP batches and via the SDK to Kafka.

Starts the embedded broker and a real ``touchstream api`` process, then
- HTTP: POSTs pre-encoded batches (default 500 events) to /v1/events with a few requests in
  flight; an event counts once the API answered 200, i.e. after the broker acknowledged it;
- SDK: ``Emitter.kafka`` sends the same events straight to Kafka and flushes.
Prints a table and writes JSON to bench/results/ingest-<UTC timestamp>.json.

    .venv/bin/python bench/ingest.py [--events 200000] [--batch 500] [--concurrency 4]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import httpx2 as httpx
import psutil

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.common import write_result  # noqa: E402
from services.embedded.broker import EmbeddedBroker  # noqa: E402
from services.embedded.process import ManagedProcess, free_port  # noqa: E402
from services.kafka import ensure_topics, read_to_end  # noqa: E402
from services.settings import Settings  # noqa: E402

KEY = "tsk_bench_key_0123456789abcdef"
EXAMPLES = ROOT / "schemas" / "examples"


def make_events(n: int, customers: int, tag: str) -> list[dict[str, Any]]:
    templates = [json.loads(p.read_text()) for p in sorted(EXAMPLES.glob("*.json"))]
    events = []
    for i in range(n):
        event = dict(templates[i % len(templates)])
        event["event_id"] = f"{tag}-{i:08d}"
        event["identity"] = {"customer_id": f"cus-{i % customers:06d}"}
        event.pop("source")
        events.append(event)
    return events


async def http_load(
    url: str, bodies: list[bytes], per_batch: int, concurrency: int
) -> dict[str, Any]:
    headers = {"Authorization": f"Bearer {KEY}", "Content-Type": "application/json"}
    latencies: list[float] = []
    accepted = 0
    queue: asyncio.Queue[bytes] = asyncio.Queue()
    for body in bodies:
        queue.put_nowait(body)

    async with httpx.AsyncClient(base_url=url, timeout=60) as client:

        async def worker() -> None:
            nonlocal accepted
            while not queue.empty():
                body = queue.get_nowait()
                started = time.perf_counter()
                response = await client.post("/v1/events", content=body, headers=headers)
                latencies.append(time.perf_counter() - started)
                if response.status_code != 200:
                    raise RuntimeError(f"HTTP {response.status_code}: {response.text[:300]}")
                accepted += response.json()["accepted"]

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        elapsed = time.perf_counter() - started
    latencies.sort()
    return {
        "events": accepted,
        "requests": len(bodies),
        "batch_size": per_batch,
        "concurrency": concurrency,
        "seconds": round(elapsed, 3),
        "events_per_s": round(accepted / elapsed),
        "request_p50_ms": round(latencies[len(latencies) // 2] * 1000, 1),
        "request_p99_ms": round(latencies[int(len(latencies) * 0.99)] * 1000, 1),
    }


def sdk_load(broker_url: str, topic: str, events: list[dict[str, Any]]) -> dict[str, Any]:
    from services.sdk import Emitter

    started = time.perf_counter()
    with Emitter.kafka("bench-sdk", broker_url, topic=topic) as emitter:
        for event in events:
            emitter.emit(event)
        report = emitter.flush()
    elapsed = time.perf_counter() - started
    if report.failed:
        raise RuntimeError(f"SDK: {len(report.failed)} events failed, e.g. {report.failed[:3]}")
    return {
        "events": report.sent,
        "seconds": round(elapsed, 3),
        "events_per_s": round(report.sent / elapsed),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--batch", type=int, default=500)
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--customers", type=int, default=20_000)
    parser.add_argument("--skip-sdk", action="store_true")
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="touchstream-bench-"))
    broker = EmbeddedBroker("127.0.0.1", 0, work / "broker.log")
    broker.start(timeout=30)
    tag = uuid.uuid4().hex[:6]
    settings = Settings(
        broker_url=broker.url,
        data_dir=work / "data",
        topic_prefix=f"bench{tag}.",
        partitions=4,
        ingest_keys=f"bench:{KEY}",
    )
    ensure_topics(settings, broker.url)
    port = free_port()
    env = {**os.environ, **settings.to_env(), "TOUCHSTREAM_API_PORT": str(port)}
    api = ManagedProcess(
        "api", [sys.executable, "-m", "services.cli", "api"], work / "api.log", env
    )
    api.start()
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(100):
            try:
                httpx.get(f"{url}/health", timeout=1)
                break
            except httpx.HTTPError:
                time.sleep(0.1)
        events = make_events(args.events, args.customers, f"h{tag}")
        bodies = [
            json.dumps(events[i : i + args.batch]).encode()
            for i in range(0, len(events), args.batch)
        ]
        warm = asyncio.run(http_load(url, bodies[:4], args.batch, 1))
        http = asyncio.run(http_load(url, bodies[4:], args.batch, args.concurrency))
        api_rss = psutil.Process(api.pid).memory_info().rss
        produced = sum(1 for _ in read_to_end(broker.url, settings.topics.raw, timeout=120))
        expected = warm["events"] + http["events"]
        if produced != expected:
            raise RuntimeError(
                f"raw topic holds {produced} events, the API acknowledged {expected}"
            )
        sdk = None
        if not args.skip_sdk:
            sdk = sdk_load(
                broker.url, f"bench{tag}.sdk", make_events(args.events, args.customers, f"s{tag}")
            )
    finally:
        api.stop()
        broker.stop()

    result = {
        "http": {**http, "api_rss_mib": round(api_rss / 2**20, 1), "raw_records_checked": produced},
        "sdk_kafka": sdk,
        "target_http_events_per_s": 20_000,
    }
    path = write_result("ingest", result)
    print(
        f"HTTP /v1/events, batches of {args.batch}, {args.concurrency} in flight: "
        f"{http['events_per_s']:,} events/s accepted ({http['events']:,} events in "
        f"{http['seconds']} s; request p50 {http['request_p50_ms']} ms, p99 "
        f"{http['request_p99_ms']} ms; API RSS {result['http']['api_rss_mib']} MiB)"
    )
    if sdk:
        rate, count, seconds = sdk["events_per_s"], sdk["events"], sdk["seconds"]
        print(f"SDK to Kafka: {rate:,} events/s ({count:,} in {seconds} s)")
    print(
        f"target HTTP >= 20,000 events/s: {'met' if http['events_per_s'] >= 20_000 else 'NOT met'}"
    )
    print(f"written to {path.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
