"""The SDK's Kafka transport against the real embedded broker: volume, keys and order,
reports, and what a dead or dying broker looks like to the caller."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import time
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest

from schemas import EVENT_TYPES, decode_event
from services.embedded.broker import EmbeddedBroker
from services.embedded.process import free_port
from services.emit import raw_key
from services.errors import BrokerUnavailable
from services.kafka import ensure_topics, read_to_end
from services.sdk import DeliveryTimeout, Emitter
from services.settings import Settings
from tests.support.events import example

pytestmark = pytest.mark.broker

ROOT = Path(__file__).resolve().parents[2]
SOURCE = "sdk-load-test"


def _events(count: int, customers: int) -> list[dict[str, Any]]:
    """``count`` valid events of every type from the shipped examples, unique ids, spread
    over ``customers`` people; a third of them known by a mixed-case email."""
    templates = []
    for event_type in EVENT_TYPES:
        template = example(event_type)
        del template["source"]  # the emitter fills its own
        templates.append(template)
    events = []
    for i in range(count):
        person = i % customers
        identity = (
            {"email": f"Person.{person}@Example.com", "anonymous_id": f"anon-{i}"}
            if person % 3 == 0
            else {"customer_id": f"cus-{person}"}
        )
        template = templates[i % len(templates)]
        events.append({**template, "event_id": f"sdk-{i:06d}", "identity": identity})
    return events


def _raw_topic(settings: Settings) -> tuple[str, str]:
    url = settings.broker_url or ""
    ensure_topics(settings, url)
    return url, settings.topics.raw


def test_100k_events_arrive_once_each_keyed_and_in_order_per_customer(
    settings: Settings, capsys: pytest.CaptureFixture[str]
) -> None:
    url, topic = _raw_topic(settings)
    events = _events(100_000, customers=3000)

    with Emitter.kafka(SOURCE, url, topic=topic) as emitter:
        started = time.monotonic()
        for event in events:
            emitter.emit(event)
        report = emitter.flush()
        elapsed = time.monotonic() - started
    with capsys.disabled():
        print(
            f"\n[sdk] {len(events)} events emitted and acknowledged in {elapsed:.1f}s: "
            f"{len(events) / elapsed:,.0f} events/s (send + flush)"
        )
    assert report.sent == 100_000
    assert report.failed == []

    records = list(read_to_end(url, topic, timeout=90))
    assert len(records) == 100_000
    ids = [orjson.loads(r.value)["event_id"] for r in records]
    assert sorted(ids) == [e["event_id"] for e in events]  # every one, exactly once

    partitions: dict[bytes, set[int]] = defaultdict(set)
    order: dict[bytes, list[tuple[int, str]]] = defaultdict(list)
    for record, event_id in zip(records, ids, strict=True):
        assert record.key == raw_key(record.value)
        partitions[record.key].add(record.partition)
        order[record.key].append((record.offset, event_id))
    assert len(partitions) == 3000
    assert all(len(p) == 1 for p in partitions.values())
    for seen in order.values():
        by_offset = [event_id for _, event_id in sorted(seen)]
        assert by_offset == sorted(by_offset)  # ids grow in emit order

    first = decode_event(records[0].value)
    assert first.source == SOURCE


def test_emit_many_sends_the_validated_bytes(settings: Settings) -> None:
    url, topic = _raw_topic(settings)
    events = [
        example(t, event_id=f"many-{i}", source="billing-core") for i, t in enumerate(EVENT_TYPES)
    ]
    with Emitter.kafka("billing-core", url, topic=topic, linger_ms=5) as emitter:
        emitter.emit_many(events)
        assert emitter.flush(timeout=30).sent == len(EVENT_TYPES)
    records = sorted(read_to_end(url, topic), key=lambda r: orjson.loads(r.value)["event_id"])
    assert [orjson.loads(r.value) for r in records] == sorted(events, key=lambda e: e["event_id"])


def test_read_to_end_from_given_offsets_reads_only_what_came_after(settings: Settings) -> None:
    url, topic = _raw_topic(settings)

    def view(name: str, i: int) -> dict[str, Any]:
        return example(
            "web.page_view",
            event_id=f"{name}-{i}",
            source="web-shop",
            identity={"customer_id": f"cus-{i}"},  # spread over the partitions
        )

    first = [view("before", i) for i in range(40)]
    later = [view("after", i) for i in range(25)]
    with Emitter.kafka("web-shop", url, topic=topic) as emitter:
        emitter.emit_many(first)
        assert emitter.flush(timeout=30).sent == len(first)
    start: dict[int, int] = {}
    for record in read_to_end(url, topic):
        start[record.partition] = record.offset + 1
    with Emitter.kafka("web-shop", url, topic=topic) as emitter:
        emitter.emit_many(later)
        assert emitter.flush(timeout=30).sent == len(later)
    ids = sorted(orjson.loads(r.value)["event_id"] for r in read_to_end(url, topic, start=start))
    assert ids == sorted(e["event_id"] for e in later)  # every later one; none from before
    assert len(list(read_to_end(url, topic))) == len(first) + len(later)


def test_constructing_against_a_dead_port_says_so_quickly() -> None:
    url = f"127.0.0.1:{free_port()}"
    started = time.monotonic()
    with pytest.raises(BrokerUnavailable, match=f"no Kafka broker answered at {url}"):
        Emitter.kafka(SOURCE, url, connect_timeout=1)
    assert time.monotonic() - started < 10


@pytest.fixture
def doomed_broker(tmp_path: Path) -> Iterator[EmbeddedBroker]:
    """A broker of this test's own, which the test stops halfway."""
    broker = EmbeddedBroker("127.0.0.1", 0, tmp_path / "doomed-broker.log")
    broker.start(timeout=30)
    yield broker
    broker.stop()


def _payment(i: int) -> dict[str, Any]:
    return example("billing.payment_failed", event_id=f"pay-{i}", source="billing-core")


def test_events_the_broker_never_acknowledges_are_reported_by_id(
    doomed_broker: EmbeddedBroker,
) -> None:
    emitter = Emitter.kafka(
        "billing-core",
        doomed_broker.url,
        topic="doomed",
        linger_ms=5,
        request_timeout_ms=1000,
        delivery_timeout_ms=3000,  # give up on an event after 3 s
    )
    try:
        for i in range(100):
            emitter.emit(_payment(i))
        assert emitter.flush(timeout=30).sent == 100
        doomed_broker.stop()
        for i in range(100, 150):
            emitter.emit(_payment(i))

        with pytest.raises(DeliveryTimeout, match="50 events were not acknowledged"):
            emitter.flush(timeout=0.5)
        report = emitter.flush(timeout=30)  # the producer's delivery timeout expires
        assert report.sent == 0
        assert [event_id for event_id, _ in report.failed] == [f"pay-{i}" for i in range(100, 150)]
        assert all("KafkaTimeoutError" in reason for _, reason in report.failed)
    finally:
        emitter.close(timeout=5)


def test_close_reports_what_is_still_unacknowledged(doomed_broker: EmbeddedBroker) -> None:
    emitter = Emitter.kafka("billing-core", doomed_broker.url, topic="doomed", linger_ms=5)
    emitter.emit(_payment(0))
    assert emitter.flush(timeout=30).sent == 1
    doomed_broker.stop()
    emitter.emit_many(_payment(i) for i in range(1, 21))
    started = time.monotonic()
    report = emitter.close(timeout=1)
    assert time.monotonic() - started < 10
    assert report.sent == 0
    assert sorted(event_id for event_id, _ in report.failed) == sorted(
        f"pay-{i}" for i in range(1, 21)
    )
    assert all("delivery unknown" in reason for _, reason in report.failed)


def test_a_script_that_never_closes_still_delivers_everything(settings: Settings) -> None:
    url, topic = _raw_topic(settings)
    script = textwrap.dedent(
        f"""
        from services.sdk import Emitter
        from tests.support.events import example

        emitter = Emitter.kafka("web-shop", {url!r}, topic={topic!r}, linger_ms=60_000)
        for i in range(500):
            emitter.emit(example("web.page_view", event_id=f"script-{{i}}"))
        # no flush, no close: the script just ends
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    ids = sorted(orjson.loads(r.value)["event_id"] for r in read_to_end(url, topic))
    assert ids == sorted(f"script-{i}" for i in range(500))


def test_an_emitter_left_open_is_closed_at_interpreter_exit() -> None:
    """The Emitter's own exit hook closes its transport with ``exit_timeout`` (kafka-python's
    hook would give a producer 1 s) and logs what was lost; no broker needed."""
    script = textwrap.dedent(
        """
        from services.sdk import DeliveryReport, Emitter
        from tests.support.events import example

        class Shout:
            def send(self, record, /):
                print("sent", record.event_id, flush=True)
            def flush(self, timeout=None):
                return DeliveryReport(0, [])
            def close(self, timeout=None):
                print("closed within", timeout, flush=True)
                return DeliveryReport(0, [("lost-1", "broker gone")])

        emitter = Emitter("web-shop", Shout(), exit_timeout=7)
        emitter.emit(example("web.login"))
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == ["sent ex-web-login-0001", "closed within 7"]
    assert "1 touchpoint events were not delivered at interpreter exit" in done.stderr
    assert "lost-1 (broker gone)" in done.stderr
