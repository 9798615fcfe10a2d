"""The journey stage of the pipeline, without Faust: state per customer in a byte store,
per-channel watermarks, and a deadline index so due customers are found without scanning
every customer. A Faust agent feeds it batches of items and calls ``tick`` on a timer.

Items are events ``(customer id, touchpoint)`` and the control records of identity
resolution (docs/adr/0001-identity-resolution.md): :class:`Merged` (a customer id lost a
merge: send its state to the winner), :class:`Transfer` (a loser's state arriving at the
winner: combine) and :class:`Watermark` (event time per channel, from the coordinator)."""

from __future__ import annotations

import heapq
from collections.abc import Callable, Iterable, MutableMapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import orjson

from services.journeys.codec import dump_state, load_state
from services.journeys.engine import Engine, watermark
from services.journeys.state import CustomerState, Flag, Touchpoint, Transition
from services.routing import Output

__all__ = [
    "Expected",
    "JourneyStage",
    "Merged",
    "Output",
    "Transfer",
    "Watermark",
    "owner_key",
]


@dataclass(frozen=True, slots=True)
class Merged:
    """``loser`` was merged into ``winner`` by ``event_id``; this arrives on the loser's
    partition after all of the loser's events."""

    winner: str
    loser: str
    event_id: str


@dataclass(frozen=True, slots=True)
class Expected:
    """``winner`` will receive ``loser``'s state: its deadlines wait for it (a completion in
    the loser's state may cancel one of them)."""

    winner: str
    loser: str


@dataclass(frozen=True, slots=True)
class Transfer:
    """The state ``loser`` had built, on its way to ``winner``, with the transfers the loser
    itself was still waiting for."""

    winner: str
    loser: str
    state: bytes
    awaiting: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Watermark:
    """Per channel, the event time the identity coordinator guarantees is complete, as it
    reached ``partition`` (after every event it sent there before)."""

    partition: int
    channels: dict[str, datetime]


Item = tuple[str, Touchpoint] | Merged | Expected | Transfer | Watermark
CONTROL = "\x00"  # store keys starting with it are not customers:
MERGED = CONTROL + "merged\x00"  # a merged-away id -> the id it went to
AWAITING = CONTROL + "awaiting\x00"  # a winner -> {loser: waiting | arrived}
HELD = CONTROL + "held\x00"  # a winner -> its events that wait for a merged state


def _merged_key(customer: str) -> str:
    return MERGED + customer


def owner_key(key: bytes) -> bytes:
    """The customer a store key belongs to: the key itself, or what follows a control
    prefix. The worker partitions its table's changelog by it, so a customer's control
    entries (held events, awaited transfers, where a merged id went) live in the partition
    of the customer's events and move with it when partitions are reassigned."""
    end = key.find(b"\x00", 1) if key[:1] == b"\x00" else -1
    return key[end + 1 :] if end > 0 else key


def flag_record(flag: Flag) -> bytes:
    return orjson.dumps(flag)  # orjson encodes dataclasses itself, without asdict's deep copy


def transition_record(transition: Transition) -> bytes:
    return orjson.dumps(transition)


def transfer_record(winner: str, loser: str, state: bytes, awaiting: dict[str, str]) -> bytes:
    return orjson.dumps(
        {
            "control": "transfer",
            "winner": winner,
            "loser": loser,
            "state": orjson.Fragment(state),
            "awaiting": awaiting,
        }
    )


class JourneyStage:
    """Applies events to customers' journey state and raises deadline flags as event time
    advances. ``store`` maps customer id to the state's bytes (a Faust table in the worker).

    Event time comes from :class:`Watermark` records when ``event_time="records"`` (the
    worker: the coordinator sees every raw partition) and from the events applied here
    when ``"events"`` (a single ordered stream: tests, benchmarks, replays)."""

    def __init__(
        self,
        engine: Engine,
        store: MutableMapping[str, bytes],
        *,
        event_time: str = "events",
        too_late_after: timedelta = timedelta(hours=24),
    ) -> None:
        if event_time not in ("events", "records"):
            raise ValueError(f"event_time must be 'events' or 'records', not {event_time!r}")
        self.engine = engine
        self.store = store
        self.event_time = event_time
        self.latest: dict[str, datetime] = {}
        self.marks: dict[int, dict[str, datetime]] = {}
        self.owned: set[int] | None = None
        self._due: list[tuple[datetime, str]] = []
        self._indexed: dict[str, datetime] = {}
        self._waiting: set[str] = set()  # customers a merged state is on its way to
        self.too_late_after = too_late_after
        self.too_late = 0  # events far behind the watermark: counted, not applied

    def rebuild_index(
        self, customers: Iterable[str], partition_of: Callable[[bytes], int] | None = None
    ) -> None:
        """After partitions are (re)assigned: index the deadlines of the customers now owned.

        With ``partition_of`` (store key -> partition), keys of partitions not assigned are
        skipped: a local store may still hold entries of partitions another worker now owns,
        whose state moves on there."""
        self._due, self._indexed, self._waiting = [], {}, set()
        owned = self.owned
        for customer in customers:
            if (
                partition_of is not None
                and owned is not None
                and partition_of(customer.encode()) not in owned
            ):
                continue
            if customer.startswith(AWAITING):
                if "waiting" in orjson.loads(self.store[customer]).values():
                    self._waiting.add(customer.removeprefix(AWAITING))
            elif not customer.startswith(CONTROL):
                self._index(customer, load_state(self.store[customer]))

    def assign(self, partitions: Iterable[int]) -> None:
        """The partitions this stage now owns; ticks wait for a watermark from each. Marks
        from before are dropped: after a rebalance a partition is read again from its last
        commit, and a mark newer than the records being re-read would take events whose
        state may not have been saved for too late ones."""
        self.owned = set(partitions)
        self.marks = {}

    def revoke(self) -> None:
        """Partitions are being taken away (a rebalance began): until :meth:`assign`,
        nothing is too late and no deadline is due."""
        self.owned = set()
        self.marks = {}

    def _index(self, customer: str, state: CustomerState) -> None:
        """Keep one live heap entry per customer: its earliest deadline."""
        deadline = self.engine.next_deadline(state)
        if deadline is None:
            self._indexed.pop(customer, None)
        elif self._indexed.get(customer) != deadline:
            self._indexed[customer] = deadline
            heapq.heappush(self._due, (deadline, customer))

    def watermarks(self) -> dict[str, datetime]:
        """Per channel, the event time before which nothing more can arrive here."""
        if self.event_time == "events":
            return watermark(self.latest, self.engine.lateness)
        owned = self.owned if self.owned is not None else set(self.marks)
        if not owned or any(p not in self.marks for p in owned):
            return {}  # a partition has not told its event time yet: nothing is due
        marks = [self.marks[p] for p in owned]
        channels = set.intersection(*(set(m) for m in marks))
        return {c: min(m[c] for m in marks) for c in channels}

    def apply(self, items: Iterable[Item]) -> list[Output]:
        """Apply events and control records in order; return the records to send.

        An event older than the watermark of its channel is past the allowed lateness; it is
        still applied (as late as it is), unless it is behind by more than
        ``too_late_after``: a redelivery of old traffic, or a feed that broke the contract
        by far. Such an event is counted in ``too_late`` and not applied (the CRM sink
        still records it), so duplicates of old traffic change nothing here."""
        outputs: list[Output] = []
        states: dict[str, CustomerState] = {}

        def state_of(customer: str) -> CustomerState:
            state = states.get(customer)
            if state is None:
                raw = self.store.get(customer)
                state = states[customer] = load_state(raw) if raw is not None else CustomerState()
            return state

        limits = self.watermarks() if self.event_time == "records" else {}
        for item in items:
            if isinstance(item, tuple):
                customer, event = item
                if self._too_late(event, limits):
                    self.too_late += 1  # far past the allowed lateness: deadlines were decided
                elif customer in self._waiting:
                    self._hold(customer, event)  # applied once the merged state is here
                else:
                    outputs += self._apply_event(state_of(customer), customer, event)
            elif isinstance(item, Watermark):
                self.marks[item.partition] = item.channels
                limits = self.watermarks()
            elif isinstance(item, Merged):
                outputs += self._hand_over(item, states)
            elif isinstance(item, Expected):
                self._note_awaiting(item.winner, {item.loser: "waiting"})
            else:
                outputs += self._take_over(item, state_of)
        for customer, state in states.items():
            self.store[customer] = dump_state(state)
            self._index(customer, state)
        return outputs

    def _too_late(self, event: Touchpoint, limits: dict[str, datetime]) -> bool:
        if self.event_time == "events":
            latest = self.latest.get(event.channel)
            limit = None if latest is None else latest - self.engine.lateness
        else:
            limit = limits.get(event.channel)
        return limit is not None and event.occurred_at < limit - self.too_late_after

    def _apply_event(self, state: CustomerState, customer: str, event: Touchpoint) -> list[Output]:
        outcome = self.engine.apply(state, customer, event)
        key = customer.encode()
        outputs = [Output("transitions", key, transition_record(t)) for t in outcome.transitions]
        outputs += [Output("flags", key, flag_record(f)) for f in outcome.flags]
        channel = event.channel
        if channel not in self.latest or event.occurred_at > self.latest[channel]:
            self.latest[channel] = event.occurred_at
        return outputs

    def _hold(self, customer: str, event: Touchpoint) -> None:
        held = orjson.loads(self.store.get(HELD + customer) or b"[]")
        held.append([event.event_id, event.type, event.occurred_at, event.attributes])
        self.store[HELD + customer] = orjson.dumps(held)

    def _release(self, customer: str, state: CustomerState) -> list[Output]:
        """The events that waited for a merged state, applied now that it is here, in event
        time order: they arrived in the coordinator's order, in which a login can precede
        the anonymous browsing before it (read from another raw partition)."""
        raw = self.store.get(HELD + customer)
        if raw is None:
            return []
        del self.store[HELD + customer]
        outputs = []
        held = orjson.loads(raw)
        held.sort(key=lambda e: datetime.fromisoformat(e[2]))  # stable: ties keep arrival
        for event_id, type_, at, attributes in held:
            event = Touchpoint(event_id, type_, datetime.fromisoformat(at), attributes)
            outputs += self._apply_event(state, customer, event)
        return outputs

    def _hand_over(self, merged: Merged, states: dict[str, CustomerState]) -> list[Output]:
        """The loser's state (empty if it had none: the winner waits for it either way)
        leaves this store for the winner's partition."""
        state = states.pop(merged.loser, None)
        if state is None and (stored := self.store.get(merged.loser)) is not None:
            state = load_state(stored)
        outputs: list[Output] = []
        if state is not None:  # what event time already decided belongs to the loser
            key = merged.loser.encode()
            due = self.engine.expire(state, merged.loser, self.watermarks())
            outputs += [Output("flags", key, flag_record(f)) for f in due]
        if merged.loser in self.store:
            del self.store[merged.loser]
        self.store[_merged_key(merged.loser)] = merged.winner.encode()  # for late transfers
        self._indexed.pop(merged.loser, None)
        awaiting = self._awaiting(merged.loser)
        if awaiting:
            del self.store[AWAITING + merged.loser]
        value = transfer_record(
            merged.winner, merged.loser, dump_state(state or CustomerState()), awaiting
        )
        return [*outputs, Output("resolved", merged.winner.encode(), value)]

    def _take_over(
        self, transfer: Transfer, state_of: Callable[[str], CustomerState]
    ) -> list[Output]:
        """Combine a loser's state into the winner's, or pass it on if the winner has since
        lost a merge itself."""
        onward = self.store.get(_merged_key(transfer.winner))
        if onward is not None:
            winner = onward.decode()
            value = transfer_record(winner, transfer.loser, transfer.state, transfer.awaiting)
            return [Output("resolved", winner.encode(), value)]
        state = state_of(transfer.winner)
        flags = self.engine.combine(state, load_state(transfer.state), transfer.winner)
        outputs = [Output("flags", transfer.winner.encode(), flag_record(f)) for f in flags]
        self._note_awaiting(transfer.winner, {**transfer.awaiting, transfer.loser: "arrived"})
        if transfer.winner not in self._waiting:
            outputs += self._release(transfer.winner, state)
        return outputs

    def _awaiting(self, customer: str) -> dict[str, str]:
        raw = self.store.get(AWAITING + customer)
        return orjson.loads(raw) if raw is not None else {}

    def _note_awaiting(self, customer: str, news: dict[str, str]) -> None:
        """An expected transfer and its arrival cancel out, in whichever order they come."""
        awaiting = self._awaiting(customer)
        for loser, status in news.items():
            if awaiting.get(loser, status) != status:
                del awaiting[loser]
            else:
                awaiting[loser] = status
        if awaiting:
            self.store[AWAITING + customer] = orjson.dumps(awaiting)
        elif AWAITING + customer in self.store:
            del self.store[AWAITING + customer]
        if "waiting" in awaiting.values():
            self._waiting.add(customer)
        else:
            self._waiting.discard(customer)

    def waiting(self, customer: str) -> bool:
        """Whether a merged profile's state is still on its way to ``customer`` (its events
        and deadlines wait for it)."""
        return customer in self._waiting

    def tick(self) -> list[Output]:
        """Raise the flags of every deadline event time has passed (per channel)."""
        marks = self.watermarks()
        if not marks:
            return []
        horizon = max(marks.values())
        outputs: list[Output] = []
        waiting: list[tuple[str, CustomerState]] = []
        while self._due and self._due[0][0] <= horizon:
            deadline, customer = heapq.heappop(self._due)
            if self._indexed.get(customer) != deadline or customer not in self.store:
                continue  # stale entry: the customer's earliest deadline changed since
            del self._indexed[customer]
            state = load_state(self.store[customer])
            if self.waiting(customer):
                waiting.append((customer, state))  # a merged state is on its way: not yet
                continue
            flags = self.engine.expire(state, customer, marks)
            if flags:
                self.store[customer] = dump_state(state)
                outputs += [Output("flags", customer.encode(), flag_record(f)) for f in flags]
            waiting.append((customer, state))
        for customer, state in waiting:  # still due on a lagging channel: retried next tick
            self._index(customer, state)
        return outputs

    @property
    def indexed(self) -> int:
        """Customers with a deadline in the index."""
        return len(self._indexed)
