"""A compact byte form of :class:`CustomerState` for table stores (RocksDB, changelog topics).

Times are epoch milliseconds; seen event ids are packed 48-bit hashes."""

from __future__ import annotations

import base64
from collections import deque
from datetime import UTC, datetime
from typing import Any

import orjson

from services.journeys.state import SEEN_EVENT_IDS, CustomerState, Pending, StageVisit, Then

VERSION = 1


def _ms(at: datetime) -> int:
    return int(at.timestamp() * 1000)


def _at(ms: int) -> datetime:
    return datetime.fromtimestamp(ms / 1000, UTC)


def dump_state(state: CustomerState) -> bytes:
    body: dict[str, Any] = {"v": VERSION}
    if state.stages:
        body["s"] = {
            j: [
                v.stage,
                _ms(v.entered_at),
                v.event_id,
                v.channel,
                int(v.stalled),
                _ms(v.last_at) if v.last_at else 0,
                _ms(v.previous_at) if v.previous_at else 0,
                [[_ms(at), e] for at, e in v.seen],
            ]
            for j, v in state.stages.items()
        }
    if state.counts:
        body["c"] = [
            [r, per, [[_ms(t), e] for t, e in items]] for (r, per), items in state.counts.items()
        ]
    if state.pending:
        body["p"] = [
            [r, m, _ms(p.deadline), _ms(p.started_at), list(p.evidence), p.channel, p.stage]
            for (r, m), p in state.pending.items()
        ]
    if state.completed:
        body["d"] = [[r, m, _ms(t)] for (r, m), marks in state.completed.items() for t in marks]
    if state.firsts:
        body["f"] = {r: [[_ms(t), list(e)] for t, e in items] for r, items in state.firsts.items()}
    if state.thens:
        body["t"] = {
            r: [[_ms(t.at), list(t.evidence), t.channel, t.stage] for t in items]
            for r, items in state.thens.items()
        }
    if state.seen:
        packed = b"".join(key.to_bytes(6, "big") for key in state.seen)
        body["n"] = base64.b64encode(packed).decode()
    return compact(orjson.dumps(body))


def compact(data: bytes) -> bytes:
    """A right-sized copy: orjson's ``bytes`` keep a ~4 KiB allocation whatever their length,
    which a table holding one value per customer multiplies (bench/README.md)."""
    return b"".join((data, b""))


def load_state(data: bytes) -> CustomerState:
    body = orjson.loads(data)
    if body.get("v") != VERSION:
        raise ValueError(f"journey state version {body.get('v')!r}, expected {VERSION}")
    state = CustomerState()
    for journey, (stage, at, event_id, channel, stalled, *last) in body.get("s", {}).items():
        visit = StageVisit(stage, _at(at), event_id, channel, bool(stalled))
        if last:  # [last_at, previous_at, seen], 0 for none
            visit.last_at = _at(last[0]) if last[0] else None
            visit.previous_at = _at(last[1]) if last[1] else None
            visit.seen = [(_at(at), e) for at, e in last[2]] if len(last) > 2 else []
        state.stages[journey] = visit
    for rule, per, items in body.get("c", []):
        state.counts[(rule, per)] = [(_at(t), e) for t, e in items]
    for rule, match, deadline, started, evidence, channel, stage in body.get("p", []):
        state.pending[(rule, match)] = Pending(
            _at(deadline), _at(started), tuple(evidence), channel, stage
        )
    for rule, match, at in body.get("d", []):
        state.completed.setdefault((rule, match), []).append(_at(at))
    for rule, items in body.get("f", {}).items():
        state.firsts[rule] = [(_at(t), tuple(ev)) for t, ev in items]
    for rule, items in body.get("t", {}).items():
        # a state written before thens kept their channel and stage has "" and None: the
        # engine takes the channel of the rule's first ``then`` type for those
        state.thens[rule] = [
            Then(_at(t), tuple(ev), *[*rest, "", None][:2]) for t, ev, *rest in items
        ]
    packed = base64.b64decode(body.get("n", ""))
    state.seen = deque(
        (int.from_bytes(packed[i : i + 6], "big") for i in range(0, len(packed), 6)),
        maxlen=SEEN_EVENT_IDS,
    )
    return state
