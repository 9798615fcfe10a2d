"""Login tokens on the HTTP API over a store on PostgreSQL and SQLite: each role against each
kind of endpoint, static and store tokens, a removed user, ingestion keys that cannot read, and
the session cookie of the dashboard."""

from __future__ import annotations

from pathlib import Path

import httpx2 as httpx
import pytest
from fastapi.testclient import TestClient
from pydantic import SecretStr

from services.access.users import Users
from services.api.app import create_app
from services.embedded.process import free_port
from services.errors import ConfigurationError
from services.ingest.keys import SourceKeys
from services.settings import Settings
from services.store.db import engine_for, upgrade
from tests.support.access import (
    ADMIN_TOKEN,
    OPERATOR_TOKEN,
    VIEWER_TOKEN,
    api_client,
    bearer,
    store_settings,
)
from tests.support.crm_store import populate
from tests.support.services import INGEST_KEY

READS = [
    "/v1/customers/c-1",
    "/v1/customers/lookup?email=ana@example.com",
    "/v1/friction/f-pay",
    "/v1/reports/friction",
    "/v1/reports/friction?format=csv",
    "/v1/me",
]
# One valid transition each, in this order: open -> acknowledged -> resolved -> open.
WORK = [
    ("acknowledge", "acknowledged"),
    ("resolve", "resolved"),
    ("reopen", "open"),
]
TOKENS = {
    "none": None,
    "unknown": "tsu_not-a-token-anyone-was-given",
    "viewer": VIEWER_TOKEN,
    "operator": OPERATOR_TOKEN,
    "admin": ADMIN_TOKEN,
}
NAMES = {"viewer": "vera", "operator": "otto", "admin": "ada"}


@pytest.fixture
def store(store_url: str) -> str:
    upgrade(store_url)
    populate(engine_for(store_url))
    return store_url


@pytest.fixture
def settings(store: str, tmp_path: Path) -> Settings:
    """The three static tokens, and a static ingestion key for web-shop."""
    return store_settings(store, tmp_path, ingest_keys=SecretStr(f"web-shop:{INGEST_KEY}"))


def _status(client: TestClient) -> str:
    answer = client.get("/v1/friction/f-pay", headers=bearer(ADMIN_TOKEN))
    assert answer.status_code == 200, answer.text
    status: str = answer.json()["status"]
    return status


def _is_challenge(answer: httpx.Response, invalid: bool) -> None:
    challenge = answer.headers["www-authenticate"]
    assert challenge.startswith('Bearer realm="touchstream"')
    assert ('error="invalid_token"' in challenge) is invalid


@pytest.mark.parametrize("who", list(TOKENS))
def test_each_role_against_each_kind_of_endpoint(settings: Settings, who: str) -> None:
    token = TOKENS[who]
    client = api_client(settings, token)
    read_code = {"none": 401, "unknown": 401}.get(who, 200)
    work_code = {"none": 401, "unknown": 401, "viewer": 403}.get(who, 200)
    for path in READS:
        answer = client.get(path)
        assert answer.status_code == read_code, (path, answer.text)
        if read_code == 401:
            _is_challenge(answer, invalid=who == "unknown")
            reason = answer.json()["detail"]
            expected = "no token: send `Authorization: Bearer <token>`"
            assert reason.startswith(expected if who == "none" else "unknown or removed token")
    if read_code == 200:
        assert client.get("/v1/me").json() == {"name": NAMES[who], "role": who}
        assert client.get("/v1/customers/c-1").json()["customer_id"] == "c-1"
    for verb, status in WORK:
        answer = client.post(f"/v1/friction/f-pay/{verb}", json={"note": f"{who} {verb}s"})
        assert answer.status_code == work_code, (verb, answer.text)
        if work_code == 200:
            assert answer.json()["status"] == status
            assert answer.json()["history"][-1]["actor"] == NAMES[who]
        elif work_code == 403:
            assert answer.json() == {
                "detail": "'vera' has the viewer role; this needs operator or above"
            }
        else:
            _is_challenge(answer, invalid=who == "unknown")
    if work_code != 200:
        assert _status(client) == "open"


def test_a_named_actor_is_kept_and_the_user_is_the_default(settings: Settings) -> None:
    client = api_client(settings, OPERATOR_TOKEN)
    named = client.post("/v1/friction/f-pay/acknowledge", json={"note": "x", "actor": "maria"})
    assert named.json()["status_changed_by"] == "maria"
    default = client.post("/v1/friction/f-pay/resolve", json={"note": "done"})
    assert default.json()["status_changed_by"] == "otto"
    assert [(h["status"], h["actor"]) for h in default.json()["history"]] == [
        ("acknowledged", "maria"),
        ("resolved", "otto"),
    ]


def test_a_user_of_the_store_until_removed(settings: Settings, store: str) -> None:
    users = Users(engine_for(store))
    token = users.add("maria", "operator")
    client = api_client(settings, token)
    assert users.list()[0].last_used_at is None
    assert client.get("/v1/me").json() == {"name": "maria", "role": "operator"}
    assert client.get("/v1/customers/c-1").status_code == 200
    resolved = client.post("/v1/friction/f-cart/resolve", json={"note": "called back"})
    assert resolved.status_code == 200, resolved.text
    assert resolved.json()["history"][-1]["actor"] == "maria"
    (info,) = users.list()
    assert info.last_used_at is not None
    viewer = api_client(settings, users.add("sam", "viewer"))
    assert viewer.get("/v1/customers/c-1").status_code == 200
    assert viewer.post("/v1/friction/f-cart/reopen", json={"note": "x"}).status_code == 403
    users.remove("maria")
    for path in READS:
        refused = client.get(path)
        assert refused.status_code == 401, path
        assert refused.json()["detail"].startswith("unknown or removed token")
    assert client.post("/v1/friction/f-cart/reopen", json={"note": "x"}).status_code == 401
    assert client.post("/v1/session", json={"token": token}).status_code == 401
    assert viewer.get("/v1/me").json() == {"name": "sam", "role": "viewer"}


def test_ingestion_keys_cannot_read(settings: Settings, store: str) -> None:
    stored_key = SourceKeys(engine_for(store)).add("pos-store-12")
    for key in (INGEST_KEY, stored_key):
        client = api_client(settings, key)
        for path in READS:
            assert client.get(path).status_code == 401, path
        assert client.post("/v1/friction/f-pay/resolve", json={"note": "x"}).status_code == 401
        signed_in = client.post("/v1/session", json={"token": key})
        assert signed_in.status_code == 401
        assert "set-cookie" not in signed_in.headers
        cookie_only = api_client(settings)
        cookie_only.cookies.set("touchstream_session", key)
        assert cookie_only.get("/v1/customers/c-1").status_code == 401
    user_token = api_client(settings, VIEWER_TOKEN).post("/v1/events", json={})
    assert user_token.status_code == 401  # and a login token does not ingest
    assert user_token.json()["detail"].startswith("unknown or revoked source key")


def test_the_session_cookie(settings: Settings) -> None:
    client = api_client(settings)
    wrong = client.post("/v1/session", json={"token": "tsu_wrong-wrong-wrong"})
    assert wrong.status_code == 401
    assert "set-cookie" not in wrong.headers
    assert client.get("/v1/customers/c-1").status_code == 401
    started = client.post("/v1/session", json={"token": VIEWER_TOKEN})
    assert started.status_code == 200, started.text
    assert started.json() == {"name": "vera", "role": "viewer"}
    cookie = started.headers["set-cookie"]
    assert cookie.startswith(f"touchstream_session={VIEWER_TOKEN};")
    assert "HttpOnly" in cookie
    assert "SameSite=strict" in cookie
    assert "Path=/" in cookie
    assert "Secure" not in cookie  # plain HTTP here; over HTTPS it is Secure (below)
    assert client.get("/v1/customers/c-1").status_code == 200
    assert client.get("/v1/me").json() == {"name": "vera", "role": "viewer"}
    assert client.post("/v1/friction/f-pay/resolve", json={"note": "x"}).status_code == 403
    as_operator = client.post(
        "/v1/friction/f-pay/resolve", json={"note": "x"}, headers=bearer(OPERATOR_TOKEN)
    )
    assert as_operator.status_code == 200  # the header wins over the cookie
    assert as_operator.json()["status_changed_by"] == "otto"
    ended = client.delete("/v1/session")
    assert ended.status_code == 204
    assert ended.headers["set-cookie"].startswith('touchstream_session="";')
    assert "Max-Age=0" in ended.headers["set-cookie"]
    assert "touchstream_session" not in client.cookies
    assert client.get("/v1/customers/c-1").status_code == 401
    secure = api_client(settings, base_url="https://testserver")
    over_https = secure.post("/v1/session", json={"token": VIEWER_TOKEN})
    assert "Secure" in over_https.headers["set-cookie"]


def test_health_readiness_and_metrics_stay_open(settings: Settings) -> None:
    client = api_client(settings)
    assert client.get("/health").json()["status"] == "ok"
    ready = client.get("/ready")
    assert ready.status_code == 503  # no broker here, but no token asked for either
    assert ready.json()["status"] == "unavailable"
    metrics = client.get("/metrics")
    assert metrics.status_code == 200
    assert "touchstream_ingest_events_total" in metrics.text
    schemes = client.get("/openapi.json").json()["components"]["securitySchemes"]
    assert schemes["token"] == {
        "type": "http",
        "scheme": "bearer",
        "description": "A login token: `touchstream users add NAME --role R` prints one.",
    }
    assert (schemes["session"]["in"], schemes["session"]["name"]) == (
        "cookie",
        "touchstream_session",
    )


def test_an_unreachable_store_is_503_for_store_tokens_only(tmp_path: Path) -> None:
    url = f"postgresql+psycopg2://nobody@127.0.0.1:{free_port()}/nothing"
    settings = store_settings(url, tmp_path)
    unknown = api_client(settings, "tsu_some-user-token-from-the-store").get("/v1/me")
    assert unknown.status_code == 503
    assert unknown.json()["detail"].startswith("cannot check the token: the user store cannot")
    assert unknown.headers["retry-after"] == "5"
    assert api_client(settings, VIEWER_TOKEN).get("/v1/me").json()["name"] == "vera"


def test_a_static_token_that_is_also_a_source_key_is_refused(tmp_path: Path) -> None:
    settings = Settings(
        data_dir=tmp_path,
        api_tokens=SecretStr(f"vera:viewer:{INGEST_KEY}"),
        ingest_keys=SecretStr(f"web-shop:{INGEST_KEY}"),
    )
    with pytest.raises(ConfigurationError, match="the API tokens of vera"):
        create_app(settings, f"127.0.0.1:{free_port()}", watch_dlq=False)
