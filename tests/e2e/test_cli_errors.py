"""Commands that cannot do their job say what is wrong and what to do, with a non-zero exit."""

from __future__ import annotations

from pathlib import Path

from services.embedded.process import free_port
from tests.support.cli import cli_env, run_cli


def test_emit_without_any_broker_explains_how_to_get_one(tmp_path: Path) -> None:
    events = tmp_path / "e.jsonl"
    events.write_text("{}\n")
    result = run_cli("emit", str(events), env=cli_env(tmp_path / "data"))
    assert result.returncode == 2
    assert "no Kafka broker to talk to" in result.stderr
    assert "touchstream up" in result.stderr


def test_emit_of_a_missing_file(tmp_path: Path) -> None:
    result = run_cli("emit", "nope.jsonl", "--broker", "127.0.0.1:1", env=cli_env(tmp_path))
    assert result.returncode == 2
    assert "nope.jsonl: no such file" in result.stderr


def test_emit_to_an_unreachable_broker_fails(tmp_path: Path) -> None:
    events = tmp_path / "e.jsonl"
    events.write_text('{"a": 1}\n')
    env = cli_env(tmp_path / "data", TOUCHSTREAM_STARTUP_TIMEOUT="3")
    result = run_cli("emit", str(events), "--broker", f"127.0.0.1:{free_port()}", env=env)
    assert result.returncode == 2
    assert "no Kafka broker answered at 127.0.0.1:" in result.stderr
    assert "within 3s" in result.stderr
    assert "Traceback" not in result.stderr


def test_worker_against_an_unreachable_broker_fails_fast(tmp_path: Path) -> None:
    env = cli_env(tmp_path / "data", TOUCHSTREAM_STARTUP_TIMEOUT="3")
    result = run_cli("worker", "--broker", f"127.0.0.1:{free_port()}", env=env, timeout=60)
    assert result.returncode == 2
    assert "no Kafka broker answered" in result.stderr


def test_bad_setting_names_the_variable(tmp_path: Path) -> None:
    result = run_cli("config", "show", env=cli_env(tmp_path, TOUCHSTREAM_PARTITIONS="many"))
    assert result.returncode == 2
    assert "TOUCHSTREAM_PARTITIONS='many': Input should be a valid integer" in result.stderr
    assert "Traceback" not in result.stderr
