"""The checks of the crash tests can fail: a copy of the uninterrupted store with one event
lost, one counted twice, one flag stored twice, a merge left half done, passes none of them.
And what a worker commits on the pipeline's topics is only what it processed."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pytest
import sqlalchemy as sa

from services.simulate import Scenario
from services.worker.fetch_guard import next_commit
from tests.reliability.checks import Reference, store_problems

pytestmark = [pytest.mark.postgres, pytest.mark.reliability]

# each damages a copy of the uninterrupted store the way a lost or doubled record would
DAMAGE = {
    "an event lost": [
        "DELETE FROM interactions WHERE event_id = "
        "(SELECT min(event_id) FROM interactions WHERE type = 'web.page_view')",
        "UPDATE relationship_metrics SET interactions = interactions - 1 WHERE customer_id = "
        "(SELECT customer_id FROM interactions ORDER BY event_id LIMIT 1)",
    ],
    "an event counted twice": [
        "UPDATE relationship_metrics SET interactions = interactions + 1 WHERE customer_id = "
        "(SELECT min(customer_id) FROM relationship_metrics)",
    ],
    "a purchase counted twice": [
        "UPDATE relationship_metrics SET orders = orders + 1, "
        "lifetime_spend = lifetime_spend + 10 WHERE customer_id = "
        "(SELECT min(customer_id) FROM orders)",
    ],
    "a flag lost": [
        "DELETE FROM friction_events WHERE flag_id = (SELECT min(flag_id) FROM friction_events)",
    ],
    "a flag stored twice": [
        "INSERT INTO friction_events (flag_id, customer_id, raised_as, rule_id, severity, "
        "journey, stage, channel, occurred_at, evidence, value_at_risk, status) "
        "SELECT 'twice-' || flag_id, customer_id, raised_as, rule_id, severity, journey, stage, "
        "channel, occurred_at, evidence, value_at_risk, status FROM friction_events "
        "WHERE flag_id = (SELECT min(flag_id) FROM friction_events)",
    ],
    "a flag counted twice in the daily report": [
        "UPDATE friction_daily SET flags = flags + 1 WHERE (day, journey, stage, rule_id, channel) "
        "= (SELECT day, journey, stage, rule_id, channel FROM friction_daily LIMIT 1)",
    ],
    "a merge left half done": [
        "UPDATE interactions SET customer_id = (SELECT min(loser) FROM merges) WHERE event_id = "
        "(SELECT min(event_id) FROM interactions WHERE customer_id = "
        "(SELECT winner FROM merges ORDER BY loser LIMIT 1))",
    ],
    "a journey stage lost": [
        "DELETE FROM journey_states WHERE (customer_id, journey) = "
        "(SELECT customer_id, journey FROM journey_states ORDER BY customer_id LIMIT 1)",
    ],
}


@pytest.fixture
def damaged(postgres_url: str, reference: Reference) -> Iterator[str]:
    """An empty database name on the session cluster, dropped afterwards."""
    name = f"ts_damaged_{uuid.uuid4().hex[:8]}"
    yield name
    admin = sa.create_engine(postgres_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


def stored_as_raised(url: str) -> list[dict[str, Any]]:
    """The store's flags as the flags topic would give them (what a run raised)."""
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            rows = conn.execute(
                sa.select(
                    sa.column("flag_id"),
                    sa.column("rule_id"),
                    sa.column("customer_id"),
                    sa.column("evidence", sa.JSON),
                ).select_from(sa.table("friction_events"))
            ).all()
    finally:
        engine.dispose()
    return [{"flag_id": f, "rule_id": r, "customer_id": c, "evidence": e} for f, r, c, e in rows]


def test_the_uninterrupted_store_passes(
    reference: Reference, scenario: Scenario, postgres_url: str
) -> None:
    url = sa.make_url(postgres_url).set(database=reference.database)
    url_text = url.render_as_string(hide_password=False)
    assert store_problems(url_text, scenario, reference, stored_as_raised(url_text)) == {}


@pytest.mark.parametrize("damage", sorted(DAMAGE))
def test_damage_to_the_store_is_found(
    damage: str, damaged: str, reference: Reference, scenario: Scenario, postgres_url: str
) -> None:
    admin = sa.create_engine(postgres_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{damaged}" TEMPLATE "{reference.database}"'))
    admin.dispose()
    url = sa.make_url(postgres_url).set(database=damaged).render_as_string(hide_password=False)
    raised = stored_as_raised(url)  # the topic as it was: the damage is the store's alone
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        for sql in DAMAGE[damage]:
            assert conn.execute(sa.text(sql)).rowcount == 1, sql
    engine.dispose()
    found = store_problems(url, scenario, reference, raised)
    print(f"\n[{damage}] found by: {', '.join(sorted(found))}")
    assert found != {}


def test_only_processed_offsets_are_committed() -> None:
    """Faust counted offsets between two reads as processed; the worker commits only a run
    of processed offsets from the committed one (services/worker/fetch_guard.py)."""
    never = frozenset[int]()
    assert next_commit([5, 6, 7], 5, never.__contains__) == 8
    assert next_commit([6, 7], 5, never.__contains__) is None  # 5 is still being processed
    assert next_commit([5, 6, 8, 9], 5, never.__contains__) == 7
    assert next_commit([5, 5, 6], 5, never.__contains__) == 7  # read twice, processed twice
    assert next_commit([5, 8], 5, frozenset({6, 7}).__contains__) == 9  # given up as lost
    assert next_commit([12, 13], None, never.__contains__) == 14  # nothing committed yet
    assert next_commit([], 5, never.__contains__) is None
