"""The HTTP gateway against the real broker: what is acknowledged is in touchpoints.raw,
what is refused says why, and nothing is reported accepted that the broker did not take."""

from __future__ import annotations

import gzip
import json
import time
from typing import Any

import httpx2 as httpx
import pytest

from services.kafka import read_to_end
from services.settings import Settings
from tests.support.events import example, example_types
from tests.support.services import INGEST_KEY, OTHER_KEY, api_on_own_broker

pytestmark = pytest.mark.broker
BEARER = {"Authorization": f"Bearer {INGEST_KEY}"}


def _batch(n: int, prefix: str = "http") -> list[dict[str, Any]]:
    types = example_types()
    events = []
    for i in range(n):
        event = example(types[i % len(types)], event_id=f"{prefix}-{i:05d}")
        event.pop("source")
        events.append(event)
    return events


def _raw(settings: Settings) -> list[dict[str, Any]]:
    return [
        json.loads(r.value) for r in read_to_end(settings.broker_url or "", settings.topics.raw)
    ]


def test_valid_batch_is_acknowledged_and_readable_from_raw(api: str, settings: Settings) -> None:
    events = _batch(500)
    response = httpx.post(f"{api}/v1/events", json=events, headers=BEARER, timeout=30)
    assert response.status_code == 200, response.text
    body = response.json()
    assert (body["accepted"], body["rejected"]) == (500, 0)
    assert [r["status"] for r in body["results"]] == ["accepted"] * 500
    raw = _raw(settings)
    assert sorted(e["event_id"] for e in raw) == sorted(e["event_id"] for e in events)
    assert {e["source"] for e in raw} == {"web-shop"}


def test_single_event_and_gzip_body(api: str, settings: Settings) -> None:
    one = _batch(1, "single")[0]
    assert httpx.post(f"{api}/v1/events", json=one, headers=BEARER).json()["accepted"] == 1
    packed = gzip.compress(json.dumps(_batch(3, "gz")).encode())
    headers = {**BEARER, "Content-Encoding": "gzip", "Content-Type": "application/json"}
    assert httpx.post(f"{api}/v1/events", content=packed, headers=headers).json()["accepted"] == 3
    assert len(_raw(settings)) == 4


def test_mixed_batch_has_exact_per_item_statuses(api: str, settings: Settings) -> None:
    events: list[Any] = _batch(4, "mixed")
    events[1]["occurred_at"] = "2026-11-12T10:00:00"
    events[2] = "not an object"
    events.append({**_batch(1, "claim")[0], "source": "billing-core"})
    response = httpx.post(f"{api}/v1/events", json=events, headers=BEARER)
    assert response.status_code == 207
    body = response.json()
    assert (body["accepted"], body["rejected"]) == (2, 3)
    statuses = [
        (r["index"], r["status"], [e["field"] for e in r["errors"]]) for r in body["results"]
    ]
    assert statuses == [
        (0, "accepted", []),
        (1, "rejected", ["occurred_at"]),
        (2, "rejected", ["(event)"]),
        (3, "accepted", []),
        (4, "rejected", ["source"]),
    ]
    assert body["results"][4]["errors"][0]["rule"] == "source_mismatch"
    assert sorted(e["event_id"] for e in _raw(settings)) == ["mixed-00000", "mixed-00003"]


def test_all_rejected_is_422(api: str, settings: Settings) -> None:
    response = httpx.post(f"{api}/v1/events", json=[{"type": "web.nope"}], headers=BEARER)
    assert response.status_code == 422
    assert response.json()["results"][0]["errors"][0]["field"] == "type"
    assert _raw(settings) == []


@pytest.mark.parametrize(
    "headers",
    [{}, {"Authorization": "Bearer tsk_wrong_key_000000000000"}, {"Authorization": "Basic !!"}],
    ids=["no-key", "wrong-key", "garbled-basic"],
)
def test_missing_or_wrong_key_is_401_and_nothing_is_produced(
    api: str, settings: Settings, headers: dict[str, str]
) -> None:
    response = httpx.post(f"{api}/v1/events", json=_batch(3, "nokey"), headers=headers)
    assert response.status_code == 401
    assert "key" in response.json()["detail"]
    assert _raw(settings) == []


def test_other_key_stamps_its_own_source(api: str, settings: Settings) -> None:
    basic = httpx.BasicAuth(OTHER_KEY, "")
    assert httpx.post(f"{api}/v1/events", json=_batch(2, "hd"), auth=basic).json()["accepted"] == 2
    assert {e["source"] for e in _raw(settings)} == {"helpdesk"}


def test_limits_and_malformed_json(api: str, settings: Settings) -> None:
    too_many = httpx.post(f"{api}/v1/events", json=_batch(1001, "many"), headers=BEARER)
    assert too_many.status_code == 413
    assert "at most 1000" in too_many.json()["detail"]
    huge = httpx.post(
        f"{api}/v1/events", content=b"[" + b" " * (6 * 1024 * 1024) + b"]", headers=BEARER
    )
    assert huge.status_code == 413
    broken = httpx.post(f"{api}/v1/events", content=b'[{"event_id": "x",]', headers=BEARER)
    assert broken.status_code == 400
    assert "malformed JSON" in broken.json()["detail"]
    assert "line 1 column" in broken.json()["detail"]
    assert _raw(settings) == []


def test_openapi_is_served(api: str) -> None:
    spec = httpx.get(f"{api}/openapi.json").json()
    assert {"/v1/events", "/v1/batch", "/v1/track", "/v1/identify", "/v1/page"} <= set(
        spec["paths"]
    )
    assert httpx.get(f"{api}/docs").status_code == 200


def test_broker_down_is_503_and_nothing_is_accepted(settings: Settings, tmp_path: Any) -> None:
    with api_on_own_broker(settings, tmp_path, ack_timeout=3.0) as (own, url):
        warm = httpx.post(f"{url}/v1/events", json=_batch(1, "warm"), headers=BEARER, timeout=30)
        assert warm.status_code == 200
        own.stop()
        started = time.monotonic()
        response = httpx.post(
            f"{url}/v1/events", json=_batch(5, "down"), headers=BEARER, timeout=30
        )
        assert response.status_code == 503, response.text
        assert response.headers["Retry-After"] == "5"
        assert "Nothing of this request was acknowledged" in response.json()["detail"]
        assert "accepted" not in response.json()
        assert time.monotonic() - started < 15
        metrics = httpx.get(f"{url}/metrics").text
        counted = 'endpoint="events",outcome="unavailable",source="web-shop"} 5.0'
        assert f"touchstream_ingest_events_total{{{counted}" in metrics


def test_gateway_partitions_keys_like_kafka_python(api: str, settings: Settings) -> None:
    """The gateway batches per partition itself; a customer's events must land where
    kafka-python (emit, the SDK) would put them, or their order would split."""
    from kafka.partitioner.default import murmur2

    events = _batch(200, "part")
    for i, event in enumerate(events):
        event["identity"] = {"customer_id": f"cus-{i % 37}"}
    assert httpx.post(f"{api}/v1/events", json=events, headers=BEARER).status_code == 200
    records = list(read_to_end(settings.broker_url or "", settings.topics.raw))
    assert len(records) == 200
    for record in records:  # kafka-python's DefaultPartitioner.partition, for a keyed record
        assert record.partition == (murmur2(record.key) & 0x7FFFFFFF) % settings.partitions
    order = [json.loads(r.value)["event_id"] for r in records if r.key == b"customer_id:cus-5"]
    assert order == [e["event_id"] for e in events if e["identity"]["customer_id"] == "cus-5"]
