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
