"""The CRM import against PostgreSQL and SQLite: inserts, updates, idempotent re-imports,
matching by email onto event-built profiles, identity links and rejected rows."""

from __future__ import annotations

import io
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy import Engine
from sqlalchemy.orm import Session

from services.crm.importer import ImportReport, Notice, import_customers
from services.crm.rows import read_csv, read_jsonl
from services.identity.graph import generated_id, identifier_key
from services.store.db import engine_for, upgrade
from services.store.models import Customer, Identity

NOW = datetime(2026, 11, 20, 9, 0, tzinfo=UTC)
LATER = NOW + timedelta(days=1)

EXPORT = """\
customer_id,Full Name,Email,Phone,segment,tier,consent_email,consent_sms,loyalty_id,region
C-1,Ada Lovelace,Ada@Example.com,+44 20 7946 0018,retail,gold,yes,no,L-1,UK
C-2,Grace Hopper,grace@example.com,,business,silver,1,1,,US
C-3,Alan Turing,alan@example.org,+4915112345678,retail,,no,,L-3,DE
"""


@pytest.fixture
def engine(store_url: str) -> Engine:
    upgrade(store_url)
    return engine_for(store_url)


def import_csv(engine: Engine, text: str, now: datetime = NOW, **options: Any) -> ImportReport:
    options.setdefault("mapping", {"Full Name": "name"})
    _, rows = read_csv(io.StringIO(text, newline=""), options["mapping"])
    return import_customers(engine, rows, now=now, **options)


def customers(engine: Engine) -> dict[str, Customer]:
    with Session(engine) as session:
        return {c.customer_id: c for c in session.scalars(sa.select(Customer))}


def identities(engine: Engine) -> dict[tuple[str, str], str]:
    with engine.connect() as conn:
        rows = conn.execute(sa.select(Identity.kind, Identity.value, Identity.customer_id))
        return {(kind, value): customer for kind, value, customer in rows}


def add_profile(engine: Engine, customer_id: str, *links: tuple[str, str], **attrs: Any) -> None:
    """A customer the CRM sink built from events, with its identifiers."""
    with engine.begin() as conn:
        conn.execute(
            sa.insert(Customer).values(
                customer_id=customer_id,
                first_seen_at=NOW - timedelta(days=30),
                updated_at=NOW - timedelta(days=30),
                custom={},
                **attrs,
            )
        )
        for kind, value in links:
            conn.execute(
                sa.insert(Identity).values(
                    kind=kind, value=value, customer_id=customer_id, first_seen_at=NOW
                )
            )


def aware(value: datetime | None) -> datetime | None:
    return value if value is None or value.tzinfo else value.replace(tzinfo=UTC)


def test_import_inserts_customers_with_attributes_and_identities(engine: Engine) -> None:
    report = import_csv(engine, EXPORT)
    assert (report.read, report.inserted, report.updated, report.rejected) == (3, 3, 0, [])
    rows = customers(engine)
    ada = rows["C-1"]
    assert (ada.name, ada.email, ada.phone, ada.segment, ada.tier) == (
        "Ada Lovelace",
        "ada@example.com",
        "+442079460018",
        "retail",
        "gold",
    )
    assert (ada.consent_email, ada.consent_sms, ada.consent_tracking) == (True, False, None)
    assert ada.custom == {"region": "UK"}
    assert aware(ada.crm_imported_at) == NOW
    assert aware(ada.updated_at) == NOW
    assert ada.first_seen_at is None
    assert rows["C-2"].phone is None
    assert identities(engine) == {
        ("customer_id", "C-1"): "C-1",
        ("email", "ada@example.com"): "C-1",
        ("phone", "+442079460018"): "C-1",
        ("loyalty_id", "L-1"): "C-1",
        ("customer_id", "C-2"): "C-2",
        ("email", "grace@example.com"): "C-2",
        ("customer_id", "C-3"): "C-3",
        ("email", "alan@example.org"): "C-3",
        ("phone", "+4915112345678"): "C-3",
        ("loyalty_id", "L-3"): "C-3",
    }


def test_reimport_is_idempotent_but_for_timestamps(engine: Engine) -> None:
    import_csv(engine, EXPORT)
    before = {
        k: {c: getattr(v, c) for c in ("name", "email", "custom")}
        for k, v in customers(engine).items()
    }
    links = identities(engine)
    again = import_csv(engine, EXPORT, now=LATER)
    assert (again.read, again.inserted, again.updated, again.rejected) == (3, 0, 3, [])
    assert again.warnings == []
    after = customers(engine)
    assert {
        k: {c: getattr(v, c) for c in ("name", "email", "custom")} for k, v in after.items()
    } == before
    assert {aware(c.crm_imported_at) for c in after.values()} == {LATER}
    assert identities(engine) == links


def test_update_keeps_values_the_file_leaves_empty_and_merges_custom(engine: Engine) -> None:
    import_csv(engine, EXPORT)
    update = "customer_id,tier,phone,consent_email,source\nC-1,platinum,,no,fair\n"
    report = import_csv(engine, update, now=LATER, mapping={})
    assert (report.inserted, report.updated) == (0, 1)
    ada = customers(engine)["C-1"]
    assert (ada.tier, ada.phone, ada.name, ada.consent_email) == (
        "platinum",
        "+442079460018",
        "Ada Lovelace",
        False,
    )
    assert ada.custom == {"region": "UK", "source": "fair"}


def test_rows_of_one_customer_in_one_batch_apply_in_file_order(engine: Engine) -> None:
    text = "customer_id,tier\nC-9,bronze\nC-8,gold\nC-9,silver\nC-9,gold\n"
    report = import_csv(engine, text, mapping={}, batch_size=3)
    assert (report.read, report.inserted, report.updated) == (4, 2, 2)
    assert customers(engine)["C-9"].tier == "gold"


def test_match_by_email_updates_the_event_built_profile(engine: Engine) -> None:
    profile = generated_id(identifier_key("anonymous_id", "anon-77"))
    add_profile(engine, profile, ("anonymous_id", "anon-77"), ("email", "grace@example.com"))
    text = "Email,Full Name,tier,Phone\nGrace@Example.com,Grace Hopper,gold,+12125550142\n"
    report = import_csv(engine, text, match="email")
    assert (report.inserted, report.updated, report.rejected) == (0, 1, [])
    grace = customers(engine)[profile]
    assert (grace.name, grace.email, grace.tier, grace.phone) == (
        "Grace Hopper",
        "grace@example.com",
        "gold",
        "+12125550142",
    )
    assert aware(grace.first_seen_at) == NOW - timedelta(days=30)
    assert identities(engine)[("phone", "+12125550142")] == profile
    assert len(customers(engine)) == 1


def test_match_by_email_creates_the_id_events_will_resolve_to(engine: Engine) -> None:
    report = import_csv(
        engine, "Email,Full Name\nNew.Person@Example.com,New Person\n", match="email"
    )
    expected = generated_id(identifier_key("email", "new.person@example.com"))
    assert (report.inserted, report.updated) == (1, 0)
    assert customers(engine)[expected].name == "New Person"
    assert identities(engine) == {("email", "new.person@example.com"): expected}
    again = import_csv(
        engine, "Email,tier\nNEW.person@example.com,gold\n", match="email", mapping={}
    )
    assert (again.inserted, again.updated) == (0, 1)
    assert customers(engine)[expected].tier == "gold"


def test_rows_without_the_match_key_are_rejected(engine: Engine) -> None:
    report = import_csv(engine, EXPORT.replace("grace@example.com", ""), match="email")
    assert (report.inserted, len(report.rejected)) == (2, 1)
    assert report.rejected[0].line == 3
    assert report.rejected[0].reason.startswith("no email: with --match email every row needs one")
    assert report.rejected[0].row["customer_id"] == "C-2"


def test_a_crm_id_an_event_profile_holds_lands_on_that_profile(engine: Engine) -> None:
    add_profile(engine, "ts_0123456789abcdef", ("customer_id", "C-1"))
    report = import_csv(engine, EXPORT)
    assert (report.inserted, report.updated) == (2, 1)
    assert "C-1" not in customers(engine)
    assert customers(engine)["ts_0123456789abcdef"].name == "Ada Lovelace"
    assert identities(engine)[("email", "ada@example.com")] == "ts_0123456789abcdef"


def test_identifiers_owned_by_another_customer_are_not_taken(engine: Engine) -> None:
    add_profile(engine, "ts_grace", ("email", "grace@example.com"))
    text = EXPORT + "C-4,Impostor,ada@example.com,,,,,,,\n"
    report = import_csv(engine, text)
    assert (report.inserted, report.rejected) == (4, [])
    assert report.warnings == [
        Notice(3, "email grace@example.com belongs to customer ts_grace; not linked to C-2"),
        Notice(5, "email ada@example.com belongs to customer C-1; not linked to C-4"),
    ]
    links = identities(engine)
    assert links[("email", "grace@example.com")] == "ts_grace"
    assert links[("email", "ada@example.com")] == "C-1"
    assert customers(engine)["C-2"].email == "grace@example.com"


def test_rejected_rows_carry_line_reason_and_row(engine: Engine) -> None:
    text = (
        "customer_id,Full Name,Email,Phone,consent_sms\n"
        "C-1,Ada,ada@example.com,,yes\n"
        "C-2,Bad Mail,grace@,,\n"
        ",No Id,x@example.com,,\n"
        'C-4,"Two\nLines",,0151 123,perhaps\n'
        "C-5,Ok,,,no\n"
    )
    report = import_csv(engine, text, batch_size=2)
    assert (report.read, report.inserted, report.updated) == (5, 2, 0)
    assert [(r.line, r.reason) for r in report.rejected] == [
        (3, "email (column 'Email'): 'grace@' is not an email address"),
        (
            4,
            "no customer_id: with --match customer_id every row needs one "
            "(name its column with --map 'COLUMN=customer_id')",
        ),
        (
            5,
            "phone (column 'Phone'): '0151 123' is not a phone number in E.164 (+, country "
            "code, number: +4915112345678); consent_sms: 'perhaps' is not a yes/no value "
            "(use yes/no, true/false or 1/0)",
        ),
    ]
    assert report.rejected[2].row["Full Name"] == "Two\nLines"
    assert set(customers(engine)) == {"C-1", "C-5"}


def test_jsonl_export_with_a_broken_line(engine: Engine) -> None:
    text = (
        '{"id": "J-1", "name": "Ada", "email": "ADA@example.com", "consent_sms": true,'
        ' "prefs": {"newsletter": "weekly"}}\n'
        "{broken\n"
        '{"id": "J-2", "tier": "gold", "ssn": "123"}\n'
    )
    report = import_customers(
        engine,
        read_jsonl(io.StringIO(text)),
        mapping={"id": "customer_id", "ssn": ""},
        now=NOW,
    )
    assert (report.read, report.inserted, len(report.rejected)) == (3, 2, 1)
    assert report.rejected[0].line == 2
    assert report.rejected[0].raw == "{broken"
    rows = customers(engine)
    assert (rows["J-1"].email, rows["J-1"].consent_sms) == ("ada@example.com", True)
    assert rows["J-1"].custom == {"prefs": {"newsletter": "weekly"}}
    assert rows["J-2"].custom == {}


def test_progress_is_reported_per_batch(engine: Engine) -> None:
    text = "customer_id\n" + "".join(f"C-{n}\n" for n in range(7))
    done: list[int] = []
    report = import_csv(engine, text, mapping={}, batch_size=3, on_progress=done.append)
    assert report.inserted == 7
    assert done == [3, 3, 1]
