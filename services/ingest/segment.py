"""Segment HTTP Tracking API messages as v1 touchpoint events: a pure mapping (docs/segment.md).

The gateway's Segment-compatible endpoints split a request into messages (:func:`batch_messages`),
map each one (:func:`to_v1`) and validate the result with ``schemas.decode_event``; whatever does
not map or does not validate is dead-lettered with its reason. Nothing here does I/O except
:func:`load_mapping`, which reads the mapping file.
"""

from __future__ import annotations

import copy
import hashlib
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from importlib import resources
from pathlib import Path
from typing import Any

import pydantic
from pydantic import ConfigDict, Field, TypeAdapter, ValidationError, model_validator

from schemas.events import EVENT_TYPES, required_attributes, unknown_type_message
from schemas.fields import EVENT_ID_PATTERN, RFC3339_PATTERN, Email, Phone
from services.errors import ConfigurationError
from services.yamlfile import parse_yaml

__all__ = [
    "DEFAULT_ATTRIBUTE_SOURCES",
    "DEFAULT_MAPPING_FILE",
    "Mapped",
    "SegmentMapping",
    "Unmapped",
    "batch_messages",
    "load_mapping",
    "to_v1",
]

#: The packaged default mapping, next to this module.
DEFAULT_MAPPING_FILE = "segment_events.yaml"

#: Required v1 attributes that Segment's specs spell differently. A required attribute is read
#: from the property of its own v1 name first, then from these properties in order. A mapping
#: file can replace the list of any attribute (``attributes:``); the others keep these.
DEFAULT_ATTRIBUTE_SOURCES: dict[str, tuple[str, ...]] = {
    "sku": ("product_id",),
    "unit_price": ("price",),
    "cart_value": ("value", "revenue", "total"),
    "amount": ("total", "revenue"),
}

#: Documented defaults for required attributes no Segment spec carries. Never money: a missing
#: amount, price, cart value or currency stays missing, so the contract rejects the event.
DEFAULT_QUANTITY = 1
DEFAULT_RESULTS_COUNT = 0
SESSION_PREFIX = "segment:"

#: Prefixes of event ids made from a messageId that is not a valid v1 event id, or from the
#: message itself when it has none (docs/segment.md#event-id).
HASHED_ID_PREFIX = "segment:sha1:"
CONTENT_ID_PREFIX = "segment:content:"

_MAPPABLE_ATTRIBUTES: tuple[str, ...] = tuple(
    sorted({name for t in EVENT_TYPES for name in required_attributes(t)})
)
_SECTIONS = ("track", "attributes")
_PAGE_KEYS = ("url", "path", "referrer", "search", "title")
# Fields a client changes when it re-sends the same message (analytics-next counts retries in
# _metadata), left out of the content hash of a message without messageId.
_TRANSPORT_FIELDS = frozenset({"sentAt", "writeKey", "_metadata", "receivedAt"})
_UNSUPPORTED_CALLS = {
    "group": "Segment group calls are not taken: v1 has no group or account event. To tie "
    "events to an account, send them through the native API with identity.account_id.",
    "alias": "Segment alias calls are not taken: previousId may be an anonymousId or a userId, "
    "so it cannot be placed in a v1 identity safely. Send an identify call that carries both "
    "userId and anonymousId instead; it becomes web.login, which links them.",
    "screen": "Segment screen calls are not taken: v1 has no app screen view (web.page_view "
    "needs a page URL). Send a page call with the URL, or a track event and map its name in "
    "the Segment mapping file.",
}
_EVENT_ID = re.compile(EVENT_ID_PATTERN)
_RFC3339 = re.compile(RFC3339_PATTERN)
# ISO 8601 as Segment clients write it; stricter RFC 3339 text is passed through untouched.
_ISO8601 = re.compile(
    r"(\d{4})-(\d{1,2})-(\d{1,2})[Tt ](\d{1,2}):(\d{2})(?::(\d{2})(?:[.,](\d+))?)?"
    r" ?([Zz]|[+-]\d{2}(?::?\d{2})?)"
)
_PHONE_FORMATTING = re.compile(r"[\s().-]")
_EMAIL_ADAPTER: TypeAdapter[str] = TypeAdapter(Email)
_PHONE_ADAPTER: TypeAdapter[str] = TypeAdapter(Phone)


class SegmentMapping(pydantic.BaseModel):
    """Which v1 type each Segment track event becomes, and where required attributes come from.

    ``track``: Segment event name (exact, case-sensitive) -> v1 event type.
    ``attributes``: v1 attribute -> Segment properties read after the one of the v1 name;
    given lists replace those of :data:`DEFAULT_ATTRIBUTE_SOURCES`, the others stay.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    track: dict[str, str]
    attributes: dict[str, tuple[str, ...]] = Field(
        default_factory=lambda: dict(DEFAULT_ATTRIBUTE_SOURCES)
    )

    @model_validator(mode="before")
    @classmethod
    def _checked(cls, data: Any) -> Any:
        problems = _problems(data)
        if problems:
            raise ValueError("; ".join(problems))
        attributes = data.get("attributes") or {}
        return {**data, "attributes": {**DEFAULT_ATTRIBUTE_SOURCES, **attributes}}


@dataclass(frozen=True, slots=True)
class Mapped:
    """A v1 event as a JSON-able dict; not validated here (the caller uses decode_event)."""

    event: dict[str, Any]


@dataclass(frozen=True, slots=True)
class Unmapped:
    """A message that has no v1 form: ``unmapped_event`` or ``unsupported_call``, and why."""

    reason: str
    detail: str


def load_mapping(path: Path | None = None) -> SegmentMapping:
    """Read and check a mapping file; ``None`` reads the packaged default.

    Raises :class:`ConfigurationError` naming the file, the key and the problem.
    """
    if path is None:
        label = f"{DEFAULT_MAPPING_FILE} (packaged default)"
        try:
            resource = resources.files("services.ingest").joinpath(DEFAULT_MAPPING_FILE)
            text = resource.read_text(encoding="utf-8")
        except OSError as error:
            raise ConfigurationError(
                f"{label}: cannot read it ({error}); the installation is incomplete, reinstall "
                "Touchstream or set TOUCHSTREAM_SEGMENT_MAPPING_FILE to a mapping file"
            ) from None
    else:
        label = str(path)
        try:
            text = Path(path).read_text(encoding="utf-8")
        except FileNotFoundError:
            raise ConfigurationError(
                f"{label}: no such file; point TOUCHSTREAM_SEGMENT_MAPPING_FILE at a YAML "
                "mapping file (docs/segment.md) or unset it to use the packaged default"
            ) from None
        except (OSError, UnicodeDecodeError) as error:
            raise ConfigurationError(f"{label}: cannot read it: {error}") from None
    data = parse_yaml(text, label, yaml11_booleans=True).data
    problems = _problems(data)
    if problems:
        raise ConfigurationError("; ".join(f"{label}: {problem}" for problem in problems))
    return SegmentMapping.model_validate(data)


def batch_messages(body: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The messages of a ``/v1/batch`` body, each made self-contained as Segment does.

    Batch-level ``context`` and ``integrations`` are merged into each message's own (the
    message wins, nested objects merge key by key); a batch-level ``sentAt`` is copied to
    messages without one. ``writeKey`` is dropped from every message: it is a credential, and
    messages may end up in the dead-letter topic. Raises :class:`ValueError` for a body that is
    not ``{"batch": [objects...]}``; the gateway answers 400.
    """
    batch = body.get("batch")
    if not isinstance(batch, list):
        raise ValueError(
            "a Segment batch body needs a 'batch' list of messages, e.g. "
            '{"batch": [{"type": "track", "event": "Order Completed", ...}]}; '
            f"got {_kind(batch)}"
        )
    shared: dict[str, Mapping[str, Any]] = {}
    for key in ("context", "integrations"):
        value = body.get(key)
        if value is None:
            continue
        if not isinstance(value, Mapping):
            raise ValueError(f"the batch-level '{key}' must be an object; got {_kind(value)}")
        shared[key] = value
    sent_at = body.get("sentAt")
    messages: list[dict[str, Any]] = []
    for index, item in enumerate(batch):
        if not isinstance(item, Mapping):
            raise ValueError(f"batch[{index}] must be a message object; got {_kind(item)}")
        message = {key: value for key, value in item.items() if key != "writeKey"}
        for key, base in shared.items():
            own = message.get(key)
            if own is None:
                message[key] = copy.deepcopy(dict(base))
            elif isinstance(own, Mapping):
                message[key] = _merged(base, own)
        if sent_at is not None and message.get("sentAt") is None:
            message["sentAt"] = sent_at
        messages.append(message)
    return messages


def to_v1(
    message: Mapping[str, Any],
    *,
    source: str,
    mapping: SegmentMapping,
    received_at: datetime,
) -> Mapped | Unmapped:
    """Map one Segment message to a v1 event dict, or say why it has none.

    ``track`` uses ``mapping.track``; ``page`` becomes ``web.page_view``; ``identify`` becomes
    ``web.login`` (v1's identity-linking event); ``group``, ``alias`` and ``screen`` are not
    taken. ``received_at`` (timezone-aware) is the fallback event time. The input is not changed.
    """
    if received_at.tzinfo is None or received_at.utcoffset() is None:
        raise ValueError("received_at must be timezone-aware, e.g. datetime.now(UTC)")
    call = message.get("type")
    name = call.strip().lower() if isinstance(call, str) else None
    if name == "track":
        return _track(message, source=source, mapping=mapping, received_at=received_at)
    if name == "page":
        extra = {k: message[k] for k in ("name", "category") if _given(message.get(k))}
        return Mapped(
            _event(
                message,
                event_type="web.page_view",
                attributes=_properties(message),
                call="page",
                meta=extra,
                source=source,
                mapping=mapping,
                received_at=received_at,
            )
        )
    if name == "identify":
        traits = message.get("traits")
        attributes = {
            "segment_call": "identify",
            "traits": copy.deepcopy(dict(traits)) if isinstance(traits, Mapping) else {},
        }
        return Mapped(
            _event(
                message,
                event_type="web.login",
                attributes=attributes,
                call="identify",
                meta={},
                source=source,
                mapping=mapping,
                received_at=received_at,
            )
        )
    if name in _UNSUPPORTED_CALLS:
        return Unmapped("unsupported_call", _UNSUPPORTED_CALLS[name])
    given = "the message has no type" if call is None else f"{call!r} is not a Segment call type"
    return Unmapped(
        "unsupported_call",
        f"{given}: Touchstream takes track, page and identify calls (screen, group and alias "
        "are not mapped); send one of those as the message's type",
    )


def _track(
    message: Mapping[str, Any], *, source: str, mapping: SegmentMapping, received_at: datetime
) -> Mapped | Unmapped:
    name = message.get("event")
    if not isinstance(name, str) or not name.strip():
        return Unmapped(
            "unmapped_event",
            "a Segment track call without an event name cannot be mapped: send `event` with "
            "the name of what happened, e.g. 'Order Completed'",
        )
    event_type = mapping.track.get(name)
    if event_type is None:
        return Unmapped(
            "unmapped_event",
            f"Segment track event {name!r} has no v1 mapping: add it under `track:` in the "
            f"Segment mapping file (TOUCHSTREAM_SEGMENT_MAPPING_FILE, see docs/segment.md), "
            f"e.g. `{name}: web.page_view` with the right v1 type, then re-process the dead "
            "letters with `touchstream dlq replay --reason unmapped_event`",
        )
    return Mapped(
        _event(
            message,
            event_type=event_type,
            attributes=_properties(message),
            call="track",
            meta={"event": name},
            source=source,
            mapping=mapping,
            received_at=received_at,
        )
    )


def _event(
    message: Mapping[str, Any],
    *,
    event_type: str,
    attributes: dict[str, Any],
    call: str,
    meta: dict[str, Any],
    source: str,
    mapping: SegmentMapping,
    received_at: datetime,
) -> dict[str, Any]:
    """The v1 envelope around ``attributes``, with required attributes filled where possible."""
    identity, invalid = _identity(message, call)
    visitor = next(
        (v for v in (identity.get("anonymous_id"), identity.get("customer_id")) if _text(v)),
        None,
    )
    defaulted = _fill(event_type, attributes, message, mapping, visitor)
    occurred_at = _occurred_at(message, received_at)
    event_id, original_id = _event_id(message, source=source, occurred_at=occurred_at)
    segment = {"call": call, **meta, **_context_summary(message)}
    if original_id is not None:
        segment["message_id"] = original_id
    if defaulted:
        segment["defaulted"] = defaulted
    if invalid:
        segment["invalid_identifiers"] = invalid
    attributes.setdefault("segment", segment)
    return {
        "event_id": event_id,
        "type": event_type,
        "occurred_at": occurred_at,
        "source": source,
        "identity": identity,
        "attributes": attributes,
        "schema_version": 1,
    }


def _properties(message: Mapping[str, Any]) -> dict[str, Any]:
    """A copy of the message's properties; a non-object ``properties`` counts as none."""
    properties = message.get("properties")
    return copy.deepcopy(dict(properties)) if isinstance(properties, Mapping) else {}


def _fill(
    event_type: str,
    attributes: dict[str, Any],
    message: Mapping[str, Any],
    mapping: SegmentMapping,
    visitor: object,
) -> list[str]:
    """Fill the required attributes of ``event_type`` in place; return those set by default."""
    required = required_attributes(event_type)
    defaulted: list[str] = []
    for name in required:
        if _given(attributes.get(name)):
            continue
        found = next(
            (attributes[p] for p in mapping.attributes.get(name, ()) if _given(attributes.get(p))),
            None,
        )
        if found is not None:
            attributes[name] = copy.deepcopy(found)
            continue
        value, by_default = _fallback(name, message, visitor)
        if value is not None:
            attributes[name] = value
            if by_default:
                defaulted.append(name)
    currency = attributes.get("currency")
    if "currency" in required and isinstance(currency, str):
        attributes["currency"] = currency.strip().upper()  # the spec's own examples send 'usd'
    for count in ("quantity", "results_count"):
        value = attributes.get(count)
        if count in required and isinstance(value, float) and value.is_integer():
            attributes[count] = int(value)  # 2.0 from a typed SDK is 2; 2.5 is left to the contract
    return defaulted


def _fallback(name: str, message: Mapping[str, Any], visitor: object) -> tuple[object, bool]:
    """A value for a required attribute no property carries: ``(value, is_a_default)``."""
    context = message.get("context")
    context = context if isinstance(context, Mapping) else {}
    if name == "url":
        page = context.get("page")
        url = page.get("url") if isinstance(page, Mapping) else None
        return (url, False) if _given(url) else (None, False)
    if name == "session_id":
        session = _identifier(context.get("sessionId"))  # RudderStack SDKs send a session id
        if _text(session):
            key = f"{visitor}:{session}" if visitor else session
            return f"{SESSION_PREFIX}{key}", False
        return (f"{SESSION_PREFIX}{visitor}", True) if visitor else (None, False)
    if name == "quantity":
        return DEFAULT_QUANTITY, True
    if name == "results_count":
        return DEFAULT_RESULTS_COUNT, True
    return None, False


def _identity(message: Mapping[str, Any], call: str) -> tuple[dict[str, Any], list[str]]:
    """The v1 identity, and the kinds of contact identifiers left out for being malformed.

    A malformed email or phone is left out when another identifier is present (mobile SDKs
    repeat every trait on every event, so one bad trait would dead-letter them all); when it is
    the only identifier it stays, so the contract rejects the event and names the field.
    """
    identity: dict[str, Any] = {}
    for kind, field in (("customer_id", "userId"), ("anonymous_id", "anonymousId")):
        value = _identifier(message.get(field))
        if value is not None:
            identity[kind] = value
    email = _trait(message, call, "email")
    phone = _trait(message, call, "phone")
    contacts = {
        "email": email.strip() if isinstance(email, str) else email,
        "phone": _PHONE_FORMATTING.sub("", phone) if isinstance(phone, str) else phone,
    }
    adapters = {"email": _EMAIL_ADAPTER, "phone": _PHONE_ADAPTER}
    invalid: dict[str, Any] = {}
    for kind, value in contacts.items():
        if value is None:
            continue
        if _conforms(adapters[kind], value):
            identity[kind] = value
        else:
            invalid[kind] = value
    if not identity:
        identity.update(invalid)
        invalid = {}
    return identity, sorted(invalid)


def _trait(message: Mapping[str, Any], call: str, name: str) -> object:
    """A user trait: from an identify call's ``traits``, else from ``context.traits``."""
    sources = [message.get("traits")] if call == "identify" else []
    context = message.get("context")
    if isinstance(context, Mapping):
        sources.append(context.get("traits"))
    for traits in sources:
        if isinstance(traits, Mapping) and _given(traits.get(name)):
            return traits[name]
    return None


def _identifier(value: object) -> object:
    """An id as text (Segment allows numbers); ``None`` if absent; anything else as sent."""
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, str):
        return value if value.strip() else None
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return str(int(value)) if value.is_integer() else str(value)
    return value


def _occurred_at(message: Mapping[str, Any], received_at: datetime) -> object:
    """``timestamp``, else ``originalTimestamp`` (normalised), else ``received_at``."""
    for key in ("timestamp", "originalTimestamp"):
        value = message.get(key)
        if _given(value):
            return _normalised_time(value)
    return received_at.isoformat()


def _normalised_time(value: object) -> object:
    """ISO 8601 text with an offset as RFC 3339; anything else unchanged, for the contract.

    Fixes what Segment clients send and the contract refuses: ``+0100`` and ``+01`` offsets,
    missing seconds, unpadded fields (Segment's own docs show ``2015-2-02T00:30:08.276Z``) and a
    comma before the fraction. A time without an offset is not guessed at.
    """
    if not isinstance(value, str):
        return value
    text = value.strip()
    if _RFC3339.fullmatch(text):
        return text
    found = _ISO8601.fullmatch(text)
    if found is None:
        return value
    year, month, day, hour, minute, second, fraction, offset = found.groups()
    y, mo, d, h, mi, s = (int(p) for p in (year, month, day, hour, minute, second or "0"))
    try:
        datetime(y, mo, d, h, mi, s)  # only checks that every field is in range
    except ValueError:
        return value
    if offset in ("Z", "z"):
        zone = "Z"
    else:
        digits = offset[1:].replace(":", "")
        hours, minutes = int(digits[:2]), int(digits[2:] or "0")
        if hours > 23 or minutes > 59:
            return value
        zone = f"{offset[0]}{hours:02d}:{minutes:02d}"
    fraction = f".{fraction[:9]}" if fraction else ""
    return f"{y:04d}-{mo:02d}-{d:02d}T{h:02d}:{mi:02d}:{s:02d}{fraction}{zone}"


def _event_id(
    message: Mapping[str, Any], *, source: str, occurred_at: object
) -> tuple[str, object]:
    """The event id, and the original messageId when it had to be replaced.

    A valid messageId is used as it is. Another one becomes ``segment:sha1:`` + the SHA-1 of
    its text, so retries keep one id. Without one, ``segment:content:`` + the SHA-1 of source,
    message (without the fields a retry changes) and event time: a retried message gets the
    same id, two distinct ones do not.
    """
    raw = _identifier(message.get("messageId"))
    if isinstance(raw, str):
        if _EVENT_ID.fullmatch(raw):
            return raw, None
        return HASHED_ID_PREFIX + _sha1(raw), message.get("messageId")
    if raw is not None:
        return HASHED_ID_PREFIX + _sha1(_canonical(raw)), message.get("messageId")
    stable = {k: v for k, v in message.items() if k not in _TRANSPORT_FIELDS}
    content = _canonical({"source": source, "message": stable, "occurred_at": occurred_at})
    return CONTENT_ID_PREFIX + _sha1(content), None


def _context_summary(message: Mapping[str, Any]) -> dict[str, Any]:
    """The small, useful part of ``context``: library, page and campaign (no IP, agent, traits)."""
    context = message.get("context")
    if not isinstance(context, Mapping):
        return {}
    summary: dict[str, Any] = {}
    library = context.get("library")
    if isinstance(library, Mapping):
        summary["library"] = {k: library[k] for k in ("name", "version") if k in library}
    elif isinstance(library, str):  # old analytics-node sent the name alone
        summary["library"] = {"name": library}
    page = context.get("page")
    if isinstance(page, Mapping):
        kept = {k: copy.deepcopy(page[k]) for k in _PAGE_KEYS if k in page}
        if kept:
            summary["page"] = kept
    campaign = context.get("campaign")
    if isinstance(campaign, Mapping) and campaign:
        summary["campaign"] = copy.deepcopy(dict(campaign))
    return summary


def _merged(base: Mapping[str, Any], own: Mapping[str, Any]) -> dict[str, Any]:
    """``own`` over ``base``; objects present in both are merged the same way."""
    result = copy.deepcopy(dict(base))
    for key, value in own.items():
        below = result.get(key)
        if isinstance(value, Mapping) and isinstance(below, Mapping):
            result[key] = _merged(below, value)
        else:
            result[key] = copy.deepcopy(value)
    return result


def _problems(data: object) -> list[str]:
    """Every problem of a mapping document, each as ``key: what is wrong``."""
    if data is None:
        return ["(file): empty; it needs a `track:` section of `Event Name: v1.type` entries"]
    if not isinstance(data, Mapping):
        return [f"(top level): expected a mapping with a `track:` section, got {_kind(data)}"]
    problems = [
        f"{key!r}: unknown section; a mapping file has `track:` and optionally `attributes:`"
        for key in data
        if key not in _SECTIONS
    ]
    track = data.get("track")
    if track is None:
        problems.append(
            "track: missing; list Segment track event names and their v1 types, e.g. "
            "`Order Completed: web.checkout_completed`"
        )
    elif not isinstance(track, Mapping):
        problems.append(f"track: expected event names mapped to v1 types, got {_kind(track)}")
    else:
        problems.extend(_track_problems(track))
    attributes = data.get("attributes")
    if attributes is not None:
        if not isinstance(attributes, Mapping):
            problems.append(
                f"attributes: expected v1 attributes mapped to lists of Segment properties, "
                f"got {_kind(attributes)}"
            )
        else:
            problems.extend(_attribute_problems(attributes))
    return problems


def _track_problems(track: Mapping[Any, Any]) -> list[str]:
    problems = []
    for name, event_type in track.items():
        where = f"track[{name!r}]"
        if not isinstance(name, str) or not name.strip():
            problems.append(f"{where}: an event name must be non-empty text; quote it")
        elif not isinstance(event_type, str):
            problems.append(f"{where}: expected a v1 event type such as web.page_view")
        elif event_type not in EVENT_TYPES:
            problems.append(f"{where}: {unknown_type_message(event_type)}")
    return problems


def _attribute_problems(attributes: Mapping[Any, Any]) -> list[str]:
    problems = []
    for name, sources in attributes.items():
        where = f"attributes[{name!r}]"
        if name not in _MAPPABLE_ATTRIBUTES:
            problems.append(
                f"{where}: not a required v1 attribute; these can be mapped: "
                f"{', '.join(_MAPPABLE_ATTRIBUTES)}"
            )
        elif not isinstance(sources, list | tuple) or not all(
            isinstance(s, str) and s.strip() for s in sources
        ):
            problems.append(
                f"{where}: expected a list of Segment property names, e.g. [sku, product_id]"
            )
    return problems


def _given(value: object) -> bool:
    return value is not None and value != ""


def _text(value: object) -> bool:
    return isinstance(value, str) and bool(value)


def _conforms(adapter: TypeAdapter[str], value: object) -> bool:
    try:
        adapter.validate_python(value)
    except ValidationError:
        return False
    return True


def _canonical(value: object) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)


def _sha1(text: str) -> str:
    return hashlib.sha1(text.encode("utf-8"), usedforsecurity=False).hexdigest()


def _kind(value: object) -> str:
    return "nothing" if value is None else f"a {type(value).__name__}"
