"""The Customer 360 and friction workflow HTTP API over a store on PostgreSQL and SQLite."""

from __future__ import annotations

from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from services.store.db import engine_for, upgrade
from tests.support.access import OPERATOR_TOKEN, api_client, store_settings
from tests.support.crm_store import populate


@pytest.fixture
def client(store_url: str, tmp_path: Path) -> TestClient:
    """A client with an operator's token: it reads and works flags (tests/integration/
    test_api_auth.py checks the other roles and requests without a token)."""
    url = store_url
    upgrade(url)
    populate(engine_for(url))
    return api_client(store_settings(url, tmp_path), OPERATOR_TOKEN)


def test_get_a_customer(client: TestClient) -> None:
    answer = client.get("/v1/customers/c-1")
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["customer_id"] == "c-1"
    assert body["profile"]["name"] == "Ana Silva"
    assert body["profile"]["first_seen_at"] == "2024-11-13T12:00:00Z"
    assert {"kind": "email", "value": "ana@example.com"}.items() <= body["identifiers"][4].items()
    assert [m["customer_id"] for m in body["merged_ids"]] == ["c-older", "c-old"]
    metrics = body["metrics"]
    assert (metrics["lifetime_spend"], metrics["amount_open"], metrics["amount_overdue"]) == (
        "250.00",
        "150.00",
        "150.00",  # both open invoices are past due by now
    )
    assert 0 <= metrics["health_score"] <= 100
    assert set(metrics["health"]) == {"friction", "csat", "nps", "payment", "engagement"}
    assert body["journeys"]["purchase"]["stage"] == "checkout"
    assert [f["flag_id"] for f in body["open_friction"]] == ["f-cart", "f-pay"]
    assert body["open_friction"][1]["value_at_risk"] == "150.00"
    assert len(body["recent_friction"]) == 10
    assert len(body["interactions"]) == 20
    assert body["interactions"][0]["event_id"] == "e-24"
    three = client.get("/v1/customers/c-1", params={"interactions": 3}).json()
    assert [i["event_id"] for i in three["interactions"]] == ["e-24", "e-23", "e-22"]


def test_a_merged_away_id_answers_with_the_survivor(client: TestClient) -> None:
    assert client.get("/v1/customers/c-older").json()["customer_id"] == "c-1"


def test_unknown_customer_and_bad_interactions(client: TestClient) -> None:
    missing = client.get("/v1/customers/nobody")
    assert missing.status_code == 404
    assert missing.json() == {"detail": "no customer 'nobody'"}
    for bad in (0, 201, "many"):
        assert client.get("/v1/customers/c-1", params={"interactions": bad}).status_code == 422


@pytest.mark.parametrize(
    "params",
    [
        {"email": "ANA@Example.com"},
        {"phone": "+4915112345678"},
        {"loyalty_id": "L-77"},
        {"account_id": "A-9"},
        {"anonymous_id": "anon-1"},
        {"customer_id": "c-old"},
    ],
)
def test_lookup_by_any_identifier(client: TestClient, params: dict[str, str]) -> None:
    answer = client.get("/v1/customers/lookup", params={**params, "interactions": 2})
    assert answer.status_code == 200, answer.text
    assert answer.json()["customer_id"] == "c-1"
    assert len(answer.json()["interactions"]) == 2


def test_lookup_needs_exactly_one_identifier(client: TestClient) -> None:
    none = client.get("/v1/customers/lookup")
    assert none.status_code == 422
    assert none.json()["detail"].startswith("give exactly one of customer_id, email, phone")
    two = client.get("/v1/customers/lookup", params={"email": "ana@example.com", "phone": "+49"})
    assert two.status_code == 422
    assert "(got email, phone)" in two.json()["detail"]
    missing = client.get("/v1/customers/lookup", params={"email": "who@example.com"})
    assert missing.status_code == 404
    assert missing.json() == {"detail": "no customer with email 'who@example.com'"}


def test_acknowledge_and_resolve_a_flag(client: TestClient) -> None:
    before = client.get("/v1/friction/f-pay")
    assert before.status_code == 200
    assert (before.json()["status"], before.json()["history"]) == ("open", [])
    acked = client.post(
        "/v1/friction/f-pay/acknowledge", json={"note": "calling her", "actor": "maria"}
    )
    assert acked.status_code == 200, acked.text
    assert (acked.json()["status"], acked.json()["status_changed_by"]) == ("acknowledged", "maria")
    again = client.post("/v1/friction/f-pay/acknowledge", json={"note": "x", "actor": "maria"})
    assert again.status_code == 409
    assert again.json() == {"detail": "cannot acknowledge flag 'f-pay': it is acknowledged"}
    resolved = client.post(
        "/v1/friction/f-pay/resolve", json={"note": "card updated", "actor": "joe"}
    )
    assert resolved.status_code == 200
    history = [(h["status"], h["note"], h["actor"]) for h in resolved.json()["history"]]
    assert history == [
        ("acknowledged", "calling her", "maria"),
        ("resolved", "card updated", "joe"),
    ]
    assert client.get("/v1/friction/f-pay").json()["history"] == resolved.json()["history"]
    open_now = client.get("/v1/customers/c-1").json()["open_friction"]
    assert [f["flag_id"] for f in open_now] == ["f-cart"]
    assert (
        client.post("/v1/friction/f-pay/resolve", json={"note": "x", "actor": "joe"}).status_code
        == 409
    )
    reopened = client.post(
        "/v1/friction/f-pay/reopen", json={"note": "failed again", "actor": "joe"}
    )
    assert reopened.json()["status"] == "open"
    assert len(reopened.json()["history"]) == 3


def test_workflow_errors(client: TestClient) -> None:
    unknown = client.post("/v1/friction/nope/resolve", json={"note": "x", "actor": "joe"})
    assert unknown.status_code == 404
    assert "no friction event with flag id 'nope'" in unknown.json()["detail"]
    assert client.get("/v1/friction/nope").status_code == 404
    for body in ({"actor": "joe"}, {"note": "", "actor": "joe"}, {"note": "x", "actor": "j" * 65}):
        assert client.post("/v1/friction/f-pay/resolve", json=body).status_code == 422
    assert client.get("/v1/friction/f-pay").json()["status"] == "open"
