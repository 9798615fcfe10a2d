"""The journey stage of the pipeline, without Faust: state per customer in a byte store,
per-channel watermarks, and a deadline index so due customers are found without scanning
every customer. A Faust agent feeds it batches of events and calls ``tick`` on a timer."""

from __future__ import annotations

import heapq
from collections.abc import Iterable, MutableMapping
from dataclasses import dataclass
from datetime import datetime

import orjson

from services.journeys.codec import dump_state, load_state
from services.journeys.engine import Engine, watermark
from services.journeys.state import CustomerState, Flag, Touchpoint, Transition


@dataclass(frozen=True, slots=True)
class Output:
    """A record for a topic: ``transitions`` or ``flags``, keyed by customer."""

    route: str
    key: bytes
    value: bytes


def flag_record(flag: Flag) -> bytes:
    return orjson.dumps(flag)  # orjson encodes dataclasses itself, without asdict's deep copy


def transition_record(transition: Transition) -> bytes:
    return orjson.dumps(transition)


class JourneyStage:
    """Applies events to customers' journey state and raises deadline flags as event time
    advances. ``store`` maps customer id to the state's bytes (a Faust table in the worker)."""

    def __init__(self, engine: Engine, store: MutableMapping[str, bytes]) -> None:
        self.engine = engine
        self.store = store
        self.latest: dict[str, datetime] = {}
        self._due: list[tuple[datetime, str]] = []
        self._indexed: dict[str, datetime] = {}

    def rebuild_index(self, customers: Iterable[str]) -> None:
        """After partitions are (re)assigned: index the deadlines of the customers now owned."""
        self._due, self._indexed = [], {}
        for customer in customers:
            self._index(customer, load_state(self.store[customer]))

    def _index(self, customer: str, state: CustomerState) -> None:
        """Keep one live heap entry per customer: its earliest deadline."""
        deadline = self.engine.next_deadline(state)
        if deadline is None:
            self._indexed.pop(customer, None)
        elif self._indexed.get(customer) != deadline:
            self._indexed[customer] = deadline
            heapq.heappush(self._due, (deadline, customer))

    def watermarks(self) -> dict[str, datetime]:
        return watermark(self.latest, self.engine.lateness)

    def apply(self, events: Iterable[tuple[str, Touchpoint]]) -> list[Output]:
        """Apply ``(customer id, event)`` pairs in order; return the records to send."""
        outputs: list[Output] = []
        states: dict[str, CustomerState] = {}
        for customer, event in events:
            state = states.get(customer)
            if state is None:
                raw = self.store.get(customer)
                state = load_state(raw) if raw is not None else CustomerState()
                states[customer] = state
            outcome = self.engine.apply(state, customer, event)
            key = customer.encode()
            outputs += [
                Output("transitions", key, transition_record(t)) for t in outcome.transitions
            ]
            outputs += [Output("flags", key, flag_record(f)) for f in outcome.flags]
            channel = event.channel
            if channel not in self.latest or event.occurred_at > self.latest[channel]:
                self.latest[channel] = event.occurred_at
        for customer, state in states.items():
            self.store[customer] = dump_state(state)
            self._index(customer, state)
        return outputs

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
