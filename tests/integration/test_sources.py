"""A key made with `touchstream sources add` lets its system ingest until it is revoked."""

from __future__ import annotations

import time

import httpx2 as httpx
import pytest

from services.kafka import ensure_topics
from services.settings import Settings
from tests.support.cli import cli_env, run_cli
from tests.support.events import example
from tests.support.services import start_api

pytestmark = pytest.mark.broker


def test_key_from_sources_add_ingests_until_revoked(settings: Settings) -> None:
    env = cli_env(settings.data_dir, **settings.to_env())
    added = run_cli("sources", "add", "pos-store-12", env=env)
    assert added.returncode == 0, added.stderr
    key = added.stdout.strip().splitlines()[-1]
    assert key.startswith("tsk_")
    listed = run_cli("sources", "list", env=env)
    assert "pos-store-12" in listed.stdout
    assert key not in listed.stdout

    ensure_topics(settings, settings.broker_url or "")
    api, url = start_api(settings)
    try:
        event = example("store.visit", source="pos-store-12")
        headers = {"Authorization": f"Bearer {key}"}
        assert httpx.post(f"{url}/v1/events", json=event, headers=headers).status_code == 200
        claimed = httpx.post(
            f"{url}/v1/events", json=example("store.visit", source="billing-core"), headers=headers
        )
        assert claimed.json()["results"][0]["errors"][0]["rule"] == "source_mismatch"

        revoked = run_cli("sources", "revoke", "pos-store-12", env=env)
        assert "revoked 1 key(s) of pos-store-12" in revoked.stdout
        deadline = time.monotonic() + 10
        status = 200
        while status != 401 and time.monotonic() < deadline:
            status = httpx.post(f"{url}/v1/events", json=event, headers=headers).status_code
            time.sleep(0.5)
        assert status == 401
        again = run_cli("sources", "revoke", "pos-store-12", env=env)
        assert again.returncode == 2
        assert "no active key for source 'pos-store-12'" in again.stderr
    finally:
        api.stop()
