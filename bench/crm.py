"""CRM store benchmark: the sink's throughput into PostgreSQL and the Customer 360 view's
latency with the store full.

The input is a generated scenario (``services.simulate``; 7 days by default: a month of
100,000 customers has 2.2 times the events and takes some 10 minutes to make) run through
the validate, identity and journey stages in this process, as one worker would run them:
the resolved events, identity decisions, journey transitions and friction flags the sink
consumes. Making it is timed apart and is not part of any figure. Then, on a fresh database
(a throwaway PostgreSQL cluster, fsync off unless ``--fsync``; or a new database on
``--database-url``'s server, dropped afterwards):

- sink: the records in batches of ``--batch-size`` through ``CrmSink.write``, decoding
  included and overlapped with the writes as the sink service does it (the next batch is
  decoded while a writer thread writes the last); rows/s is every row in the CRM tables
  afterwards (count(*)) over the wall time;
- redelivery: the same records again, which must add no row;
- 360: ``customer_360`` on 1,000 random customers and ``lookup`` of 1,000 random emails,
  after 50 of each to warm up.

Writes bench/results/crm-<UTC time>.json.

    .venv/bin/python bench/crm.py [--customers 100000] [--days 7] [--batch-size N] [--fsync]
    .venv/bin/python bench/crm.py --quick    # 2,000 customers: a smoke run
"""

from __future__ import annotations

import argparse
import cProfile
import gc
import hashlib
import math
import os
import pickle
import pstats
import random
import re
import sys
import threading
import time
import uuid
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

import psutil
import sqlalchemy as sa

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.common import code_version, write_result  # noqa: E402
from services.crm.records import Batch, decode  # noqa: E402
from services.crm.sink import CrmSink, Written  # noqa: E402
from services.crm.view import customer_360, lookup  # noqa: E402
from services.embedded.postgres import ThrowawayPostgres  # noqa: E402
from services.settings import Settings  # noqa: E402
from services.simulate import generate  # noqa: E402
from services.simulate.inprocess import InProcessPipeline  # noqa: E402
from services.store.db import engine_for, upgrade  # noqa: E402

TABLES = (
    "customers",
    "identities",
    "merges",
    "interactions",
    "orders",
    "invoices",
    "tickets",
    "journey_states",
    "journey_transitions",
    "friction_events",
    "relationship_metrics",
    "friction_daily",
    "stage_daily",
)
DEFAULT_BATCH = Settings.model_fields["crm_sink_batch_size"].default
DEFAULT_WRITERS = Settings.model_fields["crm_sink_writers"].default
TARGETS = {"rows_per_s_min": 20_000, "view_p99_ms_max": 50}

# --- input ---------------------------------------------------------------------------------


def sink_input(customers: int, days: int, seed: int, partitions: int) -> dict[str, Any]:
    started = time.perf_counter()
    scenario = generate(customers, days, seed=seed)
    generated = time.perf_counter() - started
    pipeline = InProcessPipeline(partitions)
    pipeline.run(scenario.events + scenario.closing)
    staged = time.perf_counter() - started - generated
    return {
        "records": pipeline.records,
        "events": len(scenario.events) + len(scenario.closing),
        "people": len(scenario.people),
        "dead_letters": pipeline.dead_letters,
        "merges": pipeline.identity.counts["merges"],
        "generate_s": round(generated, 1),
        "stages_s": round(staged, 1),
    }


# --- measuring ---------------------------------------------------------------------------


class Cpu:
    """Cores used between calls by this process, by the PostgreSQL server (the postmaster,
    its live backends and those it has reaped) and by everything else on the machine (with
    ``--database-url`` the server is not watched and counts as everything else)."""

    def __init__(self, postmaster: int | None) -> None:
        self.postmaster = postmaster
        self.last = self._read()

    def _server(self) -> float:
        if self.postmaster is None:
            return 0.0
        try:
            server = psutil.Process(self.postmaster)
            total = sum(server.cpu_times()[:4])  # with its reaped children
            children = server.children(recursive=True)
        except psutil.NoSuchProcess:
            return 0.0
        for child in children:
            try:
                total += sum(child.cpu_times()[:2])
            except psutil.NoSuchProcess:
                continue
        return total

    def _read(self) -> tuple[float, float, float, float]:
        host = psutil.cpu_times()
        busy = host.user + host.nice + host.system + host.irq + host.softirq
        mine = sum(psutil.Process().cpu_times()[:2])
        return time.monotonic(), busy, mine, self._server()

    def cores(self) -> dict[str, float]:
        """Cores each used since the last call."""
        now = self._read()
        before, self.last = self.last, now
        span = max(1e-3, now[0] - before[0])
        bench, server = (now[2] - before[2]) / span, (now[3] - before[3]) / span
        others = max(0.0, (now[1] - before[1]) / span - bench - server)
        return {"bench": round(bench, 2), "postgres": round(server, 2), "others": round(others, 2)}


def load_average() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


class Statements:
    """SQL statements the engine sends (an executemany counts once) and the time each kind
    (verb and table) spent in the driver and the server."""

    def __init__(self, engine: sa.Engine) -> None:
        self.calls = Counter[str]()
        self.seconds: dict[str, float] = defaultdict(float)
        self._lock = threading.Lock()
        sa.event.listen(engine, "before_cursor_execute", self._before)
        sa.event.listen(engine, "after_cursor_execute", self._after)

    # the writers run statements at once, each on its own connection: the start is kept there
    def _before(self, conn: sa.Connection, *_: Any) -> None:
        conn.info["statement_began"] = time.perf_counter()

    def _after(self, conn: sa.Connection, _cursor: Any, statement: str, *_: Any) -> None:
        took = time.perf_counter() - conn.info.pop("statement_began")
        what = statement_kind(statement)
        with self._lock:
            self.calls[what] += 1
            self.seconds[what] += took

    def mark(self) -> tuple[Counter[str], dict[str, float]]:
        return self.calls.copy(), dict(self.seconds)

    def per_batch(
        self, mark: tuple[Counter[str], dict[str, float]], batches: int
    ) -> dict[str, Any]:
        """Statements and their time per batch since ``mark``, the costliest kinds first."""
        calls = self.calls - mark[0]
        seconds = {k: t - mark[1].get(k, 0.0) for k, t in self.seconds.items() if calls[k]}
        return {
            "statements": round(calls.total() / batches, 1),
            "ms": round(sum(seconds.values()) / batches * 1000, 1),
            "by_kind": {
                what: {"calls": round(calls[what] / batches, 1), "ms": round(t / batches * 1000, 1)}
                for what, t in sorted(seconds.items(), key=lambda kv: -kv[1])
            },
        }


def statement_kind(statement: str) -> str:
    """``INSERT interactions``, ``UPDATE merges``, ``SELECT relationship_metrics``, ..."""
    words = statement.split(None, 3)
    verb = words[0].upper()
    if verb in ("INSERT", "DELETE") and len(words) > 2:
        return f"{verb} {words[2]}"
    if verb == "UPDATE" and len(words) > 1:
        return f"UPDATE {words[1]}"
    found = re.search(r"\bFROM\s+(\w+)", statement)
    return f"{verb} {found.group(1) if found else ''}".strip()


def row_counts(engine: sa.Engine) -> dict[str, int]:
    with engine.connect() as conn:
        return {
            t: conn.execute(sa.select(sa.func.count()).select_from(sa.table(t))).scalar_one()
            for t in TABLES
        }


def sink_pass(
    sink: CrmSink, records: list[tuple[str, bytes]], size: int, statements: Statements
) -> dict[str, Any]:
    """Every record through decode and ``CrmSink.write`` in batches of ``size``, as the sink
    service runs them: the next batch is decoded while a writer thread writes the last."""
    written = Counter[str]()
    batches: list[float] = []
    decoding = 0.0
    skipped = 0
    mark = statements.mark()
    started = time.perf_counter()
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="sink-writer") as writer:
        pending: tuple[Future[Written], float] | None = None

        def finish(job: tuple[Future[Written], float]) -> None:
            result = job[0].result()
            batches.append(time.perf_counter() - job[1])
            for name in ("interactions", "transitions", "flags", "merges"):
                written[name] += getattr(result, name)

        for i in range(0, len(records), size):
            begun = time.perf_counter()
            batch = Batch()
            for kind, value in records[i : i + size]:
                decode(kind, value, batch)
            decoding += time.perf_counter() - begun
            skipped += batch.skipped
            if pending is not None:
                finish(pending)
            pending = (writer.submit(sink.write, batch), time.perf_counter())
        if pending is not None:
            finish(pending)
    elapsed = time.perf_counter() - started
    return {
        "seconds": round(elapsed, 2),
        "decode_s": round(decoding, 2),
        "batches": len(batches),
        "sql_per_batch": statements.per_batch(mark, len(batches)),
        "batch_ms": percentiles(batches),
        "records": len(records),
        "skipped_records": skipped,
        "records_per_s": round(len(records) / elapsed),
        "written": dict(written),
        "written_rows": sum(written.values()),
    }


def percentiles(seconds: list[float]) -> dict[str, float]:
    """p50/p95/p99/max and mean of durations, in ms (nearest rank)."""
    xs = sorted(seconds)

    def rank(q: float) -> float:
        return round(xs[min(len(xs) - 1, math.ceil(q * len(xs)) - 1)] * 1000, 2)

    return {
        "p50": rank(0.50),
        "p95": rank(0.95),
        "p99": rank(0.99),
        "max": round(xs[-1] * 1000, 2),
        "mean": round(sum(xs) / len(xs) * 1000, 2),
    }


def timed(call: Callable[[str], object], keys: list[str], warm_up: list[str]) -> dict[str, Any]:
    for key in warm_up:
        call(key)
    seconds = []
    for key in keys:
        begun = time.perf_counter()
        if call(key) is None:
            raise RuntimeError(f"{key!r} found nothing; it is in the store")
        seconds.append(time.perf_counter() - begun)
    return {"calls": len(keys), "ms": percentiles(seconds)}


def view_latency(engine: sa.Engine, calls: int, seed: int) -> dict[str, Any]:
    """``customer_360`` of random customers and ``lookup`` of random emails."""
    rng = random.Random(seed)
    with engine.connect() as conn:
        customers = sorted(conn.execute(sa.text("SELECT customer_id FROM customers")).scalars())
        emails = sorted(
            conn.execute(sa.text("SELECT value FROM identities WHERE kind = 'email'")).scalars()
        )

    def pick(population: list[str], n: int) -> list[str]:
        return rng.sample(population, n) if n <= len(population) else rng.choices(population, k=n)

    warm = 50
    views = timed(lambda c: customer_360(engine, c), *_split(pick(customers, calls + warm), warm))
    found = timed(lambda e: lookup(engine, "email", e), *_split(pick(emails, calls + warm), warm))
    return {"customer_360": views, "lookup_email": found, "warm_up_calls": warm}


def _split(keys: list[str], warm: int) -> tuple[list[str], list[str]]:
    return keys[warm:], keys[:warm]


# --- the database ------------------------------------------------------------------------


def fresh_database(server_url: str) -> str:
    name = f"touchstream_bench_crm_{uuid.uuid4().hex[:8]}"
    admin = sa.create_engine(server_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    admin.dispose()
    return sa.make_url(server_url).set(database=name).render_as_string(hide_password=False)


def drop_database(server_url: str, url: str) -> None:
    name = sa.make_url(url).database
    admin = sa.create_engine(server_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}"'))
    admin.dispose()


def server_facts(engine: sa.Engine, also: Iterable[str]) -> dict[str, Any]:
    names = ["server_version", "fsync", "synchronous_commit", "shared_buffers"]
    names += [name for name in also if name not in names]
    with engine.connect() as conn:
        show = {name: conn.execute(sa.text(f"SHOW {name}")).scalar_one() for name in names}
        size = conn.execute(sa.text("SELECT pg_database_size(current_database())")).scalar_one()
    return {**show, "database_mib": round(size / 2**20)}


def source_digest(*, skip: tuple[str, ...] = ()) -> str:
    """A digest of the code the run imports (others may change it while a long run lasts),
    less the folders under ``skip``."""
    digest = hashlib.sha1(usedforsecurity=False)
    for folder in ("services", "schemas", "journey_maps"):
        for path in sorted((ROOT / folder).rglob("*")):
            if any(path.is_relative_to(ROOT / skipped) for skipped in skip):
                continue
            if path.is_file() and path.suffix in (".py", ".yaml", ".yml", ".mako"):
                digest.update(path.read_bytes())
    return digest.hexdigest()[:12]


def cached_input(args: argparse.Namespace) -> dict[str, Any]:
    """The sink's input, made (minutes for 100,000 customers) or read from ``--input-cache``,
    which a run with the same customers, days, seed, partitions and code wrote (the sink's
    and the store's code aside: for A/B runs of the sink)."""
    inputs = source_digest(skip=("services/crm", "services/store"))
    key = (args.customers, args.days, args.seed, args.partitions, inputs)
    cache: Path | None = args.input_cache
    if cache is not None and cache.exists():
        with cache.open("rb") as file:
            stored_key, made = pickle.load(file)  # noqa: S301 - a file this script wrote
        if stored_key == key:
            print(f"  read from {cache} (made by an earlier run of this code)")
            return dict(made)
        print(f"  {cache} was made for another input or code: making it again")
    made = sink_input(args.customers, args.days, args.seed, args.partitions)
    if cache is not None:
        with cache.open("wb") as file:
            pickle.dump((key, made), file, protocol=pickle.HIGHEST_PROTOCOL)
    return made


def pg_settings(given: list[str]) -> dict[str, str]:
    settings = {}
    for item in given:
        name, sep, value = item.partition("=")
        if not sep or not name or not value:
            raise SystemExit(f"--pg-setting {item!r}: expected NAME=VALUE, e.g. shared_buffers=1GB")
        settings[name.strip()] = value.strip()
    return settings


def postmaster_pid(cluster: ThrowawayPostgres | None) -> int | None:
    if cluster is None:
        return None
    return int((cluster.data / "postmaster.pid").read_text().split()[0])


# --- the run -----------------------------------------------------------------------------


def measure(
    args: argparse.Namespace,
    url: str,
    cpu: Cpu,
    records: list[tuple[str, bytes]],
    result: dict[str, Any],
) -> None:
    upgrade(url)
    engine = engine_for(url, pre_ping=False)  # as the sink service makes it
    statements = Statements(engine)
    sink = CrmSink(engine, writers=args.writers)
    print(f"sink: {len(records):,} records in batches of {args.batch_size:,} ...")
    cpu.cores()
    profile = cProfile.Profile() if args.profile else None
    if profile:
        profile.enable()
    first = sink_pass(sink, records, args.batch_size, statements)
    if profile:
        profile.disable()
        profile.dump_stats(args.profile)
        print(f"  profile in {args.profile}; the sink's own functions by cumulative time:")
        pstats.Stats(profile).sort_stats("cumulative").print_stats("services/crm/", 15)
    first["cpu_cores"] = cpu.cores()
    first["load_average"] = load_average()
    counts = row_counts(engine)
    rows = sum(counts.values())
    first |= {
        "table_rows": counts,
        "rows": rows,
        "rows_per_s": round(rows / first["seconds"]),
        "interactions_per_s": round(first["written"]["interactions"] / first["seconds"]),
    }
    result["sink"] = first
    print(
        f"  {first['records_per_s']:,} records/s, {first['rows_per_s']:,} rows/s "
        f"({rows:,} rows in {first['seconds']} s), "
        f"{first['interactions_per_s']:,} interactions/s"
    )
    print(f"redelivery: the same {len(records):,} records again ...")
    again = sink_pass(sink, records, args.batch_size, statements)
    again["cpu_cores"] = cpu.cores()
    again["new_rows_counted"] = sum(row_counts(engine).values()) - rows
    result["redelivery"] = again
    print(
        f"  {again['records_per_s']:,} records/s, {again['written_rows']} new rows written, "
        f"{again['new_rows_counted']} more rows counted"
    )
    customers = counts["customers"]
    print(f"360: {args.lookups:,} views and {args.lookups:,} email lookups of {customers:,} ...")
    result["view"] = view_latency(engine, args.lookups, args.seed)
    result["view"] |= {"customers": customers, "cpu_cores": cpu.cores()}
    result["view"]["load_average"] = load_average()
    result["postgres"] = server_facts(engine, args.pg_setting)  # parsed in main()
    sink.close()
    engine.dispose()


def summary(result: dict[str, Any]) -> None:
    sink, again, view = result["sink"], result["redelivery"], result["view"]
    lines = [
        ("", "records/s", "rows/s", "interactions/s", "batch p50 / p99 ms"),
        (
            "sink",
            f"{sink['records_per_s']:,}",
            f"{sink['rows_per_s']:,}",
            f"{sink['interactions_per_s']:,}",
            f"{sink['batch_ms']['p50']:,} / {sink['batch_ms']['p99']:,}",
        ),
        (
            "redelivery",
            f"{again['records_per_s']:,}",
            f"{again['written_rows']}",
            "0",
            f"{again['batch_ms']['p50']:,} / {again['batch_ms']['p99']:,}",
        ),
    ]
    widths = [max(len(r[i]) for r in lines) for i in range(len(lines[0]))]
    print(
        f"CRM sink ({result['records']:,} records of {result['events']:,} events, "
        f"{sink['rows']:,} rows, fsync {result['postgres']['fsync']}):"
    )
    for row in lines:
        cells = zip(row, widths, strict=True)
        print("  " + "  ".join(c.rjust(w) if i else c.ljust(w) for i, (c, w) in enumerate(cells)))
    c, sql = sink["cpu_cores"], sink["sql_per_batch"]
    print(
        f"  cores during the sink pass: this process {c['bench']}, PostgreSQL {c['postgres']}, "
        f"others {c['others']}; {sql['statements']} statements a batch, "
        f"{sql['ms']} ms of the batch's {sink['batch_ms']['mean']} in them"
    )
    print(f"360 with {view['customers']:,} customers (ms):")
    for key in ("customer_360", "lookup_email"):
        ms = view[key]["ms"]
        print(
            f"  {key:<13} p50 {ms['p50']:>6}  p95 {ms['p95']:>6}  p99 {ms['p99']:>6}  "
            f"max {ms['max']:>7}"
        )
    missed = []
    if sink["rows_per_s"] < TARGETS["rows_per_s_min"]:
        missed.append(f"sink {sink['rows_per_s']:,} rows/s < {TARGETS['rows_per_s_min']:,}")
    if view["customer_360"]["ms"]["p99"] > TARGETS["view_p99_ms_max"]:
        missed.append(f"360 p99 {view['customer_360']['ms']['p99']} ms > 50 ms")
    print("targets: " + ("met" if not missed else "missed: " + "; ".join(missed)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=int, default=100_000)
    parser.add_argument(
        "--days",
        type=int,
        default=7,
        help="days the scenario spans (7; a month of 100,000 customers takes ~10 minutes to make)",
    )
    parser.add_argument("--seed", type=int, default=11)
    parser.add_argument("--partitions", type=int, default=4)
    parser.add_argument(
        "--batch-size",
        type=int,
        default=DEFAULT_BATCH,
        help=f"records a write (the sink's crm_sink_batch_size: {DEFAULT_BATCH})",
    )
    parser.add_argument(
        "--writers",
        type=int,
        default=DEFAULT_WRITERS,
        help=f"connections a batch is written through (crm_sink_writers: {DEFAULT_WRITERS})",
    )
    parser.add_argument("--lookups", type=int, default=1000)
    parser.add_argument("--fsync", action="store_true", help="run the throwaway cluster fsync=on")
    parser.add_argument(
        "--pg-setting",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="a server setting of the throwaway cluster, e.g. shared_buffers=1GB (repeatable)",
    )
    parser.add_argument("--database-url", help="a PostgreSQL server to make a fresh database on")
    parser.add_argument("--profile", type=Path, help="cProfile the first sink pass into this file")
    parser.add_argument("--quick", action="store_true", help="2,000 customers: a smoke run")
    parser.add_argument(
        "--input-cache",
        type=Path,
        help="keep the made input in this file and reuse it while customers, days, seed, "
        "partitions and the code (the sink's aside) are the same: A/B runs of the sink",
    )
    args = parser.parse_args()
    args.pg_setting = pg_settings(args.pg_setting)  # a mistake ends the run before its input
    if args.quick:
        args.customers = 2000

    load_at_start, digest = load_average(), source_digest()
    print(f"input: {args.customers:,} customers, {args.days} days, seed {args.seed} ...")
    made = cached_input(args)
    records: list[tuple[str, bytes]] = made.pop("records")
    gc.collect()
    gc.freeze()  # the input lives to the end: keep the collector from scanning it again and again
    kinds = Counter(kind for kind, _ in records)
    print(
        f"  {made['events']:,} events -> {len(records):,} records {dict(kinds)}; "
        f"generated in {made['generate_s']} s, staged in {made['stages_s']} s (not measured)"
    )
    if args.days < 30:
        print(
            f"  ({args.days} days, not a month: a month has ~2.2 times the events, some "
            "10 minutes of making for 100,000 customers)"
        )
    result: dict[str, Any] = {
        "code": code_version(),
        "customers": args.customers,
        "days": args.days,
        "seed": args.seed,
        "partitions": args.partitions,
        "batch_size": args.batch_size,
        "writers": args.writers,
        "quick": args.quick,
        "profiled": args.profile is not None,
        "record_kinds": dict(kinds),
        "targets": TARGETS,
        "load_average_at_start": load_at_start,
        **made,
        "records": len(records),
    }
    cluster = None
    if args.database_url:
        server = args.database_url
        result["database"] = "given server"
    else:
        cluster = ThrowawayPostgres(fsync=args.fsync, settings=args.pg_setting).start()
        server = cluster.url
        result["database"] = "throwaway cluster"
    try:
        url = fresh_database(server)
        cpu = Cpu(postmaster_pid(cluster))
        try:
            measure(args, url, cpu, records, result)
        finally:
            if cluster is None:
                drop_database(server, url)
    finally:
        if cluster is not None:
            cluster.stop()
    result["code_changed_during_run"] = source_digest() != digest
    path = write_result("crm", result)
    summary(result)
    if result["code_changed_during_run"]:
        print("the code under services/, schemas/ or journey_maps/ changed during the run")
    print(f"written to {path.relative_to(ROOT)}")
    if result["redelivery"]["written_rows"] or result["redelivery"]["new_rows_counted"]:
        raise SystemExit("a redelivery wrote new rows: the sink is not idempotent")


if __name__ == "__main__":
    main()
