"""Health and readiness of the HTTP API against the real broker."""

from __future__ import annotations

from fastapi.testclient import TestClient

from services import __version__
from services.api.app import create_app
from services.embedded.process import free_port
from services.kafka import ensure_topics
from services.settings import Settings


def test_health_answers_without_a_broker(settings: Settings) -> None:
    client = TestClient(create_app(settings, f"127.0.0.1:{free_port()}"))
    assert client.get("/health").json() == {"status": "ok", "version": __version__}


def test_ready_needs_the_broker_and_the_topics(settings: Settings, broker: str) -> None:
    client = TestClient(create_app(settings, broker))
    missing = client.get("/ready")
    assert missing.status_code == 503
    assert set(missing.json()["missing_topics"]) == set(settings.topics.all())
    ensure_topics(settings, broker)
    ready = client.get("/ready")
    assert ready.status_code == 200
    assert ready.json()["status"] == "ready"


def test_ready_is_503_when_the_broker_is_down(settings: Settings) -> None:
    client = TestClient(create_app(settings, f"127.0.0.1:{free_port()}"))
    down = client.get("/ready")
    assert down.status_code == 503
    assert down.json()["status"] == "unavailable"
    assert "no Kafka broker answered" in down.json()["detail"]


def test_topic_provisioning_is_idempotent(settings: Settings, broker: str) -> None:
    first = ensure_topics(settings, broker)
    assert all(first.values())
    assert not any(ensure_topics(settings, broker).values())
