"""Example events as the tests use them: the shipped files, loaded and copied."""

from __future__ import annotations

import copy
import json
from functools import cache
from pathlib import Path
from typing import Any

EXAMPLES = Path(__file__).resolve().parents[2] / "schemas" / "examples"


@cache
def _examples() -> dict[str, dict[str, Any]]:
    return {p.stem: json.loads(p.read_text()) for p in sorted(EXAMPLES.glob("*.json"))}


def example(event_type: str, **changes: Any) -> dict[str, Any]:
    """A deep copy of the shipped example of ``event_type`` with top-level ``changes``."""
    event = copy.deepcopy(_examples()[event_type])
    event.update(changes)
    return event


def example_types() -> list[str]:
    return list(_examples())


def dumps(event: dict[str, Any]) -> bytes:
    return json.dumps(event).encode()
