"""The journey engine: pure functions over a customer's state, in event time.

``apply`` takes one event and returns stage transitions and the flags it raises at once;
``expire`` raises the flags of rules that fire on an absence (abandonment, SLA, overdue,
stalls) once event time has passed their deadline on every channel that could still
complete them. Each rule fires once per episode; a flag's id is derived from the episode,
so a redelivered event or a replay produces the same flag again, never a second one.
"""

from __future__ import annotations

import operator
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

from services.journeys.maps import (
    AbsenceRule,
    Condition,
    CountRule,
    EventRule,
    JourneyMap,
    SequenceRule,
    StallRule,
)
from services.journeys.state import (
    CustomerState,
    Flag,
    Pending,
    StageVisit,
    Then,
    Touchpoint,
    Transition,
    event_key,
    flag_id,
)

DEFAULT_LATENESS = timedelta(minutes=5)
SEQUENCE_MEMORY = 8  # unpaired occurrences kept per sequence rule
COMPLETION_MEMORY = 8  # completions seen without their start, kept per absence rule
_OPS: dict[str, Callable[[Any, Any], bool]] = {
    "<": operator.lt,
    "<=": operator.le,
    ">": operator.gt,
    ">=": operator.ge,
    "==": operator.eq,
    "!=": operator.ne,
}


@dataclass
class Outcome:
    transitions: list[Transition] = field(default_factory=list)
    flags: list[Flag] = field(default_factory=list)


def _holds(condition: Condition | None, attributes: Mapping[str, Any]) -> bool:
    if condition is None:
        return True
    value = attributes.get(condition.attribute)
    if value is None:
        return False
    try:
        if isinstance(condition.value, int | float) and not isinstance(value, int | float):
            value = float(value)
        return _OPS[condition.op](value, condition.value)
    except (TypeError, ValueError):
        return False


def _then_order(then: Then) -> tuple[datetime, tuple[str, ...]]:
    return then.at, then.evidence


def due_moment(value: Any) -> datetime | None:
    """A due date means 'by the end of that day' (UTC); a timestamp is taken as is."""
    if isinstance(value, datetime):
        return value
    if isinstance(value, date):
        return datetime(value.year, value.month, value.day, tzinfo=UTC) + timedelta(days=1)
    if isinstance(value, str):
        try:
            parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            return None
        if len(value) == 10:
            return parsed.replace(tzinfo=UTC) + timedelta(days=1)
        return parsed if parsed.tzinfo else None
    return None


class Engine:
    """Evaluates every journey map for one customer at a time."""

    def __init__(
        self, maps: Mapping[str, JourneyMap], *, lateness: timedelta = DEFAULT_LATENESS
    ) -> None:
        self.maps = dict(maps)
        self.lateness = lateness
        self._rules = [(m, rule) for m in self.maps.values() for rule in m.rules]
        self._flag_followers: dict[str, list[tuple[JourneyMap, SequenceRule]]] = {}
        for journey, rule in self._rules:
            if isinstance(rule, SequenceRule):
                for item in rule.after:
                    if item.startswith("flag:"):
                        followers = self._flag_followers.setdefault(item.removeprefix("flag:"), [])
                        followers.append((journey, rule))

        self._rule_by_id: dict[str, tuple[JourneyMap, Any]] = {
            rule.id: (journey, rule) for journey, rule in self._rules
        }
        self._stall_rules = {
            journey.journey: rule for journey, rule in self._rules if isinstance(rule, StallRule)
        }
        self._by_type: dict[str, list[tuple[JourneyMap, Any]]] = {}
        for journey, rule in self._rules:
            for event_type in _types_of(rule):
                self._by_type.setdefault(event_type, []).append((journey, rule))
        self._stage_maps: dict[str, list[JourneyMap]] = {}
        for journey in self.maps.values():
            for stage in journey.stages:
                for event_type in stage.entered_by:
                    if journey not in self._stage_maps.setdefault(event_type, []):
                        self._stage_maps[event_type].append(journey)

    # -- events ---------------------------------------------------------------------------

    def apply(self, state: CustomerState, customer_id: str, event: Touchpoint) -> Outcome:
        """Apply one event to ``state`` (in place); a duplicate event changes nothing."""
        outcome = Outcome()
        key = event_key(event.event_id)
        if key in state.seen:
            return outcome
        state.seen.append(key)
        for journey in self._stage_maps.get(event.type, ()):
            self._move(state, customer_id, journey, event, outcome)
        for journey, rule in self._by_type.get(event.type, ()):  # only rules this type concerns
            stage = self._stage(state, journey)
            if isinstance(rule, EventRule):
                if event.type in rule.on and _holds(rule.when, event.attributes):
                    outcome.flags.append(
                        self._flag(
                            customer_id,
                            journey,
                            rule,
                            stage,
                            event.channel,
                            event.occurred_at,
                            (event.event_id,),
                            event.event_id,
                        )
                    )
            elif isinstance(rule, CountRule):
                if event.type == rule.on:
                    self._count(state, customer_id, journey, rule, stage, event, outcome)
            elif isinstance(rule, AbsenceRule):
                entered = journey.stage_of(event.type)  # an abandoned checkout is at 'checkout'
                self._absence(state, rule, entered.id if entered else stage, event)
            elif isinstance(rule, SequenceRule):
                self._sequence(state, customer_id, journey, rule, event, outcome)
        self._follow_flags(state, customer_id, outcome.flags, outcome)
        return outcome

    def _move(
        self,
        state: CustomerState,
        customer_id: str,
        journey: JourneyMap,
        event: Touchpoint,
        outcome: Outcome,
    ) -> None:
        stage = journey.stage_of(event.type)
        if stage is None:
            return
        current = state.stages.get(journey.journey)
        if current is not None and event.occurred_at < current.confirmed_at:
            self._late_move(state, customer_id, journey, current, stage.id, event, outcome)
            return  # a late event does not move the customer on
        if current is not None and current.stage == stage.id:
            if event.occurred_at > current.confirmed_at:
                current.last_at = event.occurred_at
                current.confirm(event.occurred_at, event.event_id)
            return
        rule = self._stall_rules.get(journey.journey)
        if current is not None and rule is not None:
            stalled = self._stall_flag(customer_id, journey, rule, current, event.occurred_at)
            if stalled is not None:  # left the stage after its budget: event time says stall
                outcome.flags.append(stalled)
        state.stages[journey.journey] = StageVisit(
            stage.id,
            event.occurred_at,
            event.event_id,
            event.channel,
            previous_at=current.confirmed_at if current else None,
        )
        outcome.transitions.append(
            Transition(
                customer_id,
                journey.journey,
                current.stage if current else None,
                stage.id,
                event.occurred_at,
                event.event_id,
            )
        )

    def _late_move(
        self,
        state: CustomerState,
        customer_id: str,
        journey: JourneyMap,
        current: StageVisit,
        stage: str,
        event: Touchpoint,
        outcome: Outcome,
    ) -> None:
        """An event older than the current stay's latest entry. Into the same stage: if it
        is before the stay began (and after the stage before), the stay began there.
        Into another stage while the stay went on: in time order the customer left at the
        event and came back at the next remembered entry, so the stay starts again there
        (the part before it may have been a stall)."""
        at = event.occurred_at
        if current.stage == stage:
            if at < current.entered_at:
                if current.previous_at is None or current.previous_at <= at:
                    current.last_at = current.confirmed_at  # it still lasted until then
                    current.confirm(current.entered_at, current.event_id)
                    current.entered_at, current.event_id = at, event.event_id
                    current.channel = event.channel
            else:
                current.confirm(at, event.event_id)
            return
        if at <= current.entered_at:
            return
        back = next(((t, e) for t, e in current.seen if t > at), None)
        if back is None:
            return  # the entry after it is no longer remembered: keep the stay as it is
        before = StageVisit(current.stage, current.entered_at, current.event_id, current.channel)
        before.stalled = current.stalled
        self._stalled_until(customer_id, journey.journey, before, at, outcome)
        current.entered_at, current.event_id = back
        current.previous_at = at
        current.stalled = False
        current.seen = [(t, e) for t, e in current.seen if t > back[0]]

    @staticmethod
    def _stage(state: CustomerState, journey: JourneyMap) -> str | None:
        visit = state.stages.get(journey.journey)
        return visit.stage if visit else None

    def _flag(
        self,
        customer_id: str,
        journey: JourneyMap,
        rule: Any,
        stage: str | None,
        channel: str,
        occurred_at: datetime,
        evidence: tuple[str, ...],
        episode: str,
    ) -> Flag:
        return Flag(
            flag_id(rule.id, episode),
            rule.id,
            rule.severity,
            customer_id,
            journey.journey,
            stage,
            channel,
            occurred_at,
            evidence,
        )

    def _count(
        self,
        state: CustomerState,
        customer_id: str,
        journey: JourneyMap,
        rule: CountRule,
        stage: str | None,
        event: Touchpoint,
        outcome: Outcome,
    ) -> None:
        per = str(event.attributes.get(rule.per, "")) if rule.per else ""
        key = (rule.id, per)
        seen = [*state.counts.get(key, []), (event.occurred_at, event.event_id)]
        self._window(state, customer_id, journey, rule, stage, event.channel, key, seen, outcome)

    def _window(
        self,
        state: CustomerState,
        customer_id: str,
        journey: JourneyMap,
        rule: CountRule,
        stage: str | None,
        channel: str,
        key: tuple[str, str],
        seen: list[tuple[datetime, str]],
        outcome: Outcome,
    ) -> None:
        """Flag the first window of ``rule.count`` occurrences within ``rule.within``; keep the
        occurrences a later window can still use."""
        seen = sorted(set(seen))
        if not seen:
            state.counts.pop(key, None)
            return
        newest = seen[-1][0]
        seen = [item for item in seen if item[0] >= newest - rule.within - self.lateness]
        for i in range(len(seen) - rule.count + 1):
            window = seen[i : i + rule.count]
            if window[-1][0] - window[0][0] <= rule.within:
                evidence = tuple(event_id for _, event_id in window)
                outcome.flags.append(
                    self._flag(
                        customer_id,
                        journey,
                        rule,
                        stage,
                        channel,
                        window[-1][0],
                        evidence,
                        evidence[0],
                    )
                )
                seen = [item for item in seen if item not in window]  # the episode is used up
                break
        state.counts[key] = seen[-(rule.count * 2) :]

    def _absence(
        self, state: CustomerState, rule: AbsenceRule, stage: str | None, event: Touchpoint
    ) -> None:
        match = str(event.attributes.get(rule.match, "")) if rule.match else ""
        key = (rule.id, match)
        if event.type in rule.complete:
            pending = state.pending.get(key)
            if pending is not None and pending.started_at <= event.occurred_at <= pending.deadline:
                del state.pending[key]
            else:
                marks = state.completed.setdefault(key, [])
                if event.occurred_at not in marks:
                    marks.append(event.occurred_at)
                    marks.sort()
                _forget_oldest_completions(state, rule.id)
        if event.type in rule.start:
            deadline = (
                event.occurred_at + rule.within
                if rule.within is not None
                else due_moment(event.attributes.get(rule.deadline_attribute or ""))
            )
            if deadline is None:
                return
            if _completes(state, key, event.occurred_at, deadline):
                return  # completed before this start was seen (it arrived late)
            existing = state.pending.get(key)
            if existing is not None and existing.deadline < event.occurred_at:
                # a new episode while the last one's deadline is past but not yet checked:
                # keep the old one (it fires at its deadline) under its own key
                state.pending[(rule.id, f"{match}@{existing.evidence[0]}")] = existing
                del state.pending[key]
            if key not in state.pending:
                state.pending[key] = Pending(
                    deadline, event.occurred_at, (event.event_id,), event.channel, stage
                )

    def _sequence(
        self,
        state: CustomerState,
        customer_id: str,
        journey: JourneyMap,
        rule: SequenceRule,
        event: Touchpoint,
        outcome: Outcome,
    ) -> None:
        if event.type in rule.after:
            self._note_first(
                state, customer_id, journey, rule, event.occurred_at, (event.event_id,), outcome
            )
        if event.type in rule.then:
            then = Then(
                event.occurred_at, (event.event_id,), event.channel, self._stage(state, journey)
            )
            self._note_then(state, customer_id, journey, rule, then, outcome)

    def _note_first(
        self,
        state: CustomerState,
        customer_id: str,
        journey: JourneyMap,
        rule: SequenceRule,
        at: datetime,
        evidence: tuple[str, ...],
        outcome: Outcome,
    ) -> None:
        """An ``after`` occurrence: pair it with the first ``then`` in its window, or keep it.

        The episode is the ``after`` occurrence, so its flag id does not depend on which
        ``then`` arrived first; the flag is the ``then``'s (time, channel, stage), so it
        does not depend on which side was seen first either."""
        thens = sorted(state.thens.get(rule.id, []), key=_then_order)
        match = next((t for t in thens if at <= t.at <= at + rule.within), None)
        if match is not None:
            outcome.flags.append(self._then_flag(customer_id, journey, rule, evidence, match))
            return
        firsts = [
            f for f in state.firsts.get(rule.id, []) if f[0] >= at - rule.within - self.lateness
        ]
        state.firsts[rule.id] = sorted([*firsts, (at, evidence)])[-SEQUENCE_MEMORY:]

    def _note_then(
        self,
        state: CustomerState,
        customer_id: str,
        journey: JourneyMap,
        rule: SequenceRule,
        then: Then,
        outcome: Outcome,
    ) -> None:
        """A ``then`` occurrence: it completes every waiting ``after`` in whose window it falls."""
        waiting = []
        for first_at, evidence in state.firsts.get(rule.id, []):
            if first_at <= then.at <= first_at + rule.within:
                outcome.flags.append(self._then_flag(customer_id, journey, rule, evidence, then))
            elif first_at >= then.at - rule.within - self.lateness:
                waiting.append((first_at, evidence))
        state.firsts[rule.id] = waiting
        # kept by count, not by time: an ``after`` flagged late (a deadline checked days
        # after it passed, a lagging feed) still finds the ``then`` that followed it
        thens = {_then_order(t): t for t in [*state.thens.get(rule.id, []), then]}  # once each
        state.thens[rule.id] = [thens[key] for key in sorted(thens)][-SEQUENCE_MEMORY:]

    def _then_flag(
        self,
        customer_id: str,
        journey: JourneyMap,
        rule: SequenceRule,
        evidence: tuple[str, ...],
        then: Then,
    ) -> Flag:
        """The flag of an ``after`` (``evidence``, its first id the episode) and its ``then``."""
        channel = then.channel or rule.then[0].partition(".")[0]  # "": a state from before
        return self._flag(
            customer_id,
            journey,
            rule,
            then.stage,
            channel,
            then.at,
            evidence + then.evidence,
            evidence[0],
        )

    def _follow_flags(
        self, state: CustomerState, customer_id: str, flags: Iterable[Flag], outcome: Outcome
    ) -> None:
        """Feed new flags to sequence rules that start from a flag (digital_to_support)."""
        queue = list(flags)
        while queue:
            flag = queue.pop(0)
            for journey, rule in self._flag_followers.get(flag.rule_id, []):
                before = len(outcome.flags)
                evidence = (flag.flag_id, *flag.evidence)
                self._note_first(
                    state, customer_id, journey, rule, flag.occurred_at, evidence, outcome
                )
                queue.extend(outcome.flags[before:])

    # -- merges -----------------------------------------------------------------------------

    def combine(self, state: CustomerState, other: CustomerState, customer_id: str) -> list[Flag]:
        """Fold ``other`` (a merged-away profile's state) into ``state`` (in place), as if the
        events behind both had been one customer's; return the flags that only the
        combination raises (a third contact, a friction followed by a ticket, a stall that
        the later stage entry reveals). Events both had seen count once."""
        outcome = Outcome()
        for hashed in other.seen:
            if hashed not in state.seen:
                state.seen.append(hashed)
        self._combine_stages(state, other, customer_id, outcome)
        for (rule_id, per), items in other.counts.items():
            journey, rule = self._rule_by_id[rule_id]
            seen = [*state.counts.get((rule_id, per), []), *items]
            stage, channel = self._stage(state, journey), rule.on.partition(".")[0]
            self._window(
                state, customer_id, journey, rule, stage, channel, (rule_id, per), seen, outcome
            )
        for key, marks in other.completed.items():
            state.completed[key] = sorted({*state.completed.get(key, []), *marks})
            _forget_oldest_completions(state, key[0])
        for key, pending in other.pending.items():
            state.pending.setdefault(key, pending)
        for key, pending in list(state.pending.items()):
            if _completes(state, key, pending.started_at, pending.deadline):
                del state.pending[key]  # one side started it, the other completed it
        for rule_id, firsts in other.firsts.items():
            journey, rule = self._rule_by_id[rule_id]
            for at, evidence in firsts:
                self._note_first(state, customer_id, journey, rule, at, evidence, outcome)
        for rule_id, thens in other.thens.items():
            journey, rule = self._rule_by_id[rule_id]
            for then in thens:
                self._note_then(state, customer_id, journey, rule, then, outcome)
        self._follow_flags(state, customer_id, list(outcome.flags), outcome)
        return outcome.flags

    def _combine_stages(
        self, state: CustomerState, other: CustomerState, customer_id: str, outcome: Outcome
    ) -> None:
        """Per journey the stage seen last holds (an event entering it came latest); in the
        same stage, the earlier entry (the customer has been there since). What happened
        between is in neither state; a stay is known to have ended when the other side was
        seen elsewhere after it, and a stall is inferred only then (the loser's own due
        stalls were raised before it was handed over, see ``JourneyStage``)."""
        for name, visit in other.stages.items():
            mine = state.stages.get(name)
            if mine is None:
                state.stages[name] = visit
            elif mine.stage != visit.stage:
                older, newer = sorted((mine, visit), key=lambda v: v.confirmed_at)
                state.stages[name] = newer  # the stage seen last is current
                if newer.entered_at > older.confirmed_at:  # and the older stay ended by then
                    self._stalled_until(customer_id, name, older, newer.entered_at, outcome)
            else:
                first, last = sorted((mine, visit), key=lambda v: v.entered_at)
                if last.previous_at is not None and last.previous_at >= first.confirmed_at:
                    state.stages[name] = last  # the customer was elsewhere in between
                    self._stalled_until(customer_id, name, first, last.previous_at, outcome)
                    continue
                first.stalled = first.stalled or last.stalled
                first.last_at = max(first.confirmed_at, last.confirmed_at)
                for entry in [(last.entered_at, last.event_id), *last.seen]:
                    first.confirm(*entry)
                state.stages[name] = first

    def _stalled_until(
        self, customer_id: str, name: str, visit: StageVisit, left_at: datetime, outcome: Outcome
    ) -> None:
        rule = self._stall_rules.get(name)
        if rule is not None:
            flag = self._stall_flag(customer_id, self.maps[name], rule, visit, left_at)
            if flag is not None:
                outcome.flags.append(flag)

    # -- deadlines --------------------------------------------------------------------------

    def expire(
        self, state: CustomerState, customer_id: str, watermarks: Mapping[str, datetime]
    ) -> list[Flag]:
        """Flags of absence rules and stalls whose deadline has passed on every channel
        that could still complete them. ``watermarks`` is per channel, already net of the
        allowed lateness (see :func:`watermark`)."""
        outcome = Outcome()
        for journey, rule in self._rules:
            if isinstance(rule, AbsenceRule):
                channels = {t.partition(".")[0] for t in rule.complete}
                for key, pending in list(state.pending.items()):
                    if key[0] == rule.id and _passed(watermarks, channels, pending.deadline):
                        del state.pending[key]
                        outcome.flags.append(
                            self._flag(
                                customer_id,
                                journey,
                                rule,
                                pending.stage,
                                pending.channel,
                                pending.deadline,
                                pending.evidence,
                                pending.evidence[0],
                            )
                        )
            elif isinstance(rule, StallRule):
                self._stall(state, customer_id, journey, rule, watermarks, outcome)
        self._follow_flags(state, customer_id, list(outcome.flags), outcome)
        return outcome.flags

    def _stall(
        self,
        state: CustomerState,
        customer_id: str,
        journey: JourneyMap,
        rule: StallRule,
        watermarks: Mapping[str, datetime],
        outcome: Outcome,
    ) -> None:
        visit = state.stages.get(journey.journey)
        if visit is None:
            return
        stage = journey.stages[journey.stage_index(visit.stage)]
        exits = {
            t.partition(".")[0] for s in journey.stages if s.id != stage.id for t in s.entered_by
        }
        if stage.budget is not None and _passed(watermarks, exits, visit.entered_at + stage.budget):
            flag = self._stall_flag(customer_id, journey, rule, visit, None)
            if flag is not None:
                outcome.flags.append(flag)

    def _stall_flag(
        self,
        customer_id: str,
        journey: JourneyMap,
        rule: StallRule,
        visit: StageVisit,
        left_at: datetime | None,
    ) -> Flag | None:
        """The stall of ``visit`` (once), if it outlasted its budget: left after the deadline,
        or (``left_at`` None) still there when event time passed it."""
        stage = journey.stages[journey.stage_index(visit.stage)]
        if visit.stalled or stage.budget is None:
            return None
        deadline = visit.entered_at + stage.budget
        if left_at is not None and left_at <= deadline:
            return None
        visit.stalled = True
        return self._flag(
            customer_id,
            journey,
            rule,
            stage.id,
            visit.channel,
            deadline,
            (visit.event_id,),
            f"{stage.id}:{visit.event_id}",
        )

    def next_deadline(self, state: CustomerState) -> datetime | None:
        """The earliest deadline in ``state``, so an index can find due customers directly."""
        deadlines = [p.deadline for p in state.pending.values()]
        for name, visit in state.stages.items():
            journey = self.maps.get(name)
            if journey is None or visit.stalled:
                continue
            stage = journey.stages[journey.stage_index(visit.stage)]
            if stage.budget is not None and any(isinstance(r, StallRule) for r in journey.rules):
                deadlines.append(visit.entered_at + stage.budget)
        return min(deadlines, default=None)


def _forget_oldest_completions(state: CustomerState, rule_id: str) -> None:
    """Keep a rule's newest ``COMPLETION_MEMORY`` completion marks. Bounded by count, not by
    time: a start may arrive long after its completion when a merged profile's state is
    transferred, and the mark must still be there to cancel it."""
    marks = sorted(
        (at, key) for key, times in state.completed.items() if key[0] == rule_id for at in times
    )
    for at, key in marks[:-COMPLETION_MEMORY]:
        state.completed[key].remove(at)
        if not state.completed[key]:
            del state.completed[key]


def _completes(
    state: CustomerState, key: tuple[str, str], started_at: datetime, deadline: datetime
) -> bool:
    """A completion seen before its start (it arrived late, or came with a merge) closes it."""
    return any(started_at <= at <= deadline for at in state.completed.get(key, ()))


def _types_of(rule: Any) -> set[str]:
    """The event types an event-driven rule reacts to (stalls react to none)."""
    if isinstance(rule, EventRule):
        return set(rule.on)
    if isinstance(rule, CountRule):
        return {rule.on}
    if isinstance(rule, AbsenceRule):
        return {*rule.start, *rule.complete}
    if isinstance(rule, SequenceRule):
        return {t for t in rule.after if not t.startswith("flag:")} | set(rule.then)
    return set()


def _passed(
    watermarks: Mapping[str, datetime], channels: Iterable[str], deadline: datetime
) -> bool:
    """True when event time is past ``deadline`` on every one of ``channels``."""
    return all(c in watermarks and watermarks[c] >= deadline for c in channels)


def watermark(latest: Mapping[str, datetime], lateness: timedelta) -> dict[str, datetime]:
    """Per-channel watermarks from the latest event time seen on each channel."""
    return {channel: at - lateness for channel, at in latest.items()}
