"""Journey maps as data: stages, the events that move a customer into them, time budgets,
and friction rules with their thresholds. Loaded from ``journey_maps/*.yaml``."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Annotated, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, model_validator
from pydantic_core import PydanticCustomError

from schemas.events import EVENT_TYPES, unknown_type_message

_DURATION = re.compile(r"^\s*(\d+)\s*(s|m|h|d)\s*$")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days"}


def _duration(value: object) -> object:
    """``30m``, ``48h``, ``7d``, ``90s`` -> timedelta."""
    if isinstance(value, timedelta):
        return value
    match = _DURATION.match(value) if isinstance(value, str) else None
    if not match:
        raise PydanticCustomError(
            "duration",
            "{value} is not a duration such as 90s, 30m, 48h or 7d",
            {"value": repr(value)},
        )
    return timedelta(**{_UNITS[match.group(2)]: int(match.group(1))})


def _event_type(value: object) -> object:
    if isinstance(value, str) and value not in EVENT_TYPES:
        raise PydanticCustomError(
            "event_type", "{message}", {"message": unknown_type_message(value)}
        )
    return value


Duration = Annotated[timedelta, BeforeValidator(_duration)]
EventType = Annotated[str, BeforeValidator(_event_type)]
Identifier = Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]{0,62}$")]
Severity = Literal["low", "medium", "high"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Stage(_Strict):
    """A stage and the event types that move a customer into it."""

    id: Identifier
    entered_by: tuple[EventType, ...] = Field(min_length=1)
    budget: Duration | None = Field(
        default=None, description="Longest expected stay; longer raises stage_stall."
    )


class Condition(_Strict):
    """A test on one attribute of the event, e.g. ``score <= 2``."""

    attribute: str
    op: Literal["<", "<=", ">", ">=", "==", "!="]
    value: float | int | str


class _Rule(_Strict):
    id: Identifier
    severity: Severity
    description: str = ""


class EventRule(_Rule):
    """Fires on each event of the given types that meets the condition."""

    kind: Literal["event"]
    on: tuple[EventType, ...] = Field(min_length=1)
    when: Condition | None = None


class CountRule(_Rule):
    """Fires on the ``count``-th event of a type within ``within`` (per attribute value)."""

    kind: Literal["count"]
    on: EventType
    count: int = Field(ge=2, le=100)
    within: Duration
    per: str | None = Field(default=None, description="Count separately per this attribute.")


class AbsenceRule(_Rule):
    """Fires when a ``start`` event is not followed by a ``complete`` event in time.

    The deadline is ``within`` after the start, or the start's ``deadline_attribute``;
    ``match`` pairs start and completion by an attribute (ticket_id, invoice_id)."""

    kind: Literal["absence"]
    start: tuple[EventType, ...] = Field(min_length=1)
    complete: tuple[EventType, ...] = Field(min_length=1)
    within: Duration | None = None
    deadline_attribute: str | None = None
    match: str | None = None

    @model_validator(mode="after")
    def _one_deadline(self) -> AbsenceRule:
        if (self.within is None) == (self.deadline_attribute is None):
            raise PydanticCustomError(
                "deadline", "give exactly one of within (a duration) or deadline_attribute"
            )
        return self


class SequenceRule(_Rule):
    """Fires when a ``then`` event follows an ``after`` event or flag within ``within``.

    ``after`` holds event types and ``flag:<rule id>`` for flags of another rule."""

    kind: Literal["sequence"]
    after: tuple[str, ...] = Field(min_length=1)
    then: tuple[EventType, ...] = Field(min_length=1)
    within: Duration

    @model_validator(mode="after")
    def _after_items(self) -> SequenceRule:
        for item in self.after:
            if not item.startswith("flag:"):
                _event_type(item)
        return self


class StallRule(_Rule):
    """Fires when a customer stays in a stage longer than the stage's ``budget``."""

    kind: Literal["stage_stall"]


Rule = Annotated[
    EventRule | CountRule | AbsenceRule | SequenceRule | StallRule, Field(discriminator="kind")
]


class JourneyMap(_Strict):
    journey: Identifier
    description: str = ""
    stages: tuple[Stage, ...] = Field(min_length=1)
    rules: tuple[Rule, ...] = ()

    @model_validator(mode="after")
    def _consistent(self) -> JourneyMap:
        for what, ids in (
            ("stage", [s.id for s in self.stages]),
            ("rule", [r.id for r in self.rules]),
        ):
            duplicates = sorted({i for i in ids if ids.count(i) > 1})
            if duplicates:
                raise PydanticCustomError(
                    "duplicate_id",
                    "{what} ids must be unique; repeated: {ids}",
                    {"what": what, "ids": ", ".join(duplicates)},
                )
        return self

    def stage_of(self, event_type: str) -> Stage | None:
        """The stage an event of this type moves a customer into (the furthest if several)."""
        found = None
        for stage in self.stages:
            if event_type in stage.entered_by:
                found = stage
        return found

    def stage_index(self, stage_id: str | None) -> int:
        return next((i for i, s in enumerate(self.stages) if s.id == stage_id), -1)
