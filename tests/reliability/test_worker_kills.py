"""Workers killed with SIGKILL at seeded random points of a run, mid-batch, and started
again: the CRM store ends exactly as after a run nothing interrupted (every row of every
table, metrics, flags), no event lost and none counted twice. With one worker (killed and
restarted several times) and with two (one killed: the survivor takes its partitions; it
comes back later; then the other is killed)."""

from __future__ import annotations

from typing import Any

from services.settings import Settings
from services.simulate import Scenario
from tests.integration.test_crm_pipeline import wait_stored
from tests.reliability.checks import Reference, store_problems
from tests.support.chaos import (
    Action,
    Faults,
    RunSize,
    Workers,
    chunks,
    crm_settings,
    records_on,
    run_paced,
    uncommitted,
)

SIZE = RunSize.from_env()
pytestmark = SIZE.marks()
SIGKILLED = -9  # Popen's return code for a child killed by signal 9


def finish(
    crm: Settings, scenario: Scenario, workers: Workers, faults: Faults
) -> tuple[list[dict[str, Any]], int, dict[str, bool]]:
    """Run the scenario with ``faults`` and stop the workers; return the flags raised, how
    many raw records were validated more than once (read again after a kill), and which
    workers were alive at the end."""
    try:
        raised = run_paced(crm, scenario, before_chunk=faults.before_chunk)
        faults.join()
        wait_stored(crm, timeout=SIZE.timeout / 2)
        alive = workers.alive()
    finally:
        workers.stop()
        faults.close()
    sent = len(scenario.events) + len(scenario.closing)
    return raised, records_on(crm, crm.topics.valid) - sent, alive


def report(name: str, workers: Workers, faults: Faults, again: int) -> str:
    line = (
        f"[{name}] {SIZE.events} events asked (seed {SIZE.seed}); {faults.report()}; "
        f"{again} raw records validated again; exits {workers.exits}"
    )
    print(f"\n{line}")
    return line


def test_a_worker_killed_at_random_points_and_restarted_loses_and_doubles_nothing(
    settings: Settings, database_url: str, scenario: Scenario, reference: Reference
) -> None:
    crm = crm_settings(settings, database_url)
    workers = Workers(crm)

    def kill_and_restart() -> dict[str, int]:
        workers.kill("worker")
        left = uncommitted(crm)  # nobody commits now: what the restarted worker reads again
        workers.start("worker")
        return left

    action: Action = kill_and_restart
    plan = {
        chunk: (delay, "SIGKILL + restart", action)
        for chunk, delay in Faults.points(SIZE.seed, SIZE.kills, chunks(scenario))
    }
    faults = Faults(plan)
    workers.start("worker")
    raised, again, alive = finish(crm, scenario, workers, faults)
    line = report("one worker", workers, faults, again)
    assert alive == {"worker": True}, workers.tails()
    assert len(faults.done) == SIZE.kills, line
    assert [code for _, code in workers.exits[:-1]] == [SIGKILLED] * SIZE.kills, line
    problems = store_problems(database_url, scenario, reference, raised)
    # the kills hit work in flight: records were read again after a restart
    assert sum(f.uncommitted["workers"] for f in faults.done) > 0, f"{line}\n{problems}"
    assert problems == {}, f"{line}\n{str(problems)[:6000]}"


def test_one_of_two_workers_killed_hands_its_partitions_to_the_survivor(
    settings: Settings, database_url: str, scenario: Scenario, reference: Reference
) -> None:
    crm = crm_settings(settings, database_url, workers=2)
    workers = Workers(crm)

    def kill(name: str) -> Action:
        def action() -> dict[str, int]:
            workers.kill(name)
            return uncommitted(crm)

        return action

    def restart(name: str) -> Action:
        def action() -> dict[str, int]:
            left = uncommitted(crm)
            workers.start(name)
            return left

        return action

    # worker-2 dies; worker-1 alone takes every partition until worker-2 comes back; then
    # worker-1 dies and worker-2 finishes alone: the identity coordinator's one partition
    # moves to a survivor at least once, whichever worker held it
    first, back, second = Faults.points(SIZE.seed + 1, 3, chunks(scenario))
    faults = Faults(
        {
            first[0]: (first[1], "SIGKILL worker-2", kill("worker-2")),
            back[0]: (back[1], "restart worker-2", restart("worker-2")),
            second[0]: (second[1], "SIGKILL worker-1", kill("worker-1")),
        }
    )
    workers.start("worker-1")
    workers.start("worker-2")
    raised, again, alive = finish(crm, scenario, workers, faults)
    line = report("two workers", workers, faults, again)
    assert alive == {"worker-1": False, "worker-2": True}, workers.tails()
    assert [f.what for f in faults.done] == [
        "SIGKILL worker-2",
        "restart worker-2",
        "SIGKILL worker-1",
    ], line
    assert [code for _, code in workers.exits[:2]] == [SIGKILLED, SIGKILLED], line
    problems = store_problems(database_url, scenario, reference, raised)
    # the kills hit work in flight: the survivor read again what the killed one left
    kills = [f for f in faults.done if f.what.startswith("SIGKILL")]
    assert sum(f.uncommitted["workers"] for f in kills) > 0, f"{line}\n{problems}"
    assert problems == {}, f"{line}\n{str(problems)[:6000]}"
