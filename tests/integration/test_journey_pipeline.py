"""Events through the real broker and worker to journey transitions and friction flags."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest

from services.embedded.process import ManagedProcess
from services.emit import emit_lines
from services.kafka import read_to_end
from services.settings import Settings
from tests.support.cli import cli_env, run_cli
from tests.support.events import dumps, example

pytestmark = pytest.mark.broker


def event(type_: str, event_id: str, customer: str, at: str, **attributes: Any) -> bytes:
    base = example(type_, event_id=event_id, identity={"customer_id": customer}, occurred_at=at)
    base["attributes"].update(attributes)
    return dumps(base)


def scenario() -> list[bytes]:
    day = "2026-11-02T"
    failed = event("billing.payment_failed", "a-1", "cus-a", f"{day}09:00:00Z")
    return [
        failed,
        failed,  # a duplicate changes nothing
        event("web.checkout_started", "b-1", "cus-b", f"{day}09:00:00Z"),
        event("web.checkout_started", "c-1", "cus-c", f"{day}09:00:00Z"),
        event("store.pos_sale", "c-2", "cus-c", f"{day}09:10:00Z"),  # finished in a store
        event("support.csat_submitted", "d-1", "cus-d", f"{day}09:05:00Z", score=3),
        event("support.csat_submitted", "e-1", "cus-e", f"{day}09:05:00Z", score=1),
        # other customers' traffic moves event time on web and store past 09:30 + lateness
        event("web.page_view", "h-1", "cus-h", f"{day}10:00:00Z"),
        event("store.visit", "h-2", "cus-h", f"{day}10:00:00Z"),
    ]


def _flags(settings: Settings, expected: int, timeout: float = 60) -> list[dict[str, Any]]:
    deadline = time.monotonic() + timeout
    while True:
        records = read_to_end(settings.broker_url or "", settings.topics.flags)
        flags = [json.loads(r.value) for r in records]
        if len(flags) >= expected or time.monotonic() > deadline:
            return flags
        time.sleep(0.5)


def test_scenario_raises_exactly_the_expected_flags(
    settings: Settings, worker: ManagedProcess
) -> None:
    payloads = scenario()
    result = emit_lines(settings.broker_url or "", settings.topics.raw, enumerate(payloads, 1))
    assert result.failed == []
    flags = _flags(settings, 3)
    time.sleep(3)  # anything unexpected would arrive by now
    flags = _flags(settings, 3)
    got = sorted((f["customer_id"], f["rule_id"], tuple(f["evidence"])) for f in flags)
    assert got == [
        ("cus-a", "payment_failed", ("a-1",)),
        ("cus-b", "checkout_abandoned", ("b-1",)),
        ("cus-e", "low_csat", ("e-1",)),
    ]
    abandoned = next(f for f in flags if f["rule_id"] == "checkout_abandoned")
    assert (abandoned["journey"], abandoned["stage"], abandoned["channel"]) == (
        "purchase",
        "checkout",
        "web",
    )
    assert abandoned["occurred_at"] == "2026-11-02T09:30:00+00:00"

    transitions = [
        json.loads(r.value)
        for r in read_to_end(settings.broker_url or "", settings.topics.transitions)
    ]
    moves = {(t["customer_id"], t["journey"], t["to_stage"]) for t in transitions}
    assert ("cus-c", "purchase", "purchased") in moves
    assert ("cus-b", "purchase", "checkout") in moves

    env = cli_env(settings.data_dir, **settings.to_env())
    listed = run_cli("friction", "list", "--format", "json", env=env)
    assert sorted(json.loads(line)["rule_id"] for line in listed.stdout.splitlines()) == [
        "checkout_abandoned",
        "low_csat",
        "payment_failed",
    ]
    only = run_cli("friction", "list", "--customer", "cus-e", env=env)
    assert "low_csat" in only.stdout
    assert "payment_failed" not in only.stdout


def anonymous_then_known() -> list[bytes]:
    """Ana browses anonymously, fails a form three times and starts a checkout, logs in
    (anon-ana + cus-ana), completes the checkout, and calls support by email."""
    day = "2026-11-02T"

    def ev(type_: str, event_id: str, identity: dict[str, str], at: str, **attrs: Any) -> bytes:
        base = example(type_, event_id=event_id, identity=identity, occurred_at=f"{day}{at}Z")
        base["attributes"].update(attrs)
        return dumps(base)

    anon = {"anonymous_id": "anon-ana"}
    return [
        ev("web.product_view", "n-1", anon, "09:00:00", session_id="s1"),
        *(
            ev("web.form_error", f"n-f{i}", anon, f"09:0{i + 1}:00", session_id="s1")
            for i in range(3)
        ),
        ev("web.checkout_started", "n-2", anon, "09:05:00", session_id="s1"),
        ev(
            "web.login", "n-3", {**anon, "customer_id": "cus-ana", "email": "ana@x.com"}, "09:06:00"
        ),
        ev("web.checkout_completed", "n-4", {"customer_id": "cus-ana"}, "09:15:00"),
        ev("support.ticket_opened", "n-5", {"email": "ANA@x.com"}, "11:00:00", ticket_id="T1"),
        ev("support.ticket_resolved", "n-6", {"email": "ana@x.com"}, "11:30:00", ticket_id="T1"),
        ev("web.page_view", "h-9", {"customer_id": "cus-h"}, "13:00:00"),
        ev("store.visit", "h-10", {"customer_id": "cus-h"}, "13:00:00"),
    ]


def test_an_anonymous_visitor_who_logs_in_is_one_customer_on_one_journey(
    settings: Settings, worker: ManagedProcess
) -> None:
    result = emit_lines(
        settings.broker_url or "", settings.topics.raw, enumerate(anonymous_then_known(), 1)
    )
    assert result.failed == []
    _flags(settings, 2)
    time.sleep(4)  # the watermark passes 09:35 once the partitions are idle (2 s in tests)
    env = cli_env(settings.data_dir, **settings.to_env())
    listed = run_cli("friction", "list", "--customer", "cus-ana", "--format", "json", env=env)
    flags = [json.loads(line) for line in listed.stdout.splitlines()]
    assert sorted(f["rule_id"] for f in flags) == ["digital_to_support", "form_error_loop"]
    loop = next(f for f in flags if f["rule_id"] == "form_error_loop")
    assert loop["evidence"] == ["n-f0", "n-f1", "n-f2"]
    follow = next(f for f in flags if f["rule_id"] == "digital_to_support")
    assert follow["evidence"][0] == loop["flag_id"]
    assert follow["evidence"][-1] == "n-5"
    merges = [
        json.loads(r.value)
        for r in read_to_end(settings.broker_url or "", settings.topics.identity)
    ]
    # whether profiles merged depends on which raw partition was read first (the login
    # first: one profile from the start); any merge is the login's, ending in cus-ana
    assert {(m["kind"], m["event_id"]) for m in merges} <= {("merge", "n-3")}
    assert not merges or merges[-1]["winner"] == "cus-ana"
    transitions = [
        json.loads(r.value)
        for r in read_to_end(settings.broker_url or "", settings.topics.transitions)
    ]
    ana = [
        t["to_stage"]
        for t in transitions
        if t["customer_id"] == "cus-ana" and t["journey"] == "purchase"
    ]
    assert ana[-1] == "purchased"
