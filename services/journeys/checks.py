"""What is wrong with one journey map document, as problems located by key path.

:func:`check_map` validates a parsed document with the models of :mod:`services.journeys.maps`
and adds the checks they cannot make alone: unique ids located by key, the attributes a rule reads
being required attributes of the event types it reads them from (``schemas.events``), a budget
for ``stage_stall`` and the form of ``flag:`` references. Reading files and naming them is
:mod:`services.journeys.loader`'s job.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from pydantic import TypeAdapter, ValidationError

from schemas.events import EVENT_TYPES, required_attributes, unknown_type_message
from services.journeys.maps import (
    AbsenceRule,
    CountRule,
    EventRule,
    JourneyMap,
    Rule,
    StallRule,
)
from services.journeys.problems import Problem, from_error, kind_of
from services.yamlfile import Key

__all__ = ["FLAG_REFERENCE", "Problem", "check_map"]

_RULE: TypeAdapter[Rule] = TypeAdapter(Rule)
#: A reference to the flags of a rule in a sequence rule's ``after``.
FLAG_REFERENCE = re.compile(r"^flag:[a-z][a-z0-9_]{0,62}$")


def check_map(data: object) -> tuple[JourneyMap | None, list[Problem]]:
    """The map in ``data`` (a parsed YAML document) and every problem found in it.

    The map is ``None`` when any model check failed; problems are in no particular order.
    """
    if data is None:
        return None, [Problem((), "empty; a journey map needs journey, stages and rules")]
    if not isinstance(data, Mapping):
        return None, [
            Problem((), f"expected a mapping of journey, stages and rules, got {kind_of(data)}")
        ]
    problems = _duplicate_ids(data) + _after_items(data)
    journey: JourneyMap | None = None
    try:
        journey = JourneyMap.model_validate(data)
    except ValidationError as error:
        found = (from_error(d, data) for d in error.errors(include_url=False))
        problems.extend(p for p in found if p is not None)
    if journey is not None:
        rules: list[tuple[int, Rule]] = list(enumerate(journey.rules))
        budgeted = any(stage.budget is not None for stage in journey.stages)
    else:
        rules = list(_valid_rules(data.get("rules")))
        stages = data.get("stages")
        budgeted = isinstance(stages, list) and any(
            isinstance(s, Mapping) and s.get("budget") is not None for s in stages
        )
    for index, rule in rules:
        problems.extend(_rule_problems(("rules", index), rule, budgeted))
    return journey, list(dict.fromkeys(problems))


def _valid_rules(raw: object) -> Iterable[tuple[int, Rule]]:
    """The rules of a map that failed validation which are valid on their own."""
    for index, item in enumerate(raw if isinstance(raw, list) else []):
        try:
            yield index, _RULE.validate_python(item)
        except ValidationError:
            continue


def _duplicate_ids(data: Mapping[Any, Any]) -> list[Problem]:
    problems = []
    for section, what in (("stages", "stage"), ("rules", "rule")):
        items = data.get(section)
        first: dict[str, int] = {}
        for index, item in enumerate(items if isinstance(items, list) else []):
            ident = item.get("id") if isinstance(item, Mapping) else None
            if not isinstance(ident, str):
                continue
            if ident in first:
                problems.append(
                    Problem(
                        (section, index, "id"),
                        f"{what} id {ident!r} is already used by {section}[{first[ident]}]; "
                        f"{what} ids must be unique in a map",
                    )
                )
            else:
                first[ident] = index
    return problems


def _after_items(data: Mapping[Any, Any]) -> list[Problem]:
    """``after`` items of sequence rules: event types or ``flag:<rule id>``."""
    problems = []
    rules = data.get("rules")
    for index, rule in enumerate(rules if isinstance(rules, list) else []):
        if not isinstance(rule, Mapping) or rule.get("kind") != "sequence":
            continue
        after = rule.get("after")
        for position, item in enumerate(after if isinstance(after, list) else []):
            if not isinstance(item, str) or FLAG_REFERENCE.match(item) or item in EVENT_TYPES:
                continue
            message = (
                f"{item!r} is not a flag reference: write flag:<rule id>, e.g. "
                "flag:checkout_abandoned"
                if item.startswith("flag:")
                else unknown_type_message(item)
            )
            problems.append(Problem(("rules", index, "after", position), message))
    return problems


def _rule_problems(key: Key, rule: Rule, budgeted: bool) -> list[Problem]:
    if isinstance(rule, EventRule) and rule.when is not None:
        return _attribute((*key, "when", "attribute"), rule.when.attribute, rule.on, "on")
    if isinstance(rule, CountRule) and rule.per is not None:
        return _attribute((*key, "per"), rule.per, (rule.on,), "on")
    if isinstance(rule, AbsenceRule):
        problems = []
        if rule.match is not None:
            types = (*rule.start, *rule.complete)
            problems += _attribute((*key, "match"), rule.match, types, "start and complete")
        if rule.deadline_attribute is not None:
            name = rule.deadline_attribute
            problems += _attribute((*key, "deadline_attribute"), name, rule.start, "start")
        return problems
    if isinstance(rule, StallRule) and not budgeted:
        return [
            Problem(
                key,
                "a stage_stall rule needs at least one stage with a budget (e.g. budget: 7d); "
                "no stage of this map has one",
            )
        ]
    return []


def _attribute(key: Key, name: str, types: Sequence[str], role: str) -> list[Problem]:
    """``name`` must be a required attribute of every one of ``types``."""
    lacking = [t for t in dict.fromkeys(types) if name not in required_attributes(t)]
    if not lacking:
        return []
    common = [
        a for a in required_attributes(types[0]) if all(a in required_attributes(t) for t in types)
    ]
    every = f"every {role} type" if len(set(types)) > 1 else types[0]
    hint = f"{every} requires: {', '.join(common)}" if common else f"nothing is common to {every}"
    return [Problem(key, f"{name!r} is not a required attribute of {', '.join(lacking)}; {hint}")]
