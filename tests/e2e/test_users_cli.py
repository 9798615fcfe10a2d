"""``touchstream users`` as an administrator runs it, and the tokens it prints against a real
``touchstream api`` process."""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

import httpx2 as httpx
import sqlalchemy as sa
from pydantic import SecretStr

from services.embedded.process import free_port
from services.settings import Settings
from services.store.db import engine_for
from tests.support.access import VIEWER_TOKEN, bearer
from tests.support.cli import cli_env, run_cli
from tests.support.services import start_api


def _token(stdout: str) -> str:
    *before, token = stdout.strip().splitlines()
    assert "shown only now" in before[-1]
    return token


def test_add_list_and_remove(tmp_path: Path) -> None:
    env = cli_env(tmp_path / "data")
    added = run_cli("users", "add", "maria", "--role", "operator", env=env)
    assert added.returncode == 0, added.stderr
    assert added.stdout.startswith("user maria (operator): token (shown only now")
    token = _token(added.stdout)
    assert token.startswith("tsu_")
    with engine_for(f"sqlite:///{tmp_path / 'data' / 'touchstream.db'}").connect() as conn:
        stored = conn.execute(sa.text("SELECT name, role, token_hash FROM api_users")).all()
    assert [tuple(row) for row in stored] == [
        ("maria", "operator", hashlib.sha256(token.encode()).hexdigest())
    ]
    assert run_cli("users", "add", "sam", "--role", "viewer", env=env).returncode == 0
    listed = run_cli("users", "list", env=env)
    assert listed.returncode == 0, listed.stderr
    rows = [
        [cell.strip() for cell in line.split("│")[1:-1]]
        for line in listed.stdout.splitlines()
        if line.startswith("│")
    ]
    assert [(name, role, last) for name, role, _, last in rows] == [
        ("maria", "operator", "never"),
        ("sam", "viewer", "never"),
    ]
    assert all(re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d", row[2]) for row in rows)
    assert token not in listed.stdout
    assert token[:12] not in listed.stdout
    removed = run_cli("users", "remove", "maria", env=env)
    assert removed.returncode == 0, removed.stderr
    assert "removed user maria" in removed.stdout
    assert "maria" not in run_cli("users", "list", env=env).stdout


def test_mistakes_are_explained(tmp_path: Path) -> None:
    env = cli_env(tmp_path / "data")
    assert run_cli("users", "add", "maria", "--role", "viewer", env=env).returncode == 0
    for args, reason in [
        (
            ("add", "maria", "--role", "admin"),
            "user 'maria' exists; `touchstream users remove maria` first",
        ),
        (
            ("add", "joe", "--role", "boss"),
            "unknown role 'boss'; roles are viewer, operator, admin",
        ),
        (
            ("add", "joe smith", "--role", "viewer"),
            "user name 'joe smith' must be 1-64 characters of letters",
        ),
        (("remove", "joe"), "no user 'joe'; `touchstream users list` shows the users"),
    ]:
        result = run_cli("users", *args, env=env)
        assert result.returncode == 2, (args, result.stdout)
        assert f"error: {reason}" in result.stderr
        assert "Traceback" not in result.stderr
    missing = run_cli("users", "add", "joe", env=env)
    assert missing.returncode == 2
    assert "Missing option '--role'" in missing.stderr


def test_an_unreachable_store_exits_2(tmp_path: Path) -> None:
    url = f"postgresql+psycopg2://nobody@127.0.0.1:{free_port()}/nothing"
    env = cli_env(tmp_path, TOUCHSTREAM_DATABASE_URL=url)
    for args in (("add", "maria", "--role", "viewer"), ("list",), ("remove", "maria")):
        result = run_cli("users", *args, env=env)
        assert result.returncode == 2, args
        assert "cannot migrate the store at postgresql+psycopg2://nobody@127.0.0.1:" in (
            result.stderr
        )
        assert "Traceback" not in result.stderr


def test_printed_and_static_tokens_against_the_api(settings: Settings) -> None:
    env = cli_env(settings.data_dir)
    token = _token(run_cli("users", "add", "maria", "--role", "operator", env=env).stdout)
    configured = settings.model_copy(
        update={"api_tokens": SecretStr(f"vera:viewer:{VIEWER_TOKEN}")}
    )
    process, url = start_api(configured)
    try:
        me = httpx.get(f"{url}/v1/me", headers=bearer(token))
        assert me.status_code == 200, me.text
        assert me.json() == {"name": "maria", "role": "operator"}
        report = httpx.get(f"{url}/v1/reports/friction", headers=bearer(VIEWER_TOKEN))
        assert report.status_code == 200, report.text
        assert report.json()["rows"] == []
        nobody = httpx.get(f"{url}/v1/reports/friction")
        assert nobody.status_code == 401
        assert nobody.headers["www-authenticate"].startswith("Bearer")
        missing = httpx.get(f"{url}/v1/customers/nobody", headers=bearer(token))
        assert missing.status_code == 404
        assert "never" not in run_cli("users", "list", env=env).stdout  # last use recorded
        assert run_cli("users", "remove", "maria", env=env).returncode == 0
        gone = httpx.get(f"{url}/v1/me", headers=bearer(token))
        assert gone.status_code == 401
        assert gone.json()["detail"].startswith("unknown or removed token")
    finally:
        process.stop()
