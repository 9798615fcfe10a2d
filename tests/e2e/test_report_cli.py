"""``touchstream report friction`` as a CX manager runs it: every format, to the terminal
and to a file, against the embedded SQLite store and PostgreSQL; and its errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from services.embedded.process import free_port
from services.store.db import engine_for, upgrade
from tests.support import report_formats as formats
from tests.support.cli import cli_env, run_cli
from tests.support.friction_store import (
    EXPECTED_ROWS,
    EXPECTED_TOTALS,
    SINCE,
    UNTIL,
    populate_friction,
)

PERIOD = ("--since", SINCE, "--until", UNTIL)
EXPECTED = ([formats.normalised(r) for r in EXPECTED_ROWS], formats.normalised(EXPECTED_TOTALS))


def store_in(data_dir: Path) -> dict[str, str]:
    """The embedded store of ``data_dir`` with the hand-made friction; the CLI's environment."""
    url = f"sqlite:///{data_dir / 'touchstream.db'}"
    upgrade(url)
    populate_friction(engine_for(url))
    return cli_env(data_dir)


def report(env: dict[str, str], *args: str) -> str:
    result = run_cli("report", "friction", *PERIOD, *args, env=env)
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_the_table_in_the_terminal(tmp_path: Path) -> None:
    out = report(store_in(tmp_path))
    assert "Friction report 2026-03-09 to 2026-03-15 (7 days, UTC), all journeys" in out
    assert "compared with 2026-03-02 to 2026-03-08" in out
    assert "6 flags +4 (+200.0%) against 2 before; 3 customers affected; 391.00 at risk" in out
    lines = [line.split("│")[1:-1] for line in out.splitlines() if "│" in line]
    cells = [[c.strip() for c in line] for line in lines]
    assert cells[1][:10] == [
        "purchase / checkout",
        "checkout_abandoned",
        "medium",
        "4",
        "3",
        "3",
        "1000.0",
        "250.50",
        "2",
        "+2 (+100.0%)",
    ]
    assert cells[2][:3] == ["support / -", "detractor_nps", "medium"]


@pytest.mark.parametrize("fmt", ["csv", "json", "html"])
def test_each_format_to_stdout_and_to_a_file(tmp_path: Path, fmt: str) -> None:
    env = store_in(tmp_path / "data")
    printed = report(env, "--format", fmt)
    target = tmp_path / f"friction.{fmt}"
    said = report(env, "--format", fmt, "--output", str(target))
    assert f"friction report ({fmt}, 3 rows, 6 flags) written to" in said
    read = {"csv": formats.from_csv, "json": formats.from_json, "html": formats.from_html}[fmt]
    written = target.read_text(encoding="utf-8")
    assert read(written) == read(printed)  # the same report (made a moment later)
    rows, totals = read(printed)
    assert rows == formats.common(EXPECTED[0], set(rows[0]))
    assert totals == EXPECTED[1]
    if fmt == "html":
        assert formats.external_references(printed) == []
        assert printed.count("<svg") == 2


def test_table_to_a_file_and_one_journey(tmp_path: Path) -> None:
    env = store_in(tmp_path / "data")
    target = tmp_path / "friction.txt"
    report(env, "--journey", "purchase", "--output", str(target))
    text = target.read_text(encoding="utf-8")
    assert "journey purchase" in text
    assert "checkout_abandoned" in text
    assert "detractor_nps" not in text
    assert "\x1b[" not in text  # no colour codes in a file


def test_a_time_of_day_widens_to_whole_days(tmp_path: Path) -> None:
    env = store_in(tmp_path)
    result = run_cli(
        "report",
        "friction",
        "--since",
        "2026-03-09T10:00:00+02:00",
        "--until",
        "2026-03-15T12:00:00Z",
        "--format",
        "json",
        env=env,
    )
    assert result.returncode == 0, result.stderr
    assert "widened to 2026-03-09 to 2026-03-16 (exclusive)" in result.stderr
    _rows, totals = formats.from_json(result.stdout)
    assert totals == EXPECTED[1]


def test_against_postgresql(tmp_path: Path, database_url: str) -> None:
    upgrade(database_url)
    populate_friction(engine_for(database_url))
    env = cli_env(tmp_path, TOUCHSTREAM_DATABASE_URL=database_url)
    rows, totals = formats.from_json(report(env, "--format", "json"))
    assert (rows, totals) == EXPECTED


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--since", "yesterday"), "since 'yesterday' is not a date (2026-03-02) or an ISO"),
        (("--since", "2026-03-16", "--until", "2026-03-16"), "since (2026-03-16) must be before"),
        (
            ("--journey", "returns"),
            "no journey 'returns'; known journeys: billing, purchase, support",
        ),
    ],
)
def test_bad_input_exits_2_with_the_reason(
    tmp_path: Path, args: tuple[str, ...], message: str
) -> None:
    result = run_cli("report", "friction", *args, env=store_in(tmp_path))
    assert result.returncode == 2
    assert message in " ".join(result.stderr.split())
    assert "Traceback" not in result.stderr
    assert result.stdout == ""


def test_an_unknown_format_is_a_usage_error(tmp_path: Path) -> None:
    result = run_cli("report", "friction", "--format", "pdf", env=cli_env(tmp_path))
    assert result.returncode == 2
    assert "'pdf' is not one of" in result.stderr


def test_an_unreachable_store_exits_2(tmp_path: Path) -> None:
    url = f"postgresql+psycopg2://nobody@127.0.0.1:{free_port()}/nothing"
    result = run_cli("report", "friction", env=cli_env(tmp_path, TOUCHSTREAM_DATABASE_URL=url))
    assert result.returncode == 2
    assert "cannot migrate the store at postgresql+psycopg2://nobody@127.0.0.1:" in result.stderr
    assert "Traceback" not in result.stderr


def test_an_unwritable_output_exits_2(tmp_path: Path) -> None:
    env = store_in(tmp_path / "data")
    target = tmp_path / "missing-dir" / "friction.html"
    result = run_cli("report", "friction", "--format", "html", "--output", str(target), env=env)
    assert result.returncode == 2
    assert f"{target}: cannot write the report: No such file or directory" in result.stderr
