"""Hostile input for this package: strings that have broken parsers, databases, terminals and
renderers, events built from them, and hypothesis strategies of valid and broken events."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

from hypothesis import strategies as st

from schemas import EVENT_TYPES, IDENTITY_KINDS
from schemas.currencies import ISO_4217_CODES
from schemas.events import required_attributes
from schemas.fields import MAX_MONEY
from tests.support.events import example

#: Text that has broken parsers, SQL, shells, terminals and HTML. None of it holds NUL or a
#: lone surrogate, which are cases of their own (PostgreSQL text and UTF-8 cannot hold them).
UNICODE_HEAVY: dict[str, str] = {
    "rtl_override": "\u202egnp.exe\u202c",
    "rtl_marks": "\u200f\u200e\u061c\u0645\u0631\u062d\u0628\u0627",
    "bidi_isolates": "\u2066a\u2069\u2067b\u2069\u2068c\u2069",
    "zero_width": "a\u200b\u200c\u200d\ufeffb",
    "combining": "Z" + "\u0336\u0335\u0334\u0489" * 60,
    "emoji_zwj": "\U0001f469\u200d\U0001f469\u200d\U0001f467\u200d\U0001f466\U0001f3f3\ufe0f",
    "astral": "\U0001d54f\U0001f600\U00010348\U0002a6d6",
    "cjk": "\u9867\u5ba2\u306e\u65c5",
    "line_separators": "a\u2028b\u2029c\x85d",
    "controls": "\x01\x07\x1b[31mred\x1b[0m\x7f",
    "replacement": "\ufffd\ufffe\uffff",
}
INJECTIONS: dict[str, str] = {
    "sql_quote": "' OR '1'='1",
    "sql_drop": "x'; DROP TABLE interactions; --",
    "sql_union": "' UNION SELECT token_hash, name, role FROM api_users --",
    "sql_sleep": "1' AND pg_sleep(3) IS NULL --",
    "sql_comment": "c-1'/*",
    "sql_like": "%_%",
    "sql_backslash": "\\'; SELECT 1; --",
    "sql_semicolon": "c-1; DELETE FROM customers",
    "json_breakout": '", "source": "evil", "x": "',
    "html": "<script>alert('x')</script><img src=x onerror=alert(1)>",
    "path": "../../../etc/passwd",
    "format": "{0.__class__} %s%s%n ${jndi:ldap://127.0.0.1/x}",
    "crlf": "a\r\nSet-Cookie: stolen=1",
}
HOSTILE_TEXT: dict[str, str] = {**UNICODE_HEAVY, **INJECTIONS}
NUL = "cus\x00tomer"
LONG = "x" * 70_000  # far past every text limit of the contract (1,024)


def nested(depth: int) -> object:
    """``depth`` levels of objects and lists around one string."""
    value: object = "leaf"
    for level in range(depth):
        value = {"a": value} if level % 2 else [value]
    return value


def with_deep_attribute(sent: dict[str, Any], depth: int) -> bytes:
    """``sent`` as JSON with an attribute ``deep`` nested ``depth`` levels, written as text:
    encoders stop far earlier (orjson at 254 levels, json at Python's recursion limit)."""
    marker = "__deep_attribute__"
    deep = b"[" * depth + b'"leaf"' + b"]" * depth
    return dumps(with_attributes(sent, deep=marker)).replace(f'"{marker}"'.encode(), deep)


def event(event_type: str, event_id: str, **changes: Any) -> dict[str, Any]:
    """The shipped example of ``event_type`` under ``event_id`` without ``source`` (the key's
    source is stamped on it), with top-level ``changes``."""
    built = example(event_type, event_id=event_id, **changes)
    built.pop("source", None)
    return built


def with_attributes(base: dict[str, Any], **attributes: Any) -> dict[str, Any]:
    return {**base, "attributes": {**base["attributes"], **attributes}}


# -- strategies of valid events ---------------------------------------------------------------

_CHARS = st.characters(exclude_categories=["Cs"])  # no lone surrogates: not encodable as UTF-8
_IDENTITY_CHARS = st.characters(exclude_categories=["Cs"], exclude_characters="\x00")
identifier = st.text(_CHARS, min_size=1, max_size=256)
text = st.text(_CHARS, min_size=1, max_size=1024)
money = st.one_of(
    st.decimals(min_value=0, max_value=MAX_MONEY, places=2, allow_nan=False).map(str),
    st.integers(min_value=0, max_value=10**9),
)
currency = st.sampled_from(sorted(ISO_4217_CODES))
seconds = st.one_of(
    st.integers(min_value=0, max_value=10**9),
    st.floats(min_value=0, max_value=1e12, allow_nan=False, allow_infinity=False),
)
offsets = st.integers(min_value=-14 * 60, max_value=14 * 60).map(
    lambda minutes: timezone(timedelta(minutes=minutes))
)
moments = st.datetimes(
    min_value=datetime(1901, 1, 1), max_value=datetime(8998, 12, 31), timezones=offsets
)


def rfc3339(at: datetime) -> str:
    offset = at.utcoffset() or timedelta(0)
    sign = "-" if offset < timedelta(0) else "+"
    minutes = abs(int(offset.total_seconds())) // 60
    zone = "Z" if not minutes else f"{sign}{minutes // 60:02d}:{minutes % 60:02d}"
    fraction = f".{at.microsecond:06d}" if at.microsecond else ""
    return f"{at:%Y-%m-%dT%H:%M:%S}{fraction}{zone}"


due_dates = st.one_of(moments.map(rfc3339), moments.map(lambda at: f"{at.date():%Y-%m-%d}"))

#: A valid value of each required attribute, by name; ``score`` depends on the type.
ATTRIBUTE_VALUES: dict[str, st.SearchStrategy[Any]] = {
    "url": text,
    "session_id": identifier,
    "sku": identifier,
    "query": st.text(_CHARS, max_size=1024),
    "results_count": st.integers(min_value=0, max_value=2**53),
    "quantity": st.integers(min_value=1, max_value=2**53),
    "unit_price": money,
    "currency": currency,
    "cart_value": money,
    "order_id": identifier,
    "amount": money,
    "form": identifier,
    "error": text,
    "store_id": identifier,
    "reason": text,
    "wait_seconds": seconds,
    "invoice_id": identifier,
    "due_date": due_dates,
    "plan": identifier,
    "ticket_id": identifier,
    "topic": identifier,
    "via": st.sampled_from(["phone", "email", "chat", "store"]),
}
SCORES = {
    "support.csat_submitted": st.integers(min_value=1, max_value=5),
    "support.nps_submitted": st.integers(min_value=0, max_value=10),
}

json_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**53), max_value=2**53),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(_CHARS, max_size=64),
)
json_values = st.recursive(
    json_scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4),
        st.dictionaries(st.text(_CHARS, max_size=16), inner, max_size=4),
    ),
    max_leaves=12,
)
_IDENTITY_VALUES: dict[str, st.SearchStrategy[str]] = {
    "customer_id": st.text(_IDENTITY_CHARS, min_size=1, max_size=256),
    "email": st.from_regex(r"\A[a-zA-Z0-9._%+-]{1,64}@[a-z0-9-]{1,20}\.[a-z]{2,6}\Z"),
    "phone": st.from_regex(r"\A\+[1-9][0-9]{6,14}\Z"),
    "loyalty_id": st.text(_IDENTITY_CHARS, min_size=1, max_size=256),
    "account_id": st.text(_IDENTITY_CHARS, min_size=1, max_size=256),
    "anonymous_id": st.text(_IDENTITY_CHARS, min_size=1, max_size=256),
}
identities = st.dictionaries(
    st.sampled_from(IDENTITY_KINDS), st.none(), min_size=1, max_size=len(IDENTITY_KINDS)
).flatmap(lambda kinds: st.fixed_dictionaries({k: _IDENTITY_VALUES[k] for k in kinds}))
event_ids = st.from_regex(r"\A[A-Za-z0-9._:-]{1,128}\Z")
sources = st.text(
    st.characters(exclude_categories=["Cs", "Cc"]), min_size=1, max_size=64
)  # printable: no control characters


@st.composite
def valid_events(draw: Callable[..., Any], event_type: str | None = None) -> dict[str, Any]:
    """A valid v1 event of ``event_type`` (any type if None) as a JSON-ready dict, with
    unicode-heavy text wherever the contract allows any text, and extra attributes."""
    kind = event_type or draw(st.sampled_from(EVENT_TYPES))
    required = required_attributes(kind)
    values = {n: SCORES[kind] if n == "score" else ATTRIBUTE_VALUES[n] for n in required}
    attributes = draw(st.fixed_dictionaries(values))
    extra_keys = st.text(_CHARS, min_size=1, max_size=24).filter(lambda k: k not in required)
    attributes.update(draw(st.dictionaries(extra_keys, json_values, max_size=3)))
    built: dict[str, Any] = {
        "event_id": draw(event_ids),
        "type": kind,
        "occurred_at": rfc3339(draw(moments)),
        "source": draw(sources),
        "identity": draw(identities),
        "attributes": attributes,
    }
    if draw(st.booleans()):
        built["schema_version"] = 1
    return built


def dumps(value: object) -> bytes:
    """JSON as a client library sends it (non-ASCII as UTF-8, not escaped)."""
    return json.dumps(value, ensure_ascii=False).encode()


def as_utc(value: str) -> datetime:
    return datetime.fromisoformat(value).astimezone(UTC)


def as_decimal(value: object) -> Decimal:
    return Decimal(str(value))
