"""Hostile traffic through the whole platform: a real ``touchstream api`` and a real worker on
the session's broker and a PostgreSQL store. Everything the API accepted ends applied (a row
of the CRM store) or dead-lettered with a reason, record by record; what it refused never
reached the broker; and the worker is still running at the end.

``accepted == applied + dead-lettered`` is counted three ways: the gateway's answers against
its own metric and the raw topic; each raw record against its one outcome on
``touchpoints.valid`` or the dead-letter topic (``origin``); and each accepted event id
against the ``interactions`` table and the sink's dead letters."""

from __future__ import annotations

import json
import re
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx2 as httpx
import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import SecretStr

from schemas.records import AcceptedEvent, DeadLetter
from services.embedded.process import ManagedProcess
from services.kafka import ensure_topics, read_to_end
from services.settings import Settings
from tests.hostile.payloads import (
    HOSTILE_TEXT,
    INJECTIONS,
    LONG,
    NUL,
    UNICODE_HEAVY,
    event,
    nested,
    valid_events,
    with_attributes,
    with_deep_attribute,
)
from tests.support.services import INGEST_KEY, api_settings, start_api, start_worker

pytestmark = [pytest.mark.broker, pytest.mark.postgres]
KEY = {"Authorization": f"Bearer {INGEST_KEY}"}
MONEY = ("amount", "unit_price", "cart_value")


@dataclass
class Stack:
    settings: Settings
    url: str
    worker: ManagedProcess
    store: sa.Engine


@dataclass
class Sent:
    """What the API answered, event by event."""

    accepted: list[str] = field(default_factory=list)  # event ids
    refused: dict[str, list[str]] = field(default_factory=dict)  # name -> the fields it named
    segment_accepted: int = 0
    segment_dead_lettered: int = 0

    def events(self, client: httpx.Client, names: list[str], items: list[Any]) -> None:
        answer = client.post("/v1/events", content=json.dumps(items).encode(), headers=KEY)
        assert answer.status_code in (200, 207, 422), answer.text[:500]
        for name, result in zip(names, answer.json()["results"], strict=True):
            if result["status"] == "accepted":
                self.accepted.append(result["event_id"])
            else:
                assert result["reason"], result
                assert result["errors"], result
                self.refused[name] = [e["field"] for e in result["errors"]]


@pytest.fixture
def stack(settings: Settings, database_url: str) -> Iterator[Stack]:
    configured = api_settings(settings, database_url=SecretStr(database_url))
    ensure_topics(configured, configured.broker_url or "")
    worker = start_worker(configured)
    api, url = start_api(configured)
    store = sa.create_engine(database_url)
    try:
        yield Stack(configured, url, worker, store)
    finally:
        api.stop()
        worker.stop()
        store.dispose()


def _text_everywhere(name: str, text: str) -> dict[str, Any]:
    """A form error that carries ``text`` in its identity, its attributes and an extra key."""
    sent = event("web.form_error", f"text-{name}", identity={"customer_id": f"{name}:{text}"})
    return with_attributes(sent, error=text, form=text[:256], session_id=text[:256], **{text: text})


def accepted_cases() -> dict[str, Any]:
    """Hostile but valid: the API must accept each and the pipeline must apply it."""
    cases = {f"text-{n}": _text_everywhere(n, t) for n, t in HOSTILE_TEXT.items()}
    sale = event("store.pos_sale", "max-money", identity={"customer_id": "max-money"})
    cases["max-money"] = with_attributes(sale, amount="999999999999.99")
    for n in range(2):  # each valid; their sum is more than the customer's metrics hold
        big = event("store.pos_sale", f"big-sum-{n}", identity={"customer_id": "big-sum"})
        cases[f"big-sum-{n}"] = with_attributes(big, amount="600000000000.00", order_id=f"o{n}")
    cases["nul-attribute"] = with_attributes(event("web.page_view", "nul-attr"), note=NUL)
    cases["long-extra"] = with_attributes(event("web.login", "long-extra"), blob=LONG)
    cases["nested-150"] = with_attributes(event("web.login", "nested-150"), deep=nested(150))
    cases["earliest"] = event("store.visit", "earliest", occurred_at="1900-01-01T00:00:00Z")
    search = event("web.search", "huge-count")
    cases["huge-count"] = with_attributes(search, results_count=2**53)
    cases["injection-email"] = event(
        "web.login", "injection-email", identity={"email": "o'reilly+x@example.com"}
    )
    return cases


def refused_cases() -> dict[str, tuple[Any, str]]:
    """Hostile and invalid: (item, the field the API's reasons must name)."""
    login = event("web.login", "refused")
    sale = event("store.pos_sale", "refused-sale")
    cases: dict[str, tuple[Any, str]] = {
        "nul-customer-id": ({**login, "identity": {"customer_id": NUL}}, "identity.customer_id"),
        "nul-email": ({**login, "identity": {"email": "a\x00@example.com"}}, "identity.email"),
        "long-event-id": ({**login, "event_id": "e" * 129}, "event_id"),
        "long-identifier": ({**login, "identity": {"anonymous_id": LONG}}, "identity.anonymous_id"),
        "long-url": (
            with_attributes(event("web.page_view", "long-url"), url=LONG),
            "attributes.url",
        ),
        "too-much-money": (with_attributes(sale, amount="1000000000000"), "attributes.amount"),
        "money-as-bool": (with_attributes(sale, amount=True), "attributes.amount"),
        "quantity-as-text": (
            with_attributes(event("web.add_to_cart", "qty"), quantity="2"),
            "attributes.quantity",
        ),
        "identity-as-list": ({**login, "identity": ["a"]}, "identity"),
        "attributes-as-text": ({**sale, "attributes": "amount=5"}, "attributes"),
        "time-as-epoch": ({**login, "occurred_at": 1767225600}, "occurred_at"),
        "year-one": ({**login, "occurred_at": "0001-01-01T00:00:00+01:00"}, "occurred_at"),
        "year-9999": ({**login, "occurred_at": "9999-12-31T23:59:59Z"}, "occurred_at"),
        "offset-19h": ({**login, "occurred_at": "2026-03-02T10:00:00-19:11"}, "occurred_at"),
        "client-received-at": ({**login, "received_at": "2026-01-01T00:00:00Z"}, "received_at"),
        "other-source": ({**login, "source": "billing-core"}, "source"),
        "not-an-object": ("' OR '1'='1", "(event)"),
    }
    for name, text in INJECTIONS.items():
        cases[f"injection-event-id-{name}"] = ({**login, "event_id": text}, "event_id")
        cases[f"injection-type-{name}"] = ({**login, "type": text}, "type")
    for name, text in UNICODE_HEAVY.items():
        cases[f"unicode-time-{name}"] = ({**login, "occurred_at": text}, "occurred_at")
    return cases


DEEP = {"deep-210": 210, "deep-300": 300, "deep-1000": 1000}  # refused: (payload) invalid_json


def _segment_messages() -> list[dict[str, Any]]:
    """Mapped, unmapped and invalid Segment messages with hostile text in every field."""
    messages: list[dict[str, Any]] = []
    for n, (name, text) in enumerate(sorted(HOSTILE_TEXT.items())):
        messages.append(
            {
                "type": "track",
                "event": "Signed In",
                "userId": f"seg-{name}",
                "messageId": f"seg-ok-{n}",
                "timestamp": "2026-03-02T10:00:00Z",
                "properties": {"note": text},
            }
        )
        messages.append({"type": "track", "event": text, "userId": "u", "messageId": f"seg-u{n}"})
    messages.append({"type": "identify", "userId": NUL, "messageId": "seg-nul"})
    messages.append({"type": "page", "anonymousId": "anon", "properties": {"deep": nested(210)}})
    messages.append({"type": "screen", "userId": "u", "messageId": "seg-screen"})
    return messages


def _random_item(drawn: dict[str, Any], n: int) -> dict[str, Any]:
    """A generated event with an id of its own and money no sum can overflow (the sums of one
    customer past what the store holds are the big-sum cases)."""
    drawn["event_id"] = f"gen-{n}-{drawn['event_id']}"[:128]
    drawn.pop("source", None)
    for name in MONEY:
        if name in drawn["attributes"]:
            drawn["attributes"][name] = "12.34"
    return drawn


def _metric(text: str, outcome: str, endpoint: str) -> float:
    pattern = (
        rf'touchstream_ingest_events_total\{{endpoint="{endpoint}",outcome="{outcome}",'
        rf'source="web-shop"\}} ([0-9.e+]+)'
    )
    found = re.search(pattern, text)
    return float(found.group(1)) if found else 0.0


def _wait(what: str, done: Any, worker: ManagedProcess, timeout: float = 90.0) -> None:
    """Until ``done()``; fails at once if the worker died (a crash loop loses nothing but
    applies nothing either)."""
    deadline = time.monotonic() + timeout
    while not done():
        assert worker.alive(), f"the worker died waiting for {what}:\n{worker.tail(60)}"
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.5)


def test_everything_accepted_is_applied_or_dead_lettered(stack: Stack) -> None:
    with httpx.Client(base_url=stack.url, timeout=60) as client:
        sent = _send(client)
    _accounted(stack, sent)
    assert stack.worker.alive(), f"the worker died:\n{stack.worker.tail(60)}"


def _send(client: httpx.Client) -> Sent:
    sent = Sent()
    accepted = accepted_cases()
    refused = refused_cases()
    sent.events(client, list(accepted), list(accepted.values()))
    assert sent.refused == {}, "a valid hostile event was refused"
    sent.events(client, list(refused), [item for item, _ in refused.values()])
    for name, (_, field_) in refused.items():
        assert name in sent.refused, f"{name} was accepted"
        assert field_ in sent.refused[name], (name, sent.refused[name])
    for name, depth in DEEP.items():
        raw = with_deep_attribute(event("web.login", name), depth)
        answer = client.post("/v1/events", content=raw, headers=KEY)
        assert answer.status_code == 422, answer.text[:300]
        assert answer.json()["results"][0]["reason"] == "invalid_json"
    too_deep = b'{"event_id": "x", "deep": ' + b"[" * 1100 + b"]" * 1100 + b"}"
    unreadable = client.post("/v1/events", content=too_deep, headers=KEY)
    assert unreadable.status_code == 400, unreadable.text[:300]  # past orjson's 1,024 levels
    assert "malformed JSON" in unreadable.json()["detail"]

    @settings(
        max_examples=60,
        derandomize=True,
        database=None,
        deadline=None,
        suppress_health_check=list(HealthCheck),
    )
    @given(st.lists(valid_events(), min_size=1, max_size=8))
    def generated(drawn: list[dict[str, Any]]) -> None:
        items = [_random_item(d, len(sent.accepted) + i) for i, d in enumerate(drawn)]
        sent.events(client, [f"gen-{i}" for i in range(len(items))], items)

    generated()
    assert not [n for n in sent.refused if n.startswith("gen-")], sent.refused

    segment = client.post("/v1/batch", json={"batch": _segment_messages()}, headers=KEY)
    assert segment.status_code == 200, segment.text[:500]
    answered = segment.json()
    sent.segment_accepted = answered["accepted"]
    sent.segment_dead_lettered = answered["dead_lettered"]
    assert sent.segment_accepted == len(HOSTILE_TEXT)  # "Signed In" with hostile text: mapped
    assert sent.segment_dead_lettered == len(HOSTILE_TEXT) + 3  # unmapped, NUL, deep, screen
    deep_segment = {"batch": [{"type": "page", "anonymousId": "a", "properties": nested(600)}]}
    too_deep_segment = client.post("/v1/batch", json=deep_segment, headers=KEY)
    assert too_deep_segment.status_code == 400, too_deep_segment.text[:300]
    assert "nested too deeply" in too_deep_segment.json()["detail"]
    return sent


def _accounted(stack: Stack, sent: Sent) -> None:
    broker, topics = stack.settings.broker_url or "", stack.settings.topics
    total = len(sent.accepted) + sent.segment_accepted
    metrics = httpx.get(f"{stack.url}/metrics").text
    assert _metric(metrics, "accepted", "events") == len(sent.accepted)
    assert _metric(metrics, "accepted", "segment") == sent.segment_accepted
    assert _metric(metrics, "dead_lettered", "segment") == sent.segment_dead_lettered

    raw = list(read_to_end(broker, topics.raw))
    assert len(raw) == total, "the raw topic holds exactly what the API accepted"
    raw_ids = Counter(json.loads(r.value)["event_id"] for r in raw)
    assert Counter(sent.accepted) <= raw_ids
    assert not set(raw_ids) & {"refused", "refused-sale", "x"}, "a refused event was produced"

    def outcomes() -> tuple[list[AcceptedEvent], list[DeadLetter]]:
        valid = [
            AcceptedEvent.model_validate_json(r.value) for r in read_to_end(broker, topics.valid)
        ]
        dead = [DeadLetter.model_validate_json(r.value) for r in read_to_end(broker, topics.dlq)]
        return valid, dead

    def validated() -> bool:
        valid, dead = outcomes()
        return len(valid) + _validate(dead) >= total

    _wait("every raw record validated", validated, stack.worker)
    valid, dead = outcomes()
    at = Counter((v.origin.partition, v.origin.offset) for v in valid)
    at.update(
        (d.origin.partition, d.origin.offset) for d in dead if d.stage == "validate" and d.origin
    )
    assert set(at) == {(r.partition, r.offset) for r in raw}, "every raw record has an outcome"
    assert set(at.values()) == {1}, "no raw record has two outcomes"
    assert all(d.reason and d.errors for d in dead), "every dead letter says why"
    assert sum(d.stage == "ingest" for d in dead) == sent.segment_dead_lettered

    unique = {v.event.event_id for v in valid}

    def applied() -> set[str]:
        """Event ids with a row in the store, or dead-lettered by the sink (whose letter
        keeps the resolved record it could not write)."""
        with stack.store.connect() as conn:
            stored = set(conn.execute(sa.text("SELECT event_id FROM interactions")).scalars())
        letters = [d for d in outcomes()[1] if d.stage == "sink"]
        return stored | {json.loads(d.payload)["event"]["event_id"] for d in letters}

    _wait("the CRM store to apply every accepted event", lambda: applied() >= unique, stack.worker)
    assert applied() == unique, "applied + dead-lettered by the sink == accepted"
    refused = {
        json.loads(d.payload)["event"]["event_id"]: d.errors[0].message
        for d in outcomes()[1]
        if d.stage == "sink"
    }
    big = {i for i in unique if i.startswith("big-sum-")}
    assert len(big) == 2
    assert len(big & set(refused)) == 1, "one of two sales the sum overflows is set aside"
    assert all("the store refused it" in refused[i] for i in big & set(refused))
    assert unique >= set(sent.accepted), "every event id the API accepted was applied"


def _validate(dead: list[DeadLetter]) -> int:
    return sum(d.stage == "validate" for d in dead)
