"""The v1 contract under generated input: valid events are accepted and survive every hop
(decode, gateway, worker, re-encoding) unchanged; broken ones, however broken, are refused
with a reason that names the field, and nothing raises anything but ContractViolation.

No I/O: the gateway's ``prepare`` and the worker's ``triage`` are the functions the API and
the validate agent call."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from schemas import ContractViolation, decode_event
from schemas.events import required_attributes
from schemas.records import AcceptedEvent, DeadLetter, SourceRecord
from services.ingest.gateway import Prepared, Rejected, prepare
from services.worker.triage import triage
from tests.hostile.payloads import (
    HOSTILE_TEXT,
    LONG,
    NUL,
    as_decimal,
    as_utc,
    dumps,
    json_values,
    valid_events,
    with_attributes,
    with_deep_attribute,
)
from tests.support.events import example

ORIGIN = SourceRecord(
    topic="touchpoints.raw", partition=0, offset=7, timestamp=datetime(2026, 1, 1, tzinfo=UTC)
)
REASONS = {"invalid_json", "contract_violation"}
# Reproducible in CI: the same examples every run, nothing written to a local database.
RUN = settings(
    max_examples=120,
    derandomize=True,
    database=None,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

MONEY = {"unit_price", "cart_value", "amount"}
INTEGERS = {"results_count", "quantity", "score"}
TEXTS = {"url", "error", "reason", "query"}  # 1-1,024 characters (query: 0-1,024)
ENVELOPE = ("event_id", "type", "occurred_at", "source", "identity")


def refused(raw: bytes) -> ContractViolation:
    """The violation ``raw`` raises; any other exception type fails the test as it is."""
    with pytest.raises(ContractViolation) as caught:
        decode_event(raw)
    violation = caught.value
    assert violation.reason in REASONS
    assert violation.errors, "a violation names at least one broken rule"
    for error in violation.errors:
        assert error.field
        assert error.rule
        assert len(error.message) > 3
    orjson.dumps([(e.field, e.rule, e.message) for e in violation.errors])  # the API's answer
    return violation


def dead_letter(raw: bytes, violation: ContractViolation) -> None:
    """The worker dead-letters ``raw`` with the contract's reason and its original bytes."""
    out = triage(raw, ORIGIN)
    assert out.route == "dlq"
    letter = DeadLetter.model_validate_json(out.value)
    assert letter.reason == violation.reason, letter.errors  # never internal_error
    assert letter.payload == raw
    assert [e.field for e in letter.errors] == [e.field for e in violation.errors]


# -- valid events -----------------------------------------------------------------------------


def _same_attributes(sent: dict[str, Any], kept: dict[str, Any], event_type: str) -> None:
    for name, value in sent.items():
        if name in MONEY:
            assert as_decimal(kept[name]) == as_decimal(value), name
        elif name == "wait_seconds":
            assert float(kept[name]) == float(value)
        elif name == "due_date" and len(value) == 10:  # a date
            assert kept[name] == value
        elif name == "due_date":  # a timestamp: the same instant
            assert as_utc(kept[name]) == as_utc(value)
        elif name in required_attributes(event_type):
            assert kept[name] == value, name
        else:
            assert kept[name] == value, f"extra attribute {name!r} not kept as sent"


@RUN
@given(valid_events())
def test_generated_valid_events_are_accepted_and_round_trip(sent: dict[str, Any]) -> None:
    raw = dumps(sent)
    model = decode_event(raw)
    assert (model.event_id, model.type, model.source) == (
        sent["event_id"],
        sent["type"],
        sent["source"],
    )
    assert model.occurred_at == as_utc(sent["occurred_at"])
    for kind, value in sent["identity"].items():
        assert getattr(model.identity, kind) == (value.lower() if kind == "email" else value)
    _same_attributes(sent["attributes"], model.attributes.model_dump(mode="json"), sent["type"])
    assert decode_event(model.model_dump_json()) == model, "re-encoding changes nothing"

    out = triage(raw, ORIGIN)  # the worker's validate stage
    assert out.route == "valid"
    assert AcceptedEvent.model_validate_json(out.value).event == model

    gateway = prepare(orjson.loads(raw), sent["source"])  # the HTTP gateway
    assert isinstance(gateway, Prepared), gateway
    assert decode_event(gateway.value) == model


# -- broken events ----------------------------------------------------------------------------

_WRONG = {
    "string": st.one_of(
        st.integers(), st.booleans(), st.none(), st.lists(st.integers(), max_size=2)
    ),
    "object": st.one_of(st.integers(), st.text(max_size=8), st.lists(st.none(), max_size=2)),
    "money": st.one_of(
        st.booleans(),
        st.none(),
        st.sampled_from(["NaN", "Infinity", "-1", "12,50", "1e400", "EUR 5", ""]),
        st.lists(st.integers(), max_size=2),
        st.decimals(min_value=-(10**6), max_value=-0.01, places=2).map(str),
    ),
    "seconds": st.one_of(
        st.none(),
        st.sampled_from(["NaN", "Infinity", "-1", "soon", ""]),
        st.floats(max_value=-0.001, allow_nan=False, allow_infinity=False),
        st.lists(st.integers(), max_size=2),
    ),
    "integer": st.one_of(
        st.booleans(),
        st.sampled_from(["2", "4.5", "", "1e3"]),
        st.floats(min_value=0.5, max_value=4.5).filter(lambda f: not f.is_integer()),
        st.none(),
    ),
}
_HOSTILE = st.sampled_from(sorted(HOSTILE_TEXT.values()))


@st.composite
def broken_events(draw: Any) -> tuple[bytes, str, str | None, bool]:
    """A valid event broken in one way: (payload, field the reasons must name, the reason
    if it is certain, whether the gateway's own source stamping changes the outcome)."""
    event = draw(valid_events())
    kind = event["type"]
    required = required_attributes(kind)
    how = draw(
        st.sampled_from(
            [
                "drop_envelope",
                "wrong_envelope",
                "oversize",
                "unknown_field",
                "hostile_constrained",
                "nul_identity",
                "deep",
                "not_an_object",
                "not_json",
                *(["drop_attribute", "wrong_attribute"] if required else []),
            ]
        )
    )
    if how == "drop_envelope":
        name = draw(st.sampled_from(ENVELOPE))
        del event[name]
        return dumps(event), name, "contract_violation", name == "source"
    if how == "wrong_envelope":
        name = draw(st.sampled_from([*ENVELOPE, "attributes"]))
        shape = "object" if name in ("identity", "attributes") else "string"
        event[name] = draw(_WRONG[shape])
        return dumps(event), name, "contract_violation", name == "source"
    if how == "drop_attribute":
        name = draw(st.sampled_from(required))
        del event["attributes"][name]
        return dumps(event), f"attributes.{name}", "contract_violation", False
    if how == "wrong_attribute":
        name = draw(st.sampled_from(required))
        if name in MONEY:
            wrong = draw(_WRONG["money"])
        elif name in INTEGERS:
            wrong = draw(_WRONG["integer"])
        elif name == "wait_seconds":
            wrong = draw(_WRONG["seconds"])
        elif name in ("currency", "via", "due_date"):
            wrong = draw(st.one_of(_HOSTILE, st.sampled_from(["eur", "EURO", "XYZ", "", "fax"])))
        else:
            wrong = draw(_WRONG["string"])
        event["attributes"][name] = wrong
        return dumps(event), f"attributes.{name}", "contract_violation", False
    if how == "oversize":
        where = draw(st.sampled_from(["event_id", "source", "identity", "text", "money"]))
        if where == "event_id":
            event["event_id"] = "e" * draw(st.integers(129, 5000))
            return dumps(event), "event_id", "contract_violation", False
        if where == "source":
            event["source"] = "s" * draw(st.integers(65, 5000))
            return dumps(event), "source", "contract_violation", True
        if where == "identity":
            kind_ = draw(st.sampled_from(["customer_id", "loyalty_id", "anonymous_id"]))
            event["identity"][kind_] = "i" * draw(st.integers(257, 70_000))
            return dumps(event), f"identity.{kind_}", "contract_violation", False
        texts = [n for n in required if n in TEXTS]
        moneys = [n for n in required if n in MONEY]
        if where == "text" and texts:
            name = draw(st.sampled_from(texts))
            event["attributes"][name] = LONG
            return dumps(event), f"attributes.{name}", "contract_violation", False
        if moneys:
            name = draw(st.sampled_from(moneys))
            event["attributes"][name] = draw(st.sampled_from(["1e12", "999999999999.999", 1e15]))
            return dumps(event), f"attributes.{name}", "contract_violation", False
        event["event_id"] = "e" * 129
        return dumps(event), "event_id", "contract_violation", False
    if how == "unknown_field":
        name = draw(st.sampled_from(["received_at", "customer_id", "partition_key", "admin"]))
        event[name] = draw(json_values)
        return dumps(event), name, "contract_violation", False
    if how == "hostile_constrained":
        name = draw(st.sampled_from(["event_id", "occurred_at", "type", "phone", "email"]))
        value = draw(_HOSTILE)
        if name in ("phone", "email"):
            event["identity"] = {name: value}
            return dumps(event), f"identity.{name}", "contract_violation", False
        event[name] = value
        return dumps(event), name, "contract_violation", False
    if how == "nul_identity":
        name = draw(st.sampled_from(["customer_id", "loyalty_id", "account_id", "anonymous_id"]))
        event["identity"][name] = NUL
        return dumps(event), f"identity.{name}", "contract_violation", False
    if how == "deep":
        return (
            with_deep_attribute(event, draw(st.integers(205, 1020))),
            "(payload)",
            "invalid_json",
            False,
        )
    if how == "not_an_object":
        payload = draw(st.one_of(st.lists(json_values, max_size=3), json_values))
        if isinstance(payload, dict):
            payload = [payload]
        return dumps(payload), "(payload)", "contract_violation", False
    garbage = draw(
        st.sampled_from(
            [
                dumps(event)[:-1],
                b"\xff\xfe" + dumps(event),
                dumps(event).replace(b'"event_id"', b'"\xed\xa0\x80"'),  # UTF-8 of a surrogate
                dumps(event).replace(b'"type"', b'"\\ud800"'),
                b"",
                b"[",
            ]
        )
    )
    return garbage, "(payload)", "invalid_json", False


@RUN
@given(broken_events())
def test_generated_broken_events_are_refused_with_reasons(
    case: tuple[bytes, str, str | None, bool],
) -> None:
    raw, field, reason, source_dependent = case
    violation = refused(raw)
    fields = [e.field for e in violation.errors]
    assert any(f == field or f.startswith(f"{field}.") for f in fields), (field, fields)
    assert field in str(violation)
    if reason is not None:
        assert violation.reason == reason, violation
    dead_letter(raw, violation)
    try:
        item = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return  # the API answers 400 for the whole body before any event is looked at
    claimed = item.get("source") if isinstance(item, dict) else None
    source = claimed if isinstance(claimed, str) else "web-shop"  # past the source check
    outcome = prepare(item, source)  # never raises, whatever the item
    if not source_dependent:
        assert isinstance(outcome, Rejected), outcome


@RUN
@given(
    st.dictionaries(
        st.sampled_from([*ENVELOPE, "attributes", "schema_version", "x"]) | st.text(max_size=8),
        json_values,
        max_size=8,
    )
)
def test_any_json_object_is_an_event_or_reasons(item: dict[str, Any]) -> None:
    raw = dumps(item)
    out = triage(raw, ORIGIN)  # raises nothing: valid, or dead-lettered with the reasons
    if out.route == "dlq":
        dead_letter(raw, refused(raw))
    else:
        assert decode_event(raw).event_id == item["event_id"]
    assert isinstance(prepare(item, "web-shop"), Prepared | Rejected)


# -- named cases ------------------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(HOSTILE_TEXT))
def test_hostile_text_is_kept_exactly_where_any_text_goes(name: str) -> None:
    """Injection strings, RTL marks and zero-width characters are data: kept as sent."""
    text = HOSTILE_TEXT[name]
    sent = example("web.form_error", identity={"customer_id": text})
    sent = with_attributes(sent, error=text, form=text, session_id=text, **{text: text})
    model = decode_event(dumps(sent))
    assert model.identity.customer_id == text
    kept = model.attributes.model_dump()
    assert (kept["error"], kept["form"], kept["session_id"], kept[text]) == (text,) * 4
    out = triage(dumps(sent), ORIGIN)
    assert AcceptedEvent.model_validate_json(out.value).event == model


@pytest.mark.parametrize("kind", ["customer_id", "email", "loyalty_id", "anonymous_id"])
def test_nul_in_an_identifier_is_refused_but_attributes_may_carry_it(kind: str) -> None:
    value = "ana\x00@example.com" if kind == "email" else NUL
    violation = refused(dumps(example("web.login", identity={kind: value})))
    assert [(e.field, e.rule) for e in violation.errors] == [(f"identity.{kind}", "nul_character")]
    assert "NUL" in violation.errors[0].message
    carried = decode_event(dumps(with_attributes(example("web.page_view"), note=NUL)))
    assert carried.attributes.model_dump()["note"] == NUL


@pytest.mark.parametrize(
    ("when", "accepted"),
    [
        ("0001-01-01T00:00:00+01:00", False),
        ("0001-01-01T00:00:00Z", False),
        ("1899-12-31T23:59:59Z", False),
        ("1900-01-01T00:00:00Z", True),
        ("8999-12-31T23:59:59Z", True),
        ("9999-12-31T23:59:59-01:00", False),
        ("2026-03-02T10:00:00+14:00", True),
        ("2026-03-02T10:00:00-14:00", True),
        ("2026-03-02T10:00:00-14:01", False),
        ("2026-03-02T10:00:00-19:11", False),  # PostgreSQL: displacement out of range
        ("2026-03-02T10:00:00+23:59", False),
    ],
)
def test_event_times_outside_a_plausible_range_are_refused(when: str, accepted: bool) -> None:
    """Near years 1 and 9999 the journey stage's windows and deadlines overflow; PostgreSQL
    refuses offsets past about 16 hours. RFC 3339 itself allows +23:59."""
    raw = dumps(example("web.checkout_started", occurred_at=when))
    if accepted:
        assert triage(raw, ORIGIN).route == "valid"
        return
    violation = refused(raw)
    assert [(e.field, e.rule) for e in violation.errors] == [("occurred_at", "time_range")]
    dead_letter(raw, violation)


def test_amounts_past_what_the_store_holds_are_refused() -> None:
    largest = with_attributes(example("store.pos_sale"), amount="999999999999.99")
    assert decode_event(dumps(largest)).attributes.amount == as_decimal("999999999999.99")
    violation = refused(dumps(with_attributes(largest, amount="1000000000000")))
    assert [(e.field, e.rule) for e in violation.errors] == [
        ("attributes.amount", "less_than_equal")
    ]


@pytest.mark.parametrize("depth", [50, 150, 199, 250, 260, 600, 1000])
def test_deep_nesting_is_answered_at_every_door(depth: int) -> None:
    """The contract reads about 200 levels; the gateway re-encodes what orjson reads (1,024
    levels) and must answer for each event, never raise."""
    raw = with_deep_attribute(example("web.login"), depth)
    outcome = prepare(orjson.loads(raw), "web-shop")
    if depth <= 150:
        assert isinstance(outcome, Prepared)
        assert triage(raw, ORIGIN).route == "valid"
        return
    assert isinstance(outcome, Rejected)
    assert outcome.reason == "invalid_json"
    assert [e.field for e in outcome.errors] == ["(payload)"]
    assert "nested too deeply" in outcome.errors[0].message or "recursion" in str(outcome.errors)
    dead_letter(raw, refused(raw))
