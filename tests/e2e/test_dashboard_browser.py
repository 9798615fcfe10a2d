"""The dashboard in headless Chromium after a simulated run (issue 6's acceptance).

A generated scenario goes through the validate, identity and journey stages and the real CRM
sink into a store (PostgreSQL and SQLite); ``touchstream api`` serves it, watching a broker
whose raw topic holds events no worker reads. The browser signs in, opens the overview, a
journey, the friction list (acknowledging a flag), a Customer 360 page and the operations
page, and every number read from the pages equals the read API's for the same data. Without a
token the pages send the browser to the login page and the read API answers 401. Screenshots
are kept under the test's tmp_path and copied to ``$TOUCHSTREAM_TEST_ARTIFACTS`` if set."""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode

import pytest
import sqlalchemy as sa
from playwright.sync_api import BrowserContext, Page, expect
from pydantic import SecretStr

from services.crm.sink import CrmSink
from services.emit import emit_lines
from services.kafka import ensure_topics
from services.settings import Settings
from services.simulate import generate
from services.simulate.inprocess import InProcessPipeline
from services.store.db import engine_for, upgrade
from tests.support.access import API_TOKENS, OPERATOR_TOKEN, VIEWER_TOKEN
from tests.support.browser import chromium, keep_artifacts
from tests.support.events import dumps, example, example_types
from tests.support.services import start_api
from tests.support.stages import sink_all

pytestmark = [pytest.mark.broker, pytest.mark.browser]

PERIOD = {"since": "2026-03-16", "until": "2026-03-30"}  # the scenario's last two weeks
RAW_EVENTS = 12  # sent to the raw topic with no worker running: lag on the operations page
HOSTILE = '<img src=x onerror="alert(1)">Ana "&" <script>alert(2)</script>'
NOTE = "Called the customer; card to be updated <b>today</b>"
ROWS = """rows => rows.map(r => ({
    key: {...r.dataset},
    cells: Object.fromEntries(Array.from(r.querySelectorAll('[data-field]')).map(
        c => [c.dataset.field, c.dataset.value === undefined ? null : c.dataset.value]))
}))"""


@pytest.fixture(scope="module")
def records() -> list[tuple[str, bytes]]:
    """Four weeks of 200 customers through the validate, identity and journey stages."""
    scenario = generate(200, 28, seed=11)
    return InProcessPipeline().run(scenario.events + scenario.closing)


@pytest.fixture
def store(store_url: str, records: list[tuple[str, bytes]]) -> str:
    """The scenario in a fresh store, written by the real CRM sink."""
    upgrade(store_url)
    engine = engine_for(store_url)
    sink_all(CrmSink(engine, clock=lambda: datetime(2026, 4, 6, tzinfo=UTC)), records)
    engine.dispose()
    return store_url


@pytest.fixture
def dashboard(settings: Settings, store: str) -> Iterator[str]:
    """``touchstream api`` over ``store`` with the test tokens, sampling stream health every
    second on a broker whose raw topic holds RAW_EVENTS events and no worker."""
    configured = settings.model_copy(
        update={
            "database_url": SecretStr(store),
            "api_tokens": SecretStr(API_TOKENS),
            "ops_sample_interval": 1.0,
            "ops_window": 3,
        }
    )
    broker = configured.broker_url or ""
    ensure_topics(configured, broker)
    payloads = [dumps(example(kind, event_id=f"ui-{kind}")) for kind in example_types()]
    sent = emit_lines(broker, configured.topics.raw, enumerate(payloads[:RAW_EVENTS], 1))
    assert sent.failed == []
    process, url = start_api(configured)
    yield url
    process.stop()


# -- the API, as a client with a token sees it ------------------------------------------------


def api(base: str, path: str, token: str | None = VIEWER_TOKEN, **params: Any) -> Any:
    """The JSON of ``GET path``; fails the test on any other status than 200."""
    url = f"{base}{path}" + (f"?{urlencode(params)}" if params else "")
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    request = urllib.request.Request(url, headers=headers)  # noqa: S310 - local test URL
    try:
        with urllib.request.urlopen(request, timeout=10) as answer:  # noqa: S310
            return json.loads(answer.read())
    except urllib.error.HTTPError as error:
        pytest.fail(f"GET {path}: {error.code} {error.read()[:300]!r}")


# -- the page, as the browser shows it --------------------------------------------------------


def rows(page: Page, selector: str) -> list[dict[str, Any]]:
    """Each row's ``data-*`` attributes (``key``) and its cells' ``data-value`` by field."""
    found: list[dict[str, Any]] = page.eval_on_selector_all(selector, ROWS)
    return found


def metric(page: Page, name: str) -> str | None:
    return page.locator(f'[data-metric="{name}"]').get_attribute("data-value")


def shown(api_value: Any, page_value: str | None) -> Any:
    """The page's text value as the type the API gave (money stays a string)."""
    if page_value is None or api_value is None:
        return page_value
    if isinstance(api_value, bool):
        return page_value == "true"
    if isinstance(api_value, int):
        return int(page_value)
    if isinstance(api_value, float):
        return float(page_value)
    return page_value


def same(cells: dict[str, str | None], expected: dict[str, Any], fields: tuple[str, ...]) -> None:
    assert {f: shown(expected[f], cells[f]) for f in fields} == {f: expected[f] for f in fields}


def totals(page: Page) -> dict[str, str | None]:
    names = ("flags", "customers", "value_at_risk", "previous_flags")
    return {name: metric(page, name) for name in names}


def expected_totals(report: dict[str, Any]) -> dict[str, str | None]:
    t = report["totals"]
    return {
        "flags": str(t["flags"]),
        "customers": str(t["customers"]),
        "value_at_risk": t["value_at_risk"],
        "previous_flags": str(t["previous_flags"]),
    }


def row_key(row: dict[str, Any]) -> tuple[str, str, str]:
    return (row["journey"], row["stage"] or "", row["rule_id"])


def check_rows(page_rows: list[dict[str, Any]], report: dict[str, Any]) -> None:
    """Top friction rows: the report's rows with the most flags (then value at risk)."""
    flagged = [r for r in report["rows"] if r["flags"]]
    top = sorted(flagged, key=lambda r: (-r["flags"], -Decimal(r["value_at_risk"])))[:10]
    keys = [(r["key"]["journey"], r["key"]["stage"], r["key"]["rule"]) for r in page_rows]
    assert keys == [row_key(r) for r in top]
    fields = ("flags", "customers", "reached", "rate_per_1000", "value_at_risk", "change")
    for on_page, expected in zip(page_rows, top, strict=True):
        same(on_page["cells"], expected, fields)


class Shots:
    """Full-page screenshots, numbered in the order taken."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.taken: list[Path] = []
        folder.mkdir(parents=True, exist_ok=True)

    def __call__(self, page: Page, name: str) -> None:
        target = self.folder / f"{len(self.taken) + 1:02d}-{name}.png"
        page.screenshot(path=str(target), full_page=True)
        self.taken.append(target)


def watch(page: Page, base: str, trouble: list[str]) -> None:
    """Note any request that leaves the API's origin, script error, dialog and console error
    (the browser reports what the Content-Security-Policy blocks there)."""
    page.on(
        "request",
        lambda r: None if r.url.startswith((base, "data:")) else trouble.append(f"fetch {r.url}"),
    )
    page.on("pageerror", lambda error: trouble.append(f"script error: {error}"))
    page.on("dialog", lambda dialog: trouble.append(f"dialog: {dialog.message}"))
    page.on(
        "console",
        lambda m: trouble.append(f"console: {m.text}") if m.type == "error" else None,
    )


def sign_in(page: Page, token: str) -> None:
    page.fill('input[name="token"]', token)
    page.click('button:has-text("Sign in")')


# -- the steps --------------------------------------------------------------------------------


def without_a_token(context: BrowserContext, base: str, shots: Shots) -> None:
    """Pages answer 303 to the login page, the read API 401; a wrong token is refused."""
    for target in ("/ui/", "/ui/journeys/purchase", "/ui/friction", "/ui/customers/c-1", "/ui/ops"):
        answer = context.request.get(target, max_redirects=0)
        assert answer.status == 303, target
        assert answer.headers["location"] == f"/ui/login?next={quote(target, safe='')}"
    for target in ("/v1/reports/friction", "/v1/customers/c-1", "/v1/friction/f-1", "/v1/me"):
        assert context.request.get(target).status == 401, target
    answer = context.request.post("/v1/friction/f-1/acknowledge", data={"note": "x"})
    assert answer.status == 401
    page = context.new_page()
    page.goto("/ui/ops")
    assert page.url == f"{base}/ui/login?next=%2Fui%2Fops"
    sign_in(page, "not-a-token-of-anyone-0000")
    expect(page.locator(".error")).to_have_text("Unknown or removed token.")
    shots(page, "login-refused")
    context.add_cookies(
        [{"name": "touchstream_session", "value": "forged-0123456789abcdef", "url": base}]
    )
    assert context.request.get("/ui/", max_redirects=0).status == 303
    page.close()


def overview(page: Page, base: str, shots: Shots) -> dict[str, Any]:
    report = api(base, "/v1/reports/friction", **PERIOD)
    assert report["totals"]["flags"] > 50  # enough data to page through
    assert totals(page) == expected_totals(report)
    daily = page.eval_on_selector_all(
        "ul.series li", "els => els.map(e => [e.dataset.day, e.dataset.flags, e.dataset.value])"
    )
    assert daily == [[d["day"], str(d["flags"]), d["value_at_risk"]] for d in report["daily"]]
    check_rows(rows(page, "table.rows tbody tr[data-rule]"), report)
    per_journey: dict[str, int] = {}
    for line in report["stages"]:
        per_journey[line["journey"]] = per_journey.get(line["journey"], 0) + line["flags"]
    on_page = {
        r["key"]["journey"]: int(r["cells"]["flags"]) for r in rows(page, "table.journeys tbody tr")
    }
    assert on_page == per_journey
    assert page.locator("main svg").count() >= 3
    shots(page, "overview")
    return report


def journey(page: Page, base: str, shots: Shots) -> None:
    page.click('header a.sub:text-is("purchase")')
    page.wait_for_url(f"**/ui/journeys/purchase?{urlencode(PERIOD)}")
    report = api(base, "/v1/reports/friction", journey="purchase", **PERIOD)
    assert totals(page) == expected_totals(report)
    stages = [s for s in report["stages"] if s["journey"] == "purchase" and s["stage"]]
    funnel = rows(page, "table.funnel tbody tr")
    assert [f["key"]["stage"] for f in funnel] == [s["stage"] for s in stages]
    before = None
    for step, line in zip(funnel, stages, strict=True):
        same(step["cells"], line, ("reached", "stage_entries", "flags", "value_at_risk"))
        rate = round(line["reached"] * 100 / before, 1) if before else None
        assert shown(0.0, step["cells"]["conversion"]) == rate
        of_first = round(line["reached"] * 100 / stages[0]["reached"], 1)
        assert shown(0.0, step["cells"]["of_first"]) == of_first
        before = line["reached"]
    assert stages[0]["reached"] > stages[-1]["reached"] > 0
    check_rows(rows(page, "table.rows tbody tr[data-rule]"), report)
    shots(page, "journey-purchase")


def friction_list(page: Page, base: str, shots: Shots, report: dict[str, Any]) -> dict[str, Any]:
    """The list counts the report's flags; pages; acknowledges the newest open billing flag."""
    page.click('header nav a:text-is("Friction")')
    page.wait_for_url(f"**/ui/friction?{urlencode(PERIOD)}")
    pager = page.locator(".pager").first
    assert pager.get_attribute("data-total") == str(report["totals"]["flags"])
    first = page.eval_on_selector_all("tr[data-flag-id]", "rs => rs.map(r => r.dataset.flagId)")
    assert len(first) == 50
    page.click('a[rel="next"] >> nth=0')
    page.wait_for_url("**page=2**")
    second = page.eval_on_selector_all("tr[data-flag-id]", "rs => rs.map(r => r.dataset.flagId)")
    assert len(second) == report["totals"]["flags"] - 50
    assert not set(first) & set(second)

    page.select_option('form.filters select[name="journey"]', "billing")
    page.select_option('form.filters select[name="status"]', "open")
    page.click('form.filters button:has-text("Filter")')
    page.wait_for_url("**status=open**")
    listed = rows(page, "table.flags tbody tr[data-flag-id]")
    assert listed
    assert int(page.locator(".pager").first.get_attribute("data-total") or 0) == len(listed)
    for row in listed:
        flag = api(base, f"/v1/friction/{row['key']['flagId']}")
        assert (flag["journey"], flag["status"], row["key"]["status"]) == (
            "billing",
            "open",
            "open",
        )
        same(row["cells"], flag, ("value_at_risk",))
    flag_id = listed[0]["key"]["flagId"]
    row = page.locator(f'tr[data-flag-id="{flag_id}"]')
    row.locator('input[name="note"]').fill(NOTE)
    row.locator('button[value="acknowledge"]').click()
    expect(row).to_have_attribute("data-status", "acknowledged")
    expect(row.locator('[data-field="changed_by"]')).to_have_text("otto")
    expect(row.locator('button[value="resolve"]')).to_be_visible()
    shots(page, "friction-acknowledged")
    detail = api(base, f"/v1/friction/{flag_id}")
    assert (detail["status"], detail["status_changed_by"]) == ("acknowledged", "otto")
    assert (detail["history"][-1]["note"], detail["history"][-1]["actor"]) == (NOTE, "otto")
    page.reload()
    expect(page.locator(f'tr[data-flag-id="{flag_id}"]')).to_have_count(0)  # no longer open
    return dict(detail)


def customer_360(page: Page, base: str, shots: Shots, store: str, flag: dict[str, Any]) -> None:
    """Looked up by e-mail from the header; the hostile CRM name is shown as text."""
    customer = flag["customer_id"]
    engine = engine_for(store)
    with engine.begin() as conn:
        conn.execute(
            sa.text("UPDATE customers SET name = :name WHERE customer_id = :id"),
            {"name": HOSTILE, "id": customer},
        )
    engine.dispose()
    view = api(base, f"/v1/customers/{quote(customer, safe='')}", interactions=50)
    emails = [i["value"] for i in view["identifiers"] if i["kind"] == "email"]
    page.fill('header input[name="q"]', emails[0].upper() if emails else customer)
    page.press('header input[name="q"]', "Enter")
    page.wait_for_url(f"**/ui/customers/{quote(customer, safe='')}")
    heading = page.locator("h1[data-customer-id]")
    assert heading.get_attribute("data-customer-id") == view["customer_id"]
    expect(heading).to_have_text(HOSTILE)
    metrics = view["metrics"]
    for name in (
        "health_score",
        "lifetime_spend",
        "orders",
        "returns",
        "open_invoices",
        "amount_overdue",
        "open_tickets",
        "last_csat",
        "last_nps",
        "interactions",
    ):
        assert shown(metrics[name], metric(page, name)) == metrics[name], name
    identifiers = page.eval_on_selector_all(
        "tr[data-identifier]", "rs => rs.map(r => [r.dataset.kind, r.dataset.identifier])"
    )
    assert identifiers == [[i["kind"], i["value"]] for i in view["identifiers"]]
    stages = {
        r["key"]["journey"]: r["key"]["stage"] for r in rows(page, "table.stages tr[data-journey]")
    }
    assert stages == {name: j["stage"] for name, j in view["journeys"].items()}
    open_flags = rows(page, "section.open-friction tr[data-flag-id]")
    assert [r["key"]["flagId"] for r in open_flags] == [f["flag_id"] for f in view["open_friction"]]
    assert {r["key"]["flagId"]: r["key"]["status"] for r in open_flags}[
        flag["flag_id"]
    ] == "acknowledged"
    events = page.eval_on_selector_all("tr[data-event-id]", "rs => rs.map(r => r.dataset.eventId)")
    assert events == [i["event_id"] for i in view["interactions"]]
    assert page.locator(
        "svg[aria-label='Interactions per channel over time'] circle"
    ).count() == len(events)
    shots(page, "customer-360")


def operations(page: Page, base: str, shots: Shots, settings: Settings) -> None:
    """The page shows the sample the API serves; the raw events wait for a worker."""
    for _ in range(20):
        page.goto("/ui/ops")
        sampled = page.locator("[data-sampled-at]").get_attribute("data-sampled-at") or ""
        streams = api(base, "/v1/ops/streams")
        window_full = streams["window"]["samples"] == streams["window"]["size"]
        if window_full and datetime.fromisoformat(sampled) == datetime.fromisoformat(
            streams["sampled_at"]
        ):
            break
        time.sleep(0.3)
    else:
        pytest.fail("the operations page never showed the sample /v1/ops/streams served")
    assert metric(page, "status") == streams["status"]
    assert shown(0, metric(page, "sink_backlog")) == streams["sink_backlog"]
    assert shown(0, metric(page, "dlq_total")) == streams["dead_letters"]["total"]
    assert shown(True, metric(page, "broker")) is streams["broker"]["reachable"] is True
    groups = {r["key"]["group"]: r for r in rows(page, "table.groups tr[data-group]")}
    assert set(groups) == {g["group"] for g in streams["groups"]}
    for g in streams["groups"]:
        same(groups[g["group"]]["cells"], g, ("lag",))
        assert groups[g["group"]]["cells"]["status"] == g["status"]
    partitions = {
        (r["key"]["topic"], int(r["key"]["partition"])): r["cells"]
        for r in rows(page, "table.groups tr[data-topic]")
    }
    for g in streams["groups"]:
        for p in g["partitions"]:
            same(partitions[(p["topic"], p["partition"])], p, ("committed", "end", "lag"))
    workers = next(g for g in streams["groups"] if g["role"] == "workers")
    raw = sum(p["lag"] for p in workers["partitions"] if p["topic"] == settings.topics.raw)
    assert raw == RAW_EVENTS
    assert streams["status"] != "healthy"  # nothing consumes the raw topic
    shots(page, "operations")


def as_viewer(page: Page, base: str, shots: Shots) -> None:
    """Signing out ends the session; a viewer sees the flags without the forms."""
    page.click('header button:has-text("Sign out")')
    page.wait_for_url("**/ui/login")
    page.goto("/ui/friction?status=open")
    page.wait_for_url("**/ui/login?next=**")
    sign_in(page, VIEWER_TOKEN)
    page.wait_for_url("**/ui/friction?status=open")
    assert page.locator("header .who").get_attribute("data-role") == "viewer"
    assert page.locator("tr[data-flag-id]").count() > 0
    expect(page.locator("form.work")).to_have_count(0)
    expect(page.locator("p.note")).to_contain_text("needs the operator role")
    shots(page, "viewer-friction")


def test_the_dashboard_shows_what_the_api_says(
    dashboard: str, store: str, settings: Settings, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    shots = Shots(tmp_path / "screenshots")
    trouble: list[str] = []
    try:
        with chromium() as browser:
            anonymous = browser.new_context(base_url=dashboard)
            without_a_token(anonymous, dashboard, shots)
            anonymous.close()
            context = browser.new_context(
                base_url=dashboard, viewport={"width": 1366, "height": 900}
            )
            context.set_default_timeout(15_000)
            page = context.new_page()
            watch(page, dashboard, trouble)
            try:
                page.goto(f"/ui/?{urlencode(PERIOD)}")
                shots(page, "login")
                sign_in(page, OPERATOR_TOKEN)
                page.wait_for_url(f"{dashboard}/ui/?{urlencode(PERIOD)}")
                report = overview(page, dashboard, shots)
                journey(page, dashboard, shots)
                flag = friction_list(page, dashboard, shots, report)
                customer_360(page, dashboard, shots, store, flag)
                operations(page, dashboard, shots, settings)
                as_viewer(page, dashboard, shots)
            except BaseException:
                shots(page, "at-failure")
                raise
        assert trouble == []
    finally:
        keep_artifacts(shots.folder, request.node.nodeid)
