"""A table write is visible at once and kept as one changelog record per key for the outbox."""

from __future__ import annotations

from types import SimpleNamespace

from services.worker.outbox import Change, ChangelogTable


def test_writes_apply_at_once_and_drain_as_the_last_value_per_key() -> None:
    table = ChangelogTable(SimpleNamespace(data={b"old": b"1"}), "table:journey")
    table[b"a"] = b"1"
    table[b"b"] = b"2"
    table[b"a"] = b"3"  # a profile written twice in one batch is one record
    del table[b"old"]
    assert dict(table) == {b"a": b"3", b"b": b"2"}
    assert b"a" in table
    assert b"old" not in table
    assert table.drain() == [
        Change("table:journey", b"a", b"3"),
        Change("table:journey", b"b", b"2"),
        Change("table:journey", b"old", None),  # a tombstone, as Faust sends for a deletion
    ]
    assert table.drain() == []
    assert table.get(b"missing") is None
