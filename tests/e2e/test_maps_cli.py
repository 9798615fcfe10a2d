"""``touchstream maps``: checking the journey maps and showing one, as a user runs them."""

from __future__ import annotations

import shutil
from pathlib import Path

from services.journeys.loader import default_maps_dir
from tests.support.cli import cli_env, run_cli


def copy_of_shipped_maps(directory: Path) -> Path:
    shutil.copytree(default_maps_dir(), directory, ignore=shutil.ignore_patterns("*.md"))
    return directory


def test_validate_lists_the_shipped_journeys(tmp_path: Path) -> None:
    result = run_cli("maps", "validate", env=cli_env(tmp_path))
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert [line.split(":")[0] for line in lines[:3]] == ["billing", "purchase", "support"]
    assert (
        "purchase: 5 stages (discover, consider, checkout, purchased, post_purchase); 5 rules"
        in (result.stdout)
    )
    assert "3 journey maps in " in lines[3]
    assert lines[3].endswith(": valid")


def test_validate_a_broken_map_names_file_key_and_line(tmp_path: Path) -> None:
    maps = copy_of_shipped_maps(tmp_path / "maps")
    support = maps / "support.yaml"
    support.write_text(support.read_text().replace("within: 7d", "within: 7 days"))
    result = run_cli("maps", "validate", str(maps), env=cli_env(tmp_path))
    assert result.returncode == 2
    assert f"{support}: rules[0] (repeat_contact).within, line " in result.stderr
    assert "'7 days' is not a duration such as 90s, 30m, 48h or 7d" in result.stderr
    assert "Traceback" not in result.stderr
    assert result.stdout == ""


def test_validate_reads_the_configured_directory_or_one_file(tmp_path: Path) -> None:
    maps = copy_of_shipped_maps(tmp_path / "maps")
    purchase = maps / "purchase.yaml"
    purchase.write_text(purchase.read_text().replace("per: session_id", "per: visitor"))
    env = cli_env(tmp_path, TOUCHSTREAM_JOURNEY_MAPS_DIR=str(maps))
    result = run_cli("maps", "validate", env=env)
    assert result.returncode == 2
    assert f"{purchase}: rules[1] (form_error_loop).per, line " in result.stderr
    single = run_cli("maps", "validate", str(maps / "billing.yaml"), env=env)
    assert single.returncode == 0, single.stderr
    assert single.stdout.startswith("billing: 2 stages (invoiced, paid); 2 rules")


def test_show_prints_stages_and_rules_with_thresholds(tmp_path: Path) -> None:
    result = run_cli("maps", "show", "support", env=cli_env(tmp_path))
    assert result.returncode == 0, result.stderr
    for text in (
        "contact",
        "support.ticket_reopened",
        "repeat_contact",
        "3 x support.ticket_opened within 7d",
        "support.csat_submitted with score <= 2",
        "support.ticket_opened without support.ticket_resolved",
        "within 48h",
    ):
        assert text in result.stdout
    missing = run_cli("maps", "show", "returns", env=cli_env(tmp_path))
    assert missing.returncode == 2
    assert "no journey 'returns' in " in missing.stderr
    assert "its journeys are: billing, purchase, support" in missing.stderr
