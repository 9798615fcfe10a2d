"""The read API and the dashboard against injection: SQL-, JSON- and HTML-injection strings,
NUL, unicode-heavy and very long values in every path and query parameter that reaches the
store (customer ids, lookup identifiers, flag ids, report filters, dashboard searches) get
a 4xx or an empty answer, never a 5xx or another customer's data, and every table keeps its
rows. And roles, beyond tests/integration/test_api_auth.py: every route of the app (the
dashboard's included, and routes added later) refuses no token and source keys however they
are presented, every state-changing route refuses viewers, and no route manages users."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient
from pydantic import SecretStr
from sqlalchemy import Engine

from services.settings import Settings
from services.store.db import engine_for, upgrade
from services.store.models import Base
from tests.hostile.payloads import INJECTIONS, LONG, NUL, UNICODE_HEAVY
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

HOSTILE = {**INJECTIONS, **UNICODE_HEAVY, "nul": NUL, "long": LONG[:5000]}
KNOWN_FLAGS = ("f-pay", "f-cart", "f-bo")
KINDS = ("customer_id", "email", "phone", "loyalty_id", "account_id", "anonymous_id")


@pytest.fixture
def store(store_url: str) -> Iterator[Engine]:
    upgrade(store_url)
    engine = engine_for(store_url)
    populate(engine)
    yield engine
    engine.dispose()


@pytest.fixture
def settings(store_url: str, store: Engine, tmp_path: Path) -> Settings:
    return store_settings(store_url, tmp_path, ingest_keys=SecretStr(f"web-shop:{INGEST_KEY}"))


def counts(engine: Engine) -> dict[str, int]:
    """Rows per table of the store."""
    with engine.connect() as conn:
        return {
            name: conn.execute(sa.select(sa.func.count()).select_from(table)).scalar_one()
            for name, table in Base.metadata.tables.items()
        }


def client_of(settings: Settings, token: str) -> TestClient:
    client = api_client(settings, token)
    client.cookies.set("touchstream_session", token)  # the dashboard reads the cookie
    client.follow_redirects = False
    return client


def _read_paths(value: str) -> list[str]:
    v = quote(value, safe="")
    return [
        f"/v1/customers/{v}",
        f"/v1/customers/{v}?interactions=3",
        *(f"/v1/customers/lookup?{kind}={v}" for kind in KINDS),
        f"/v1/friction/{v}",
        f"/v1/reports/friction?journey={v}",
        f"/v1/reports/friction?since={v}",
        f"/v1/reports/friction?until={v}&format=csv",
        f"/ui/customers/{v}",
        f"/ui/customers?q={v}",
        f"/ui/friction?customer={v}",
        f"/ui/friction?journey={v}&stage={v}&rule={v}&status={v[:16]}",
        f"/ui/journeys/{v}",
    ]


def test_hostile_values_in_paths_and_queries_find_nothing_and_break_nothing(
    settings: Settings, store: Engine
) -> None:
    before = counts(store)
    client = client_of(settings, OPERATOR_TOKEN)
    for name, value in HOSTILE.items():
        for path in _read_paths(value):
            started = time.monotonic()
            answer = client.get(path)
            where = (name, path, answer.status_code, answer.text[:300])
            assert time.monotonic() - started < 2.5, f"{where} took as long as a pg_sleep"
            assert answer.status_code < 500, where
            if path.startswith("/v1/") and not path.startswith("/v1/reports"):
                assert answer.status_code in (400, 404, 422), where  # found nothing
            if answer.status_code >= 400 and not path.startswith("/ui/"):
                assert answer.json()["detail"], where
            if "customer=" in path or path.startswith("/ui/customers"):
                assert not [f for f in KNOWN_FLAGS if f in answer.text], where  # no one's flags
        for verb in ("acknowledge", "resolve", "reopen"):
            answer = client.post(f"/v1/friction/{quote(value, safe='')}/{verb}", json={"note": "x"})
            assert answer.status_code in (400, 404, 422), (name, verb, answer.text[:300])
    assert counts(store) == before, "a table changed"


def test_a_lookup_is_exact_not_a_pattern(settings: Settings) -> None:
    """LIKE wildcards and quotes are characters of the value: no partial matches."""
    client = client_of(settings, VIEWER_TOKEN)
    assert (
        client.get("/v1/customers/lookup", params={"email": "ana@example.com"}).status_code == 200
    )
    for near in ("%@example.com", "ana@example.co_", "ANA@EXAMPLE.COM' --", "c-1' OR 'x'='x"):
        for kind in ("email", "customer_id"):
            answer = client.get("/v1/customers/lookup", params={kind: near})
            assert answer.status_code in (404, 422), (kind, near, answer.text[:200])


def test_hostile_notes_and_actors_are_kept_as_text(settings: Settings, store: Engine) -> None:
    """A note or actor is data: stored and read back exactly, or refused with a reason (NUL,
    which the store cannot hold; past the length limits)."""
    client = client_of(settings, OPERATOR_TOKEN)
    before = counts(store)
    changes = 0
    for name, value in HOSTILE.items():
        body = {"note": value, "actor": value[:64]}
        answer = client.post("/v1/friction/f-pay/acknowledge", json=body)
        if "\x00" in value or len(value) > 4000:
            assert answer.status_code == 422, (name, answer.text[:300])
            assert answer.json()["detail"][0]["msg"], name
            continue
        assert answer.status_code == 200, (name, answer.text[:300])
        entry = client.get("/v1/friction/f-pay").json()["history"][-1]
        assert (entry["note"], entry["actor"]) == (value, value[:64]), name
        assert client.post("/v1/friction/f-pay/reopen", json={"note": "next"}).status_code == 200
        changes += 2
    after = counts(store)
    assert after == {**before, "friction_history": before["friction_history"] + changes}


def test_a_lone_surrogate_in_a_body_is_a_422_not_a_500(settings: Settings) -> None:
    client = client_of(settings, OPERATOR_TOKEN)
    for path, body in (
        ("/v1/friction/f-pay/acknowledge", rb'{"note": "\ud800"}'),
        ("/v1/friction/f-pay/resolve", rb'{"note": "x", "actor": "\udfff"}'),
        ("/v1/session", rb'{"token": "\ud83d"}'),
    ):
        answer = client.post(path, content=body, headers={"content-type": "application/json"})
        assert answer.status_code == 422, (path, answer.text[:300])
        (error,) = answer.json()["detail"]
        assert error["msg"], error
    assert client.get("/v1/friction/f-pay").json()["status"] == "open"


# -- roles ------------------------------------------------------------------------------------

OPEN = {
    "/health",
    "/ready",
    "/metrics",
    "/openapi.json",
    "/docs",
    "/docs/oauth2-redirect",
    "/redoc",
    "/v1/session",
    "/ui/login",
    "/ui/logout",
    "/ui/static/{name}",
}
INGESTION = {"/v1/events", "/v1/batch", "/v1/track", "/v1/identify", "/v1/page"}
EXAMPLE_PARAMS = {
    "customer_id": "c-1",
    "customer_id:path": "c-1",
    "flag_id": "f-pay",
    "journey": "purchase",
}


def routes(settings: Settings) -> list[tuple[str, str]]:
    """(method, path) of every route of the app, included routers and the dashboard too."""
    app: Any = api_client(settings).app
    found: set[tuple[str, str]] = set()

    def walk(candidates: Any) -> None:
        for route in candidates:
            if hasattr(route, "effective_route_contexts"):  # an included router
                walk(route.effective_route_contexts())
            elif getattr(route, "methods", None):
                found.update((m, route.path) for m in route.methods if m != "HEAD")

    walk(app.routes)
    assert ("GET", "/v1/customers/{customer_id}") in found, "the walk missed included routes"
    assert ("GET", "/ui/customers/{customer_id:path}") in found, "the walk missed the dashboard"
    return sorted(found)


def _concrete(path: str) -> str:
    for name, value in EXAMPLE_PARAMS.items():
        path = path.replace(f"{{{name}}}", value)
    assert "{" not in path, f"no example value for a parameter of {path}"
    return path


def _call(client: TestClient, method: str, path: str, **kw: Any) -> Any:
    body = {"json": {"note": "role check"}} if method == "POST" else {}
    return client.request(method, _concrete(path), **body, **kw)


def _refused(answer: Any, path: str) -> bool:
    """401, or for a dashboard page the redirect to its login page."""
    if path.startswith("/ui/"):
        return answer.status_code == 303 and "/ui/login" in answer.headers["location"]
    return answer.status_code == 401 and "WWW-Authenticate" in answer.headers


def test_every_guarded_route_refuses_no_token_and_every_form_of_source_key(
    settings: Settings, store: Engine
) -> None:
    before = counts(store)
    guarded = [(m, p) for m, p in routes(settings) if p not in OPEN and p not in INGESTION]
    assert len(guarded) >= 15, guarded
    presented: dict[str, dict[str, Any]] = {
        "nothing": {},
        "key as bearer": {"headers": bearer(INGEST_KEY)},
        "key as basic": {"auth": (INGEST_KEY, "")},
        "key as header": {"headers": {"X-Touchstream-Key": INGEST_KEY}},
        "injection as bearer": {"headers": bearer("' OR '1'='1")},
        "long bearer": {"headers": bearer("t" * 10_000)},
    }
    for how, kw in presented.items():
        client = api_client(settings)
        client.follow_redirects = False
        for method, path in guarded:
            answer = _call(client, method, path, **kw)
            assert _refused(answer, path), (how, method, path, answer.status_code)
    assert counts(store) == before


def test_every_state_changing_route_refuses_a_viewer(settings: Settings, store: Engine) -> None:
    before = counts(store)
    viewer = client_of(settings, VIEWER_TOKEN)
    changing = [
        (m, p)
        for m, p in routes(settings)
        if m in ("POST", "PUT", "PATCH", "DELETE") and p not in OPEN and p not in INGESTION
    ]
    assert {p for _, p in changing} >= {f"/v1/friction/{{flag_id}}/{v}" for v in ("resolve",)}
    for method, path in changing:
        answer = _call(viewer, method, path)
        assert answer.status_code == 403, (method, path, answer.text[:200])
        assert "viewer role" in answer.json()["detail"]
    for method, path in [(m, p) for m, p in routes(settings) if (m, p) not in changing]:
        if path in OPEN or path in INGESTION:
            continue
        answer = _call(viewer, method, path)
        assert answer.status_code not in (401, 403), (method, path, answer.status_code)
    assert counts(store) == before


def test_login_tokens_cannot_ingest_on_any_ingestion_route(settings: Settings) -> None:
    for token in (VIEWER_TOKEN, OPERATOR_TOKEN, ADMIN_TOKEN):
        client = api_client(settings, token)
        for path in sorted(INGESTION):
            answer = client.post(path, json={"batch": []} if path == "/v1/batch" else {})
            assert answer.status_code == 401, (token, path)
            assert answer.json()["detail"].startswith("unknown or revoked source key")


def test_no_route_manages_users_whatever_the_role(settings: Settings, store: Engine) -> None:
    """Users are managed with ``touchstream users`` on the store, never over HTTP."""
    assert not [p for _, p in routes(settings) if "user" in p.lower()]
    before = counts(store)
    for token in (VIEWER_TOKEN, OPERATOR_TOKEN, ADMIN_TOKEN):
        client = api_client(settings, token)
        for method, path in (
            ("POST", "/v1/users"),
            ("GET", "/v1/users"),
            ("DELETE", "/v1/users/vera"),
            ("PUT", "/v1/users/vera"),
            ("POST", "/v1/me"),
        ):
            body = {"json": {"name": "mallory", "role": "admin"}} if method != "GET" else {}
            answer = client.request(method, path, **body)
            assert answer.status_code in (404, 405), (method, path, answer.status_code)
    assert counts(store) == before
