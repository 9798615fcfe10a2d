"""Rows of a CRM export: reading CSV or JSON lines, mapping columns to customer fields and
validating each row into a :class:`CustomerRecord` or a reason to reject it. No I/O here:
readers take open text streams."""

from __future__ import annotations

import csv
import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any, TextIO

import orjson
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationError,
)
from pydantic_core import PydanticCustomError

from schemas.fields import E164_PATTERN, Email
from services.errors import CrmImportError

#: Customer attributes the import sets; a value absent from a row keeps the stored one.
ATTRIBUTES: tuple[str, ...] = (
    "name",
    "email",
    "phone",
    "segment",
    "tier",
    "account_owner",
    "consent_email",
    "consent_sms",
    "consent_tracking",
)
#: Customer fields a column can be mapped to; other columns go to ``custom``.
FIELDS: tuple[str, ...] = ("customer_id", *ATTRIBUTES, "loyalty_id", "account_id")
#: Identifier kinds an imported customer is linked by, as the identity stage names them.
LINKED_KINDS: tuple[str, ...] = ("customer_id", "email", "phone", "loyalty_id", "account_id")

_E164 = re.compile(E164_PATTERN)
_PHONE_SEPARATORS = re.compile(r"[\s().-]")
_YES = frozenset({"yes", "y", "true", "t", "1"})
_NO = frozenset({"no", "n", "false", "f", "0"})


class Format(StrEnum):
    csv = "csv"
    jsonl = "jsonl"


_EXTENSIONS = {".csv": Format.csv, ".jsonl": Format.jsonl, ".ndjson": Format.jsonl}


def detect_format(path: Path, given: Format | None = None) -> Format:
    """The format ``given``, or the one the file's extension names."""
    if given is not None:
        return given
    found = _EXTENSIONS.get(path.suffix.lower())
    if found is None:
        raise CrmImportError(
            f"{path}: cannot tell the format from the extension {path.suffix or '(none)'!r}; "
            "pass --format csv or --format jsonl"
        )
    return found


def parse_mapping(specs: Iterable[str]) -> dict[str, str]:
    """``SOURCE=FIELD`` pairs (``--map``) as {source column: field}; an empty FIELD leaves
    the column out of the import."""
    mapping: dict[str, str] = {}
    for spec in specs:
        source, sep, target = spec.rpartition("=")
        source, target = source.strip(), target.strip().lower()
        if not sep or not source:
            raise CrmImportError(f"--map {spec!r}: give SOURCE=FIELD, e.g. --map 'Full Name=name'")
        if target and target not in FIELDS:
            raise CrmImportError(
                f"--map {spec!r}: {target!r} is not a customer field; the fields are "
                f"{', '.join(FIELDS)} (other columns are kept in custom)"
            )
        mapping[source] = target
    return mapping


def field_of(column: str, mapping: Mapping[str, str]) -> str | None:
    """The field a column fills: its mapping, else a field of the same name (``Customer ID``
    is ``customer_id``); None for a custom column."""
    if column in mapping:
        return mapping[column]
    normal = re.sub(r"[\s-]+", "_", column.strip().lower())
    return normal if normal in FIELDS else None


def check_columns(columns: Iterable[str], mapping: Mapping[str, str]) -> None:
    """Refuse a header whose columns clash or that lacks a mapped column."""
    seen: dict[str, str] = {}
    names = list(columns)
    for column in names:
        target = field_of(column, mapping)
        if target == "":
            continue
        key = target or f"custom.{column}"
        if key in seen:
            raise CrmImportError(
                f"columns {seen[key]!r} and {column!r} both give {key}; "
                "rename one with --map 'COLUMN=FIELD' or leave it out with --map 'COLUMN='"
            )
        seen[key] = column
    missing = [source for source in mapping if source not in names]
    if missing:
        raise CrmImportError(
            f"--map names {', '.join(map(repr, missing))}, not a column of the file; "
            f"its columns are {', '.join(map(repr, names))}"
        )


@dataclass(frozen=True, slots=True)
class SourceRow:
    """One row as read, with the line it starts on; ``error`` when it could not be read."""

    line: int
    values: dict[str, Any]
    error: str | None = None
    raw: str | None = None


@dataclass(frozen=True, slots=True)
class Rejected:
    """A row left out of the import, with why; ``row`` as it was in the file."""

    line: int
    reason: str
    row: dict[str, Any]
    raw: str | None = None


def read_csv(
    handle: TextIO, mapping: Mapping[str, str] | None = None
) -> tuple[list[str], Iterator[SourceRow]]:
    """The header and the rows of a CSV export (comma, semicolon, tab or pipe separated),
    its columns checked against ``mapping``. Open ``handle`` with ``newline=""``."""
    first = handle.readline()
    delimiter = max(",;\t|", key=first.count)
    header = next(csv.reader([first], delimiter=delimiter), [])
    if not any(column.strip() for column in header):
        raise CrmImportError("the file has no header row; its first line must name the columns")
    columns = [column.strip() for column in header]
    check_columns(columns, mapping or {})
    return columns, _csv_rows(handle, columns, delimiter)


def _csv_rows(handle: TextIO, columns: list[str], delimiter: str) -> Iterator[SourceRow]:
    reader = csv.reader(handle, delimiter=delimiter)
    end = 1
    for cells in reader:
        line, end = end + 1, reader.line_num + 1
        if not any(cell.strip() for cell in cells):
            continue
        values = dict(zip(columns, cells, strict=False))
        if len(cells) > len(columns):
            yield SourceRow(
                line,
                values,
                error=f"{len(cells)} values but the header has {len(columns)} columns",
            )
            continue
        yield SourceRow(line, values)


def read_jsonl(handle: TextIO) -> Iterator[SourceRow]:
    """The rows of a JSON-lines export: one object per line; a line that is not one is a
    row with an error."""
    for line, text in enumerate(handle, start=1):
        if not text.strip():
            continue
        try:
            value = orjson.loads(text)
        except orjson.JSONDecodeError as error:
            yield SourceRow(line, {}, error=f"not JSON: {error}", raw=text.rstrip("\r\n"))
            continue
        if not isinstance(value, dict):
            yield SourceRow(
                line, {}, error="not a JSON object (one customer per line)", raw=text.rstrip()
            )
            continue
        yield SourceRow(line, value)


def _consent(value: object) -> object:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in _YES:
        return True
    if text in _NO:
        return False
    raise PydanticCustomError(
        "consent",
        "{value} is not a yes/no value (use yes/no, true/false or 1/0)",
        {"value": repr(value)[:64]},
    )


def _phone(value: str) -> str:
    compact = _PHONE_SEPARATORS.sub("", value)
    if not _E164.match(compact):
        raise PydanticCustomError(
            "e164",
            "'{value}' is not a phone number in E.164 (+, country code, number: +4915112345678)",
            {"value": value[:64]},
        )
    return compact


Consent = Annotated[bool, BeforeValidator(_consent)]
Phone = Annotated[str, AfterValidator(_phone)]
CustomerId = Annotated[str, StringConstraints(min_length=1, max_length=128)]
Name = Annotated[str, StringConstraints(min_length=1, max_length=200)]
Segment = Annotated[str, StringConstraints(min_length=1, max_length=64)]
Tier = Annotated[str, StringConstraints(min_length=1, max_length=32)]
Owner = Annotated[str, StringConstraints(min_length=1, max_length=128)]
ExternalId = Annotated[str, StringConstraints(min_length=1, max_length=256)]


class CustomerRecord(BaseModel):
    """A customer row after mapping and validation: what the import writes."""

    model_config = ConfigDict(
        extra="forbid", frozen=True, str_strip_whitespace=True, coerce_numbers_to_str=True
    )

    customer_id: CustomerId | None = None
    name: Name | None = None
    email: Email | None = None
    phone: Phone | None = None
    segment: Segment | None = None
    tier: Tier | None = None
    account_owner: Owner | None = None
    consent_email: Consent | None = None
    consent_sms: Consent | None = None
    consent_tracking: Consent | None = None
    loyalty_id: ExternalId | None = None
    account_id: ExternalId | None = None
    custom: dict[str, Any] = Field(default_factory=dict)

    def identifiers(self) -> list[tuple[str, str]]:
        """(kind, value) of every identifier the row carries, strongest first."""
        return [(kind, value) for kind in LINKED_KINDS if (value := getattr(self, kind))]


def validate(row: SourceRow, mapping: Mapping[str, str]) -> CustomerRecord | Rejected:
    """The row as a customer, or why it is rejected. Empty cells count as absent."""
    if row.error is not None:
        return Rejected(row.line, row.error, row.values, row.raw)
    fields: dict[str, Any] = {}
    custom: dict[str, Any] = {}
    origin: dict[str, str] = {}
    for column, value in row.values.items():
        if value is None or (isinstance(value, str) and not value.strip()):
            continue
        target = field_of(column, mapping)
        if target == "":
            continue
        if target is None:
            custom[column.strip()] = value.strip() if isinstance(value, str) else value
            continue
        if target in origin:
            return Rejected(
                row.line, f"{origin[target]!r} and {column!r} both give {target}", row.values
            )
        origin[target] = column
        fields[target] = value
    try:
        return CustomerRecord.model_validate({**fields, "custom": custom})
    except ValidationError as error:
        reasons = []
        for detail in error.errors(include_url=False):
            name = str(detail["loc"][0]) if detail["loc"] else "row"
            column = origin.get(name, name)
            where = name if column == name else f"{name} (column {column!r})"
            reasons.append(f"{where}: {detail['msg']}")
        return Rejected(row.line, "; ".join(reasons), row.values)
