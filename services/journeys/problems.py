"""Problems of a journey map located by key path, from pydantic's errors or the map's checks.

pydantic reports a ``loc`` through the models (with union tags such as ``count`` in it); here it
becomes the key path in the YAML document (``rules[2].within``) and a message that says what to
write instead. :mod:`services.journeys.checks` finds the problems, the loader names the file.
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, get_args

from pydantic import BaseModel
from pydantic_core import ErrorDetails

from services.journeys.maps import (
    AbsenceRule,
    Condition,
    CountRule,
    EventRule,
    JourneyMap,
    SequenceRule,
    Stage,
    StallRule,
)
from services.yamlfile import Key

__all__ = ["RULE_KINDS", "Problem", "from_error", "kind_of"]

#: Rule kind (the ``kind:`` value) -> its model.
RULE_KINDS: dict[str, type[BaseModel]] = {
    get_args(model.model_fields["kind"].annotation)[0]: model
    for model in (EventRule, CountRule, AbsenceRule, SequenceRule, StallRule)
}
_OWN_MESSAGES = frozenset({"duration", "event_type", "deadline"})  # maps.py's, already complete
_ABSENT = object()
_ID_HINT = "an id is lowercase letters, digits and _, starting with a letter (at most 63)"


@dataclass(frozen=True, slots=True)
class Problem:
    """One thing wrong, at ``key`` (``()`` for the document as a whole)."""

    key: Key
    message: str


def from_error(detail: ErrorDetails, data: Mapping[Any, Any]) -> Problem | None:
    """pydantic's error as a problem at the key path of ``data`` it is about; ``None`` for
    errors the checks report better (ids, ``after`` items) or that repeat their items' errors."""
    kind, given, ctx = detail["type"], detail["input"], detail.get("ctx", {})
    key = _key_in(data, detail["loc"], missing=kind == "missing")
    if kind == "duplicate_id" or (kind == "event_type" and len(key) == 2):
        return None  # found with their key path by _duplicate_ids and _after_items
    if kind == "too_short" and isinstance(given, list) and len(given) >= ctx.get("min_length", 1):
        return None  # only its items failed, and they are reported
    kinds = ", ".join(RULE_KINDS)
    if kind == "union_tag_invalid":
        tag = _text(_at(data, (*key, "kind")))
        return Problem((*key, "kind"), f"{tag} is not a rule kind: use {kinds}")
    if kind == "union_tag_not_found":
        return Problem((*key, "kind"), f"missing; a rule needs a kind: {kinds}")
    if kind == "extra_forbidden":
        return Problem(key, _unknown_key(key, data))
    if key[-2:] == ("when", "value"):
        return Problem(key, f"expected a number or text to compare with, got {kind_of(given)}")
    messages = {
        "missing": "missing; this key is required",
        "too_short": f"needs at least {ctx.get('min_length')} item(s), got {kind_of(given)}",
        "tuple_type": f"expected a list such as [a, b], got {kind_of(given)}",
        "model_type": f"expected a mapping of keys and values, got {kind_of(given)}",
        "model_attributes_type": f"expected a mapping of keys and values, got {kind_of(given)}",
        "string_type": f"expected one value as text, got {kind_of(given)}",
    }
    if kind == "string_pattern_mismatch" and key[-1:] in (("id",), ("journey",)):
        return Problem(key, f"{given!r} is not an id: {_ID_HINT}")
    if kind in messages:
        return Problem(key, messages[kind])
    message = detail["msg"]
    if kind not in _OWN_MESSAGES and isinstance(given, str | int | float | bool):
        message = f"{message}; got {given!r}"
    return Problem(key, message)


def _key_in(data: object, loc: Sequence[str | int], *, missing: bool) -> Key:
    """The part of pydantic's ``loc`` that is a path in ``data``, without union tags."""
    key: list[str | int] = []
    node = data
    for position, part in enumerate(loc):
        tag = position == 2 and len(key) == 2 and key[0] == "rules"
        if tag and part in RULE_KINDS and part == _at(node, ("kind",)):
            continue  # the discriminated union's tag
        child = _child(node, part)
        if child is not _ABSENT:
            node = child
        elif not (missing and position == len(loc) - 1):
            continue  # a tag of a plain union (e.g. Condition.value's float | int | str)
        key.append(part)
    return tuple(key)


def _unknown_key(key: Key, data: Mapping[Any, Any]) -> str:
    parent, name = key[:-1], str(key[-1])
    model, what = _model_at(parent, data)
    if model is None:
        return f"unknown key {name!r}"
    fields = list(model.model_fields)
    close = difflib.get_close_matches(name, fields, n=1, cutoff=0.75)
    guess = f" (did you mean {close[0]}?)" if close else ""
    return f"unknown key {name!r}{guess}; {what} takes {', '.join(fields)}"


def _model_at(key: Key, data: Mapping[Any, Any]) -> tuple[type[BaseModel] | None, str]:
    if key == ():
        return JourneyMap, "a journey map"
    if len(key) == 2 and key[0] == "stages":
        return Stage, "a stage"
    if len(key) == 3 and key[0] == "rules" and key[2] == "when":
        return Condition, "a condition"
    if len(key) == 2 and key[0] == "rules":
        kind = _at(data, (*key, "kind"))
        if isinstance(kind, str) and kind in RULE_KINDS:
            return RULE_KINDS[kind], f"a {kind} rule"
    return None, ""


def _at(data: object, key: Key) -> object:
    """The value at ``key`` in ``data``; ``None`` if there is none."""
    node = data
    for part in key:
        node = _child(node, part)
        if node is _ABSENT:
            return None
    return node


def _child(node: object, part: str | int) -> object:
    if isinstance(node, Mapping) and part in node:
        return node[part]
    if isinstance(node, list) and isinstance(part, int) and 0 <= part < len(node):
        return node[part]
    return _ABSENT


def _text(value: object) -> str:
    return repr(value) if isinstance(value, str | int | float | bool) else kind_of(value)


def kind_of(value: object) -> str:
    """``a list``, ``a dict``, ``nothing``: what was given instead, for a message."""
    if value is None:
        return "nothing"
    name = type(value).__name__
    return f"{'an' if name[0] in 'aeiou' else 'a'} {name}"
