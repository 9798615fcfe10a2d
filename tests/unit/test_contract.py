"""The v1 event contract: what it accepts, what it rejects and how it says why."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest

from schemas import EVENT_TYPES, ContractViolation, decode_event
from schemas.events import required_attributes
from tests.support.events import dumps, example, example_types


def rejected(payload: bytes | dict[str, Any]) -> ContractViolation:
    raw = payload if isinstance(payload, bytes) else dumps(payload)
    with pytest.raises(ContractViolation) as caught:
        decode_event(raw)
    return caught.value


def fields(violation: ContractViolation) -> dict[str, str]:
    return {e.field: e.rule for e in violation.errors}


def test_catalogue_has_the_24_types_of_the_design() -> None:
    assert len(EVENT_TYPES) == 24
    assert {t.partition(".")[0] for t in EVENT_TYPES} == {"web", "store", "billing", "support"}


def test_there_is_one_example_per_type() -> None:
    assert sorted(example_types()) == sorted(EVENT_TYPES)


@pytest.mark.parametrize("event_type", EVENT_TYPES)
def test_every_example_validates(event_type: str) -> None:
    event = decode_event(dumps(example(event_type)))
    assert event.type == event_type
    assert event.event_id == example(event_type)["event_id"]


REQUIRED = [(t, name) for t in EVENT_TYPES for name in required_attributes(t)]


@pytest.mark.parametrize(("event_type", "attribute"), REQUIRED)
def test_missing_required_attribute_is_named(event_type: str, attribute: str) -> None:
    event = example(event_type)
    del event["attributes"][attribute]
    violation = rejected(event)
    assert fields(violation) == {f"attributes.{attribute}": "missing"}
    assert f"attributes.{attribute}" in str(violation)


# DESIGN.md §2, copied by hand: the models must require exactly these.
DESIGN_CATALOGUE = {
    "web.page_view": {"url", "session_id"},
    "web.product_view": {"sku", "session_id"},
    "web.search": {"query", "results_count"},
    "web.add_to_cart": {"sku", "quantity", "unit_price", "currency"},
    "web.checkout_started": {"cart_value", "currency", "session_id"},
    "web.checkout_completed": {"order_id", "amount", "currency"},
    "web.form_error": {"form", "error", "session_id"},
    "web.login": set(),
    "web.signup": set(),
    "store.visit": {"store_id"},
    "store.pos_sale": {"store_id", "order_id", "amount", "currency"},
    "store.return": {"store_id", "order_id", "amount", "currency", "reason"},
    "store.queue_wait": {"store_id", "wait_seconds"},
    "billing.invoice_issued": {"invoice_id", "amount", "currency", "due_date"},
    "billing.payment_succeeded": {"invoice_id", "amount", "currency"},
    "billing.payment_failed": {"invoice_id", "amount", "currency", "reason"},
    "billing.refund_issued": {"invoice_id", "amount", "currency"},
    "billing.subscription_cancelled": {"plan"},
    "support.ticket_opened": {"ticket_id", "topic", "via"},
    "support.ticket_resolved": {"ticket_id"},
    "support.ticket_reopened": {"ticket_id"},
    "support.call_abandoned": {"wait_seconds"},
    "support.csat_submitted": {"score"},
    "support.nps_submitted": {"score"},
}


def test_the_catalogue_requires_what_the_design_lists() -> None:
    assert {t: set(required_attributes(t)) for t in EVENT_TYPES} == DESIGN_CATALOGUE


@pytest.mark.parametrize("field", ["event_id", "type", "occurred_at", "source", "identity"])
def test_missing_envelope_field_is_named(field: str) -> None:
    event = example("web.page_view")
    del event[field]
    assert field in fields(rejected(event))


def test_types_without_required_attributes_need_no_attributes_object() -> None:
    event = example("web.login")
    del event["attributes"]
    assert decode_event(dumps(event)).attributes.model_extra == {}


def test_naive_timestamp_is_rejected() -> None:
    violation = rejected(example("web.page_view", occurred_at="2026-11-12T10:00:00"))
    assert fields(violation) == {"occurred_at": "rfc3339"}
    assert "'2026-11-12T10:00:00' is not an RFC 3339 timestamp with a UTC offset" in str(violation)


@pytest.mark.parametrize(
    "when",
    [
        1_700_000_000,
        "yesterday",
        "2026-13-01T00:00:00Z",
        "",
        "2026-11-12T10:00Z",
        "2026-11-12T10:00:00+0100",
        "2026-11-12T10:00:00+01",
        "20261112T100000Z",
        "2026-11-12",
    ],
)
def test_non_rfc3339_timestamps_are_rejected(when: object) -> None:
    assert "occurred_at" in fields(rejected(example("web.page_view", occurred_at=when)))


@pytest.mark.parametrize(
    "when",
    [
        "2026-11-12T10:00:00Z",
        "2026-11-12t10:00:00z",
        "2026-11-12 10:00:00+01:00",
        "2026-11-12T10:00:00.123456-03:30",
    ],
)
def test_rfc3339_timestamps_are_accepted(when: str) -> None:
    assert decode_event(dumps(example("web.page_view", occurred_at=when))).occurred_at.tzinfo


def test_offsets_other_than_utc_are_kept_as_given() -> None:
    event = decode_event(dumps(example("web.page_view", occurred_at="2026-11-12T10:00:00+05:30")))
    assert event.occurred_at.utcoffset() is not None
    assert event.occurred_at.isoformat() == "2026-11-12T10:00:00+05:30"


def test_unknown_type_lists_the_channels_types() -> None:
    violation = rejected(example("web.page_view", type="web.teleport"))
    assert fields(violation) == {"type": "union_tag_invalid"}
    assert "'web.teleport' is not a v1 event type" in str(violation)
    assert "web.checkout_started" in str(violation)
    assert "billing.payment_failed" not in str(violation)


def test_unknown_channel_names_the_channels() -> None:
    violation = rejected(example("web.page_view", type="fax.sent"))
    assert "channel one of web, store, billing, support" in str(violation)


def test_empty_identity_is_rejected() -> None:
    violation = rejected(example("store.visit", identity={}))
    assert fields(violation) == {"identity": "identity_empty"}
    assert "at least one of customer_id, email" in str(violation)


def test_unknown_identifier_kind_is_rejected() -> None:
    violation = rejected(example("store.visit", identity={"device_id": "d-1"}))
    assert "identity.device_id" in fields(violation)


def test_identity_rules() -> None:
    assert "identity.phone" in fields(rejected(example("store.visit", identity={"phone": "0151"})))
    bad_email = rejected(example("store.visit", identity={"email": "not-an-email"}))
    assert fields(bad_email) == {"identity.email": "email_format"}
    event = decode_event(dumps(example("store.visit", identity={"email": "Ana.Silva@Example.COM"})))
    assert event.identity.email == "ana.silva@example.com"


def test_strongest_identifier_orders_kinds() -> None:
    identity = {"anonymous_id": "a-1", "email": "x@example.com", "loyalty_id": "L-1"}
    event = decode_event(dumps(example("store.visit", identity=identity)))
    assert event.identity.strongest() == ("loyalty_id", "L-1")


MONEY_FIELDS = [
    ("web.add_to_cart", "unit_price"),
    ("web.checkout_started", "cart_value"),
    ("web.checkout_completed", "amount"),
    ("store.pos_sale", "amount"),
    ("store.return", "amount"),
    ("billing.invoice_issued", "amount"),
    ("billing.payment_succeeded", "amount"),
    ("billing.payment_failed", "amount"),
    ("billing.refund_issued", "amount"),
]


@pytest.mark.parametrize(("event_type", "field"), MONEY_FIELDS)
def test_negative_amounts_are_rejected(event_type: str, field: str) -> None:
    event = example(event_type)
    event["attributes"][field] = -0.01
    assert fields(rejected(event)) == {f"attributes.{field}": "greater_than_equal"}


@pytest.mark.parametrize("amount", ["NaN", "Infinity", True, "12,50"])
def test_non_numeric_amounts_are_rejected(amount: object) -> None:
    event = example("store.pos_sale")
    event["attributes"]["amount"] = amount
    assert "attributes.amount" in fields(rejected(event))


def test_amounts_are_exact_decimals() -> None:
    event = example("store.pos_sale")
    event["attributes"]["amount"] = "0.10"
    assert decode_event(dumps(event)).attributes.amount == Decimal("0.10")
    event["attributes"]["amount"] = 0
    assert decode_event(dumps(event)).attributes.amount == 0


@pytest.mark.parametrize(
    ("code", "rule"),
    [
        ("XYZ", "currency_code"),
        ("eur", "string_pattern_mismatch"),
        ("EURO", "string_pattern_mismatch"),
    ],
)
def test_bad_currency_codes_are_rejected(code: str, rule: str) -> None:
    event = example("billing.payment_failed")
    event["attributes"]["currency"] = code
    violation = rejected(event)
    assert fields(violation) == {"attributes.currency": rule}


def test_iso_4217_codes_are_accepted() -> None:
    for code in ("EUR", "USD", "GBP", "JPY", "CHF", "BRL"):
        event = example("billing.payment_failed")
        event["attributes"]["currency"] = code
        assert decode_event(dumps(event)).attributes.currency == code


@pytest.mark.parametrize(
    ("event_type", "field", "value", "ok"),
    [
        ("support.csat_submitted", "score", 2, True),
        ("support.csat_submitted", "score", 1, True),
        ("support.csat_submitted", "score", 5, True),
        ("support.csat_submitted", "score", 0, False),
        ("support.csat_submitted", "score", 6, False),
        ("support.csat_submitted", "score", 4.5, False),
        ("support.csat_submitted", "score", True, False),
        ("support.nps_submitted", "score", 0, True),
        ("support.nps_submitted", "score", 10, True),
        ("support.nps_submitted", "score", 11, False),
        ("web.add_to_cart", "quantity", 1, True),
        ("web.add_to_cart", "quantity", 0, False),
        ("web.add_to_cart", "quantity", "2", False),
        ("web.search", "results_count", 0, True),
        ("web.search", "results_count", -1, False),
        ("store.queue_wait", "wait_seconds", 0, True),
        ("store.queue_wait", "wait_seconds", -3, False),
        ("support.ticket_opened", "via", "chat", True),
        ("support.ticket_opened", "via", "fax", False),
    ],
)
def test_attribute_ranges(event_type: str, field: str, value: object, ok: bool) -> None:
    event = example(event_type)
    event["attributes"][field] = value
    if ok:
        decode_event(dumps(event))
    else:
        assert f"attributes.{field}" in fields(rejected(event))


@pytest.mark.parametrize(
    ("due", "ok"),
    [
        ("2026-12-15", True),
        ("2026-12-15T00:00:00Z", True),
        ("2026-12-15T00:00:00", False),
        ("15/12/2026", False),
        (5, False),
    ],
)
def test_due_date_is_a_date_or_an_aware_time(due: object, ok: bool) -> None:
    event = example("billing.invoice_issued")
    event["attributes"]["due_date"] = due
    if ok:
        decode_event(dumps(event))
    else:
        assert any(f.startswith("attributes.due_date") for f in fields(rejected(event)))


@pytest.mark.parametrize("event_id", ["", "x" * 129, "has space", "émoji-🙂", "a/b"])
def test_event_id_rules(event_id: str) -> None:
    assert fields(rejected(example("web.page_view", event_id=event_id))) == {
        "event_id": "string_pattern_mismatch"
    }


def test_longest_event_id_is_accepted() -> None:
    decode_event(dumps(example("web.page_view", event_id="A.b_c:d-" * 16)))


@pytest.mark.parametrize("source", ["", "s" * 65, "tab\there"])
def test_source_rules(source: str) -> None:
    assert "source" in fields(rejected(example("web.page_view", source=source)))


def test_extra_attributes_are_kept() -> None:
    event = example("web.page_view")
    event["attributes"]["utm"] = {"campaign": "winter", "medium": "email"}
    decoded = decode_event(dumps(event))
    assert decoded.attributes.model_extra == {
        "referrer": "https://search.example.net/",
        "utm": {"campaign": "winter", "medium": "email"},
    }


def test_platform_fields_cannot_be_claimed_by_a_client() -> None:
    violation = rejected(example("web.page_view", received_at="2026-01-01T00:00:00Z"))
    assert fields(violation) == {"received_at": "extra_forbidden"}


def test_only_schema_version_1_is_v1() -> None:
    assert decode_event(dumps(example("web.login", schema_version=1))).schema_version == 1
    assert fields(rejected(example("web.login", schema_version=2))) == {
        "schema_version": "literal_error"
    }


@pytest.mark.parametrize(
    ("raw", "reason", "rule"),
    [
        (b"this is not JSON", "invalid_json", "json_invalid"),
        (b'{"event_id": "x", ', "invalid_json", "json_invalid"),
        (b"\xff\xfe\x00garbage", "invalid_json", "json_invalid"),
        (b"", "invalid_json", "json_invalid"),
        (b"[1, 2]", "contract_violation", "model_attributes_type"),
        (b"42", "contract_violation", "model_attributes_type"),
    ],
)
def test_payloads_that_are_not_event_objects(raw: bytes, reason: str, rule: str) -> None:
    violation = rejected(raw)
    assert violation.reason == reason
    assert violation.errors[0].field in ("(payload)", "type")


def test_deeply_nested_payload_is_rejected_not_crashed() -> None:
    event = example("web.page_view")
    raw = dumps(event)[:-1] + b', "deep": ' + b"[" * 10_000 + b"]" * 10_000 + b"}"
    assert rejected(raw).reason in ("invalid_json", "contract_violation")


def test_every_broken_field_is_reported_at_once() -> None:
    event = example("billing.payment_failed", occurred_at="2026-01-01T00:00:00", identity={})
    event["attributes"].update(amount=-1, currency="XYZ")
    assert set(fields(rejected(event))) == {
        "occurred_at",
        "identity",
        "attributes.amount",
        "attributes.currency",
    }
