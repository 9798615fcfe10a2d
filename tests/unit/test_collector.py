"""The worker and the sink process set the garbage collector from TOUCHSTREAM_WORKER_GC_YOUNG."""

from __future__ import annotations

import gc
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from services.settings import Settings
from services.worker import run
from services.worker.collector import tune_collector


@pytest.fixture
def collector() -> Iterator[None]:
    """Python's collector as it was before the test, afterwards."""
    threshold = gc.get_threshold()
    yield
    gc.unfreeze()
    gc.set_threshold(*threshold)


def test_the_young_threshold_is_set_and_what_exists_is_frozen(collector: None) -> None:
    middle, old = gc.get_threshold()[1:]
    kept = [[i] for i in range(1000)]  # tracked containers alive at start-up
    tune_collector(12_345)
    assert gc.get_threshold() == (12_345, middle, old)
    assert gc.get_freeze_count() >= len(kept)


def test_zero_leaves_the_collector_as_python_set_it(collector: None) -> None:
    before, frozen = gc.get_threshold(), gc.get_freeze_count()
    tune_collector(0)
    assert gc.get_threshold() == before
    assert gc.get_freeze_count() == frozen


def test_the_worker_tunes_it_from_its_settings(
    collector: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen: list[tuple[int, int, int]] = []

    class Worker:
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            pass

        def execute_from_commandline(self) -> None:
            seen.append(gc.get_threshold())

    monkeypatch.setattr(run, "ensure_topics", lambda *args: None)
    monkeypatch.setattr(run.faust, "Worker", Worker)
    run.run_worker(Settings(worker_gc_young=4321, data_dir=tmp_path), "127.0.0.1:9")
    assert [threshold[0] for threshold in seen] == [4321]
