"""Rows of a CRM export: reading CSV and JSON lines, column mapping and validation."""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from services.crm.rows import (
    CustomerRecord,
    Format,
    Rejected,
    SourceRow,
    detect_format,
    parse_mapping,
    read_csv,
    read_jsonl,
    validate,
)
from services.errors import CrmImportError


def csv_rows(text: str, mapping: dict[str, str] | None = None) -> list[SourceRow]:
    return list(read_csv(io.StringIO(text, newline=""), mapping)[1])


def record(values: dict[str, object], mapping: dict[str, str] | None = None) -> CustomerRecord:
    outcome = validate(SourceRow(2, dict(values)), mapping or {})
    assert isinstance(outcome, CustomerRecord), outcome
    return outcome


def reason(values: dict[str, object], mapping: dict[str, str] | None = None) -> str:
    outcome = validate(SourceRow(7, dict(values)), mapping or {})
    assert isinstance(outcome, Rejected), outcome
    assert outcome.line == 7
    return outcome.reason


def test_mapping_flags_parse_and_name_the_valid_fields() -> None:
    assert parse_mapping(["Full Name=name", "E-Mail = Email", "SSN="]) == {
        "Full Name": "name",
        "E-Mail": "email",
        "SSN": "",
    }
    with pytest.raises(CrmImportError) as error:
        parse_mapping(["Full Name=nmae"])
    assert "'nmae' is not a customer field" in str(error.value)
    assert "customer_id, name, email, phone, segment, tier, account_owner" in str(error.value)
    with pytest.raises(CrmImportError, match="give SOURCE=FIELD"):
        parse_mapping(["name"])


def test_format_from_extension_or_flag() -> None:
    assert detect_format(Path("export.CSV")) is Format.csv
    assert detect_format(Path("export.jsonl")) is Format.jsonl
    assert detect_format(Path("export.ndjson")) is Format.jsonl
    assert detect_format(Path("export.txt"), Format.csv) is Format.csv
    with pytest.raises(CrmImportError, match="pass --format csv or --format jsonl"):
        detect_format(Path("export.txt"))


def test_csv_rows_carry_the_line_they_start_on() -> None:
    text = (
        "customer_id,name,notes\n"
        "C1,Ada,plain\n"
        "\n"
        'C2,"Grace\nHopper","two\nlines"\n'
        "C3,Alan,x,extra\n"
        "C4,Barbara\n"
    )
    rows = csv_rows(text)
    assert [(r.line, r.values.get("customer_id")) for r in rows] == [
        (2, "C1"),
        (4, "C2"),
        (7, "C3"),
        (8, "C4"),
    ]
    assert rows[1].values["name"] == "Grace\nHopper"
    assert rows[2].error == "4 values but the header has 3 columns"
    assert rows[3].values == {"customer_id": "C4", "name": "Barbara"}


def test_csv_delimiter_is_taken_from_the_header() -> None:
    rows = csv_rows("customer_id;name;tier\nC1;Müller, Anna;gold\n")
    assert rows[0].values == {"customer_id": "C1", "name": "Müller, Anna", "tier": "gold"}


def test_csv_header_clashes_and_unknown_mapped_columns_are_refused() -> None:
    with pytest.raises(CrmImportError, match="columns 'email' and 'email' both give email"):
        csv_rows("email,email\na@x.com,b@x.com\n")
    with pytest.raises(CrmImportError, match="columns 'Email' and 'E-Mail' both give email"):
        csv_rows("Email,E-Mail\na@x.com,b@x.com\n", {"E-Mail": "email"})
    with pytest.raises(CrmImportError, match="'Full name', not a column of the file"):
        csv_rows("customer_id,Full Name\nC1,Ada\n", {"Full name": "name"})
    with pytest.raises(CrmImportError, match="no header row"):
        csv_rows("\n")


def test_jsonl_bad_lines_become_rows_with_their_reason() -> None:
    text = '{"customer_id": "C1"}\n\n{not json\n["C2"]\n{"customer_id": 3}\n'
    rows = list(read_jsonl(io.StringIO(text)))
    assert [(r.line, r.error is None) for r in rows] == [
        (1, True),
        (3, False),
        (4, False),
        (5, True),
    ]
    assert rows[1].error is not None
    assert rows[1].error.startswith("not JSON: ")
    assert rows[1].raw == "{not json"
    assert rows[2].error == "not a JSON object (one customer per line)"
    assert record(rows[3].values).customer_id == "3"


def test_values_are_normalised() -> None:
    customer = record(
        {
            "Customer ID": " C-1 ",
            "Email": "Ada.Lovelace@Example.COM",
            "phone": "+44 20 (7946) 0018",
            "consent_email": "Yes",
            "consent_sms": "0",
            "consent_tracking": "FALSE",
            "tier": "gold",
            "Region": "UK-South",
            "empty": "  ",
        }
    )
    assert customer.customer_id == "C-1"
    assert customer.email == "ada.lovelace@example.com"
    assert customer.phone == "+442079460018"
    assert (customer.consent_email, customer.consent_sms, customer.consent_tracking) == (
        True,
        False,
        False,
    )
    assert customer.tier == "gold"
    assert customer.custom == {"Region": "UK-South"}
    assert customer.identifiers() == [
        ("customer_id", "C-1"),
        ("email", "ada.lovelace@example.com"),
        ("phone", "+442079460018"),
    ]


def test_json_values_keep_their_types_in_custom_and_booleans_count_as_consent() -> None:
    customer = record({"customer_id": 42, "consent_sms": True, "score": 7, "tags": ["a"]})
    assert customer.customer_id == "42"
    assert customer.consent_sms is True
    assert customer.custom == {"score": 7, "tags": ["a"]}


def test_mapping_renames_and_leaves_out_columns() -> None:
    mapping = {"Full Name": "name", "Mail": "email", "SSN": ""}
    customer = record(
        {"Kunde": "K9", "Full Name": "Ada", "Mail": "a@x.com", "SSN": "123"},
        {**mapping, "Kunde": "customer_id"},
    )
    assert (customer.customer_id, customer.name, customer.email) == ("K9", "Ada", "a@x.com")
    assert customer.custom == {}


def test_rejections_name_field_column_and_rule() -> None:
    assert reason({"E-Mail": "bob@"}, {"E-Mail": "email"}) == (
        "email (column 'E-Mail'): 'bob@' is not an email address"
    )
    assert "is not a phone number in E.164" in reason({"phone": "0151 1234567"})
    assert reason({"consent_sms": "maybe"}) == (
        "consent_sms: 'maybe' is not a yes/no value (use yes/no, true/false or 1/0)"
    )
    assert reason({"name": "x" * 201}) == "name: String should have at most 200 characters"
    assert reason({"customer_id": {"a": 1}}) == "customer_id: Input should be a valid string"
    both = reason({"email": "a@x.com", "Email": "b@x.com"})
    assert both == "'email' and 'Email' both give email"
    several = reason({"email": "nope", "tier": "t" * 40})
    assert several.startswith("email: 'nope' is not an email address; tier: ")


def test_a_row_read_with_an_error_is_rejected_with_it() -> None:
    outcome = validate(SourceRow(5, {}, error="not JSON: oops", raw="{oops"), {})
    assert outcome == Rejected(5, "not JSON: oops", {}, "{oops")
