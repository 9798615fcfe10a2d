"""``touchstream up`` and ``touchstream demo`` as a user runs them: everything starts, events
flow, and nothing is left running afterwards."""

from __future__ import annotations

import hashlib
import json
import re
import signal
import time
import urllib.request
from pathlib import Path

import pytest
import sqlalchemy as sa

from services.embedded.process import free_port
from tests.support.cli import Foreground, cli_env, gone, processes_of, run_cli
from tests.support.events import EXAMPLES

pytestmark = pytest.mark.broker


def _events_file(tmp_path: Path) -> Path:
    path = tmp_path / "events.jsonl"
    lines = [json.dumps(json.loads(p.read_text())) for p in sorted(EXAMPLES.glob("*.json"))]
    lines += (EXAMPLES / "invalid" / "demo.jsonl").read_text().splitlines()
    path.write_text("\n".join(lines) + "\n")
    return path


def _get(url: str) -> tuple[int, dict[str, object]]:
    with urllib.request.urlopen(url, timeout=10) as response:  # noqa: S310 - local test URL
        return response.status, json.loads(response.read())


def test_up_processes_events_and_stops_cleanly_on_sigterm(tmp_path: Path) -> None:
    data = tmp_path / "data"
    env = cli_env(data)
    up = Foreground("up", env=env)
    try:
        up.wait_for("Running.")
        state = json.loads((data / "run" / "stack.json").read_text())
        pids = list(state["processes"].values())
        assert set(state["processes"]) == {"up", "broker", "worker", "api"}
        assert {p.pid for p in up.descendants()} >= set(pids) - {up.proc.pid}
        assert _get(f"{state['api_url']}/health")[0] == 200
        code, ready = _get(f"{state['api_url']}/ready")  # one call: its detail has the uptime
        assert (code, ready["status"]) == (200, "ready"), ready

        sent = run_cli("emit", str(_events_file(tmp_path)), env=env)
        assert sent.returncode == 0, sent.stdout + sent.stderr
        assert "sent 31 events to touchpoints.raw" in sent.stdout
        assert "0 failed" in sent.stdout

        deadline = time.monotonic() + 60
        while True:
            listed = run_cli("dlq", "list", "--format", "json", env=env)
            letters = [json.loads(line) for line in listed.stdout.splitlines() if line]
            if len(letters) >= 7 or time.monotonic() > deadline:
                break
            time.sleep(1)
        assert sorted(letter["event_id"] or "" for letter in letters) == [
            "",
            "bad-currency-0001",
            "bad-empty-identity-0001",
            "bad-missing-attribute-0001",
            "bad-naive-time-0001",
            "bad-negative-amount-0001",
            "bad-unknown-type-0001",
        ]
        table = run_cli("dlq", "list", env=env)
        assert "touchpoints.dlq: 7 dead-lettered" in table.stdout
        assert "by reason: contract_violation 6, invalid_json 1" in table.stdout
    finally:
        up.signal(signal.SIGTERM)
        code = up.finish()
    assert code == 0, up.output
    assert "Stopped." in up.output
    assert gone(pids) == []
    assert not (data / "run" / "stack.json").exists()
    assert processes_of(data) == []


@pytest.mark.parametrize(
    ("signum", "exit_code"),
    [(signal.SIGINT, 0), (signal.SIGKILL, -signal.SIGKILL)],
    ids=["ctrl-c", "kill-9"],
)
def test_no_child_outlives_up(tmp_path: Path, signum: int, exit_code: int) -> None:
    """Ctrl-C stops the stack in order; even SIGKILL of `up` takes its children along."""
    data = tmp_path / "data"
    up = Foreground("up", env=cli_env(data))
    up.wait_for("Running.")
    children = [p.pid for p in up.descendants()]
    assert len(children) >= 3
    up.signal(signum)
    assert up.finish() == exit_code, up.output
    assert gone(children) == []
    assert processes_of(data) == []


def test_demo_accounts_for_every_payload_and_exits(tmp_path: Path) -> None:
    data = tmp_path / "data"
    demo = Foreground("demo", "--exit", "--customers", "0", env=cli_env(data))
    code = demo.finish(timeout=180)
    assert code == 0, demo.output
    assert "All 31 payloads accounted for: 24 processed + 7 dead-lettered = 31 sent." in demo.output
    assert "invalid/demo.jsonl:7 │ invalid_json" in demo.output
    assert "Friction flagged by the journey maps: 9" in demo.output
    for rule in ("payment_failed", "checkout_abandoned", "low_csat", "detractor_nps"):
        assert f"│ {rule}" in demo.output
    assert processes_of(data) == []


def test_demo_simulates_traffic_and_prints_the_report_and_a_login(tmp_path: Path) -> None:
    """Simulated customers through the whole stack to the friction report; its totals are
    the CRM store's, and the printed token is a login of the demo admin."""
    data = tmp_path / "data"
    demo = Foreground("demo", "--exit", "--customers", "150", "--days", "7", env=cli_env(data))
    code = demo.finish(timeout=240)
    assert code == 0, demo.output
    assert "Sending simulated traffic" in demo.output
    assert "Friction report" in demo.output
    found = re.search(r"([\d,]+) flags .* against ([\d,]+) before; ([\d,]+) customers", demo.output)
    period = re.search(r"Friction report (\d{4}-\d\d-\d\d) to (\d{4}-\d\d-\d\d)", demo.output)
    assert found, demo.output
    assert period, demo.output
    since, last = period[1], period[2]
    login = re.search(
        r"Dashboard: (http://\S+)/ui/\?since=(\S+)&until=\S+ +\(sign in with the token (\S+),",
        demo.output,
    )
    assert login, demo.output
    engine = sa.create_engine(f"sqlite:///{data / 'touchstream.db'}")
    with engine.connect() as conn:
        flags, customers = conn.execute(
            sa.text(
                "SELECT count(*), count(DISTINCT customer_id) FROM friction_events "
                "WHERE occurred_at >= :since AND date(occurred_at) <= :last"
            ),
            {"since": since, "last": last},
        ).one()
        (token_hash,) = conn.execute(
            sa.text("SELECT token_hash FROM api_users WHERE name = 'demo' AND role = 'admin'")
        ).one()
    assert flags > 0
    assert (int(found[1].replace(",", "")), int(found[3].replace(",", ""))) == (flags, customers)
    assert login[2] == since  # the dashboard opens on the simulated weeks
    assert hashlib.sha256(login[3].encode()).hexdigest() == token_hash
    assert processes_of(data) == []


def test_busy_broker_port_is_a_clear_error(tmp_path: Path) -> None:
    data = tmp_path / "data"
    first = Foreground("up", env=cli_env(data, TOUCHSTREAM_API_PORT="0"))
    try:
        first.wait_for("Running.")
        port = json.loads((data / "run" / "stack.json").read_text())["broker_url"].split(":")[-1]
        other = tmp_path / "other"
        second = run_cli(
            "up", env=cli_env(other, TOUCHSTREAM_EMBEDDED_BROKER_PORT=port), timeout=60
        )
        assert second.returncode == 2
        assert f"port {port} on 127.0.0.1 is already in use" in second.stderr
        assert processes_of(other) == []
    finally:
        first.signal(signal.SIGTERM)
        assert first.finish() == 0


def test_api_port_in_use_is_a_clear_error(tmp_path: Path) -> None:
    import socket

    data = tmp_path / "data"
    port = free_port()
    with socket.socket() as blocker:
        blocker.bind(("127.0.0.1", port))
        blocker.listen()
        result = run_cli("up", env=cli_env(data, TOUCHSTREAM_API_PORT=str(port)), timeout=90)
    assert result.returncode == 2, result.stdout + result.stderr
    assert f"port {port} on 127.0.0.1 is already in use" in result.stderr
    assert processes_of(data) == []


def test_up_with_a_broker_starts_no_embedded_one(tmp_path: Path, broker: str) -> None:
    data = tmp_path / "data"
    env = cli_env(data, TOUCHSTREAM_TOPIC_PREFIX="ext.", TOUCHSTREAM_APP_ID="ext-up")
    up = Foreground("up", "--broker", broker, env=env)
    try:
        up.wait_for("Running.")
        state = json.loads((data / "run" / "stack.json").read_text())
        assert state["broker_url"] == broker
        assert state["embedded_broker"] is False
        assert set(state["processes"]) == {"up", "worker", "api"}
        assert not any("tansu" in " ".join(p.cmdline()) for p in up.descendants())
        assert "embedded Tansu" not in up.output
    finally:
        up.signal(signal.SIGTERM)
        assert up.finish() == 0, up.output
