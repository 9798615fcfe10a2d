"""Identity and journey stages through one real worker process on the embedded broker.

Builds a fortnight of valid events of many customers, each known by several identifiers
(devices on the web, a loyalty card in store, a billing account, email and phone at the
help desk), with linking events that make identity resolution link and merge profiles.
Then, each on a fresh embedded broker with topics and a consumer group of its own:

- ``identity+journey``: the events, as the ``AcceptedEvent`` records validate writes, are
  loaded into ``touchpoints.valid`` before one ``touchstream worker`` starts;
- ``validate+identity+journey``: the raw events are loaded into ``touchpoints.raw``
  (keyed as ``touchstream emit`` keys them) before the worker starts.

Each is timed from the worker's ready marker until the group's committed offsets reach
the end of the stage's input (the end as the fetch high watermark reports it; ListOffsets
is wrong on the embedded broker), sampled every second. The pure stages on the same
events, without Kafka, give the ceiling. Writes bench/results/stages-<UTC time>.json.

    .venv/bin/python bench/stages.py [--customers 100000] [--events 150000] [--partitions 4]

150,000 events by default: one worker does about 950-1,000 of them a second from ``valid``
and 650-800 from ``raw``, so 500,000 would take some 20 minutes; 150,000 take about 7.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import os
import random
import shutil
import sys
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import psutil
from aiokafka import AIOKafkaProducer
from aiokafka.partitioner import DefaultPartitioner
from kafka import KafkaConsumer, TopicPartition

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.common import code_version, write_result  # noqa: E402
from schemas.events import decode_event  # noqa: E402
from schemas.records import SourceRecord  # noqa: E402
from services.embedded.broker import EmbeddedBroker  # noqa: E402
from services.embedded.process import ManagedProcess  # noqa: E402
from services.emit import raw_key  # noqa: E402
from services.identity.graph import GuardRails  # noqa: E402
from services.identity.stage import IdentityStage  # noqa: E402
from services.journeys.engine import Engine  # noqa: E402
from services.journeys.loader import default_maps_dir, load_maps  # noqa: E402
from services.journeys.stage import JourneyStage  # noqa: E402
from services.kafka import admin_client, ensure_topics, read_to_end  # noqa: E402
from services.settings import Settings, bootstrap_servers  # noqa: E402
from services.worker.app import ready_marker  # noqa: E402
from services.worker.journey import item_of  # noqa: E402
from services.worker.triage import triage  # noqa: E402

T0 = datetime(2026, 11, 2, tzinfo=UTC)
SPAN = 14 * 24 * 3600  # seconds of event time
MIN, HOUR, DAY = 60, 3600, 86400
SOURCES = {
    "web": "web-shop",
    "store": "pos-store",
    "billing": "billing-core",
    "support": "helpdesk",
}

# --- traffic ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Person:
    """Someone's identifiers; which of them an event carries depends on the channel."""

    n: int
    crm: str | None  # a CRM customer id, once they have an account with us
    phone: str | None
    loyalty: str | None
    account: str | None

    @property
    def email(self) -> str:
        return f"c{self.n:06d}@example.com"

    def anon(self, device: int) -> str:
        return f"anon-{self.n:06d}-{device}"


def people(customers: int, rng: random.Random) -> list[Person]:
    return [
        Person(
            n,
            crm=f"cus-{n:06d}" if rng.random() < 0.5 else None,
            phone=f"+3519{n:08d}" if rng.random() < 0.7 else None,
            loyalty=f"LOY-{n:06d}" if rng.random() < 0.4 else None,
            account=f"ACC-{n:06d}" if rng.random() < 0.35 else None,
        )
        for n in range(customers)
    ]


@dataclass(slots=True)
class Scenario:
    """One visit, purchase, invoice or support case of one person: events at seconds from T0."""

    rng: random.Random
    person: Person
    at: int
    events: list[tuple[int, str, dict[str, str], dict[str, Any]]] = field(default_factory=list)

    def add(self, after: int, kind: str, identity: dict[str, str], **attributes: Any) -> None:
        self.at += after
        self.events.append((self.at, kind, identity, attributes))

    def money(self) -> float:
        return round(self.rng.uniform(5, 300), 2)


def web(s: Scenario, serial: int) -> None:
    """Browsing on one of two devices: anonymous until a login or signup links the device
    to the email (or, for CRM customers, the customer id); a cart, a checkout, form errors."""
    rng, p = s.rng, s.person
    anon = p.anon(rng.randrange(2))
    session = f"s{p.n}-{serial}"
    who = {"anonymous_id": anon}
    known = {"anonymous_id": anon, **({"customer_id": p.crm} if p.crm else {"email": p.email})}

    def login() -> None:
        if rng.random() < 0.1:
            s.add(rng.randint(20, 90), "web.signup", {"anonymous_id": anon, "email": p.email})
        else:
            s.add(
                rng.randint(20, 90),
                "web.login",
                {"anonymous_id": anon, "email": p.email},
                method="password",
            )

    if rng.random() < 0.2:
        login()
        who = known
    for _ in range(rng.randint(1, 2)):
        url = f"https://shop.example.com/c/{rng.randrange(40)}"
        s.add(rng.randint(10, 120), "web.page_view", who, url=url, session_id=session)
    if rng.random() < 0.3:
        s.add(rng.randint(10, 60), "web.search", who, query="boots", results_count=17)
    skus = [f"SKU-{rng.randrange(5000)}" for _ in range(rng.randint(0, 2))]
    for sku in skus:
        s.add(rng.randint(20, 180), "web.product_view", who, sku=sku, session_id=session)
    if not skus or rng.random() > 0.45:
        return
    price = s.money()
    s.add(
        rng.randint(10, 90),
        "web.add_to_cart",
        who,
        sku=skus[-1],
        quantity=1,
        unit_price=price,
        currency="EUR",
    )
    if rng.random() > 0.55:
        return
    if who is not known:
        login()
        who = known
    s.add(
        rng.randint(30, 300),
        "web.checkout_started",
        who,
        cart_value=price,
        currency="EUR",
        session_id=session,
    )
    if rng.random() < 0.15:
        for _ in range(rng.randint(1, 4)):
            s.add(
                rng.randint(20, 120),
                "web.form_error",
                who,
                form="checkout-address",
                error="postcode not recognised",
                session_id=session,
            )
    if rng.random() < 0.7:
        s.add(
            rng.randint(60, 900),
            "web.checkout_completed",
            who,
            order_id=f"ord-{p.n}-{serial}",
            amount=price,
            currency="EUR",
        )


def store(s: Scenario, serial: int) -> None:
    """A store visit with the loyalty card; a sale links the card to the email."""
    rng, p = s.rng, s.person
    assert p.loyalty
    card = {"loyalty_id": p.loyalty}
    shop = f"store-{rng.randrange(60)}"
    s.add(0, "store.visit", card, store_id=shop)
    if rng.random() < 0.3:
        s.add(
            rng.randint(60, 600),
            "store.queue_wait",
            card,
            store_id=shop,
            wait_seconds=rng.randint(30, 900),
        )
    if rng.random() < 0.6:
        order, amount = f"pos-{p.n}-{serial}", s.money()
        s.add(
            rng.randint(60, 900),
            "store.pos_sale",
            {**card, "email": p.email} if rng.random() < 0.5 else card,
            store_id=shop,
            order_id=order,
            amount=amount,
            currency="EUR",
        )
        if rng.random() < 0.08:
            s.add(
                rng.randint(DAY, 6 * DAY),
                "store.return",
                card,
                store_id=shop,
                order_id=order,
                amount=amount,
                currency="EUR",
                reason="wrong size",
            )


def billing(s: Scenario, serial: int) -> None:
    """An invoice on the billing account (sometimes with the email), then its payment."""
    rng, p = s.rng, s.person
    assert p.account
    account = {"account_id": p.account}
    invoice, amount = f"inv-{p.n}-{serial}", s.money()
    due = (T0 + timedelta(seconds=s.at + rng.randint(3, 10) * DAY)).date().isoformat()
    paying = {"invoice_id": invoice, "amount": amount, "currency": "EUR"}
    s.add(
        0,
        "billing.invoice_issued",
        {**account, "email": p.email} if rng.random() < 0.4 else account,
        due_date=due,
        **paying,
    )
    if rng.random() < 0.12:
        s.add(
            rng.randint(HOUR, 4 * DAY),
            "billing.payment_failed",
            account,
            reason="card_declined",
            **paying,
        )
    if rng.random() < 0.85:
        s.add(rng.randint(HOUR, 3 * DAY), "billing.payment_succeeded", account, **paying)
        if rng.random() < 0.03:
            s.add(rng.randint(DAY, 5 * DAY), "billing.refund_issued", account, **paying)
    if rng.random() < 0.03:
        s.add(
            rng.randint(HOUR, DAY),
            "billing.subscription_cancelled",
            {**account, "email": p.email},
            plan="boots-club-monthly",
        )


def support(s: Scenario, serial: int) -> None:
    """A ticket by email (and phone, which links them), its resolution and rating."""
    rng, p = s.rng, s.person
    mail = {"email": p.email}
    if p.phone and rng.random() < 0.15:
        s.add(0, "support.call_abandoned", {"phone": p.phone}, wait_seconds=rng.randint(30, 400))
    ticket = f"T-{p.n}-{serial}"
    opened = {**mail, "phone": p.phone} if p.phone and rng.random() < 0.5 else mail
    s.add(
        rng.randint(60, 600),
        "support.ticket_opened",
        opened,
        ticket_id=ticket,
        topic="payment",
        via="email",
    )
    if rng.random() < 0.85:
        s.add(rng.randint(HOUR, 60 * HOUR), "support.ticket_resolved", mail, ticket_id=ticket)
        if rng.random() < 0.1:
            s.add(rng.randint(HOUR, 3 * DAY), "support.ticket_reopened", mail, ticket_id=ticket)
        if rng.random() < 0.4:
            s.add(
                rng.randint(MIN, DAY),
                "support.csat_submitted",
                mail,
                score=rng.randint(1, 5),
                ticket_id=ticket,
            )
    if rng.random() < 0.1:
        who = {"customer_id": p.crm} if p.crm else mail
        s.add(rng.randint(HOUR, 2 * DAY), "support.nps_submitted", who, score=rng.randint(0, 10))


def glance(s: Scenario, serial: int) -> None:
    """One touch and gone: a page view that bounces, or walking into a store."""
    p = s.person
    if p.loyalty and s.rng.random() < 0.25:
        s.add(0, "store.visit", {"loyalty_id": p.loyalty}, store_id=f"store-{s.rng.randrange(60)}")
    else:
        url = "https://shop.example.com/"
        anon = {"anonymous_id": p.anon(s.rng.randrange(2))}
        s.add(0, "web.page_view", anon, url=url, session_id=f"s{p.n}-{serial}")


SCENARIOS: list[tuple[Callable[[Scenario, int], None], int]] = [
    (web, 45),
    (store, 20),
    (billing, 15),
    (support, 20),
]
SCENARIO_EVENTS = 3.3  # mean events of a scenario above (measured)


def traffic(customers: int, events: int, seed: int = 7) -> tuple[list[dict[str, Any]], int]:
    """``events`` valid raw events of ``customers`` people over two weeks, in time order, and
    how many people they are about.

    Everyone comes at least once; a tenth of the people make two fifths of the comebacks.
    When there are few events per person, more first visits are a single touch (a bounce,
    a store visit), so that every person is still in the traffic."""
    rng = random.Random(seed)
    crowd = people(customers, rng)
    kinds, weights = zip(*SCENARIOS, strict=True)
    # first visits take at most ~60 % of the events; the rest are comebacks
    glances = min(
        0.9, max(0.0, (SCENARIO_EVENTS - 0.6 * events / customers) / (SCENARIO_EVENTS - 1))
    )
    drafts: list[tuple[int, str, dict[str, str], dict[str, Any], int]] = []
    serial = 0
    while len(drafts) < events:
        if serial < customers:
            person = crowd[serial]
        elif rng.random() < 0.4:
            person = crowd[rng.randrange(max(1, customers // 10))]
        else:
            person = crowd[rng.randrange(customers)]
        kind = rng.choices(kinds, weights)[0]
        if (kind is store and not person.loyalty) or (kind is billing and not person.account):
            kind = web
        if serial < customers and rng.random() < glances:
            kind = glance
        scenario = Scenario(rng, person, rng.randrange(SPAN))
        kind(scenario, serial)
        drafts += [(*e, person.n) for e in scenario.events if e[0] < SPAN]
        serial += 1
    drafts.sort(key=lambda e: e[0])
    out, seen = [], set()
    for i, (at, kind, identity, attributes, n) in enumerate(drafts[:events]):
        seen.add(n)
        occurred = T0 + timedelta(seconds=at)
        out.append(
            {
                "event_id": f"bench-{i:08d}",
                "type": kind,
                "occurred_at": occurred.isoformat(),
                "source": SOURCES[kind.partition(".")[0]],
                "identity": identity,
                "attributes": attributes,
                "schema_version": 1,
            }
        )
    return out, len(seen)


# --- the AcceptedEvent records validate writes -------------------------------------------


def raw_records(
    events: list[dict[str, Any]], partitions: int
) -> list[tuple[bytes | None, bytes, int]]:
    """``(key, value, partition)`` of each raw event as ``touchstream emit`` sends it: keyed by
    the strongest identifier, partitioned by murmur2 of the key (as kafka-python and Faust)."""
    partitioner = DefaultPartitioner()
    every = list(range(partitions))
    out = []
    for event in events:
        value = orjson.dumps(event)
        key = raw_key(value)
        out.append((key, value, partitioner(key, every, every)))
    return out


def accepted_records(
    raw: list[tuple[bytes | None, bytes, int]], raw_topic: str
) -> tuple[list[tuple[bytes | None, bytes, int]], float]:
    """The ``touchpoints.valid`` records validate makes of ``raw`` (read at the offsets they
    would get), and the seconds ``triage`` took: the pure validate stage."""
    received = datetime.now(UTC)
    offsets: Counter[int] = Counter()
    out: list[tuple[bytes | None, bytes, int]] = []
    started = time.perf_counter()
    for key, value, partition in raw:
        origin = SourceRecord(
            topic=raw_topic, partition=partition, offset=offsets[partition], timestamp=received
        )
        offsets[partition] += 1
        result = triage(value, origin, key=key)
        if result.route != "valid":
            raise RuntimeError(f"generated an invalid event: {value[:300]!r} -> {result.value!r}")
        out.append((result.key, result.value, 0))
    return out, time.perf_counter() - started


# --- the ceiling: the pure stages on the same events ------------------------------------


def pure_stages(
    valid: list[tuple[bytes | None, bytes, int]], settings: Settings, batch: int
) -> dict[str, Any]:
    """IdentityStage over a dict, then JourneyStage (event time from the events) over a dict,
    in batches as the agents take them; transfers go round again as they would in Kafka."""
    lateness = timedelta(seconds=settings.allowed_lateness)
    identity = IdentityStage({}, rails=GuardRails(), lateness=lateness)
    resolved: list[tuple[bytes, int]] = []
    side = 0
    started = time.perf_counter()
    for i in range(0, len(valid), batch):
        for position in range(i, min(i + batch, len(valid))):
            for out in identity.resolve(valid[position][1], position):
                if out.route == "resolved":
                    resolved.append((out.value, out.partition or 0))
                else:
                    side += 1
        resolved += [(o.value, o.partition or 0) for o in identity.flush(settings.partitions)]
    identity_seconds = time.perf_counter() - started

    engine = Engine(load_maps(default_maps_dir()), lateness=lateness)
    journey = JourneyStage(engine, {}, event_time="events")
    routes: Counter[str] = Counter()
    transfers: list[tuple[bytes, int]] = []
    started = time.perf_counter()
    for i in range(0, len(resolved), batch):
        chunk, transfers = transfers + resolved[i : i + batch], []
        for out in journey.apply(item_of(value, partition) for value, partition in chunk):
            routes[out.route] += 1
            if out.route == "resolved":
                transfers.append((out.value, 0))
        routes["flags"] += len(journey.tick())
    while transfers:
        chunk, transfers = transfers, []
        for out in journey.apply(item_of(value, partition) for value, partition in chunk):
            routes[out.route] += 1
    journey_seconds = time.perf_counter() - started
    n = len(valid)
    return {
        "events": n,
        "identity": _rate(n, identity_seconds),
        "journey": _rate(n, journey_seconds)
        | {"records_per_s": round((len(resolved) + routes["resolved"]) / journey_seconds)},
        "identity_journey": _rate(n, identity_seconds + journey_seconds),
        "resolved_records": len(resolved) + routes["resolved"],
        "transfers": routes["resolved"],
        "profiles": sum(1 for key in identity.table if key.startswith(b"p:")),
        "merges": identity.counts["merges"],
        "refusals": identity.counts["refusals"],
        "identity_records": side,
        "flags": routes["flags"],
        "transitions": routes["transitions"],
        "customers": sum(1 for key in journey.store if not key.startswith("\x00")),
    }


def with_validate(pure: dict[str, Any], validate_seconds: float) -> dict[str, Any]:
    """:func:`pure_stages`' result with the validate stage's time (from
    :func:`accepted_records`) and the three stages one after another: the most one process
    running them could do if moving records between them cost nothing."""
    n = pure["events"]
    chained = validate_seconds + pure["identity"]["seconds"] + pure["journey"]["seconds"]
    return pure | {
        "validate": _rate(n, validate_seconds),
        "validate_identity_journey": _rate(n, chained),
    }


def _rate(events: int, seconds: float) -> dict[str, float]:
    return {"seconds": round(seconds, 2), "events_per_s": round(events / seconds)}


def pure_line(pure: dict[str, Any]) -> str:
    return (
        f"validate {pure['validate']['events_per_s']:,}/s, identity "
        f"{pure['identity']['events_per_s']:,}/s, journey {pure['journey']['events_per_s']:,}/s"
        f" events; identity+journey {pure['identity_journey']['events_per_s']:,}, all three "
        f"{pure['validate_identity_journey']['events_per_s']:,} events/s"
    )


# --- Kafka: loading, end offsets, committed offsets ---------------------------------------


async def _load(
    broker_url: str, topic: str, records: list[tuple[bytes | None, bytes, int]]
) -> None:
    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap_servers(broker_url),
        client_id="bench-loader",
        acks="all",
        linger_ms=5,
        max_batch_size=512 * 1024,
        request_timeout_ms=120_000,
    )
    await producer.start()
    try:
        by_partition: dict[int, list[tuple[bytes | None, bytes]]] = {}
        for key, value, partition in records:
            by_partition.setdefault(partition, []).append((key, value))
        pending: list[asyncio.Future[Any]] = []
        for partition, rows in by_partition.items():
            batch = producer.create_batch()
            for key, value in rows:
                if batch.append(key=key, value=value, timestamp=None) is None:
                    pending.append(await producer.send_batch(batch, topic, partition=partition))
                    batch = producer.create_batch()
                    batch.append(key=key, value=value, timestamp=None)
                if len(pending) >= 64:
                    await asyncio.gather(*pending)
                    pending.clear()
            pending.append(await producer.send_batch(batch, topic, partition=partition))
        await asyncio.gather(*pending)
    finally:
        await producer.stop()


def load(broker_url: str, topic: str, records: list[tuple[bytes | None, bytes, int]]) -> float:
    """Produce ``records`` (acks=all) in batches per partition; the seconds it took."""
    started = time.perf_counter()
    asyncio.run(_load(broker_url, topic, records))
    return time.perf_counter() - started


class Ends:
    """Partitions' end offsets as the high watermark of a fetch reports them (the embedded
    broker's ListOffsets(latest) answers the last batch's base offset + 1, not the end)."""

    def __init__(self, broker_url: str) -> None:
        self.consumer = KafkaConsumer(
            bootstrap_servers=bootstrap_servers(broker_url),
            client_id="bench-ends",
            group_id=None,
            enable_auto_commit=False,
            fetch_max_wait_ms=10,
            max_partition_fetch_bytes=1,  # a fetch returns one batch at least: enough
        )
        self.seen: dict[TopicPartition, int] = {}

    def __call__(
        self, tps: list[TopicPartition], timeout: float = 10.0
    ) -> dict[TopicPartition, int]:
        consumer = self.consumer
        consumer.unsubscribe()  # fresh partition states: no high watermark from before
        consumer.assign(tps)
        for tp in tps:
            consumer.seek(tp, self.seen.get(tp, 0))
        deadline = time.monotonic() + timeout
        while any(consumer.highwater(tp) is None for tp in tps):
            if time.monotonic() > deadline:
                raise TimeoutError(f"no high watermark for {tps} within {timeout:.0f}s")
            consumer.poll(timeout_ms=50, max_records=1)
        ends = {tp: consumer.highwater(tp) for tp in tps}
        self.seen.update(ends)
        return ends

    def total(self, topic: str, partitions: int) -> int:
        return sum(self([TopicPartition(topic, p) for p in range(partitions)]).values())

    def close(self) -> None:
        self.consumer.close()


class Others:
    """CPU time spent by processes that are not this benchmark's (it shares the machine), in
    cores: busy time of the host less that of the benchmark, its worker and its broker."""

    def __init__(self, *pids: int) -> None:
        self.processes = [psutil.Process(pid) for pid in pids]
        self.first = self.last = self._read()

    def _read(self) -> tuple[float, float]:
        host = psutil.cpu_times()
        busy = host.user + host.nice + host.system + host.irq + host.softirq
        mine = sum(sum(p.cpu_times()[:2]) for p in self.processes)
        return time.monotonic(), busy - mine

    def cores(self) -> float:
        """Cores the others used since the last call."""
        now = self._read()
        (t0, o0), self.last = self.last, now
        return max(0.0, (now[1] - o0) / max(1e-3, now[0] - t0))

    def total(self) -> dict[str, float]:
        now = self._read()
        spent = max(0.0, now[1] - self.first[1])
        return {"cpu_s": round(spent, 1), "cores": round(spent / (now[0] - self.first[0]), 2)}


def peak_rss(pid: int) -> int:
    """The kernel's high-water mark of the process's resident set (VmHWM), in bytes."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    return 0


# --- one worker, timed ---------------------------------------------------------------------


@dataclass
class Stage:
    """A stage as its input's committed offsets show it: done when they reach the end."""

    name: str
    topic: str
    partitions: int
    done_at: float | None = None
    final: int = 0

    def tps(self) -> list[TopicPartition]:
        return [TopicPartition(self.topic, p) for p in range(self.partitions)]


def start_worker(settings: Settings) -> tuple[ManagedProcess, float]:
    """``touchstream worker`` as a user runs it; returns it and the seconds to its ready marker."""
    env = {**os.environ, **settings.to_env()}
    worker = ManagedProcess(
        "worker",
        [sys.executable, "-m", "services.cli", "worker"],
        settings.log_dir / "worker.log",
        env,
    )
    started = time.monotonic()
    worker.start()
    while not ready_marker(settings, worker.pid).exists():
        if not worker.alive() or time.monotonic() - started > settings.startup_timeout:
            worker.stop()
            raise RuntimeError(f"the worker did not become ready:\n{worker.tail(40)}")
        time.sleep(0.05)
    return worker, time.monotonic() - started


def steady_rate(samples: list[dict[str, Any]], key: str, final: int) -> float | None:
    """Records/s of a stage's committed offset between 10 % and 90 % of its final value:
    the sustained rate, free of start-up and of the commit interval at the end."""
    low = next((s for s in samples if s[key] >= 0.1 * final), None)
    high = next((s for s in samples if s[key] >= 0.9 * final), None)
    if low is None or high is None or high["t"] <= low["t"]:
        return None
    return (high[key] - low[key]) / (high["t"] - low["t"])


def run_worker_phase(
    name: str,
    broker: EmbeddedBroker,
    settings: Settings,
    stages: list[Stage],
    events: int,
    timeout: float,
) -> dict[str, Any]:
    """Start one worker on pre-loaded input; sample committed offsets every second until the
    journey agent has consumed all of ``touchpoints.resolved``; count what came out."""
    group = settings.app_id
    admin = admin_client(broker.url)
    ends = Ends(broker.url)
    every = [tp for stage in stages for tp in stage.tps()]
    admin.list_group_offsets({group: every})  # connections and coordinator, before the clock
    ends(every)
    worker, to_ready = start_worker(settings)
    ready = time.monotonic()
    process = psutil.Process(worker.pid)
    cpu_at_ready = sum(process.cpu_times()[:2])
    others = Others(os.getpid(), worker.pid, broker.process.pid)
    samples: list[dict[str, Any]] = []
    try:
        print(f"  worker ready after {to_ready:.1f} s; committed offsets (done / end):")
        confirmed = False
        tick = ready
        while not confirmed:
            tick += 1.0
            time.sleep(max(0.0, tick - time.monotonic()))
            if not worker.alive():
                raise RuntimeError(f"the worker exited:\n{worker.tail(40)}")
            committed = admin.list_group_offsets({group: every}).get(group, {})
            end = ends(every)
            at = time.monotonic() - ready
            sample: dict[str, Any] = {"t": round(at, 2)}
            upstream_done = True
            line = [f"  {at:6.1f} s"]
            for stage in stages:
                done = sum(
                    max(0, committed[tp].offset) if tp in committed else 0 for tp in stage.tps()
                )
                total = sum(end[tp] for tp in stage.tps())
                sample[stage.name], sample[f"{stage.name}_end"] = done, total
                line.append(f"{stage.name} {done:>9,}/{total:<9,}")
                finished = upstream_done and done == total
                if finished and stage.done_at is None:
                    stage.done_at, stage.final = at, total
                elif not finished and stage is stages[-1]:
                    stage.done_at = None  # more arrived (a transfer, a watermark): not yet
                upstream_done = finished
            rss = process.memory_info().rss
            sample["rss_mib"] = round(rss / 2**20, 1)
            sample["cpu_s"] = round(sum(process.cpu_times()[:2]), 2)
            sample["others_cores"] = round(others.cores(), 2)
            samples.append(sample)
            line += [
                f"rss {sample['rss_mib']:,.0f} MiB",
                f"others {sample['others_cores']:.1f} cpu",
            ]
            print("  ".join(line), flush=True)
            last = stages[-1]
            confirmed = last.done_at is not None and last.done_at < at  # held on two samples
            if at > timeout:
                raise RuntimeError(f"{name}: not done after {timeout:.0f} s")
        flags_at_done = ends.total(settings.topics.flags, settings.partitions)
        time.sleep(settings.watermark_idle_timeout + 2)  # idle partitions release deadlines
        t = settings.topics
        counts = {
            "resolved_records": ends.total(t.resolved, settings.partitions),
            "identity_records": ends.total(t.identity, settings.partitions),
            "flags_at_done": flags_at_done,
            "flags": ends.total(t.flags, settings.partitions),
            "transitions": ends.total(t.transitions, settings.partitions),
            "dlq": ends.total(t.dlq, settings.partitions),
            "identity_changelog_records": ends.total(f"{group}-identity-graph-changelog", 1),
            "journey_changelog_records": ends.total(
                f"{group}-journey-state-changelog", settings.partitions
            ),
        }
        kinds = Counter(orjson.loads(r.value)["kind"] for r in read_to_end(broker.url, t.identity))
        hwm = peak_rss(worker.pid)
        broker_cpu = psutil.Process(broker.process.pid).cpu_times()
        contention = others.total()
    finally:
        worker.stop()
        ends.close()
        admin.close()
    result: dict[str, Any] = {"time_to_ready_s": round(to_ready, 2)}
    for stage in stages:
        assert stage.done_at is not None
        result[stage.name] = {
            "input": stage.topic,
            "records": stage.final,
            "seconds": round(stage.done_at, 2),
            "events_per_s": round(events / stage.done_at),
            "steady_records_per_s": round(steady_rate(samples, stage.name, stage.final) or 0),
        }
    result.update(counts)
    result.update(
        merges=kinds["merge"],
        refusals=kinds["refusal"],
        worker_rss_peak_mib_sampled=max(s["rss_mib"] for s in samples),
        worker_rss_hwm_mib=round(hwm / 2**20, 1),
        worker_cpu_s=round(samples[-1]["cpu_s"] - cpu_at_ready, 1),
        worker_cpu_share=round((samples[-1]["cpu_s"] - cpu_at_ready) / samples[-1]["t"], 2),
        broker_cpu_s=round(broker_cpu.user + broker_cpu.system, 1),
        other_processes=contention,
        samples=samples,
    )
    return result


def phase(
    name: str,
    args: argparse.Namespace,
    work: Path,
    records: list[tuple[bytes | None, bytes, int]],
    into: str,
) -> dict[str, Any]:
    """A fresh embedded broker and topics; ``records`` loaded into the ``into`` topic
    (``raw`` or ``valid``); one worker timed through the stages from there on."""
    tag = uuid.uuid4().hex[:8]
    broker = EmbeddedBroker("127.0.0.1", 0, work / f"{name}-broker.log")
    broker.start(timeout=30)
    try:
        settings = Settings(
            broker_url=broker.url,
            data_dir=work / name,
            topic_prefix=f"bench{tag}.",
            app_id=f"bench-{name}-{tag}",
            partitions=args.partitions,
            table_store="memory://",
            log_level="INFO",
        )
        ensure_topics(settings, broker.url)
        t = settings.topics
        topic = t.raw if into == "raw" else t.valid
        seconds = load(broker.url, topic, records)
        ends = Ends(broker.url)
        try:
            loaded = ends.total(topic, args.partitions if into == "raw" else 1)
        finally:
            ends.close()
        if loaded != len(records):
            raise RuntimeError(f"{topic} holds {loaded} records, {len(records)} were sent")
        print(f"  loaded {loaded:,} records into {topic} in {seconds:.1f} s")
        stages = [Stage("identity", t.valid, 1), Stage("journey", t.resolved, args.partitions)]
        if into == "raw":
            stages.insert(0, Stage("validate", t.raw, args.partitions))
        result = run_worker_phase(name, broker, settings, stages, len(records), args.timeout)
        return {"input": topic, "load_seconds": round(seconds, 1), **result}
    finally:
        broker.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=int, default=100_000)
    parser.add_argument("--events", type=int, default=150_000)
    parser.add_argument("--partitions", type=int, default=4)
    parser.add_argument("--timeout", type=float, default=600, help="most seconds per worker run")
    parser.add_argument(
        "--phases", default="pure,valid,raw", help="which of pure,valid,raw to run (all)"
    )
    args = parser.parse_args()
    phases = set(args.phases.split(","))
    settings = Settings(partitions=args.partitions)

    started = time.perf_counter()
    others = Others(os.getpid())
    events, seen = traffic(args.customers, args.events)
    for event in random.Random(3).sample(events, min(2000, len(events))):
        decode_event(orjson.dumps(event))  # the contract holds (every event is triaged below)
    raw = raw_records(events, args.partitions)
    gc.collect()
    gc.freeze()  # inputs live to the end: keep the collector from scanning them over and over
    valid, validate_seconds = accepted_records(raw, settings.topics.raw)
    mix = Counter(e["type"].partition(".")[0] for e in events)
    linking = sum(len(e["identity"]) > 1 for e in events)
    del events
    gc.collect()
    gc.freeze()
    print(
        f"{len(raw):,} events of {seen:,} customers ({dict(mix)}; {linking:,} carry two "
        f"identifiers), built in {time.perf_counter() - started:.0f} s"
    )
    result: dict[str, Any] = {
        "code": code_version(),
        "customers": seen,
        "events": len(raw),
        "partitions": args.partitions,
        "channels": dict(mix),
        "linking_events": linking,
        "raw_bytes_mean": round(sum(len(v) for _, v, _ in raw) / len(raw)),
        "valid_bytes_mean": round(sum(len(v) for _, v, _ in valid) / len(valid)),
    }
    if "pure" in phases:
        print("pure stages, no Kafka (the ceiling):")
        pure = with_validate(
            pure_stages(valid, settings, settings.worker_batch_size), validate_seconds
        )
        pure["other_processes"] = others.total()
        result["pure"] = pure
        print(f"  {pure_line(pure)}")
    work = Path(tempfile.mkdtemp(prefix="touchstream-bench-stages-"))
    try:
        if "valid" in phases:
            print("identity + journey: one worker, AcceptedEvent records pre-loaded into valid")
            result["identity_journey"] = phase("ij", args, work, valid, "valid")
        del valid
        if "raw" in phases:
            print("validate + identity + journey: one worker, raw events pre-loaded into raw")
            result["whole_worker"] = phase("vij", args, work, raw, "raw")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    path = write_result("stages", result)
    summary(result)
    print(f"written to {path.relative_to(ROOT)}")


def summary(result: dict[str, Any]) -> None:
    rows = [("", "validate", "identity", "identity+journey", "peak RSS")]
    pure = result.get("pure")
    if pure:
        rows.append(
            (
                "pure stages (ceiling)",
                f"{pure['validate']['events_per_s']:,}",
                f"{pure['identity']['events_per_s']:,}",
                f"{pure['identity_journey']['events_per_s']:,}",
                "",
            )
        )
    for key, label in (
        ("identity_journey", "worker, from valid"),
        ("whole_worker", "worker, from raw"),
    ):
        run = result.get(key)
        if run:
            rows.append(
                (
                    label,
                    f"{run['validate']['events_per_s']:,}" if "validate" in run else "-",
                    f"{run['identity']['events_per_s']:,}",
                    f"{run['journey']['events_per_s']:,}",
                    f"{run['worker_rss_hwm_mib']:,.0f} MiB",
                )
            )
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    print(f"events/s ({result['events']:,} events, {result['customers']:,} customers):")
    for row in rows:
        print(
            "  "
            + "  ".join(
                cell.rjust(w) if i else cell.ljust(w)
                for i, (cell, w) in enumerate(zip(row, widths, strict=True))
            )
        )
    for key in ("identity_journey", "whole_worker"):
        run = result.get(key)
        if run:
            print(
                f"  {key}: ready in {run['time_to_ready_s']} s; "
                f"{run['resolved_records']:,} resolved records, {run['merges']:,} merges, "
                f"{run['flags']:,} flags, {run['transitions']:,} transitions, "
                f"{run['dlq']} dead letters; worker {run['worker_cpu_share']} cores, other "
                f"processes on the machine {run['other_processes']['cores']} cores"
            )


if __name__ == "__main__":
    main()
