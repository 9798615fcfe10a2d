"""Segment messages to v1 events: real-shaped payloads in, v1 event dicts out, checked by the
contract. Python SDK messages are built by the installed analytics-python client itself (with
``send=False`` it returns the message and sends nothing)."""

from __future__ import annotations

import copy
import json
import re
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from segment.analytics.client import Client
from segment.analytics.request import DatetimeSerializer

from schemas import EVENT_TYPES, ContractViolation, TouchpointEvent, decode_event
from schemas.events import required_attributes
from schemas.fields import EVENT_ID_PATTERN
from services.errors import ConfigurationError
from services.ingest.segment import (
    DEFAULT_ATTRIBUTE_SOURCES,
    Mapped,
    SegmentMapping,
    Unmapped,
    batch_messages,
    load_mapping,
    to_v1,
)

RECEIVED = datetime(2026, 11, 12, 10, 0, 5, 250000, tzinfo=UTC)
WHEN = datetime(2026, 11, 12, 9, 59, 58, 123000, tzinfo=UTC)
SOURCE = "web-shop"
MAPPING = load_mapping()
SDK = Client("test-write-key-0001", send=False)


def sdk(call: str, **kwargs: Any) -> dict[str, Any]:
    """The message analytics-python sends for ``call``, as it looks on the wire."""
    kwargs.setdefault("timestamp", WHEN)
    _, message = getattr(SDK, call)(**kwargs)
    wire: dict[str, Any] = json.loads(json.dumps(message, cls=DatetimeSerializer))
    return wire


def batch_body(*messages: dict[str, Any], **extra: Any) -> dict[str, Any]:
    """A /v1/batch body as analytics-python's request.post builds it."""
    return {"batch": list(messages), "sentAt": RECEIVED.isoformat(), "writeKey": "k", **extra}


def mapped(message: dict[str, Any], mapping: SegmentMapping = MAPPING) -> dict[str, Any]:
    result = to_v1(message, source=SOURCE, mapping=mapping, received_at=RECEIVED)
    assert isinstance(result, Mapped), result
    return result.event


def unmapped(message: dict[str, Any]) -> Unmapped:
    result = to_v1(message, source=SOURCE, mapping=MAPPING, received_at=RECEIVED)
    assert isinstance(result, Unmapped), result
    return result


def valid(event: dict[str, Any]) -> TouchpointEvent:
    return decode_event(json.dumps(event))


def violations(event: dict[str, Any]) -> dict[str, str]:
    with pytest.raises(ContractViolation) as caught:
        valid(event)
    return {e.field: e.rule for e in caught.value.errors}


# Properties of the Segment e-commerce v2 and B2B SaaS spec examples, one per default name.
SPEC_EXAMPLES: dict[str, dict[str, Any]] = {
    "Products Searched": {"query": "blue roses"},
    "Product Viewed": {
        "product_id": "507f1f77bcf86cd799439011",
        "sku": "G-32",
        "category": "Games",
        "name": "Monopoly: 3rd Edition",
        "brand": "Hasbro",
        "variant": "200 pieces",
        "price": 18.99,
        "quantity": 1,
        "coupon": "MAYDEALS",
        "currency": "usd",
        "position": 3,
        "value": 18.99,
        "url": "https://www.example.com/product/path",
        "image_url": "https://www.example.com/product/path.jpg",
    },
    "Product Added": {
        "cart_id": "skdjsidjsdkdj29j",
        "product_id": "507f1f77bcf86cd799439011",
        "sku": "G-32",
        "name": "Monopoly: 3rd Edition",
        "price": 18.99,
        "quantity": 1,
        "currency": "USD",
    },
    "Checkout Started": {
        "order_id": "50314b8e9bcf000000000000",
        "affiliation": "Google Store",
        "value": 30,
        "revenue": 25.00,
        "shipping": 3,
        "tax": 2,
        "discount": 2.5,
        "coupon": "hasbros",
        "currency": "USD",
        "products": [{"product_id": "507f1f77bcf86cd799439011", "sku": "45790-32", "price": 19}],
    },
    "Order Completed": {
        "checkout_id": "fksdjfsdjfisjf9sdfjsd9f",
        "order_id": "50314b8e9bcf000000000000",
        "affiliation": "Google Store",
        "total": 27.50,
        "subtotal": 22.50,
        "revenue": 25.00,
        "shipping": 3,
        "tax": 2,
        "discount": 2.5,
        "coupon": "hasbros",
        "currency": "USD",
        "products": [{"product_id": "505bd76785ebb509fc183733", "sku": "46493-32", "price": 3}],
    },
    "Viewed Product": {"product_id": "507f1f77bcf86cd799439011", "name": "Monopoly"},
    "Added Product": {"product_id": "507f1f77bcf86cd799439011", "price": 19, "currency": "EUR"},
    "Signed Up": {"type": "organic", "first_name": "Peter", "username": "pgibbons"},
    "Signed In": {"username": "pgibbons"},
}


# --- what the SDK sends -------------------------------------------------------------------


def test_the_python_sdk_sends_the_fields_the_mapping_reads() -> None:
    message = sdk("track", user_id=42, event="Order Completed", properties={"total": 1})
    assert message["type"] == "track"
    assert message["userId"] == "42"  # the SDK stringifies numeric ids itself
    assert message["anonymousId"] is None
    assert message["timestamp"] == "2026-11-12T09:59:58.123+00:00"
    assert re.fullmatch(
        r"[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[0-9a-f]{4}-[0-9a-f]{12}", message["messageId"]
    )
    assert message["context"]["library"] == {"name": "analytics-python", "version": "2.4.0"}
    assert "sentAt" not in message  # it is on the batch body


# --- the default mapping ------------------------------------------------------------------


def test_default_mapping_covers_the_required_names_with_v1_types() -> None:
    assert set(MAPPING.track) == set(SPEC_EXAMPLES)
    assert set(MAPPING.track.values()) <= set(EVENT_TYPES)
    assert {
        "Order Completed": "web.checkout_completed",
        "Checkout Started": "web.checkout_started",
        "Product Added": "web.add_to_cart",
        "Products Searched": "web.search",
        "Product Viewed": "web.product_view",
        "Signed Up": "web.signup",
        "Signed In": "web.login",
    }.items() <= MAPPING.track.items()
    assert MAPPING.attributes == DEFAULT_ATTRIBUTE_SOURCES


@pytest.mark.parametrize("name", sorted(SPEC_EXAMPLES))
def test_every_default_mapping_gives_a_valid_event(name: str) -> None:
    message = sdk("track", anonymous_id="anon-7f3c2a", event=name, properties=SPEC_EXAMPLES[name])
    event = mapped(message)
    decoded = valid(event)
    assert decoded.type == MAPPING.track[name]
    assert decoded.event_id == message["messageId"]
    assert decoded.source == SOURCE
    required = required_attributes(decoded.type)
    for key, value in SPEC_EXAMPLES[name].items():  # every property is kept
        normalised = key == "currency" and key in required  # required currency is upper-cased
        assert event["attributes"][key] == (value.upper() if normalised else value)
    assert event["attributes"]["segment"]["event"] == name


def test_order_completed_takes_total_as_amount() -> None:
    event = mapped(
        sdk(
            "track",
            user_id="u1",
            event="Order Completed",
            properties=SPEC_EXAMPLES["Order Completed"],
        )
    )
    attributes = event["attributes"]
    assert (attributes["order_id"], attributes["amount"], attributes["currency"]) == (
        "50314b8e9bcf000000000000",
        27.50,
        "USD",
    )
    only_revenue = {"order_id": "o-2", "revenue": 25, "currency": "EUR"}
    event = mapped(sdk("track", user_id="u1", event="Order Completed", properties=only_revenue))
    assert event["attributes"]["amount"] == 25


def test_checkout_started_takes_value_then_revenue_then_total() -> None:
    def cart_value(properties: dict[str, Any]) -> Any:
        event = mapped(sdk("track", user_id="u1", event="Checkout Started", properties=properties))
        valid(event)
        return event["attributes"]["cart_value"]

    assert cart_value({"value": 30, "revenue": 25, "total": 27, "currency": "USD"}) == 30
    assert cart_value({"revenue": 25, "total": 27, "currency": "USD"}) == 25
    assert cart_value({"total": 27, "currency": "USD"}) == 27


def test_product_added_maps_sku_price_and_defaults_quantity_to_one() -> None:
    properties = {"product_id": "507f1f77", "price": 18.99, "currency": "eur"}
    event = mapped(sdk("track", user_id="u1", event="Product Added", properties=properties))
    attributes = event["attributes"]
    assert attributes["sku"] == "507f1f77"  # product_id when no sku
    assert attributes["unit_price"] == 18.99
    assert attributes["currency"] == "EUR"
    assert attributes["quantity"] == 1
    assert attributes["segment"]["defaulted"] == ["quantity"]
    assert attributes["price"] == 18.99  # the Segment property stays too
    valid(event)


def test_sku_wins_over_product_id_and_an_integral_float_quantity_is_an_integer() -> None:
    properties = {
        "sku": "G-32",
        "product_id": "507f",
        "price": 1,
        "quantity": 2.0,
        "currency": "USD",
    }
    event = mapped(sdk("track", user_id="u1", event="Product Added", properties=properties))
    assert event["attributes"]["sku"] == "G-32"
    assert event["attributes"]["quantity"] == 2
    assert isinstance(event["attributes"]["quantity"], int)
    assert "defaulted" not in event["attributes"]["segment"]


def test_products_searched_defaults_results_count_to_zero_and_says_so() -> None:
    event = mapped(
        sdk("track", user_id="u1", event="Products Searched", properties={"query": "boots"})
    )
    assert event["attributes"]["results_count"] == 0
    assert event["attributes"]["segment"]["defaulted"] == ["results_count"]
    sent = {"query": "boots", "results_count": 17}
    event = mapped(sdk("track", user_id="u1", event="Products Searched", properties=sent))
    assert event["attributes"]["results_count"] == 17
    assert "defaulted" not in event["attributes"]["segment"]


def test_money_is_never_made_up() -> None:
    properties = {"order_id": "o-1", "products": [{"sku": "A", "price": 3, "quantity": 2}]}
    event = mapped(sdk("track", user_id="u1", event="Order Completed", properties=properties))
    assert "amount" not in event["attributes"]
    assert "currency" not in event["attributes"]
    assert violations(event) == {"attributes.amount": "missing", "attributes.currency": "missing"}

    no_price = {"sku": "G-32", "quantity": 1}
    event = mapped(sdk("track", user_id="u1", event="Product Added", properties=no_price))
    assert violations(event) == {
        "attributes.unit_price": "missing",
        "attributes.currency": "missing",
    }


def test_a_property_of_the_v1_name_wins_over_the_segment_spelling() -> None:
    properties = {"order_id": "o-1", "amount": 99, "total": 27.5, "currency": "USD"}
    event = mapped(sdk("track", user_id="u1", event="Order Completed", properties=properties))
    assert event["attributes"]["amount"] == 99


def test_identity_linking_track_events_keep_their_properties() -> None:
    event = mapped(sdk("track", user_id="u1", event="Signed In", properties={"username": "pg"}))
    assert event["type"] == "web.login"
    assert event["attributes"]["username"] == "pg"
    valid(event)


# --- unmapped and unsupported ---------------------------------------------------------------


def test_an_unmapped_track_name_is_unmapped_event_with_a_fix() -> None:
    result = unmapped(sdk("track", user_id="u1", event="Cart Viewed", properties={"cart_id": "c"}))
    assert result.reason == "unmapped_event"
    assert "'Cart Viewed'" in result.detail
    assert "mapping file" in result.detail
    assert "touchstream dlq replay" in result.detail


def test_names_match_exactly() -> None:
    result = unmapped(sdk("track", user_id="u1", event="order completed", properties={}))
    assert result.reason == "unmapped_event"


def test_a_track_call_without_an_event_name_is_unmapped_event() -> None:
    message = sdk("track", user_id="u1", event="Order Completed")
    del message["event"]
    assert unmapped(message).reason == "unmapped_event"


@pytest.mark.parametrize(
    ("call", "kwargs"),
    [
        ("group", {"user_id": "u1", "group_id": "g1", "traits": {"name": "Initech"}}),
        ("alias", {"previous_id": "anon-1", "user_id": "u1"}),
        ("screen", {"user_id": "u1", "name": "Home", "properties": {}}),
    ],
)
def test_group_alias_and_screen_are_unsupported_calls(call: str, kwargs: dict[str, Any]) -> None:
    result = unmapped(sdk(call, **kwargs))
    assert result.reason == "unsupported_call"
    assert f"Segment {call} calls are not taken" in result.detail


def test_an_unknown_or_missing_type_is_an_unsupported_call() -> None:
    message = sdk("track", user_id="u1", event="Order Completed")
    result = unmapped({**message, "type": "teleport"})
    assert (result.reason, "'teleport' is not a Segment call type" in result.detail) == (
        "unsupported_call",
        True,
    )
    del message["type"]
    assert "the message has no type" in unmapped(message).detail


# --- page and identify ----------------------------------------------------------------------


def test_a_python_sdk_page_becomes_a_page_view() -> None:
    message = sdk(
        "page",
        anonymous_id="anon-7f3c2a",
        category="Docs",
        name="Pricing",
        properties={"url": "https://shop.example/pricing", "title": "Pricing"},
    )
    event = mapped(message)
    decoded = valid(event)
    assert decoded.type == "web.page_view"
    assert event["attributes"]["url"] == "https://shop.example/pricing"
    assert event["attributes"]["session_id"] == "segment:anon-7f3c2a"
    assert event["attributes"]["segment"]["defaulted"] == ["session_id"]
    assert (event["attributes"]["segment"]["name"], event["attributes"]["segment"]["category"]) == (
        "Pricing",
        "Docs",
    )


# An analytics.js (analytics-next) page call as the browser sends it.
AJS_PAGE: dict[str, Any] = {
    "type": "page",
    "properties": {"path": "/boots", "referrer": "", "search": "", "title": "Boots"},
    "context": {
        "page": {
            "path": "/boots",
            "referrer": "https://www.google.com/",
            "search": "?utm_source=news",
            "title": "Boots",
            "url": "https://shop.example/boots?utm_source=news",
        },
        "userAgent": "Mozilla/5.0 (X11; Linux x86_64)",
        "locale": "de-DE",
        "library": {"name": "analytics.js", "version": "npm:next-1.81.0"},
        "campaign": {"source": "news"},
    },
    "anonymousId": "a3e1c5b0-4f8b-4c2e-9d6a-1b2c3d4e5f60",
    "userId": None,
    "timestamp": "2026-11-12T09:59:58.123Z",
    "integrations": {},
    "messageId": "ajs-next-1731405598123-6b7f0a8e-3c2d-4e5f-8a9b-0c1d2e3f4a5b",
    "writeKey": "test-write-key-0001",
    "sentAt": "2026-11-12T09:59:58.400Z",
    "_metadata": {"bundled": ["Segment.io"], "unbundled": [], "bundledIds": []},
}


def test_an_analytics_js_page_takes_the_url_from_context_and_keeps_context_small() -> None:
    event = mapped(copy.deepcopy(AJS_PAGE))
    valid(event)
    assert event["event_id"] == AJS_PAGE["messageId"]
    assert event["occurred_at"] == "2026-11-12T09:59:58.123Z"
    assert event["identity"] == {"anonymous_id": AJS_PAGE["anonymousId"]}
    assert event["attributes"]["url"] == "https://shop.example/boots?utm_source=news"
    assert event["attributes"]["segment"] == {
        "call": "page",
        "library": {"name": "analytics.js", "version": "npm:next-1.81.0"},
        "page": AJS_PAGE["context"]["page"],
        "campaign": {"source": "news"},
        "defaulted": ["session_id"],
    }
    assert "writeKey" not in json.dumps(event)


def test_a_page_without_any_url_is_left_to_the_contract() -> None:
    event = mapped(sdk("page", user_id="u1", name="Home"))
    assert violations(event) == {"attributes.url": "missing"}


def test_identify_becomes_a_login_carrying_every_identifier_and_the_traits() -> None:
    traits = {"email": "Ana.Silva@example.com", "phone": "+49 151 1234-5678", "plan": "gold"}
    message = sdk("identify", user_id="cus-1042", anonymous_id="anon-7f3c2a", traits=traits)
    event = mapped(message)
    decoded = valid(event)
    assert decoded.type == "web.login"
    assert event["identity"] == {
        "customer_id": "cus-1042",
        "anonymous_id": "anon-7f3c2a",
        "email": "Ana.Silva@example.com",
        "phone": "+4915112345678",
    }
    assert event["attributes"]["segment_call"] == "identify"
    assert event["attributes"]["traits"] == traits
    assert decoded.identity.email == "ana.silva@example.com"


# --- identity -------------------------------------------------------------------------------


def test_only_the_identifiers_present_are_included() -> None:
    event = mapped(sdk("track", anonymous_id="anon-1", event="Signed In"))
    assert event["identity"] == {"anonymous_id": "anon-1"}


def test_a_numeric_user_id_is_text() -> None:
    message = {**sdk("track", user_id="u", event="Signed In"), "userId": 1042}
    assert mapped(message)["identity"] == {"customer_id": "1042"}


def test_context_traits_give_email_and_phone_on_track_calls() -> None:
    context = {"traits": {"email": "ana@example.com", "phone": "+4915112345678"}}
    event = mapped(sdk("track", user_id="u1", event="Signed In", context=context))
    assert event["identity"] == {
        "customer_id": "u1",
        "email": "ana@example.com",
        "phone": "+4915112345678",
    }
    assert "traits" not in event["attributes"]  # traits stay out of a track event's attributes


def test_identify_traits_win_over_context_traits() -> None:
    message = sdk(
        "identify",
        user_id="u1",
        traits={"email": "new@example.com"},
        context={"traits": {"email": "old@example.com"}},
    )
    assert mapped(message)["identity"]["email"] == "new@example.com"


def test_a_malformed_contact_is_left_out_when_another_identifier_is_there() -> None:
    context = {"traits": {"phone": "(555) 123-4567", "email": "not an address"}}
    event = mapped(sdk("track", user_id="u1", event="Signed In", context=context))
    assert event["identity"] == {"customer_id": "u1"}
    assert event["attributes"]["segment"]["invalid_identifiers"] == ["email", "phone"]
    valid(event)


def test_a_malformed_contact_that_is_the_only_identifier_is_left_to_the_contract() -> None:
    message = sdk("identify", anonymous_id="a", traits={"phone": "555-1234"})
    message["anonymousId"] = None
    event = mapped(message)
    assert event["identity"] == {"phone": "5551234"}
    assert violations(event) == {"identity.phone": "string_pattern_mismatch"}


# --- event time -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("sent", "occurred_at"),
    [
        ("2026-11-12T10:00:00.123+00:00", "2026-11-12T10:00:00.123+00:00"),  # analytics-python
        ("2026-11-12T10:00:00.123Z", "2026-11-12T10:00:00.123Z"),  # analytics.js, mobile
        ("2026-11-12T10:00:00Z", "2026-11-12T10:00:00Z"),
        ("2026-11-12T11:00:00.5+01:00", "2026-11-12T11:00:00.5+01:00"),
        ("2026-11-12T11:00:00+0100", "2026-11-12T11:00:00+01:00"),
        ("2026-11-12T11:00:00+01", "2026-11-12T11:00:00+01:00"),
        ("2026-11-12T10:00Z", "2026-11-12T10:00:00Z"),
        ("2015-2-02T00:30:08.276Z", "2015-02-02T00:30:08.276Z"),  # Segment's batch doc example
        ("2026-11-12 10:00:00,25+00:00", "2026-11-12T10:00:00.25+00:00"),
        ("  2026-11-12T10:00:00Z ", "2026-11-12T10:00:00Z"),
    ],
)
def test_timestamps_are_normalised_to_rfc_3339(sent: str, occurred_at: str) -> None:
    message = {**sdk("track", user_id="u1", event="Signed In"), "timestamp": sent}
    event = mapped(message)
    assert event["occurred_at"] == occurred_at
    valid(event)


def test_the_python_sdk_local_time_offset_is_kept() -> None:
    local = datetime(2026, 11, 12, 11, 0, 0, tzinfo=timezone(timedelta(hours=1)))
    event = mapped(sdk("track", user_id="u1", event="Signed In", timestamp=local))
    assert event["occurred_at"] == "2026-11-12T11:00:00.000+01:00"
    assert valid(event).occurred_at == datetime(2026, 11, 12, 10, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    "sent", ["2026-11-12T10:00:00", 1731405600, "yesterday", "2026-13-01T00:00Z"]
)
def test_a_time_that_cannot_be_read_safely_is_left_to_the_contract(sent: object) -> None:
    message = {**sdk("track", user_id="u1", event="Signed In"), "timestamp": sent}
    event = mapped(message)
    assert event["occurred_at"] == sent
    assert violations(event) == {"occurred_at": "rfc3339"}


def test_event_time_falls_back_to_original_timestamp_then_received_at() -> None:
    message = sdk("track", user_id="u1", event="Signed In")
    del message["timestamp"]
    assert mapped(message)["occurred_at"] == RECEIVED.isoformat()
    rudderstack = {**message, "originalTimestamp": "2026-11-12T09:00:00.000Z"}
    assert mapped(rudderstack)["occurred_at"] == "2026-11-12T09:00:00.000Z"
    both = {**rudderstack, "timestamp": "2026-11-12T08:00:00.000Z"}
    assert mapped(both)["occurred_at"] == "2026-11-12T08:00:00.000Z"
    valid(mapped(message))


def test_received_at_must_be_timezone_aware() -> None:
    message = sdk("track", user_id="u1", event="Signed In")
    with pytest.raises(ValueError, match="timezone-aware"):
        to_v1(message, source=SOURCE, mapping=MAPPING, received_at=datetime(2026, 11, 12))


# --- event id -------------------------------------------------------------------------------


def test_a_valid_message_id_is_the_event_id() -> None:
    message = sdk(
        "track", user_id="u1", event="Signed In", message_id="node-next-1731405598123-ab:c.d_e"
    )
    event = mapped(message)
    assert event["event_id"] == "node-next-1731405598123-ab:c.d_e"
    assert "message_id" not in event["attributes"]["segment"]


@pytest.mark.parametrize("message_id", ["order 42/retry", "x" * 129, "ü-1", {"id": 7}])
def test_another_message_id_becomes_a_stable_hashed_id(message_id: object) -> None:
    message = {**sdk("track", user_id="u1", event="Signed In"), "messageId": message_id}
    first, again = mapped(message), mapped(copy.deepcopy(message))
    assert re.fullmatch(r"segment:sha1:[0-9a-f]{40}", first["event_id"])
    assert re.fullmatch(EVENT_ID_PATTERN, first["event_id"])
    assert first["event_id"] == again["event_id"]
    assert first["attributes"]["segment"]["message_id"] == message_id
    valid(first)


def test_a_numeric_message_id_is_text() -> None:
    message = {**sdk("track", user_id="u1", event="Signed In"), "messageId": 12345}
    assert mapped(message)["event_id"] == "12345"


def test_a_message_without_message_id_gets_an_id_from_its_content() -> None:
    message = sdk("track", user_id="u1", event="Signed In")
    del message["messageId"]
    event = mapped(message)
    assert re.fullmatch(r"segment:content:[0-9a-f]{40}", event["event_id"])
    assert mapped(copy.deepcopy(message))["event_id"] == event["event_id"]  # a retry: same id
    retried = {**message, "sentAt": "2026-11-12T10:05:00Z", "_metadata": {"retryCount": 2}}
    assert mapped(retried)["event_id"] == event["event_id"]  # retry fields do not count
    other = {**message, "properties": {"username": "someone else"}}
    assert mapped(other)["event_id"] != event["event_id"]
    valid(event)


def test_without_message_id_or_time_the_receipt_time_tells_messages_apart() -> None:
    message = sdk("track", user_id="u1", event="Signed In")
    del message["messageId"], message["timestamp"]
    first = to_v1(message, source=SOURCE, mapping=MAPPING, received_at=RECEIVED)
    later = to_v1(message, source=SOURCE, mapping=MAPPING, received_at=RECEIVED + timedelta(1))
    assert isinstance(first, Mapped)
    assert isinstance(later, Mapped)
    assert first.event["event_id"] != later.event["event_id"]


# --- sessions -------------------------------------------------------------------------------


# A RudderStack JavaScript SDK track call: originalTimestamp instead of timestamp, a session id.
RUDDERSTACK_PRODUCT_VIEWED: dict[str, Any] = {
    "type": "track",
    "event": "Product Viewed",
    "properties": {"product_id": "507f1f77bcf86cd799439011", "name": "Monopoly"},
    "channel": "web",
    "context": {
        "library": {"name": "RudderLabs JavaScript SDK", "version": "3.11.0"},
        "sessionId": 1731405000123,
        "sessionStart": True,
        "page": {"url": "https://shop.example/p/507f", "path": "/p/507f"},
    },
    "anonymousId": "8d872292-709c-4fc6-9aa0-5c5c2b3f1a2e",
    "userId": "",
    "messageId": "c2a5d9c4-7f3b-4d0e-9f1a-2b3c4d5e6f70",
    "originalTimestamp": "2026-11-12T09:59:58.123Z",
    "sentAt": "2026-11-12T09:59:59.001Z",
    "integrations": {"All": True},
}


def test_a_rudderstack_session_id_becomes_the_session() -> None:
    event = mapped(copy.deepcopy(RUDDERSTACK_PRODUCT_VIEWED))
    valid(event)
    assert event["type"] == "web.product_view"
    assert event["occurred_at"] == "2026-11-12T09:59:58.123Z"
    assert event["identity"] == {"anonymous_id": "8d872292-709c-4fc6-9aa0-5c5c2b3f1a2e"}
    assert event["attributes"]["sku"] == "507f1f77bcf86cd799439011"
    assert event["attributes"]["session_id"] == (
        "segment:8d872292-709c-4fc6-9aa0-5c5c2b3f1a2e:1731405000123"
    )
    assert "defaulted" not in event["attributes"]["segment"]


def test_the_default_session_prefers_the_anonymous_id_and_a_sent_session_id_wins() -> None:
    properties = {"sku": "G-32"}
    both = sdk(
        "track", user_id="u1", anonymous_id="anon-1", event="Product Viewed", properties=properties
    )
    assert mapped(both)["attributes"]["session_id"] == "segment:anon-1"
    user_only = sdk("track", user_id="u1", event="Product Viewed", properties=properties)
    assert mapped(user_only)["attributes"]["session_id"] == "segment:u1"
    sent = sdk(
        "track",
        user_id="u1",
        event="Product Viewed",
        properties={**properties, "session_id": "s-9"},
    )
    assert mapped(sent)["attributes"]["session_id"] == "s-9"
    assert "defaulted" not in mapped(sent)["attributes"]["segment"]


def test_a_session_id_is_only_added_where_the_type_requires_one() -> None:
    event = mapped(
        sdk(
            "track",
            user_id="u1",
            event="Order Completed",
            properties=SPEC_EXAMPLES["Order Completed"],
        )
    )
    assert "session_id" not in event["attributes"]


def test_to_v1_leaves_its_input_alone() -> None:
    message = copy.deepcopy(AJS_PAGE)
    event = mapped(message)
    event["attributes"]["segment"]["page"]["url"] = "changed"
    assert message == AJS_PAGE


# --- batches --------------------------------------------------------------------------------


def test_a_python_sdk_batch_maps_message_by_message() -> None:
    body = batch_body(
        sdk(
            "identify", user_id="cus-1042", anonymous_id="anon-1", traits={"email": "a@example.com"}
        ),
        sdk("page", anonymous_id="anon-1", properties={"url": "https://shop.example/"}),
        sdk(
            "track",
            anonymous_id="anon-1",
            event="Product Added",
            properties=SPEC_EXAMPLES["Product Added"],
        ),
        sdk(
            "track",
            user_id="cus-1042",
            event="Order Completed",
            properties=SPEC_EXAMPLES["Order Completed"],
        ),
        sdk("track", user_id="cus-1042", event="Coupon Applied", properties={"coupon_id": "c"}),
        sdk("group", user_id="cus-1042", group_id="acme"),
    )
    results = [
        to_v1(m, source=SOURCE, mapping=MAPPING, received_at=RECEIVED) for m in batch_messages(body)
    ]
    events = [valid(r.event).type for r in results if isinstance(r, Mapped)]
    assert events == ["web.login", "web.page_view", "web.add_to_cart", "web.checkout_completed"]
    assert [r.reason for r in results if isinstance(r, Unmapped)] == [
        "unmapped_event",
        "unsupported_call",
    ]


def test_batch_context_and_integrations_are_merged_into_each_message() -> None:
    own = {"library": {"name": "analytics-kotlin"}, "page": {"url": "https://x.example/"}}
    body: dict[str, Any] = {
        "batch": [
            {
                "type": "track",
                "event": "Signed In",
                "userId": "u1",
                "context": own,
                "writeKey": "k",
            },
            {"type": "page", "anonymousId": "a1", "integrations": {"Mixpanel": True}},
        ],
        "context": {
            "device": {"type": "phone", "name": "Apple iPhone 6"},
            "library": {"name": "batch-level", "version": "1.2.3"},
        },
        "integrations": {"All": False, "Mixpanel": False},
        "sentAt": "2026-11-12T10:00:04.000Z",
        "writeKey": "test-write-key-0001",
    }
    original = copy.deepcopy(body)
    first, second = batch_messages(body)
    assert first["context"] == {
        "device": {"type": "phone", "name": "Apple iPhone 6"},
        "library": {"name": "analytics-kotlin", "version": "1.2.3"},  # the message wins per key
        "page": {"url": "https://x.example/"},
    }
    assert first["integrations"] == {"All": False, "Mixpanel": False}
    assert second["context"] == body["context"]
    assert second["integrations"] == {"All": False, "Mixpanel": True}
    assert first["sentAt"] == second["sentAt"] == "2026-11-12T10:00:04.000Z"
    assert "writeKey" not in first
    assert "writeKey" not in second
    assert body == original
    second["context"]["device"]["name"] = "changed"
    assert body["context"]["device"]["name"] == "Apple iPhone 6"


def test_a_message_keeps_its_own_sent_at() -> None:
    body = {"batch": [{"type": "page", "sentAt": "2026-11-12T10:00:00Z"}], "sentAt": "later"}
    assert batch_messages(body)[0]["sentAt"] == "2026-11-12T10:00:00Z"


@pytest.mark.parametrize(
    ("body", "problem"),
    [
        ({}, "needs a 'batch' list"),
        ({"batch": {"type": "track"}}, "needs a 'batch' list"),
        ({"batch": [{"type": "page"}, "track"]}, "batch[1] must be a message object; got a str"),
        ({"batch": [], "context": "mobile"}, "batch-level 'context' must be an object"),
    ],
)
def test_a_malformed_batch_body_is_a_value_error(body: dict[str, Any], problem: str) -> None:
    with pytest.raises(ValueError, match=re.escape(problem)):
        batch_messages(body)


# --- mapping files --------------------------------------------------------------------------


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "segment.yaml"
    path.write_text(text)
    return path


def broken(path: Path) -> str:
    with pytest.raises(ConfigurationError) as caught:
        load_mapping(path)
    return str(caught.value)


def test_a_custom_mapping_file_replaces_the_default(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "track:\n"
        "  Cart Viewed: web.page_view\n"
        "  'Payment Failed': billing.payment_failed\n"
        "attributes:\n"
        "  sku: [productSku, product_id]\n",
    )
    mapping = load_mapping(path)
    assert mapping.track == {
        "Cart Viewed": "web.page_view",
        "Payment Failed": "billing.payment_failed",
    }
    assert mapping.attributes["sku"] == ("productSku", "product_id")
    assert mapping.attributes["amount"] == DEFAULT_ATTRIBUTE_SOURCES["amount"]
    properties = {"productSku": "SKU-1"}
    message = sdk(
        "track", user_id="u1", event="Cart Viewed", properties={"url": "https://x.example/c"}
    )
    valid(mapped(message, mapping))
    viewed = {**mapping.track, "Product Viewed": "web.product_view"}
    custom = mapping.model_copy(update={"track": viewed})
    event = mapped(
        sdk("track", user_id="u1", event="Product Viewed", properties=properties), custom
    )
    assert event["attributes"]["sku"] == "SKU-1"


def test_an_unknown_v1_type_names_file_key_and_problem(tmp_path: Path) -> None:
    path = write(tmp_path, "track:\n  Foo Bar: web.nope\n  Signed In: web.login\n")
    message = broken(path)
    assert message.startswith(
        f"{path}: track['Foo Bar']: 'web.nope' is not a v1 event type; web types are: web.page_view"
    )


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("track:\n  Foo: teleport\n", "track['Foo']: 'teleport' is not a v1 event type"),
        ("track:\n  Foo: [web.login]\n", "track['Foo']: expected a v1 event type"),
        ("track:\n  123: web.login\n", "track[123]: an event name must be non-empty text"),
        ("trak:\n  Foo: web.login\n", "'trak': unknown section"),
        ("attributes:\n  sku: [product_id]\n", "track: missing"),
        ("track: [web.login]\n", "track: expected event names mapped to v1 types, got a list"),
        ("- web.login\n", "(top level): expected a mapping with a `track:` section, got a list"),
        ("", "(file): empty"),
        (
            "track: {}\nattributes:\n  skuu: [x]\n",
            "attributes['skuu']: not a required v1 attribute",
        ),
        ("track: {}\nattributes:\n  sku: product_id\n", "attributes['sku']: expected a list"),
        ("track:\n  Foo: web.login\n  Foo: web.signup\n", "line 3, column 3: 'Foo' is given twice"),
        ("track:\n  Foo: web.login\n bad indent\n", "line 3"),
    ],
)
def test_a_broken_mapping_file_says_where_and_what(
    tmp_path: Path, text: str, expected: str
) -> None:
    path = write(tmp_path, text)
    message = broken(path)
    assert message.startswith(f"{path}: ")
    assert expected in message


def test_every_problem_of_a_mapping_file_is_reported_at_once(tmp_path: Path) -> None:
    message = broken(write(tmp_path, "track:\n  A: web.nope\n  B: store.nope\n"))
    assert "track['A']" in message
    assert "track['B']" in message


def test_a_missing_mapping_file_says_what_to_do(tmp_path: Path) -> None:
    message = broken(tmp_path / "nowhere.yaml")
    assert "nowhere.yaml: no such file" in message
    assert "TOUCHSTREAM_SEGMENT_MAPPING_FILE" in message


def test_a_mapping_built_in_code_is_checked_too() -> None:
    with pytest.raises(ValueError, match=r"track\['X'\]: 'web.nope' is not a v1 event type"):
        SegmentMapping(track={"X": "web.nope"})
