"""The SDK's HTTP transport against a real ``touchstream api`` process and the real broker:
what the API accepted is in touchpoints.raw, what it refused is reported by id and reason, and
nothing is counted as sent that the API did not accept."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import orjson
import pytest

from services.embedded.process import free_port
from services.kafka import read_to_end
from services.sdk import DeliveryReport, Emitter, InvalidEvent, Unauthorized
from services.settings import Settings
from tests.support.events import example, example_types
from tests.support.services import INGEST_KEY, OTHER_KEY, api_on_own_broker

pytestmark = pytest.mark.broker
ROOT = Path(__file__).resolve().parents[2]


def _events(count: int, prefix: str) -> list[dict[str, Any]]:
    """``count`` valid events of every shipped type, without source (the emitter fills it)."""
    types = example_types()
    events = []
    for i in range(count):
        event = example(types[i % len(types)], event_id=f"{prefix}-{i:05d}")
        del event["source"]
        events.append(event)
    return events


def _raw_ids(settings: Settings) -> list[str]:
    records = read_to_end(settings.broker_url or "", settings.topics.raw)
    return sorted(orjson.loads(r.value)["event_id"] for r in records)


def test_2000_events_are_sent_in_batches_and_arrive_once_each(
    api: str, settings: Settings, capsys: pytest.CaptureFixture[str]
) -> None:
    events = _events(2000, "http-sdk")
    with Emitter.http("web-shop", api, INGEST_KEY, batch_size=500) as emitter:
        started = time.monotonic()
        for event in events:
            emitter.emit(event)
        report = emitter.flush()
        elapsed = time.monotonic() - started
    with capsys.disabled():
        print(f"\n[sdk-http] 2000 events accepted in {elapsed:.2f}s ({2000 / elapsed:,.0f}/s)")
    assert (report.sent, report.failed) == (2000, [])
    assert _raw_ids(settings) == sorted(e["event_id"] for e in events)


def test_a_batch_over_the_api_limit_is_split_until_it_fits(api: str, settings: Settings) -> None:
    """batch_size 1,500 is over TOUCHSTREAM_INGEST_MAX_EVENTS (1,000): 413, halves of 750."""
    events = _events(1500, "split")
    with Emitter.http("web-shop", api, INGEST_KEY, batch_size=1500) as emitter:
        emitter.emit_many(events)
        report = emitter.flush(timeout=60)
    assert (report.sent, report.failed) == (1500, [])
    assert _raw_ids(settings) == sorted(e["event_id"] for e in events)


def test_invalid_events_raise_locally_and_refused_ones_are_reported(
    api: str, settings: Settings
) -> None:
    emitter = Emitter.http("web-shop", api, OTHER_KEY)  # a helpdesk key: source_mismatch
    try:
        broken = {**_events(1, "broken")[0], "occurred_at": "2026-11-12T10:00:00"}
        with pytest.raises(InvalidEvent, match="occurred_at"):
            emitter.emit(broken)
        emitter.emit_many(_events(3, "mismatch"))
        report = emitter.flush(timeout=30)
    finally:
        emitter.close(timeout=10)
    assert report.sent == 0
    assert [event_id for event_id, _ in report.failed] == [f"mismatch-{i:05d}" for i in range(3)]
    for _, reason in report.failed:
        assert reason.startswith("source: 'web-shop' is not the source of this key ('helpdesk')")
    assert _raw_ids(settings) == []


def test_a_wrong_key_raises_unauthorized_and_nothing_is_counted_sent(
    api: str, settings: Settings
) -> None:
    emitter = Emitter.http("web-shop", api, "tsk_wrong_key_000000000000")
    emitter.emit_many(_events(3, "nokey"))
    with pytest.raises(Unauthorized, match=r"refused the source key .*HTTP 401"):
        emitter.flush(timeout=30)
    with pytest.raises(Unauthorized):
        emitter.emit(_events(1, "later")[0])
    report = emitter.close(timeout=10)
    assert report.sent == 0
    assert [event_id for event_id, _ in report.failed] == [f"nokey-{i:05d}" for i in range(3)]
    assert all("HTTP 401" in reason for _, reason in report.failed)
    assert _raw_ids(settings) == []


def test_an_api_nobody_answers_at_is_reported_after_the_retries() -> None:
    emitter = Emitter.http("web-shop", f"http://127.0.0.1:{free_port()}", INGEST_KEY, max_retries=1)
    emitter.emit_many(_events(2, "nobody"))
    started = time.monotonic()
    report = emitter.close(timeout=30)
    assert time.monotonic() - started < 10
    assert report.sent == 0
    assert [event_id for event_id, _ in report.failed] == ["nobody-00000", "nobody-00001"]
    assert all("unreachable" in r and "gave up after 2 attempts" in r for _, r in report.failed)


def test_flush_interval_sends_a_partial_batch_without_flush(api: str, settings: Settings) -> None:
    emitter = Emitter.http("web-shop", api, INGEST_KEY, flush_interval=0.2)
    try:
        emitter.emit_many(_events(3, "interval"))
        deadline = time.monotonic() + 20
        while len(_raw_ids(settings)) < 3 and time.monotonic() < deadline:
            time.sleep(0.2)
        assert _raw_ids(settings) == [f"interval-{i:05d}" for i in range(3)]
        assert emitter.flush(timeout=30).sent == 3
    finally:
        emitter.close(timeout=10)


def test_a_script_that_never_closes_still_delivers_everything(api: str, settings: Settings) -> None:
    """The Emitter's exit hook closes the transport while its sender thread still runs."""
    script = textwrap.dedent(
        f"""
        from services.sdk import Emitter
        from tests.support.events import example

        emitter = Emitter.http("web-shop", {api!r}, {INGEST_KEY!r}, batch_size=200)
        for i in range(500):
            emitter.emit(example("web.page_view", event_id=f"script-{{i}}"))
        # no flush, no close: the script just ends
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    assert _raw_ids(settings) == sorted(f"script-{i}" for i in range(500))


def test_broker_down_is_retried_then_every_event_fails_and_none_counts_sent(
    settings: Settings, tmp_path: Path
) -> None:
    with api_on_own_broker(settings, tmp_path, ack_timeout=2.0) as (own, url):
        emitter = Emitter.http("web-shop", url, INGEST_KEY, max_retries=1)
        emitter.emit_many(_events(5, "before"))
        assert emitter.flush(timeout=30).sent == 5
        own.stop()
        emitter.emit_many(_events(5, "down"))
        started = time.monotonic()
        report = emitter.flush(timeout=60)
        elapsed = time.monotonic() - started
        assert report.sent == 0
        assert [event_id for event_id, _ in report.failed] == [f"down-{i:05d}" for i in range(5)]
        for _, reason in report.failed:
            assert reason.startswith("HTTP 503: events not accepted"), reason
            assert "gave up after 2 attempts" in reason
        assert 5 <= elapsed < 40  # Retry-After: 5 was honoured between the two attempts
        assert emitter.close(timeout=10) == DeliveryReport(0, [])  # nothing left over
