"""The committed JSON Schema matches the models, and an independent validator agrees with it."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pytest

from schemas import EVENT_TYPES, json_schema
from services.cli.config import schema_text
from tests.support.events import example

ROOT = Path(__file__).resolve().parents[2]
COMMITTED = ROOT / "schemas" / "jsonschema" / "touchpoint-v1.json"
BROKEN = ROOT / "schemas" / "examples" / "invalid" / "demo.jsonl"


def test_committed_schema_is_generated_from_the_models() -> None:
    assert COMMITTED.read_text() == schema_text(), (
        "schemas/jsonschema/touchpoint-v1.json is out of date: run `make schema`"
    )


@pytest.fixture(scope="module")
def validator() -> jsonschema.Draft202012Validator:
    schema = json.loads(COMMITTED.read_text())
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema, format_checker=jsonschema.FormatChecker())


@pytest.mark.parametrize("event_type", EVENT_TYPES)
def test_examples_validate_against_the_json_schema(
    validator: jsonschema.Draft202012Validator, event_type: str
) -> None:
    validator.validate(example(event_type))


def test_schema_covers_every_type() -> None:
    mapping = json_schema()["discriminator"]["mapping"]
    assert sorted(mapping) == sorted(EVENT_TYPES)


def test_json_schema_rejects_the_broken_demo_events(
    validator: jsonschema.Draft202012Validator,
) -> None:
    lines = BROKEN.read_text().splitlines()
    objects = [json.loads(line) for line in lines if line.startswith("{")]
    assert len(objects) == len(lines) - 1
    for event in objects:
        assert not validator.is_valid(event), event["event_id"]


@pytest.mark.parametrize(
    ("change", "path"),
    [
        ({"identity": {}}, "identity"),
        ({"occurred_at": "2026-11-12T10:00:00"}, "occurred_at"),
        ({"occurred_at": "2026-11-12T10:00Z"}, "occurred_at"),
        ({"schema_version": 2}, "schema_version"),
        ({"event_id": "bad id"}, "event_id"),
    ],
)
def test_json_schema_rejects_envelope_violations(
    validator: jsonschema.Draft202012Validator, change: dict[str, object], path: str
) -> None:
    errors = list(validator.iter_errors(example("web.page_view", **change)))
    assert errors
    assert any(path in map(str, e.absolute_path) or path in e.message for e in errors)
