"""Dashboard pages over a store on PostgreSQL and SQLite, without a browser: escaping of
untrusted values, the friction list's filters, error pages, the login's redirect target and
the response headers. (The browser test, tests/e2e/test_dashboard_browser.py, drives the
pages as a user does.)"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from pathlib import Path

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient

from services.crm.sink import CrmSink
from services.simulate import generate
from services.simulate.inprocess import InProcessPipeline
from services.store.db import engine_for, upgrade
from tests.support.access import OPERATOR_TOKEN, VIEWER_TOKEN, api_client, bearer, store_settings
from tests.support.stages import sink_all

HOSTILE = '"><script>alert(1)</script><img src=x onerror=alert(2)>'
ESCAPED = "&quot;&gt;&lt;script&gt;alert(1)&lt;/script&gt;&lt;img src=x onerror=alert(2)&gt;"


@pytest.fixture(scope="module")
def records() -> list[tuple[str, bytes]]:
    scenario = generate(60, 14, seed=5)
    return InProcessPipeline().run(scenario.events + scenario.closing)


@pytest.fixture
def store(store_url: str, records: list[tuple[str, bytes]]) -> sa.Engine:
    upgrade(store_url)
    engine = engine_for(store_url)
    sink_all(CrmSink(engine, clock=lambda: datetime(2026, 3, 20, tzinfo=UTC)), records)
    return engine


@pytest.fixture
def client(store: sa.Engine, store_url: str, tmp_path: Path) -> TestClient:
    """An operator's session (the cookie the login sets)."""
    client = api_client(store_settings(store_url, tmp_path))
    answer = client.post("/ui/login", data={"token": OPERATOR_TOKEN}, follow_redirects=False)
    assert answer.status_code == 303
    return client


def _flagged_customer(engine: sa.Engine) -> str:
    with engine.connect() as conn:
        found = conn.execute(
            sa.text("SELECT customer_id FROM friction_events ORDER BY customer_id LIMIT 1")
        ).scalar_one()
    return str(found)


def test_untrusted_values_are_escaped(client: TestClient, store: sa.Engine) -> None:
    customer = _flagged_customer(store)
    with store.begin() as conn:
        conn.execute(
            sa.text("UPDATE customers SET name = :n, segment = :n WHERE customer_id = :c"),
            {"n": HOSTILE, "c": customer},
        )
    pages = [
        client.get(f"/ui/customers/{customer}"),
        client.get("/ui/friction", params={"stage": HOSTILE, "rule": HOSTILE}),
        client.get("/ui/customers", params={"q": HOSTILE}),
    ]
    for page in pages:
        assert "<script>alert" not in page.text
        assert "onerror=alert" not in page.text.replace(ESCAPED, "")
        assert ESCAPED in page.text
    assert pages[0].status_code == 200
    assert pages[2].status_code == 404  # nobody is known by that


def test_pages_send_a_strict_content_security_policy(client: TestClient) -> None:
    for target in ("/ui/", "/ui/friction", "/ui/ops", "/ui/login"):
        answer = client.get(target)
        policy = answer.headers["content-security-policy"]
        assert "default-src 'none'" in policy
        assert "script-src 'self'" in policy
        assert answer.headers["cache-control"] == "no-store"
        assert re.search(r"<script>|\son\w+=|https?://", answer.text) is None, target


def test_the_friction_list_filters(client: TestClient, store: sa.Engine) -> None:
    customer = _flagged_customer(store)
    with store.connect() as conn:
        expected = conn.execute(
            sa.text("SELECT count(*) FROM friction_events WHERE customer_id = :c"),
            {"c": customer},
        ).scalar_one()
        email = conn.execute(
            sa.text("SELECT value FROM identities WHERE customer_id = :c AND kind = 'email'"),
            {"c": customer},
        ).scalar()
        billing_open = conn.execute(
            sa.text("SELECT count(*) FROM friction_events WHERE journey = 'billing'")
        ).scalar_one()
    for named in filter(None, (customer, email and email.upper())):
        page = client.get("/ui/friction", params={"customer": named}).text
        assert f'data-total="{expected}"' in page
        assert page.count("<tr data-flag-id=") == min(expected, 50)
    page = client.get("/ui/friction", params={"journey": "billing", "status": "open"}).text
    assert f'data-total="{billing_open}"' in page  # nothing worked yet: all open
    refused = client.get("/ui/friction", params={"status": "closed"})
    assert "no status &#x27;closed&#x27;" in refused.text
    assert 'data-total="0"' in refused.text


def test_errors_are_pages(client: TestClient) -> None:
    unknown = client.get("/ui/journeys/returns")
    assert unknown.status_code == 404
    assert "no journey &#x27;returns&#x27;" in unknown.text
    bad = client.get("/ui/", params={"since": "last week"})
    assert bad.status_code == 422
    assert "since &#x27;last week&#x27; is not a date" in bad.text
    assert client.get("/ui/customers/nobody-at-all").status_code == 404
    assert client.get("/ui/static/secrets.txt").status_code == 404


def test_login_goes_back_only_to_dashboard_pages(store_url: str, tmp_path: Path) -> None:
    client = api_client(store_settings(store_url, tmp_path))
    upgrade(store_url)
    for target, lands in (
        ("/ui/friction?status=open", "/ui/friction?status=open"),
        ("//elsewhere.example/ui/", "/ui/"),
        ("https://elsewhere.example/", "/ui/"),
        ("/ui/login", "/ui/"),
        ("/v1/me", "/ui/"),
    ):
        answer = client.post(
            "/ui/login", data={"token": VIEWER_TOKEN, "next": target}, follow_redirects=False
        )
        assert (answer.status_code, answer.headers["location"]) == (303, lands)
    refused = client.post("/ui/login", data={"token": "x" * 20}, follow_redirects=False)
    assert refused.status_code == 401
    assert "set-cookie" not in refused.headers


def test_a_viewer_gets_no_forms_and_a_bearer_token_works(
    store: sa.Engine, store_url: str, tmp_path: Path
) -> None:
    client = api_client(store_settings(store_url, tmp_path), VIEWER_TOKEN)
    page = client.get("/ui/friction", headers=bearer(VIEWER_TOKEN))
    assert page.status_code == 200
    assert 'class="work"' not in page.text
    assert "dashboard.js" not in page.text
    assert "needs the operator role" in page.text
