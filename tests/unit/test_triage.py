"""The validate stage as a pure function: accepted or dead-lettered, never raised."""

from __future__ import annotations

import base64
from datetime import UTC, datetime

import orjson
import pytest

from schemas.records import AcceptedEvent, DeadLetter, SourceRecord
from services.worker import triage as triage_module
from services.worker.triage import triage
from tests.support.events import dumps, example

ORIGIN = SourceRecord(
    topic="touchpoints.raw",
    partition=2,
    offset=41,
    timestamp=datetime(2026, 11, 12, 10, 0, 5, tzinfo=UTC),
)
NOW = datetime(2026, 11, 12, 10, 0, 6, tzinfo=UTC)


def test_valid_event_is_keyed_by_its_strongest_identifier() -> None:
    raw = dumps(example("store.pos_sale"))
    routed = triage(raw, ORIGIN, now=NOW)
    assert routed.route == "valid"
    assert routed.key == b"loyalty_id:LOY-88120"
    accepted = AcceptedEvent.model_validate_json(routed.value)
    assert accepted.event.event_id == "ex-store-pos-sale-0001"
    assert accepted.received_at == ORIGIN.timestamp
    assert accepted.origin == ORIGIN
    assert accepted.customer_id is None


def test_accepted_record_keeps_extra_attributes_and_money_exactly() -> None:
    event = example("store.pos_sale")
    event["attributes"].update(amount="19.90", till="T3")
    value = orjson.loads(triage(dumps(event), ORIGIN, now=NOW).value)
    assert value["event"]["attributes"]["amount"] == "19.90"
    assert value["event"]["attributes"]["till"] == "T3"


def test_invalid_event_is_dead_lettered_with_bytes_origin_and_reasons() -> None:
    event = example("billing.payment_failed")
    event["attributes"]["currency"] = "XYZ"
    raw = dumps(event)
    routed = triage(raw, ORIGIN, key=b"account_id:ACC-30077", now=NOW)
    assert routed.route == "dlq"
    assert routed.key == b"account_id:ACC-30077"
    letter = DeadLetter.model_validate_json(routed.value)
    assert letter.payload == raw
    assert letter.key == b"account_id:ACC-30077"
    assert letter.reason == "contract_violation"
    assert [(e.field, e.rule) for e in letter.errors] == [("attributes.currency", "currency_code")]
    assert letter.event_id == "ex-billing-payment-failed-0001"
    assert letter.origin == ORIGIN
    assert letter.dead_lettered_at == NOW


def test_payload_is_base64url_on_the_wire() -> None:
    raw = b"\xff\x00 not json"
    value = orjson.loads(triage(raw, ORIGIN, now=NOW).value)
    assert value["payload"] == base64.urlsafe_b64encode(raw).decode() == "_wAgbm90IGpzb24="
    assert DeadLetter.model_validate_json(orjson.dumps(value)).payload == raw


def test_non_json_is_dead_lettered_as_invalid_json() -> None:
    letter = DeadLetter.model_validate_json(triage(b"not json", ORIGIN, now=NOW).value)
    assert letter.reason == "invalid_json"
    assert letter.event_id is None
    assert "Invalid JSON" in letter.summary()


def test_an_unexpected_failure_is_dead_lettered_not_raised(monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(raw: bytes) -> None:
        raise RuntimeError("decoder bug")

    monkeypatch.setattr(triage_module, "decode_event", broken)
    raw = dumps(example("web.login"))
    letter = DeadLetter.model_validate_json(triage(raw, ORIGIN, now=NOW).value)
    assert letter.reason == "internal_error"
    assert [(e.rule, e.message) for e in letter.errors] == [("RuntimeError", "decoder bug")]
    assert letter.payload == raw
