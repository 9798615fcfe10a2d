"""The Segment-compatible gateway driven by the real segment-analytics-python client, and
dead-letter replay after the mapping is extended."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import httpx2 as httpx
import pytest
from segment.analytics import Client

from schemas.records import AcceptedEvent, DeadLetter
from services.embedded.process import ManagedProcess
from services.identity.stage import is_control
from services.kafka import ensure_topics, read_to_end
from services.settings import Settings
from tests.support.cli import cli_env, run_cli
from tests.support.services import INGEST_KEY, api_settings, start_api, start_worker

pytestmark = pytest.mark.broker


def _client(url: str, errors: list[Any]) -> Client:
    return Client(
        write_key=INGEST_KEY,
        host=url,
        gzip=True,
        upload_interval=0.1,
        max_retries=1,
        on_error=lambda error, batch: errors.append((error, batch)),
    )


def _raw(settings: Settings) -> dict[str, dict[str, Any]]:
    records = read_to_end(settings.broker_url or "", settings.topics.raw)
    return {event["event_id"]: event for event in (json.loads(r.value) for r in records)}


def _dead(settings: Settings) -> list[DeadLetter]:
    records = read_to_end(settings.broker_url or "", settings.topics.dlq)
    return [DeadLetter.model_validate_json(r.value) for r in records]


def test_segment_client_calls_arrive_as_v1_events(api: str, settings: Settings) -> None:
    errors: list[Any] = []
    client = _client(api, errors)
    context = {"page": {"url": "https://shop.example.com/boots"}}
    client.identify(
        user_id="cus-7",
        anonymous_id="anon-7",
        traits={"email": "Maya@Example.com", "phone": "+4915112345678"},
        message_id="seg-identify-1",
    )
    client.page(
        anonymous_id="anon-7",
        name="Boots",
        properties={"url": "https://shop.example.com/boots"},
        message_id="seg-page-1",
    )
    client.track(
        user_id="cus-7",
        event="Checkout Started",
        properties={"value": 129.9, "currency": "EUR"},
        context=context,
        message_id="seg-track-1",
    )
    client.track(
        user_id="cus-7",
        event="Order Completed",
        properties={"order_id": "ord-9", "total": 129.9, "currency": "EUR"},
        message_id="seg-track-2",
    )
    client.track(user_id="cus-7", event="Wishlist Shared", message_id="seg-track-3")
    client.flush()
    client.shutdown()
    assert errors == []

    raw = _raw(settings)
    assert set(raw) == {"seg-identify-1", "seg-page-1", "seg-track-1", "seg-track-2"}
    identify = raw["seg-identify-1"]
    assert identify["type"] == "web.login"
    assert identify["identity"] == {  # raw keeps what was sent; validation lower-cases email
        "customer_id": "cus-7",
        "anonymous_id": "anon-7",
        "email": "Maya@Example.com",
        "phone": "+4915112345678",
    }
    assert identify["attributes"]["segment_call"] == "identify"
    assert identify["source"] == "web-shop"
    assert raw["seg-page-1"]["type"] == "web.page_view"
    assert raw["seg-page-1"]["identity"] == {"anonymous_id": "anon-7"}
    assert raw["seg-track-1"]["type"] == "web.checkout_started"
    assert float(raw["seg-track-1"]["attributes"]["cart_value"]) == 129.9
    completed = raw["seg-track-2"]
    assert completed["type"] == "web.checkout_completed"
    assert completed["identity"] == {"customer_id": "cus-7"}
    assert (completed["attributes"]["order_id"], completed["attributes"]["currency"]) == (
        "ord-9",
        "EUR",
    )
    for event in raw.values():
        assert event["occurred_at"].endswith(("Z", "+00:00"))

    (letter,) = _dead(settings)
    assert (letter.stage, letter.reason, letter.source) == ("ingest", "unmapped_event", "web-shop")
    assert letter.event_id == "seg-track-3"
    assert "Wishlist Shared" in letter.summary()

    env = cli_env(settings.data_dir, **settings.to_env())
    listed = run_cli("dlq", "list", "--reason", "unmapped_event", "--since", "1h", env=env)
    assert letter.id in listed.stdout
    assert "by reason: unmapped_event 1" in listed.stdout
    assert "0 dead-lettered" in run_cli("dlq", "list", "--reason", "invalid_json", env=env).stdout
    assert "0 dead-lettered" in run_cli("dlq", "list", "--since", "2099-01-01", env=env).stdout
    shown = json.loads(run_cli("dlq", "show", letter.id[:8], env=env).stdout)
    assert shown["payload"]["event"] == "Wishlist Shared"
    assert shown["ingress"] == "segment /v1/batch"

    deadline = time.monotonic() + 15
    gauge = 'touchstream_dead_letters{reason="unmapped_event",stage="ingest"} 1.0'
    while (
        gauge not in (metrics := httpx.get(f"{api}/metrics").text) and time.monotonic() < deadline
    ):
        time.sleep(0.5)
    assert gauge in metrics
    accepted = 'endpoint="segment",outcome="accepted",source="web-shop"} 4.0'
    assert f"touchstream_ingest_events_total{{{accepted}" in metrics


def test_unmapped_event_is_processed_after_the_mapping_is_added(
    settings: Settings, tmp_path: Path
) -> None:
    mapping = tmp_path / "segment.yaml"
    mapping.write_text("track:\n  Order Completed: web.checkout_completed\n")
    configured = api_settings(settings, segment_mapping_file=mapping)
    ensure_topics(configured, configured.broker_url or "")
    api, url = start_api(configured)
    worker: ManagedProcess | None = None
    try:
        errors: list[Any] = []
        client = _client(url, errors)
        client.track(
            anonymous_id="anon-42",
            event="Cart Viewed",
            properties={"url": "https://shop.example.com/cart"},
            message_id="seg-cart-1",
        )
        client.flush()
        client.shutdown()
        assert errors == []
        (letter,) = _dead(configured)
        assert letter.reason == "unmapped_event"

        env = cli_env(configured.data_dir, **configured.to_env())
        still = run_cli("dlq", "replay", "--reason", "unmapped_event", env=env)
        assert still.returncode == 1
        assert "re-submitted 0" in still.stdout
        assert f"{letter.id} (unmapped_event)" in still.stdout

        mapping.write_text(
            "track:\n  Order Completed: web.checkout_completed\n  Cart Viewed: web.page_view\n"
        )
        fixed = run_cli("dlq", "replay", "--reason", "unmapped_event", env=env)
        assert fixed.returncode == 0, fixed.stdout + fixed.stderr
        assert "re-submitted 1 to" in fixed.stdout
        again = run_cli("dlq", "replay", env=env)
        assert "re-submitted 0" in again.stdout
        assert "1 replayed before" in again.stdout

        worker = start_worker(configured)
        deadline = time.monotonic() + 60
        resolved: list[AcceptedEvent] = []
        while not resolved and time.monotonic() < deadline:
            records = read_to_end(configured.broker_url or "", configured.topics.resolved)
            resolved = [
                AcceptedEvent.model_validate_json(r.value)
                for r in records
                if not is_control(r.value)  # identity's merge, transfer, watermark records
            ]
            time.sleep(0.5)
        assert [(a.event.event_id, a.event.type) for a in resolved] == [
            ("seg-cart-1", "web.page_view")
        ]
        assert resolved[0].event.identity.anonymous_id == "anon-42"
    finally:
        api.stop()
        if worker is not None:
            worker.stop()


def test_malformed_segment_bodies_are_400_and_write_keys_are_not_kept(
    api: str, settings: Settings
) -> None:
    auth = httpx.BasicAuth(INGEST_KEY, "")
    for body in ({"batch": "nope"}, {"batch": [1, 2]}, [1, 2]):
        response = httpx.post(f"{api}/v1/batch", json=body, auth=auth)
        assert response.status_code == 400, (body, response.text)
    unmapped = {
        "event": "Never Mapped",
        "userId": "u-1",
        "writeKey": INGEST_KEY,
        "messageId": "m-1",
    }
    response = httpx.post(f"{api}/v1/track", json=unmapped, auth=auth)
    assert response.status_code == 200
    assert response.json()["dead_lettered"] == 1
    (letter,) = _dead(settings)
    assert INGEST_KEY.encode() not in letter.payload
    assert json.loads(letter.payload)["event"] == "Never Mapped"
