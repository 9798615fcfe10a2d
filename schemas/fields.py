"""Reusable field types of the v1 event contract (DESIGN.md §2)."""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Annotated

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BeforeValidator,
    Field,
    StringConstraints,
    WithJsonSchema,
)
from pydantic_core import PydanticCustomError

from schemas.currencies import ISO_4217_CODES

EVENT_ID_PATTERN = r"^[A-Za-z0-9._:-]{1,128}$"
_DAY = r"[0-9]{4}-[0-9]{2}-[0-9]{2}"
_TIME = r"[0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]{1,9})?"
_OFFSET = r"([Zz]|[+-][0-9]{2}:[0-9]{2})"
RFC3339_PATTERN = f"^{_DAY}[Tt ]{_TIME}{_OFFSET}$"
DATE_PATTERN = f"^{_DAY}$"
_RFC3339 = re.compile(RFC3339_PATTERN)
_DATE = re.compile(DATE_PATTERN)
E164_PATTERN = r"^\+[1-9][0-9]{6,14}$"
_EMAIL_RE = re.compile(r"^[^@\s]{1,64}@[^@\s]+\.[^@\s]+$")


def _iso_4217(code: str) -> str:
    if code not in ISO_4217_CODES:
        raise PydanticCustomError(
            "currency_code",
            "'{code}' is not an ISO 4217 currency code (expected e.g. EUR, USD, GBP)",
            {"code": code},
        )
    return code


def _text_matching(
    *patterns: re.Pattern[str], passes: type, message: str
) -> Callable[[object], object]:
    """A gate in front of pydantic's date parsing: only text matching one of ``patterns``
    gets through (pydantic would also take epoch numbers and non-RFC forms); objects of
    type ``passes``, built in code, go through as they are."""

    def gate(value: object) -> object:
        if isinstance(value, passes):
            return value
        if isinstance(value, str) and any(p.match(value) for p in patterns):
            return value
        raise PydanticCustomError("rfc3339", message, {"value": repr(value)[:64]})

    return gate


_rfc3339 = _text_matching(
    _RFC3339,
    passes=datetime,
    message="{value} is not an RFC 3339 timestamp with a UTC offset, "
    "e.g. 2026-11-12T10:00:00Z or 2026-11-12T11:00:00+01:00",
)
_rfc3339_or_date = _text_matching(
    _RFC3339,
    _DATE,
    passes=date,
    message="{value} is neither an RFC 3339 date (2026-12-15) nor a timestamp with a UTC "
    "offset (2026-12-15T00:00:00Z)",
)


EARLIEST = datetime(1900, 1, 1, tzinfo=UTC)
LATEST = datetime(9000, 1, 1, tzinfo=UTC)  # excluded
MAX_OFFSET = timedelta(hours=14)  # the widest UTC offset of any time zone (UTC+14)


def _plausible(value: date) -> date:
    """Times near the ends of Python's range (years 1 and 9999) overflow the journey stage's
    windows and deadlines, and PostgreSQL refuses offsets past about 16 hours; no touchpoint
    happens there."""
    if isinstance(value, datetime):
        offset = value.utcoffset() or timedelta(0)
        inside = EARLIEST <= value < LATEST and abs(offset) <= MAX_OFFSET
    else:
        inside = EARLIEST.date() <= value < LATEST.date()
    if not inside:
        raise PydanticCustomError(
            "time_range",
            "{value} is outside the times events may name: from 1900-01-01 to before "
            "9000-01-01, with a UTC offset from -14:00 to +14:00",
            {"value": repr(value.isoformat())},
        )
    return value


def _no_nul(value: str) -> str:
    if "\x00" in value:
        raise PydanticCustomError(
            "nul_character",
            "{value} contains a NUL character (\\u0000), which no identifier may hold",
            {"value": repr(value)[:64]},
        )
    return value


def _email(value: str) -> str:
    if not _EMAIL_RE.match(value):
        raise PydanticCustomError(
            "email_format", "'{value}' is not an email address", {"value": value}
        )
    return value.lower()


EventId = Annotated[
    str,
    Field(
        pattern=EVENT_ID_PATTERN,
        description="Idempotency key: 1-128 characters of [A-Za-z0-9._:-].",
    ),
]
Source = Annotated[
    str,
    StringConstraints(min_length=1, max_length=64, pattern=r"^[^\x00-\x1f\x7f]+$"),
    Field(description="The emitting system, e.g. pos-store-12 (1-64 printable characters)."),
]
EventTime = Annotated[
    AwareDatetime,
    BeforeValidator(_rfc3339),
    AfterValidator(_plausible),
    WithJsonSchema(
        {
            "type": "string",
            "format": "date-time",
            "pattern": RFC3339_PATTERN,
            "description": "RFC 3339 timestamp with a UTC offset; naive times are rejected. "
            "From 1900-01-01 to before 9000-01-01, offsets from -14:00 to +14:00.",
        }
    ),
]
DueDate = Annotated[
    AwareDatetime | date,
    BeforeValidator(_rfc3339_or_date),
    AfterValidator(_plausible),
    WithJsonSchema(
        {
            "type": "string",
            "anyOf": [{"pattern": RFC3339_PATTERN}, {"pattern": DATE_PATTERN}],
            "description": "RFC 3339 date (2026-12-15) or timestamp with a UTC offset. "
            "From 1900-01-01 to before 9000-01-01, offsets from -14:00 to +14:00.",
        }
    ),
]
MAX_MONEY = Decimal("999999999999.99")  # what one amount column of the CRM store holds
Money = Annotated[
    Decimal,
    Field(
        ge=0,
        le=MAX_MONEY,
        allow_inf_nan=False,
        description="Decimal amount >= 0 in `currency`, at most 999999999999.99.",
    ),
]
Currency = Annotated[
    str,
    Field(pattern=r"^[A-Z]{3}$", description="ISO 4217 alphabetic currency code, e.g. EUR."),
    AfterValidator(_iso_4217),
]
Text = Annotated[str, StringConstraints(min_length=1, max_length=1024)]
Identifier = Annotated[str, StringConstraints(min_length=1, max_length=256)]
Email = Annotated[
    str,
    StringConstraints(min_length=3, max_length=254),
    AfterValidator(_email),
    Field(description="Email address; compared case-insensitively (stored lower-case)."),
]
#: An identifier of ``identity`` names a profile, a partition key and rows of the CRM store,
#: whose text cannot hold NUL: refused here (attributes may carry NUL; the sink replaces it).
IdentityValue = Annotated[Identifier, AfterValidator(_no_nul)]
IdentityEmail = Annotated[Email, AfterValidator(_no_nul)]
Phone = Annotated[
    str, Field(pattern=E164_PATTERN, description="Phone number in E.164, e.g. +4915112345678.")
]
Count = Annotated[int, Field(strict=True, ge=0)]
Quantity = Annotated[int, Field(strict=True, ge=1)]
Seconds = Annotated[
    float, Field(ge=0, allow_inf_nan=False, description="Duration in seconds >= 0.")
]
Csat = Annotated[int, Field(strict=True, ge=1, le=5, description="Customer satisfaction, 1-5.")]
Nps = Annotated[int, Field(strict=True, ge=0, le=10, description="Net promoter score, 0-10.")]
