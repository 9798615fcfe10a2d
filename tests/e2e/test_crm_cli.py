"""``touchstream crm import`` as a user runs it: summary, progress, rejects file, exit codes."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import sqlalchemy as sa

from services.identity.graph import generated_id, identifier_key
from services.store.db import engine_for
from tests.support.cli import cli_env, run_cli

SAMPLE = Path(__file__).parents[2] / "docs" / "crm-customers.csv"

BROKEN = """\
customer_id,Full Name,Email,Phone,consent_sms
C-1,Ada Lovelace,ada@example.com,+44 20 7946 0018,yes
C-2,Grace Hopper,grace@,,no
,Nobody,nobody@example.com,,
C-4,Alan Turing,alan@example.org,0151 123,sometimes
C-5,Barbara Liskov,liskov@example.edu,,no
"""


def store(data_dir: Path) -> sa.Engine:
    return engine_for(f"sqlite:///{data_dir / 'touchstream.db'}")


def test_import_of_the_sample_export_and_again(tmp_path: Path) -> None:
    env = cli_env(tmp_path / "data")
    result = run_cli("crm", "import", str(SAMPLE), "--map", "Full Name=name", env=env)
    assert result.returncode == 0, result.stderr
    assert f"{SAMPLE}: 10 rows read: 10 customers added, 0 updated, 0 rows rejected" in (
        result.stdout
    )
    with store(tmp_path / "data").connect() as conn:
        ada = conn.execute(
            sa.text(
                "SELECT name, email, phone, tier, custom FROM customers"
                " WHERE customer_id = 'C-1001'"
            )
        ).one()
        links = conn.execute(sa.text("SELECT count(*) FROM identities")).scalar_one()
    assert tuple(ada[:4]) == ("Ada Lovelace", "ada.lovelace@example.com", "+442079460018", "gold")
    assert json.loads(ada.custom) == {"region": "UK-South", "signup_date": "2021-03-14"}
    assert links == 10 + 10 + 8 + 7  # customer ids, emails, phones, loyalty ids
    again = run_cli("crm", "import", str(SAMPLE), "--map", "Full Name=name", env=env)
    assert again.returncode == 0, again.stderr
    assert "10 rows read: 0 customers added, 10 updated, 0 rows rejected" in again.stdout


def test_progress_bar_is_drawn_on_a_terminal(tmp_path: Path) -> None:
    env = cli_env(tmp_path / "data", TTY_COMPATIBLE="1", TTY_INTERACTIVE="1")
    result = run_cli("crm", "import", str(SAMPLE), env=env)
    assert result.returncode == 0, result.stderr
    assert "importing customers" in result.stderr
    assert "10/10" in result.stderr
    assert "importing customers" not in result.stdout


def test_rejected_rows_are_shown_written_and_exit_1(tmp_path: Path) -> None:
    export = tmp_path / "customers.csv"
    export.write_text(BROKEN)
    rejects = tmp_path / "rejects.csv"
    result = run_cli(
        "crm",
        "import",
        str(export),
        "--map",
        "Full Name=name",
        "--rejects",
        str(rejects),
        env=cli_env(tmp_path / "data"),
    )
    assert result.returncode == 1, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == f"{export}: 5 rows read: 2 customers added, 0 updated, 3 rows rejected"
    assert lines[1] == "  line 3: email (column 'Email'): 'grace@' is not an email address"
    assert lines[2].startswith("  line 4: no customer_id: with --match customer_id every row")
    assert lines[3].startswith("  line 5: phone (column 'Phone'): '0151 123' is not a phone")
    assert lines[4] == f"rejected rows written to {rejects}"
    with rejects.open(newline="") as handle:
        written = list(csv.DictReader(handle))
    assert [(row["line"], row["customer_id"], row["Full Name"]) for row in written] == [
        ("3", "C-2", "Grace Hopper"),
        ("4", "", "Nobody"),
        ("5", "C-4", "Alan Turing"),
    ]
    assert "consent_sms: 'sometimes' is not a yes/no value" in written[2]["reason"]


def test_jsonl_by_email_into_postgresql_with_jsonl_rejects(
    tmp_path: Path, database_url: str
) -> None:
    export = tmp_path / "export.ndjson"
    export.write_text(
        '{"email": "Ada@Example.com", "name": "Ada", "tier": "gold"}\n{oops\n{"name": "No Email"}\n'
    )
    rejects = tmp_path / "rejects.jsonl"
    env = cli_env(tmp_path / "data", TOUCHSTREAM_DATABASE_URL=database_url)
    result = run_cli(
        "crm", "import", str(export), "--match", "email", "--rejects", str(rejects), env=env
    )
    assert result.returncode == 1, result.stderr
    assert "3 rows read: 1 customers added, 0 updated, 2 rows rejected" in result.stdout
    written = [json.loads(line) for line in rejects.read_text().splitlines()]
    assert [(w["line"], w.get("raw")) for w in written] == [(2, "{oops"), (3, None)]
    assert written[0]["reason"].startswith("not JSON: ")
    assert written[1]["reason"].startswith("no email: with --match email every row needs one")
    assert written[1]["row"] == {"name": "No Email"}
    with engine_for(database_url).connect() as conn:
        rows = conn.execute(sa.text("SELECT customer_id, name, tier FROM customers")).all()
    assert [tuple(r) for r in rows] == [
        (generated_id(identifier_key("email", "ada@example.com")), "Ada", "gold")
    ]
    assert not (tmp_path / "data" / "touchstream.db").exists()


def test_usage_and_file_errors_exit_2(tmp_path: Path) -> None:
    env = cli_env(tmp_path / "data")
    missing = run_cli("crm", "import", str(tmp_path / "nope.csv"), env=env)
    assert missing.returncode == 2
    assert f"{tmp_path / 'nope.csv'}: no such file" in missing.stderr
    bad_map = run_cli("crm", "import", str(SAMPLE), "--map", "Full Name=fullname", env=env)
    assert bad_map.returncode == 2
    assert "'fullname' is not a customer field; the fields are customer_id, name, email" in (
        bad_map.stderr
    )
    absent = run_cli("crm", "import", str(SAMPLE), "--map", "Name=name", env=env)
    assert absent.returncode == 2
    assert "--map names 'Name', not a column of the file; its columns are 'customer_id'" in (
        absent.stderr
    )
    text = tmp_path / "export.txt"
    text.write_bytes(b"customer_id,name\nC-1,Ada\nC-2,M\xfcller\n")
    unknown = run_cli("crm", "import", str(text), env=env)
    assert unknown.returncode == 2
    assert "pass --format csv or --format jsonl" in unknown.stderr
    latin1 = run_cli("crm", "import", str(text), "--format", "csv", env=env)
    assert latin1.returncode == 2
    assert f"{text}: line 3 is not UTF-8 text" in latin1.stderr
    assert "save the export as UTF-8" in latin1.stderr
    for result in (missing, bad_map, absent, unknown, latin1):
        assert "Traceback" not in result.stderr
    assert not (tmp_path / "data" / "touchstream.db").exists()
