"""End to end: validate, identity, journey and the CRM sink into PostgreSQL, one worker.

One command, on a fresh embedded broker and a throwaway PostgreSQL cluster:

1. **input**: a ``services.simulate`` scenario of ``--customers`` people (the first
   ``--events`` events in emission order, then the scenario's closing clock events) keyed
   and partitioned as ``touchstream emit`` sends them, loaded into ``touchpoints.raw``
   before anything reads it;
2. **raw ceiling**: a bare aiokafka consumer reads the topic from the start and parses
   every value with ``orjson.loads``: the most a Python consumer gets out of this broker
   on this machine;
   **stage ceiling**: ``triage``, ``IdentityStage`` and ``JourneyStage`` on the same
   events in this process, with no Kafka and no store (bench/stages.py's pure stages): one
   worker is one Python process, so the three chained bound what its stages can do;
3. **pipeline**: one ``touchstream worker`` (CRM sink inside, as deployed) starts on the
   loaded topic. Committed offsets of the worker's group (validate on raw, identity on
   valid, journey on resolved) and of the sink's group (resolved, identity, transitions,
   flags) are sampled every second; the run is done when every one of them is at its
   topic's end on two samples running. **events/s** is the input's events over the time
   from the worker's first committed offset on raw (its first read, within a second) to
   the sink's last commit, which follows its last row's transaction. Per-stage rates are
   each stage's steady rate (10 % to 90 % of its input);
4. **latency**: with the worker caught up, a further scenario (later days, other people and
   ids) is sent at each of ``--rates`` events/s (2,000, the target's load, then 200, which
   one worker keeps up with) for ``--latency-seconds``; latency is the time from
   sending an event to the flag record it triggered (its Kafka timestamp), for the rules
   an event triggers (``event``, ``count``, ``sequence``: the flag's last evidence event);
   ``absence`` and ``stage_stall`` flags wait for event time by design and are left out.
   The same run gives every sent event's time to its ``valid`` and ``resolved`` records
   (``every_event``): thousands of samples where the flags are a few dozen;
5. **memory**: the worker's peak RSS (the kernel's high-water mark), and state bytes per
   customer: the journey-state changelog's live values over the customers they hold.

Writes bench/results/pipeline-<UTC time>.json.

    .venv/bin/python bench/pipeline.py [--customers 100000] [--events 500000]
    .venv/bin/python bench/pipeline.py --quick      # 5,000 customers, 20,000 events
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import math
import os
import re
import shutil
import sys
import tempfile
import time
import uuid
from collections import Counter
from datetime import timedelta
from pathlib import Path
from typing import Any

import orjson
import psutil
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka import TopicPartition as AioPartition
from kafka import TopicPartition

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.common import code_version, write_result  # noqa: E402
from bench.stages import (  # noqa: E402
    Ends,
    Others,
    accepted_records,
    load,
    peak_rss,
    pure_line,
    pure_stages,
    raw_records,
    start_worker,
    steady_rate,
    with_validate,
)
from services.crm.service import sink_group, sink_topics  # noqa: E402
from services.embedded.broker import EmbeddedBroker  # noqa: E402
from services.embedded.postgres import ThrowawayPostgres  # noqa: E402
from services.embedded.process import ManagedProcess  # noqa: E402
from services.identity.stage import is_control  # noqa: E402
from services.journeys.loader import default_maps_dir, load_maps  # noqa: E402
from services.kafka import admin_client, ensure_topics, read_to_end  # noqa: E402
from services.settings import Settings, bootstrap_servers  # noqa: E402
from services.simulate import generate  # noqa: E402
from services.simulate.scenario import START  # noqa: E402
from services.store.db import upgrade  # noqa: E402

TARGETS = {"events_per_s": 25_000, "p99_latency_ms": 250, "state_bytes_per_customer": 2048}
TRIGGERED = ("event", "count", "sequence")  # rule kinds an arriving event fires at once
EVENTS_PER_CUSTOMER_DAY = 2.0  # about what the scenario makes: to pick enough days


def scenario(customers: int, events: int, seed: int, start_day: int) -> list[dict[str, Any]]:
    """The first ``events`` events of a scenario (emission order) and its closing events."""
    days = max(1, math.ceil(events / (customers * EVENTS_PER_CUSTOMER_DAY)))
    while True:
        made = generate(customers, days, seed=seed, start=START + timedelta(days=start_day))
        if len(made.events) >= events or days >= 60:
            return made.events[:events] + made.closing
        days += 1


# --- the raw ceiling ----------------------------------------------------------------------


async def _raw_ceiling(broker_url: str, topic: str, partitions: int, expected: int) -> float:
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap_servers(broker_url),
        group_id=None,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
    )
    await consumer.start()
    try:
        tps = [AioPartition(topic, p) for p in range(partitions)]
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        parsed, started = 0, None
        while parsed < expected:
            fetched = await consumer.getmany(timeout_ms=1000, max_records=10_000)
            if started is None and fetched:
                started = time.perf_counter()
            for records in fetched.values():
                for record in records:
                    orjson.loads(record.value)  # type: ignore[arg-type]
                    parsed += 1
        assert started is not None
        return parsed / (time.perf_counter() - started)
    finally:
        await consumer.stop()


# --- the stage ceiling ---------------------------------------------------------------------


def stage_ceiling(raw: list[tuple[bytes | None, bytes, int]], settings: Settings) -> dict[str, Any]:
    """The stages' own work on the run's input, in this process with no Kafka and no store:
    ``triage``, then ``IdentityStage`` and ``JourneyStage`` over dicts (bench/stages.py). One
    worker is one Python process, so its stages share one core: the chained rate bounds what
    any arrangement of them in one worker can do, before the CRM sink's work."""
    valid, validate_seconds = accepted_records(raw, settings.topics.raw)
    pure = with_validate(pure_stages(valid, settings, settings.worker_batch_size), validate_seconds)
    del valid
    gc.collect()
    return pure


# --- the pipeline, sampled ----------------------------------------------------------------


class Groups:
    """Committed offsets of the worker's and the sink's groups against their topics' ends."""

    def __init__(self, broker_url: str, settings: Settings) -> None:
        t, n = settings.topics, settings.partitions
        self.stages = {
            "validate": (settings.app_id, t.raw, n),
            "identity": (settings.app_id, t.valid, 1),
            "journey": (settings.app_id, t.resolved, n),
        }
        for topic, kind in sink_topics(settings).items():
            parts = 1 if topic == t.identity else n
            self.stages[f"sink_{kind}"] = (sink_group(settings), topic, parts)
        self.admin = admin_client(broker_url)
        self.ends = Ends(broker_url)

    def tps(self, name: str) -> list[TopicPartition]:
        _, topic, parts = self.stages[name]
        return [TopicPartition(topic, p) for p in range(parts)]

    def sample(self) -> dict[str, tuple[int, int]]:
        """Per stage: (committed, end)."""
        every = [tp for name in self.stages for tp in self.tps(name)]
        ends = self.ends(every)
        committed: dict[Any, Any] = {}
        for group in {g for g, _, _ in self.stages.values()}:
            committed[group] = self.admin.list_group_offsets({group: every}).get(group, {})
        out = {}
        for name, (group, _, _) in self.stages.items():
            done = sum(
                max(0, committed[group][tp].offset) if tp in committed[group] else 0
                for tp in self.tps(name)
            )
            out[name] = (done, sum(ends[tp] for tp in self.tps(name)))
        return out

    def close(self) -> None:
        self.ends.close()
        self.admin.close()


def follow(
    groups: Groups, process: psutil.Process, others: Others, timeout: float, label: str
) -> tuple[list[dict[str, Any]], float | None, float]:
    """Sample every second until every stage is at its end on two samples running; the
    samples, the time of the first committed offset on raw and the time it was done
    (monotonic clock)."""
    samples: list[dict[str, Any]] = []
    first_read: float | None = None
    done_at: float | None = None
    started = tick = time.monotonic()
    while True:
        tick += 1.0
        time.sleep(max(0.0, tick - time.monotonic()))
        if not process.is_running():
            raise RuntimeError("the worker exited")
        state = groups.sample()
        now = time.monotonic()
        if first_read is None and state["validate"][0] > 0:
            first_read = now
        sample: dict[str, Any] = {"t": round(now - started, 2)}
        for name, (done, end) in state.items():
            sample[name], sample[f"{name}_end"] = done, end
        sample["rss_mib"] = round(process.memory_info().rss / 2**20, 1)
        sample["others_cores"] = round(others.cores(), 2)
        samples.append(sample)
        # raw is loaded before the worker starts; a later topic may stay empty (no merges)
        caught_up = state["validate"][1] > 0 and all(done == end for done, end in state.values())
        print(
            f"  {label} {sample['t']:7.1f} s  "
            + "  ".join(f"{n} {d:,}/{e:,}" for n, (d, e) in state.items())
            + f"  rss {sample['rss_mib']:,.0f} MiB  others {sample['others_cores']:.1f}",
            flush=True,
        )
        if caught_up and done_at is not None:
            return samples, first_read, done_at
        done_at = now if caught_up else None
        if now - started > timeout:
            raise RuntimeError(f"{label}: not done after {timeout:.0f} s")


# --- latency at a fixed rate ------------------------------------------------------------


async def _paced(
    broker_url: str, topic: str, records: list[tuple[bytes | None, bytes, int]], rate: int
) -> dict[str, float]:
    """Send ``records`` at ``rate`` a second in 10 ms slices; each event id's send time
    (epoch seconds, as Kafka timestamps count)."""
    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap_servers(broker_url), acks="all", linger_ms=1
    )
    await producer.start()
    sent: dict[str, float] = {}
    try:
        started = time.monotonic()
        pending = []
        for i, (key, value, partition) in enumerate(records):
            due = started + i / rate
            if due > time.monotonic():
                await asyncio.sleep(due - time.monotonic())
            sent[orjson.loads(value)["event_id"]] = time.time()
            pending.append(await producer.send(topic, value, key=key, partition=partition))
        await asyncio.gather(*pending)
    finally:
        await producer.stop()
    return sent


def latencies(
    broker_url: str,
    settings: Settings,
    sent: dict[str, float],
    kinds: dict[str, str],
    starts: Starts,
) -> dict[str, Any]:
    """Milliseconds from sending a flag's last evidence event to the flag record, and how
    that splits into the hops: send to the event's ``valid`` record (validate), to its
    ``resolved`` record (identity), to the flag (journey), each a Kafka timestamp. The
    first two hops also over every paced event (``every_event``): a few flags make a rough p99,
    thousands of events a steadier one. Topics are read from ``starts`` (their ends before
    the paced events were sent), not from the bulk run's records."""
    by_kind: dict[str, list[float]] = {}
    skipped: Counter[str] = Counter()
    last: list[tuple[str, float, float]] = []  # evidence event, sent, flag's timestamp
    t = settings.topics
    for record in read_to_end(broker_url, t.flags, start=starts.get(t.flags)):
        flag = orjson.loads(record.value)
        kind = kinds.get(flag.get("rule_id", ""), "?")
        times = [(sent[e], e) for e in flag.get("evidence") or () if e in sent]
        if not times:
            continue  # a flag of the bulk run
        if kind not in TRIGGERED:
            skipped[kind] += 1
            continue
        at, event = max(times)
        by_kind.setdefault(kind, []).append(record.timestamp / 1000 - at)
        last.append((event, at, record.timestamp / 1000))
    every = sorted(x for xs in by_kind.values() for x in xs)
    wanted = set(sent)
    valid = stamped(broker_url, t.valid, wanted, starts.get(t.valid))
    resolved = stamped(broker_url, t.resolved, wanted, starts.get(t.resolved))
    return {
        "flags": len(every),
        "by_kind": {k: len(v) for k, v in by_kind.items()},
        "left_out": dict(skipped),
        **{f"p{q}_ms": percentile_ms(every, q) for q in (50, 90, 99)},
        "max_ms": round(every[-1] * 1000) if every else None,
        "hops": hops(last, valid, resolved),
        "every_event": {
            "sent": len(sent),
            "to_valid": spread([valid[e] - at for e, at in sent.items() if e in valid]),
            "to_resolved": spread([resolved[e] - at for e, at in sent.items() if e in resolved]),
        },
    }


_EVENT_ID = re.compile(rb'"event_id":"([^"]+)"')
Starts = dict[str, dict[int, int]]  # topic -> partition -> offset to read from


def topic_ends(ends: Ends, settings: Settings) -> Starts:
    """Where ``valid``, ``resolved`` and ``flags`` end now: a latency phase reads from there."""
    t = settings.topics
    counts = {t.valid: 1, t.resolved: settings.partitions, t.flags: settings.partitions}
    found = ends([TopicPartition(topic, p) for topic, n in counts.items() for p in range(n)])
    starts: Starts = {}
    for tp, offset in found.items():
        starts.setdefault(tp.topic, {})[tp.partition] = offset
    return starts


def stamped(
    broker_url: str, topic: str, wanted: set[str], start: dict[int, int] | None = None
) -> dict[str, float]:
    """The Kafka timestamp (epoch seconds) of each wanted event's record on ``topic`` (the
    first, should it be there twice) from ``start``; control records are skipped."""
    found: dict[str, float] = {}
    for record in read_to_end(broker_url, topic, timeout=600, start=start):
        value = record.value or b""
        if is_control(value):
            continue
        match = _EVENT_ID.search(value)  # the event's own id comes first in both formats
        if match is not None:
            event = match.group(1).decode()
            if event in wanted and event not in found:
                found[event] = record.timestamp / 1000
    return found


def hops(
    last: list[tuple[str, float, float]], valid: dict[str, float], resolved: dict[str, float]
) -> dict[str, Any]:
    """Per hop, p50 / p99 / max milliseconds over the flags whose evidence was found on both
    ``valid`` and ``resolved`` (each event's Kafka timestamp there)."""
    split: dict[str, list[float]] = {"validate": [], "identity": [], "journey": []}
    for event, at, flagged in last:
        if event in valid and event in resolved:
            split["validate"].append(valid[event] - at)
            split["identity"].append(resolved[event] - valid[event])
            split["journey"].append(flagged - resolved[event])
    return {"flags": len(split["validate"])} | {hop: spread(v) for hop, v in split.items()}


def spread(values: list[float]) -> dict[str, Any]:
    """How many, and p50 / p99 / max milliseconds of ``values`` (seconds)."""
    values = sorted(values)
    return {
        "n": len(values),
        "p50_ms": percentile_ms(values, 50),
        "p99_ms": percentile_ms(values, 99),
        "max_ms": round(values[-1] * 1000, 1) if values else None,
    }


def percentile_ms(values: list[float], q: int) -> float | None:
    if not values:
        return None
    return round(values[min(len(values) - 1, math.ceil(q / 100 * len(values)) - 1)] * 1000, 1)


# --- state --------------------------------------------------------------------------------


def state_bytes(broker_url: str, settings: Settings) -> dict[str, Any]:
    """Live journey-state values per customer (the changelog's last value of each key;
    control entries, keyed ``\\0kind\\0...``, apart)."""
    live: dict[bytes, int] = {}
    changelog = f"{settings.app_id}-journey-state-changelog"
    # hundreds of thousands of records through kafka-python: more than read_to_end's 30 s
    for record in read_to_end(broker_url, changelog, timeout=600):
        if record.value is None:
            live.pop(record.key, None)
        else:
            live[record.key] = len(record.value)
    customers = {k: v for k, v in live.items() if not k.startswith((b"\0", b'"\\u0000'))}
    sizes = sorted(customers.values())
    return {
        "customers": len(sizes),
        "bytes_per_customer_mean": round(sum(sizes) / len(sizes)) if sizes else None,
        "bytes_per_customer_p99": sizes[int(0.99 * (len(sizes) - 1))] if sizes else None,
        "bytes_max": sizes[-1] if sizes else None,
        "control_entries": len(live) - len(sizes),
    }


# --- the run ------------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=int, default=100_000)
    parser.add_argument("--events", type=int, default=500_000)
    parser.add_argument("--partitions", type=int, default=4)
    parser.add_argument(
        "--rates", default="2000,200", help="events/s of the latency runs, one after the other"
    )
    parser.add_argument("--latency-seconds", type=float, default=30)
    parser.add_argument("--timeout", type=float, default=7200, help="most seconds a phase")
    parser.add_argument("--seed", type=int, default=11)
    parser.add_argument("--quick", action="store_true", help="5,000 customers, 20,000 events")
    parser.add_argument(
        "--sink-process",
        action="store_true",
        help="the CRM sink as its own `touchstream sink` process (the worker runs none)",
    )
    parser.add_argument(
        "--keep-logs",
        type=Path,
        metavar="DIR",
        help="copy the run's logs (broker, worker, sink) here before the run's files go",
    )
    args = parser.parse_args()
    if args.quick:
        args.customers, args.events, args.latency_seconds = 5000, 20_000, 10

    began = time.perf_counter()
    print(f"input: {args.customers:,} customers, {args.events:,} events ...")
    events = scenario(args.customers, args.events, args.seed, 0)
    people = len({e["identity"].get("customer_id") or str(e["identity"]) for e in events})
    raw = raw_records(events, args.partitions)
    paced_rates = [int(r) for r in args.rates.split(",")]
    paced = []
    for i, rate in enumerate(paced_rates):
        count = int(rate * args.latency_seconds)
        later = scenario(max(500, count // 4), count, args.seed + 1 + i, 60 * (i + 1))
        body = [e for e in later if not e["type"].startswith("clock")]
        paced.append(raw_records(body, args.partitions))
    del events, later
    gc.collect()
    gc.freeze()
    print(f"  {len(raw):,} events, made in {time.perf_counter() - began:.0f} s")
    kinds = {r.id: r.kind for j in load_maps(default_maps_dir()).values() for r in j.rules}
    result: dict[str, Any] = {
        "code": code_version(),
        "customers": args.customers,
        "identities_seen": people,
        "events": len(raw),
        "partitions": args.partitions,
        "raw_bytes_mean": round(sum(len(v) for _, v, _ in raw) / len(raw)),
        "targets": TARGETS,
        "sink": "own process" if args.sink_process else "in the worker",
    }
    work = Path(tempfile.mkdtemp(prefix="touchstream-bench-pipeline-"))
    broker = EmbeddedBroker("127.0.0.1", 0, work / "broker.log")
    cluster = ThrowawayPostgres()
    worker = sink = None
    try:
        broker.start(timeout=30)
        cluster.start()
        tag = uuid.uuid4().hex[:8]
        settings = Settings(
            broker_url=broker.url,
            database_url=cluster.url,
            data_dir=work / "data",
            topic_prefix=f"bench{tag}.",
            app_id=f"bench-pipeline-{tag}",
            partitions=args.partitions,
            table_store="memory://",
            log_level="INFO",
        )
        result["worker_settings"] = {  # TOUCHSTREAM_* variables of the run apply too
            "worker_batch_size": settings.worker_batch_size,
            "worker_batch_timeout": settings.worker_batch_timeout,
            "worker_stream_buffer": settings.worker_stream_buffer,
            "worker_fetch_max_wait_ms": settings.worker_fetch_max_wait_ms,
            "producer_linger_ms": settings.producer_linger_ms,
            "crm_sink_batch_size": settings.crm_sink_batch_size,
        }
        upgrade(settings.store_url())
        ensure_topics(settings, broker.url)
        seconds = load(broker.url, settings.topics.raw, raw)
        print(f"  loaded into {settings.topics.raw} in {seconds:.1f} s")
        result["load_seconds"] = round(seconds, 1)

        print("raw ceiling: a bare aiokafka consumer parsing every value ...")
        ceiling = asyncio.run(
            _raw_ceiling(broker.url, settings.topics.raw, args.partitions, len(raw))
        )
        result["raw_ceiling_events_per_s"] = round(ceiling)
        print(f"  {ceiling:,.0f} events/s")

        print("stage ceiling: validate, identity and journey on the same events, no Kafka ...")
        result["stage_ceiling"] = stage_ceiling(raw, settings)
        print(f"  {pure_line(result['stage_ceiling'])}")

        where = "its own process" if args.sink_process else "the worker"
        print(f"pipeline: one worker, CRM sink into PostgreSQL in {where} ...")
        if args.sink_process:
            sink = start_sink(settings)
            settings = settings.model_copy(update={"crm_sink_enabled": False})
        worker, to_ready = start_worker(settings)
        process = psutil.Process(worker.pid)
        ours = [os.getpid(), worker.pid, broker.process.pid] + ([sink.pid] if sink else [])
        others = Others(*ours)
        groups = Groups(broker.url, settings)
        try:
            samples, first_read, done_at = follow(groups, process, others, args.timeout, "bulk")
            assert first_read is not None
            elapsed = done_at - first_read
            rates = {
                name: round(steady_rate(samples, name, samples[-1][f"{name}_end"]) or 0)
                for name in groups.stages
            }
            bulk = {
                "time_to_ready_s": round(to_ready, 1),
                "seconds": round(elapsed, 1),
                "events_per_s": round(len(raw) / elapsed),
                "steady_records_per_s": rates,
                "records": {n: samples[-1][f"{n}_end"] for n in groups.stages},
                "worker_rss_peak_mib_sampled": max(s["rss_mib"] for s in samples),
                "other_processes": others.total(),
                "samples": samples,
            }
            result["pipeline"] = bulk
            result["ratio_to_raw_ceiling"] = round(bulk["events_per_s"] / ceiling, 4)
            staged = result["stage_ceiling"]["validate_identity_journey"]["events_per_s"]
            result["ratio_to_stage_ceiling"] = round(bulk["events_per_s"] / staged, 4)
            print(
                f"  {bulk['events_per_s']:,} events/s end to end "
                f"({result['ratio_to_raw_ceiling']:.2%} of the raw ceiling)"
            )

            result["latency"] = []
            for rate, records in zip(paced_rates, paced, strict=True):
                print(f"latency: {len(records):,} events at {rate:,}/s ...")
                others.cores()
                starts = topic_ends(groups.ends, settings)
                sent = asyncio.run(_paced(broker.url, settings.topics.raw, records, rate))
                lat_samples, _, _ = follow(groups, process, others, args.timeout, f"{rate}/s")
                measured = latencies(broker.url, settings, sent, kinds, starts) | {
                    "rate": rate,
                    "events": len(records),
                    "drained_after_s": lat_samples[-1]["t"],
                    "other_processes_cores": round(
                        sum(s["others_cores"] for s in lat_samples) / len(lat_samples), 2
                    ),
                }
                result["latency"].append(measured)
                print(f"  {measured}")
            result["worker_rss_hwm_mib"] = round(peak_rss(worker.pid) / 2**20, 1)
            if sink is not None:
                result["sink_rss_hwm_mib"] = round(peak_rss(sink.pid) / 2**20, 1)
        finally:
            groups.close()
        result["state"] = state_bytes(broker.url, settings)
        print(f"  state: {result['state']}")
    finally:
        for child in (worker, sink):
            if child is not None:
                child.stop()
        broker.stop()
        cluster.stop()
        if args.keep_logs is not None:  # the broker's, the worker's and the sink's logs
            args.keep_logs.mkdir(parents=True, exist_ok=True)
            for log_file in work.rglob("*.log"):
                shutil.copy2(log_file, args.keep_logs / log_file.name)
            print(f"logs copied to {args.keep_logs}")
        shutil.rmtree(work, ignore_errors=True)
    path = write_result("pipeline", result)
    summary(result)
    print(f"written to {path.relative_to(ROOT)}")


def start_sink(settings: Settings) -> ManagedProcess:
    """``touchstream sink``, as a deployment with the sink apart from the workers runs it."""
    sink = ManagedProcess(
        "sink",
        [sys.executable, "-m", "services.cli", "sink"],
        settings.log_dir / "sink.log",
        {**os.environ, **settings.to_env()},
    )
    sink.start()
    return sink


def summary(result: dict[str, Any]) -> None:
    p, lat, state = result["pipeline"], result["latency"], result["state"]
    t = TARGETS
    staged = result["stage_ceiling"]["validate_identity_journey"]["events_per_s"]
    print(
        f"\nend to end   {p['events_per_s']:>9,} events/s   target {t['events_per_s']:,}"
        f"\nraw ceiling  {result['raw_ceiling_events_per_s']:>9,} events/s   "
        f"ratio {result['ratio_to_raw_ceiling']:.2%}"
        f"\nstages only  {staged:>9,} events/s   ratio {result['ratio_to_stage_ceiling']:.2%}"
        "   (validate, identity, journey in one process; no Kafka, no store)"
        + "".join(
            f"\nlatency      p50 {x['p50_ms']} ms, p99 {x['p99_ms']} ms at {x['rate']:,}/s "
            f"({x['flags']} flags)   target p99 {t['p99_latency_ms']} ms at 2,000/s"
            f"\n             every event to resolved: p50 "
            f"{x['every_event']['to_resolved']['p50_ms']} ms, p99 "
            f"{x['every_event']['to_resolved']['p99_ms']} ms "
            f"({x['every_event']['to_resolved']['n']:,} events)"
            for x in lat
        )
        + f"\nworker RSS   {result['worker_rss_hwm_mib']:,} MiB peak"
        + f"\nstate        {state['bytes_per_customer_mean']} B/customer mean, "
        f"{state['bytes_per_customer_p99']} p99   target {t['state_bytes_per_customer']:,}"
    )


if __name__ == "__main__":
    main()
