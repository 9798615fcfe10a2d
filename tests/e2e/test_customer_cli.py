"""``touchstream customer show`` and ``friction ack|resolve|reopen`` as a CX manager runs them,
against an embedded SQLite store and a PostgreSQL one."""

from __future__ import annotations

import json
from pathlib import Path

from services.store.db import engine_for, upgrade
from tests.support.cli import cli_env, run_cli
from tests.support.crm_store import populate


def store_in(data_dir: Path) -> dict[str, str]:
    """The embedded store of ``data_dir`` with Ana and Bo in it; the CLI's environment."""
    url = f"sqlite:///{data_dir / 'touchstream.db'}"
    upgrade(url)
    populate(engine_for(url))
    return cli_env(data_dir)


def test_show_by_email_renders_every_section(tmp_path: Path) -> None:
    env = store_in(tmp_path)
    result = run_cli("customer", "show", "--email", "ANA@example.com", env=env)
    assert result.returncode == 0, result.stderr
    for text in (
        "Customer c-1",
        "Ana Silva",
        "merged ids      c-older, c-old",
        "health score",
        "/ 100",
        "250.00 EUR",
        "ana@example.com",
        "+4915112345678",
        "purchase │ checkout",
        "Open friction (2)",
        "payment_failed",
        "Last 20 interactions",
        "web.thing_24",
    ):
        assert text in result.stdout, text
    assert "web.thing_04" not in result.stdout  # the 21st newest


def test_show_as_json_by_each_identifier(tmp_path: Path) -> None:
    env = store_in(tmp_path)
    for option, value in (
        ("--id", "c-old"),
        ("--phone", "+4915112345678"),
        ("--loyalty-id", "L-77"),
        ("--account-id", "A-9"),
        ("--anonymous-id", "anon-1"),
    ):
        result = run_cli(
            "customer", "show", option, value, "--format", "json", "--interactions", "2", env=env
        )
        assert result.returncode == 0, result.stderr
        view = json.loads(result.stdout)
        assert view["customer_id"] == "c-1", option
        assert [i["event_id"] for i in view["interactions"]] == ["e-24", "e-23"]
        assert 0 <= view["metrics"]["health_score"] <= 100


def test_show_of_an_unknown_customer_exits_1(tmp_path: Path) -> None:
    env = store_in(tmp_path)
    result = run_cli("customer", "show", "--email", "who@example.com", env=env)
    assert result.returncode == 1
    assert "no customer with email 'who@example.com' in the store" in result.stderr
    assert result.stdout == ""
    both = run_cli("customer", "show", "--id", "c-1", "--email", "x@example.com", env=env)
    assert both.returncode == 2
    assert "give exactly one of --id, --email" in both.stderr


def test_ack_resolve_and_reopen_a_flag(tmp_path: Path) -> None:
    env = {**store_in(tmp_path), "USER": "maria"}
    acked = run_cli("friction", "ack", "f-pay", "--note", "calling her", env=env)
    assert acked.returncode == 0, acked.stderr
    assert "flag f-pay (payment_failed, high, customer c-1) is now acknowledged" in acked.stdout
    assert "calling her" in acked.stdout
    resolved = run_cli(
        "friction", "resolve", "f-pay", "--note", "card updated", "--actor", "joe", env=env
    )
    assert resolved.returncode == 0, resolved.stderr
    assert "is now resolved" in resolved.stdout
    lines = [line for line in resolved.stdout.splitlines() if "│" in line]
    assert [line.split("│")[2:4] for line in lines] == [
        [" acknowledged ", " maria "],
        [" resolved     ", " joe   "],
    ]
    again = run_cli("friction", "resolve", "f-pay", "--note", "again", env=env)
    assert again.returncode == 2
    assert "cannot resolve flag 'f-pay': it is resolved" in again.stderr
    view = run_cli("customer", "show", "--id", "c-1", "--format", "json", env=env)
    assert [f["flag_id"] for f in json.loads(view.stdout)["open_friction"]] == ["f-cart"]
    reopened = run_cli("friction", "reopen", "f-pay", "--note", "failed again", env=env)
    assert reopened.returncode == 0, reopened.stderr
    assert "is now open" in reopened.stdout


def test_ack_of_an_unknown_flag_exits_1(tmp_path: Path) -> None:
    result = run_cli("friction", "ack", "nope", "--note", "x", env=store_in(tmp_path))
    assert result.returncode == 1
    assert "no friction event with flag id 'nope'" in result.stderr
    assert "Traceback" not in result.stderr


def test_show_against_postgresql(tmp_path: Path, database_url: str) -> None:
    upgrade(database_url)
    populate(engine_for(database_url))
    env = cli_env(tmp_path, TOUCHSTREAM_DATABASE_URL=database_url)
    result = run_cli("customer", "show", "--email", "bo@example.com", "--format", "json", env=env)
    assert result.returncode == 0, result.stderr
    view = json.loads(result.stdout)
    assert view["customer_id"] == "c-2"
    assert [f["flag_id"] for f in view["open_friction"]] == ["f-bo"]
