"""``GET /v1/reports/friction`` over a store on PostgreSQL and SQLite: the report in JSON, CSV
and HTML, and bad input answered 422 with the reason."""

from __future__ import annotations

from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from services.embedded.process import free_port
from services.store.db import engine_for, upgrade
from tests.support import report_formats as formats
from tests.support.access import VIEWER_TOKEN, api_client, store_settings
from tests.support.friction_store import (
    EXPECTED_ROWS,
    EXPECTED_TOTALS,
    SINCE,
    UNTIL,
    populate_friction,
)

PERIOD = {"since": SINCE, "until": UNTIL}


def _client(url: str, tmp_path: Path) -> TestClient:
    """A client with a viewer's token (a static one: checking it needs no store)."""
    return api_client(store_settings(url, tmp_path), VIEWER_TOKEN)


@pytest.fixture
def client(store_url: str, tmp_path: Path) -> TestClient:
    upgrade(store_url)
    populate_friction(engine_for(store_url))
    return _client(store_url, tmp_path)


def test_the_report_as_json(client: TestClient) -> None:
    answer = client.get("/v1/reports/friction", params=PERIOD)
    assert answer.status_code == 200, answer.text
    assert answer.headers["content-type"] == "application/json"
    body = answer.json()
    assert (body["since"], body["until"], body["previous_since"], body["days"]) == (
        "2026-03-09T00:00:00Z",
        "2026-03-16T00:00:00Z",
        "2026-03-02T00:00:00Z",
        7,
    )
    rows, totals = formats.from_json(answer.text)
    assert rows == [formats.normalised(r) for r in EXPECTED_ROWS]
    assert totals == formats.normalised(EXPECTED_TOTALS)
    checkout = body["rows"][1]
    assert checkout["examples"][0] == {
        "customer_id": "cus-1",
        "flags": 2,
        "value_at_risk": "200.00",
    }
    assert checkout["top_channels"] == [
        {"channel": "web", "flags": 3},
        {"channel": "store", "flags": 1},
    ]
    assert [d["flags"] for d in body["daily"]] == [1, 1, 1, 1, 1, 1, 0]


def test_one_journey(client: TestClient) -> None:
    body = client.get("/v1/reports/friction", params={**PERIOD, "journey": "support"}).json()
    assert body["journey"] == "support"
    assert [(r["rule_id"], r["flags"]) for r in body["rows"]] == [("detractor_nps", 1)]
    assert body["totals"]["flags"] == 1


def test_csv_and_html_agree_with_the_json(client: TestClient) -> None:
    as_json = client.get("/v1/reports/friction", params=PERIOD)
    as_csv = client.get("/v1/reports/friction", params={**PERIOD, "format": "csv"})
    as_html = client.get("/v1/reports/friction", params={**PERIOD, "format": "html"})
    assert as_csv.headers["content-type"] == "text/csv; charset=utf-8"
    assert as_html.headers["content-type"] == "text/html; charset=utf-8"
    assert (
        'filename="friction-2026-03-09-2026-03-16.html"' in as_html.headers["content-disposition"]
    )
    json_rows, json_totals = formats.from_json(as_json.text)
    csv_rows, csv_totals = formats.from_csv(as_csv.text)
    html_rows, html_totals = formats.from_html(as_html.text)
    assert csv_rows == json_rows
    assert html_rows == formats.common(json_rows, set(html_rows[0]))
    assert csv_totals == json_totals == html_totals
    assert formats.external_references(as_html.text) == []
    assert "<svg" in as_html.text


@pytest.mark.parametrize(
    ("params", "reason"),
    [
        (
            {"since": "last week"},
            "since 'last week' is not a date (2026-03-02) or an ISO date-time",
        ),
        ({"until": "2026-02-30"}, "until '2026-02-30' is not a date"),
        (
            {"since": "2026-03-16", "until": "2026-03-09"},
            "since (2026-03-16) must be before until (2026-03-09, exclusive)",
        ),
        ({"since": "2020-01-01", "until": "2026-01-01"}, "a report covers at most 731"),
        (
            {"journey": "returns"},
            "no journey 'returns'; known journeys: billing, purchase, support",
        ),
    ],
)
def test_bad_input_says_why(client: TestClient, params: dict[str, str], reason: str) -> None:
    answer = client.get("/v1/reports/friction", params=params)
    assert answer.status_code == 422, answer.text
    assert reason in answer.json()["detail"]


def test_an_unknown_format_is_refused(client: TestClient) -> None:
    answer = client.get("/v1/reports/friction", params={"format": "xlsx"})
    assert answer.status_code == 422
    assert "json" in answer.text
    assert "csv" in answer.text


def test_an_unreachable_store_is_503(tmp_path: Path) -> None:
    url = f"postgresql+psycopg2://nobody@127.0.0.1:{free_port()}/nothing"
    answer = _client(url, tmp_path).get("/v1/reports/friction")
    assert answer.status_code == 503
    assert answer.json()["detail"].startswith("cannot read the store: ")
