"""The identity stage of the pipeline, without Faust (docs/adr/0001-identity-resolution.md).

One coordinator reads every valid event in one total order (a single-partition topic),
resolves its identifiers to a customer with the :class:`IdentityGraph`, and emits:

- the event, with its ``customer_id``, on ``resolved`` keyed by that customer;
- before it, for each merge, a ``merge`` control record keyed by the *losing* id, so the
  journey stage moves the loser's state to the winner (in order after the loser's events),
  and an ``expect`` record keyed by the winner, which holds the winner's deadlines until
  that state has arrived;
- merges and refusals on ``identity`` for the CRM store and review;
- ``watermark`` control records to every ``resolved`` partition: per channel, the event time
  every active raw partition has passed, less the allowed lateness. Deadlines fire on these,
  so a partition read faster than another, or a feed hours behind, raises no false absence
  flag. A raw partition that delivered nothing for ``idle_timeout`` seconds stops holding
  event time back, as in Flink's idleness, but only once it is caught up: one the broker
  says still has records the validate stage has not committed past (its worker died, or
  its new owner is still reading changelogs) holds event time back however long it is
  quiet (:attr:`IdentityStage.backlog`).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator, MutableMapping
from datetime import datetime, timedelta
from typing import Any

import orjson

from services.identity.graph import GuardRails, IdentityGraph, Merge, Profile, Refusal
from services.journeys.codec import compact
from services.routing import Output

_WATERMARK_KEY = b"watermark:raw"
RESEND_WATERMARK = 5.0  # seconds: a partition that changed owner learns event time again


def is_control(value: bytes) -> bool:
    """Whether a ``touchpoints.resolved`` value is a control record, not an event (control
    records are written with ``control`` as their first key; events have none)."""
    return value.startswith(b'{"control"')


def resolved_control(kind: str, **fields: Any) -> bytes:
    """A control record on the resolved topic (``merge``, ``expect``, ``transfer`` or
    ``watermark``)."""
    return orjson.dumps({"control": kind, **fields})


def merge_record(merge: Merge, occurred_at: str) -> bytes:
    return orjson.dumps(
        {
            "kind": "merge",
            "winner": merge.winner,
            "loser": merge.loser,
            "reason": merge.reason,
            "event_id": merge.event_id,
            "occurred_at": occurred_at,
            "moved": merge.moved,
        }
    )


def refusal_record(refusal: Refusal, occurred_at: str) -> bytes:
    return orjson.dumps(
        {
            "kind": "refusal",
            "customer_id": refusal.customer_id,
            "refused": refusal.refused,
            "reason": refusal.reason,
            "event_id": refusal.event_id,
            "occurred_at": occurred_at,
        }
    )


def _ms(occurred_at: str) -> int:
    return int(datetime.fromisoformat(occurred_at).timestamp() * 1000)


class IdentityStage:
    """Resolves valid events to customers and tracks per-raw-partition event time.

    ``table`` is a byte store (the coordinator's changelog-backed table; a dict in tests)
    holding the graph (``i:`` identifier -> customer, ``p:`` customer -> profile) and the
    event time reached per raw partition and channel."""

    def __init__(
        self,
        table: MutableMapping[bytes, bytes],
        *,
        rails: GuardRails | None = None,
        lateness: timedelta = timedelta(minutes=5),
        idle_timeout: float = 10.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.table = table
        self.graph = IdentityGraph(rails, owner=_Owners(table), profiles=_Profiles(table))
        self.lateness_ms = int(lateness.total_seconds() * 1000)
        self.reached: dict[str, dict[str, int]] = {}  # raw partition -> channel -> epoch ms
        self.idle_timeout = idle_timeout
        self.clock = clock
        self._active: dict[str, float] = {}  # raw partition -> when it last delivered (clock)
        self.expected: list[str] = []  # raw partitions to hear from (see ``expect``)
        self._changed = False
        self._sent: dict[str, int] | None = None
        self._sent_at = 0.0
        self.owned = True  # this worker holds the coordinator's partition
        # raw partitions with records not yet validated, as the broker last said (the worker
        # sets it on a timer): never idle, however long they deliver nothing
        self.backlog: frozenset[str] = frozenset()
        self.counts = {"events": 0, "merges": 0, "refusals": 0}

    def expect(self, partitions: Iterable[str]) -> None:
        """The raw partitions (``topic/partition``) events come from. One that has not
        delivered yet holds event time back until it has been idle for ``idle_timeout`` and
        has no :attr:`backlog`: otherwise its first events, still on their way, would all be
        too late."""
        self.expected = list(partitions)
        now = self.clock()
        for partition in self.expected:
            self._active.setdefault(partition, now)

    def recover(self) -> None:
        """Reload the event time reached per raw partition, after (re)assignment."""
        stored = self.table.get(_WATERMARK_KEY)
        self.reached = orjson.loads(stored) if stored else {}
        now = self.clock()
        self._active = dict.fromkeys([*self.reached, *self.expected], now)
        self._sent = None

    def resolve(self, value: bytes, position: int) -> list[Output]:
        """The outputs of one valid event (an ``AcceptedEvent`` record) at ``position``."""
        record = orjson.loads(value)
        event = record["event"]
        occurred_at = event["occurred_at"]
        resolution = self.graph.resolve(event["identity"], event["event_id"], position=position)
        outputs = []
        for merge in resolution.merges:
            control = resolved_control(
                "merge", winner=merge.winner, loser=merge.loser, event_id=merge.event_id
            )
            outputs.append(Output("resolved", merge.loser.encode(), control))
            # the winner holds its deadlines until the loser's state has arrived
            expect = resolved_control("expect", winner=merge.winner, loser=merge.loser)
            outputs.append(Output("resolved", merge.winner.encode(), expect))
            outputs.append(
                Output("identity", merge.winner.encode(), merge_record(merge, occurred_at))
            )
        for refusal in resolution.refusals:
            key = refusal.customer_id.encode()
            outputs.append(Output("identity", key, refusal_record(refusal, occurred_at)))
        record["customer_id"] = resolution.customer_id
        outputs.append(Output("resolved", resolution.customer_id.encode(), orjson.dumps(record)))
        self._reach(record, event, occurred_at)
        self.counts["events"] += 1
        self.counts["merges"] += len(resolution.merges)
        self.counts["refusals"] += len(resolution.refusals)
        return outputs

    def _reach(self, record: dict[str, Any], event: dict[str, Any], occurred_at: str) -> None:
        origin = record.get("origin") or {}
        partition = f"{origin.get('topic', '')}/{origin.get('partition', 0)}"
        channel = event["type"].partition(".")[0]
        at = _ms(occurred_at)
        self._active[partition] = self.clock()
        reached = self.reached.setdefault(partition, {})
        if at > reached.get(channel, -1):
            reached[channel] = at
            self._changed = True

    def watermarks(self) -> dict[str, int]:
        """Per channel (epoch ms): the event time every active raw partition carrying the
        channel has reached, less the allowed lateness. Later events of the channel are at
        most that late (the contract), so a deadline before it can no longer be met. A
        partition is active while it delivers or has a :attr:`backlog`. When every partition
        is idle, the furthest any of them reached."""
        horizon = self.clock() - self.idle_timeout

        def busy(partition: str) -> bool:
            return partition in self.backlog or self._active.get(partition, 0.0) > horizon

        if any(p not in self.reached and busy(p) for p in self.expected):
            return {}  # a partition's first events are still to come
        active = [r for p, r in self.reached.items() if busy(p)]
        pick, partitions = (min, active) if active else (max, list(self.reached.values()))
        marks: dict[str, int] = {}
        for reached in partitions:
            for channel, at in reached.items():
                marks[channel] = pick(marks.get(channel, at), at)
        if active:  # a channel only idle partitions carry: as far as they got
            for reached in self.reached.values():
                for channel, at in reached.items():
                    if not any(channel in r for r in active):
                        marks[channel] = max(marks.get(channel, at), at)
        return {channel: at - self.lateness_ms for channel, at in marks.items()}

    def flush(self, partitions: int) -> Iterator[Output]:
        """Persist the event time reached if it moved, and, if the watermark changed, yield
        one for each resolved partition. Called after each batch (after its events were
        sent) and on a timer, which notices partitions going idle; an unchanged watermark is
        sent again every ``RESEND_WATERMARK`` seconds, so a journey stage that has just been
        given a partition (and waits for its watermark) does not wait for traffic."""
        if self._changed:
            self._changed = False
            self.table[_WATERMARK_KEY] = orjson.dumps(self.reached)
        marks = self.watermarks()
        unchanged = marks == self._sent and self.clock() - self._sent_at < RESEND_WATERMARK
        if not marks or unchanged:
            return
        self._sent, self._sent_at = marks, self.clock()
        value = resolved_control("watermark", channels=marks)
        for partition in range(partitions):
            yield Output("resolved", None, value, partition=partition)


class _Owners(MutableMapping[str, str]):
    """Identifier key -> customer id, in the table under ``i:``."""

    def __init__(self, table: MutableMapping[bytes, bytes]) -> None:
        self.table = table

    def __getitem__(self, key: str) -> str:
        return self.table[b"i:" + key.encode()].decode()

    def __setitem__(self, key: str, value: str) -> None:
        self.table[b"i:" + key.encode()] = value.encode()

    def __delitem__(self, key: str) -> None:
        del self.table[b"i:" + key.encode()]

    def __contains__(self, key: object) -> bool:
        return isinstance(key, str) and b"i:" + key.encode() in self.table

    def get(self, key: str, default: Any = None) -> Any:
        value = self.table.get(b"i:" + key.encode())
        return default if value is None else value.decode()

    def __iter__(self) -> Iterator[str]:
        return (k[2:].decode() for k in self.table if k.startswith(b"i:"))

    def __len__(self) -> int:
        return sum(1 for _ in self)


class _Profiles(MutableMapping[str, Profile]):
    """Customer id -> profile (creation order and identifiers), in the table under ``p:``."""

    def __init__(self, table: MutableMapping[bytes, bytes]) -> None:
        self.table = table

    def __getitem__(self, key: str) -> Profile:
        body = orjson.loads(self.table[b"p:" + key.encode()])
        return Profile(key, body["o"], {kind: set(v) for kind, v in body["i"].items()})

    def __setitem__(self, key: str, profile: Profile) -> None:
        body = {"o": profile.order, "i": {k: sorted(v) for k, v in profile.identifiers.items()}}
        self.table[b"p:" + key.encode()] = compact(orjson.dumps(body))

    def __delitem__(self, key: str) -> None:
        del self.table[b"p:" + key.encode()]

    def __contains__(self, key: object) -> bool:
        return isinstance(key, str) and b"p:" + key.encode() in self.table

    def __iter__(self) -> Iterator[str]:
        return (k[2:].decode() for k in self.table if k.startswith(b"p:"))

    def __len__(self) -> int:
        return sum(1 for _ in self)
