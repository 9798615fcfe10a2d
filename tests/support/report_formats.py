"""Read a friction report back from each format into plain rows, the way a reader of the
file would: the JSON's fields, the CSV's columns, the HTML table's cells (visible text)."""

from __future__ import annotations

import csv
import io
import json
import re
from decimal import Decimal
from html.parser import HTMLParser
from typing import Any

NUMBERS = (
    "flags",
    "customers",
    "reached",
    "stage_entries",
    "rate_per_1000",
    "value_at_risk",
    "previous_flags",
    "change",
    "change_pct",
)
EMPTY = {"", "-", "\u2013"}  # what a format writes for "none": blank, hyphen, en dash


def value(field: str, raw: Any) -> Any:
    """One cell as a comparable value: None, a Decimal for numbers, else text."""
    if raw is None or (isinstance(raw, str) and raw.strip() in EMPTY):
        return None
    if field in NUMBERS:
        return Decimal(str(raw).replace(",", "").replace("+", "").strip())
    return str(raw).strip()


def normalised(fields: dict[str, Any]) -> dict[str, Any]:
    """A row or the totals with every value made comparable (see :func:`value`)."""
    return {name: value(name, raw) for name, raw in fields.items()}


def from_json(text: str) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    body = json.loads(text)
    rows = []
    for r in body["rows"]:
        flat = dict(r)
        flat["top_channels"] = "; ".join(f"{c['channel']}:{c['flags']}" for c in r["top_channels"])
        flat["examples"] = "; ".join(e["customer_id"] for e in r["examples"])
        rows.append(normalised(flat))
    return rows, normalised(body["totals"])


def from_csv(text: str) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    records = list(csv.DictReader(io.StringIO(text)))
    total = records.pop()
    assert total["journey"] == "TOTAL", total
    totals = {k: total[k] for k in ("flags", "customers", "value_at_risk", "previous_flags")}
    totals |= {"change": total["change"], "change_pct": total["change_pct"]}
    rows = [{k: v for k, v in r.items() if k not in ("since", "until")} for r in records]
    return [normalised(r) for r in rows], normalised(totals)


class _Cells(HTMLParser):
    """The ``data-field`` cells of the ``friction`` table, row by row, body and foot apart."""

    def __init__(self) -> None:
        super().__init__()
        self.part = ""
        self.rows: dict[str, list[dict[str, str]]] = {"tbody": [], "tfoot": []}
        self.field: str | None = None
        self.text = ""

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in self.rows:
            self.part = tag
        elif tag == "tr" and self.part:
            self.rows[self.part].append({})
        elif tag == "td" and self.part:
            self.field, self.text = dict(attrs).get("data-field"), ""

    def handle_endtag(self, tag: str) -> None:
        if tag == "td" and self.field is not None:
            self.rows[self.part][-1][self.field] = self.text
            self.field = None
        elif tag in self.rows:
            self.part = ""

    def handle_data(self, data: str) -> None:
        if self.field is not None:
            self.text += data


def from_html(text: str) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    parser = _Cells()
    parser.feed(text)
    (foot,) = parser.rows["tfoot"]
    assert foot["journey"] == "Total", foot
    totals = {
        k: foot[k]
        for k in ("flags", "customers", "value_at_risk", "previous_flags", "change", "change_pct")
    }
    return [normalised(r) for r in parser.rows["tbody"]], normalised(totals)


def common(rows: list[dict[str, Any]], fields: set[str]) -> list[dict[str, Any]]:
    return [{k: v for k, v in r.items() if k in fields} for r in rows]


EXTERNAL = re.compile(
    r"https?://|<script|<link|<iframe|<img|\bsrc\s*=|\bhref\s*=|@import|url\(", re.I
)


def external_references(page: str) -> list[str]:
    """Anything in ``page`` that would load a resource (or could point at one)."""
    return EXTERNAL.findall(page)
