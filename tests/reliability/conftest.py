"""The scenario every reliability test sends, and the store of an uninterrupted run of it."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
import sqlalchemy as sa

from services.simulate import Scenario
from tests.reliability.checks import Reference
from tests.support.chaos import RunSize
from tests.support.crm_truth import contents, snapshot
from tests.support.stages import reference_store


@pytest.fixture(scope="session")
def size() -> RunSize:
    return RunSize.from_env()


@pytest.fixture(scope="session")
def scenario(size: RunSize) -> Scenario:
    return size.scenario()


@pytest.fixture(scope="session")
def reference(scenario: Scenario, postgres_url: str) -> Iterator[Reference]:
    """The scenario through the stages in this process and the real sink, into a database of
    its own: what the store holds after a run nothing interrupted."""
    name = f"ts_reference_{uuid.uuid4().hex[:8]}"
    admin = sa.create_engine(postgres_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    url = sa.make_url(postgres_url).set(database=name).render_as_string(hide_password=False)
    try:
        reference_store(scenario.events + scenario.closing, url)
        yield Reference(contents(url), snapshot(url), name)
    finally:
        with admin.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()
