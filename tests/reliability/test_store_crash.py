"""PostgreSQL stopped as a crash stops it (``pg_ctl stop -m immediate``: no checkpoint,
connections cut mid-transaction, WAL recovery on the next start) at seeded points of a run
while two workers go on, and started again seconds later: the CRM store ends exactly as
after a run nothing interrupted.

tests/integration/test_crm_pipeline.py already stops the store for 30 s with one worker, in
PostgreSQL's ``fast`` mode (sessions told to end, a checkpoint written); this test adds the
crash, two sinks writing at once, and several outages, and reuses that module's helpers."""

from __future__ import annotations

import random
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from services.settings import Settings
from services.simulate import Scenario
from tests.integration.test_crm_pipeline import _fresh_database, wait_stored
from tests.reliability.checks import Reference, store_problems
from tests.support.chaos import (
    Action,
    CrashablePostgres,
    Faults,
    RunSize,
    Workers,
    chunks,
    crm_settings,
    run_paced,
    uncommitted,
)

SIZE = RunSize.from_env()
pytestmark = SIZE.marks()
CRASHES = 2


@pytest.fixture
def crashable() -> Iterator[CrashablePostgres]:
    cluster = CrashablePostgres().start()
    yield cluster
    cluster.stop()


def test_postgres_crashed_mid_run_and_started_again_ends_with_the_same_rows(
    settings: Settings, crashable: CrashablePostgres, scenario: Scenario, reference: Reference
) -> None:
    url = _fresh_database(crashable.url, "crm")
    crm = crm_settings(settings, url, workers=2)
    workers = Workers(crm)
    outages = random.Random(f"{SIZE.seed}:outages")

    def crash() -> dict[str, float]:
        seconds = round(outages.uniform(5.0, 10.0), 1)
        at_crash = uncommitted(crm)["sink"]
        crashable.crash()
        time.sleep(seconds)
        waiting = uncommitted(crm)["sink"]  # the sinks wait for the store, they skip nothing
        crashable.resume()
        return {"sink at the crash": at_crash, "sink before restart": waiting, "down": seconds}

    action: Action = crash
    faults = Faults(
        {
            chunk: (delay, "PostgreSQL crash", action)
            for chunk, delay in Faults.points(SIZE.seed + 2, CRASHES, chunks(scenario))
        }
    )
    workers.start("worker-1")
    workers.start("worker-2")
    try:
        raised = run_paced(crm, scenario, before_chunk=faults.before_chunk)
        faults.join()
        wait_stored(crm, timeout=SIZE.timeout / 2)
        alive = workers.alive()
        logs = workers.tails(2000)
    finally:
        workers.stop()
        faults.close()
    line = f"[store crash] {SIZE.events} events asked (seed {SIZE.seed}); {faults.report()}"
    print(f"\n{line}")
    assert alive == {"worker-1": True, "worker-2": True}, workers.tails()
    assert len(faults.done) == CRASHES, line
    assert all(f.uncommitted["sink before restart"] > 0 for f in faults.done), line
    assert "crm sink: store unavailable, retrying" in logs, line
    assert "crm sink: store back after" in logs, line
    recovered = Path(crashable.log).read_text(errors="replace")
    assert recovered.count("database system was not properly shut down") == CRASHES, line
    problems = store_problems(url, scenario, reference, raised)
    assert problems == {}, f"{line}\n{str(problems)[:6000]}"
