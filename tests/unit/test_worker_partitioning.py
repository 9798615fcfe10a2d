"""The worker's journey table keeps every entry of a customer in the customer's partition,
so a rebalance hands a customer's held events and awaited transfers to its new owner."""

from __future__ import annotations

from datetime import timedelta

import orjson
from aiokafka.partitioner import DefaultPartitioner

from services.journeys.stage import AWAITING, HELD, MERGED, JourneyStage, Merged, owner_key
from services.worker.journey import owner_partitioner, partition_of
from tests.unit.test_journey_stage import ENGINE, ev, flags

PARTITIONS = 12
WINNER, LOSER = "cus-w", "ts_l"


def _kafka_default(key: bytes) -> int:
    return int(DefaultPartitioner()(key, list(range(PARTITIONS)), list(range(PARTITIONS))))


def _part(key: str) -> int:
    return partition_of(key.encode(), PARTITIONS)


def _winner_waiting_with_a_held_failure() -> JourneyStage:
    """``cus-w`` waits for ``ts_l``'s state; a failed payment of ``cus-w`` is held meanwhile."""
    from services.journeys.stage import Expected

    stage = JourneyStage(ENGINE, {})
    failed = ev(
        "billing.payment_failed", timedelta(), invoice_id="i", amount=3, currency="EUR", reason="x"
    )
    assert stage.apply([Expected(WINNER, LOSER), (WINNER, failed)]) == []
    return stage


def test_control_keys_go_to_their_customers_partition() -> None:
    winner_side = _winner_waiting_with_a_held_failure()
    loser_side = JourneyStage(ENGINE, {})
    loser_side.apply([Merged(WINNER, LOSER, "e-link")])
    keys = {**winner_side.store, **loser_side.store}
    assert {HELD + WINNER, AWAITING + WINNER, MERGED + LOSER} <= set(keys)
    for key in keys:
        owner = owner_key(key.encode()).decode()
        assert owner in (WINNER, LOSER), key
        assert _part(key) == _part(owner), key
        assert owner_partitioner(key.encode(), list(range(PARTITIONS)), []) == _part(owner)
    # Kafka's default partitioner would have put these entries elsewhere (the bug this fixes)
    assert _kafka_default((HELD + WINNER).encode()) != _kafka_default(WINNER.encode())


def test_other_keys_are_partitioned_as_kafka_does() -> None:
    every = list(range(PARTITIONS))
    for key in [b"cus-1", b"ts_abc", "kundé-ø".encode(), b"\x00", b"\x00no-second-nul", b"x\x00y"]:
        assert owner_partitioner(key, every, every) == _kafka_default(key), key
    assert owner_partitioner(None, every, [3]) == 3


def test_held_events_move_with_the_customer_to_its_new_owner() -> None:
    """The first owner holds a failed payment while ``cus-w`` waits for a merged state; a
    rebalance gives ``cus-w``'s partition to a second worker, which recovers that partition's
    changelog only. The transfer arriving there releases the held event: the flag is raised."""
    first = _winner_waiting_with_a_held_failure()
    partition = _part(WINNER)
    recovered = {k: v for k, v in first.store.items() if _part(k) == partition}
    second = JourneyStage(ENGINE, recovered)
    second.assign([partition])
    second.rebuild_index(recovered, lambda key: partition_of(key, PARTITIONS))
    assert second.waiting(WINNER)
    (out,) = JourneyStage(ENGINE, {}).apply([Merged(WINNER, LOSER, "e-link")])
    record = orjson.loads(out.value)
    from services.journeys.stage import Transfer

    transfer = Transfer(WINNER, LOSER, orjson.dumps(record["state"]), record["awaiting"])
    assert [f["rule_id"] for f in flags(second.apply([transfer]))] == ["payment_failed"]
    assert HELD + WINNER not in second.store


def test_rebuilding_the_index_skips_entries_of_partitions_not_owned() -> None:
    """A worker's local store can keep entries of a partition it lost; their deadlines are
    the new owner's to raise."""
    store: dict[str, bytes] = {}
    stage = JourneyStage(ENGINE, store)
    opened = [
        (c, ev("support.ticket_opened", timedelta(), ticket_id=f"t-{c}", topic="x", via="chat"))
        for c in ("cus-1", "cus-2", "cus-3", "cus-4", "cus-5", "cus-6")
    ]
    stage.apply(opened)
    owned = {_part("cus-1")}
    mine = {c for c, _ in opened if _part(c) in owned}
    assert mine != {c for c, _ in opened}, "the customers span more than one partition"
    rebuilt = JourneyStage(ENGINE, store)
    rebuilt.assign(owned)
    rebuilt.rebuild_index(store, lambda key: partition_of(key, PARTITIONS))
    assert rebuilt.indexed == len(mine)
