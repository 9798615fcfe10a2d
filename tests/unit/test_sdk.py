"""The SDK's local half: validation, source filling, encoding and keys. No broker, no I/O:
the Emitter is given a transport that only collects what it is handed."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import orjson
import pytest

from schemas import ContractViolation, decode_event
from schemas.events import EVENT_TYPES, StoreVisit
from services.emit import raw_key
from services.errors import ConfigurationError
from services.sdk import DeliveryReport, Emitter, InvalidEvent, Record, prepare
from tests.support.events import example


class Collect:
    """A transport that keeps what it is given: shows what emit() hands on, and when."""

    def __init__(self) -> None:
        self.records: list[Record] = []
        self.closed = False

    def send(self, record: Record, /) -> None:
        self.records.append(record)

    def flush(self, timeout: float | None = None) -> DeliveryReport:
        return DeliveryReport(len(self.records), [])

    def close(self, timeout: float | None = None) -> DeliveryReport:
        self.closed = True
        return DeliveryReport(len(self.records), [])


def unsourced(event_type: str, **changes: Any) -> dict[str, Any]:
    event = example(event_type, **changes)
    del event["source"]
    return event


def fields_of(error: ContractViolation) -> set[str]:
    return {e.field for e in error.errors}


def test_every_shipped_example_is_prepared_as_its_validated_bytes() -> None:
    for event_type in EVENT_TYPES:
        event = example(event_type)
        record = prepare(event, event["source"])
        assert record.event_id == event["event_id"]
        assert orjson.loads(record.value) == event
        assert decode_event(record.value).event_id == event["event_id"]


def test_invalid_event_names_every_broken_field_and_nothing_is_sent() -> None:
    event = unsourced("billing.payment_failed", occurred_at="2026-11-12T10:00:00")
    event["attributes"] = {**event["attributes"], "currency": "XYZ"}
    del event["attributes"]["reason"]
    transport = Collect()
    emitter = Emitter("billing-core", transport, close_at_exit=False)
    with pytest.raises(InvalidEvent) as caught:
        emitter.emit(event)
    invalid = caught.value
    assert isinstance(invalid, ContractViolation)
    assert invalid.reason == "contract_violation"
    assert invalid.event_id == "ex-billing-payment-failed-0001"
    assert fields_of(invalid) == {"occurred_at", "attributes.currency", "attributes.reason"}
    message = str(invalid)
    assert "ex-billing-payment-failed-0001" in message
    for field in ("occurred_at:", "attributes.currency:", "attributes.reason:"):
        assert field in message
    assert transport.records == []


def test_source_is_filled_when_missing() -> None:
    record = prepare(unsourced("store.visit"), "pos-store-12")
    assert orjson.loads(record.value)["source"] == "pos-store-12"
    record = prepare({**unsourced("store.visit"), "source": None}, "pos-store-12")
    assert orjson.loads(record.value)["source"] == "pos-store-12"


def test_claiming_another_source_is_invalid_together_with_other_errors() -> None:
    with pytest.raises(InvalidEvent) as caught:
        prepare(example("store.visit"), "billing-core")  # the example says pos-store-12
    assert fields_of(caught.value) == {"source"}
    assert caught.value.errors[0].rule == "source_mismatch"
    assert "'pos-store-12'" in str(caught.value)
    assert "'billing-core'" in str(caught.value)

    broken = example("store.visit", identity={})
    with pytest.raises(InvalidEvent) as caught:
        prepare(broken, "billing-core")
    assert fields_of(caught.value) == {"source", "identity"}


def test_schema_version_is_filled_and_checked() -> None:
    event = unsourced("web.login")
    del event["schema_version"]
    assert orjson.loads(prepare(event, "web-shop").value)["schema_version"] == 1
    with pytest.raises(InvalidEvent) as caught:
        prepare({**event, "schema_version": 2}, "web-shop")
    assert fields_of(caught.value) == {"schema_version"}


def test_the_callers_dict_is_not_changed() -> None:
    event = unsourced("web.page_view")
    before = orjson.dumps(event)
    prepare(event, "web-shop")
    assert orjson.dumps(event) == before


def test_pydantic_models_are_accepted() -> None:
    model = decode_event(orjson.dumps(example("support.ticket_opened")))
    record = prepare(model, "helpdesk")
    assert record.event_id == model.event_id
    assert decode_event(record.value) == model

    with pytest.raises(InvalidEvent) as caught:
        prepare(model, "billing-core")
    assert fields_of(caught.value) == {"source"}


def test_a_model_that_was_never_validated_is_checked() -> None:
    unchecked = StoreVisit.model_construct(**{**example("store.visit"), "occurred_at": "noon"})
    with pytest.raises(InvalidEvent) as caught:
        prepare(unchecked, "pos-store-12")
    assert fields_of(caught.value) == {"occurred_at"}


def test_python_values_are_encoded_as_the_contract_expects() -> None:
    event = unsourced("store.pos_sale", occurred_at=datetime(2026, 11, 12, 10, 0, tzinfo=UTC))
    event["attributes"] = {**event["attributes"], "amount": Decimal("1234567890.123456789")}
    value = prepare(event, "pos-store-12").value
    assert b'"amount":1234567890.123456789' in value  # an exact JSON number, not a float
    assert orjson.loads(value)["occurred_at"] == "2026-11-12T10:00:00+00:00"

    naive = unsourced("store.visit", occurred_at=datetime(2026, 11, 12, 10, 0))
    with pytest.raises(InvalidEvent) as caught:
        prepare(naive, "pos-store-12")
    assert fields_of(caught.value) == {"occurred_at"}

    not_json = unsourced("store.visit")
    not_json["attributes"] = {**not_json["attributes"], "till": object()}
    with pytest.raises(InvalidEvent) as caught:
        prepare(not_json, "pos-store-12")
    assert caught.value.errors[0].rule == "not_json_serializable"


def test_things_that_are_not_events_are_invalid() -> None:
    for thing in ([1, 2], "web.login", None, 42):
        with pytest.raises(InvalidEvent) as caught:
            prepare(thing, "web-shop")  # type: ignore[arg-type]
        assert fields_of(caught.value) == {"(payload)"}
    with pytest.raises(InvalidEvent) as caught:
        prepare({"type": "web.teleport"}, "web-shop")
    assert "type" in fields_of(caught.value)


@pytest.mark.parametrize(
    ("identity", "key"),
    [
        ({"customer_id": "cus-1", "email": "a@b.de"}, b"customer_id:cus-1"),
        (
            {"email": "Ana.Silva@Example.COM", "phone": "+4915112345678"},
            b"email:ana.silva@example.com",
        ),
        ({"anonymous_id": "anon-9", "account_id": "ACC-1"}, b"account_id:ACC-1"),
        ({"phone": "+4915112345678", "anonymous_id": "anon-9"}, b"phone:+4915112345678"),
        ({"anonymous_id": "anon-9", "loyalty_id": None}, b"anonymous_id:anon-9"),
    ],
)
def test_key_is_the_strongest_identifier_exactly_as_the_cli_keys_it(
    identity: dict[str, Any], key: bytes
) -> None:
    record = prepare(unsourced("web.signup", identity=identity), "web-shop")
    assert record.key == key
    assert record.key == raw_key(record.value)


def test_emit_many_is_all_or_nothing_and_names_positions() -> None:
    good = [unsourced("web.login", event_id=f"ok-{i}") for i in range(3)]
    bad = unsourced("web.search", event_id="bad-1")
    bad["attributes"] = {"query": "boots", "results_count": "7"}
    transport = Collect()
    emitter = Emitter("web-shop", transport, close_at_exit=False)
    with pytest.raises(InvalidEvent) as caught:
        emitter.emit_many([*good[:2], bad, good[2], {**good[0], "source": "pos-store-12"}])
    assert fields_of(caught.value) == {"[2].attributes.results_count", "[4].source"}
    assert transport.records == []

    emitter.emit_many(iter(good))
    assert [r.event_id for r in transport.records] == ["ok-0", "ok-1", "ok-2"]


def test_emitter_source_must_be_valid_before_any_connection() -> None:
    started = time.monotonic()
    for source in ("", "x" * 65, "tab\there"):
        with pytest.raises(ConfigurationError, match="source"):
            Emitter.kafka(source, "127.0.0.1:1", connect_timeout=30)
    assert time.monotonic() - started < 1  # refused without trying to connect


def test_closing_and_the_context_manager() -> None:
    transport = Collect()
    with Emitter("web-shop", transport, close_at_exit=False) as emitter:
        emitter.emit(unsourced("web.login"))
        assert emitter.flush() == DeliveryReport(1, [])
    assert transport.closed
    assert emitter.close() == DeliveryReport(0, [])  # twice is harmless
    with pytest.raises(RuntimeError, match="closed"):
        emitter.emit(unsourced("web.login"))
    with pytest.raises(InvalidEvent):  # validation still comes first
        emitter.emit({})
