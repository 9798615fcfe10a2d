"""Reusable field types of the v1 event contract (DESIGN.md §2)."""

from __future__ import annotations

import re
from datetime import date
from decimal import Decimal
from typing import Annotated

from pydantic import AfterValidator, AwareDatetime, Field, StringConstraints
from pydantic_core import PydanticCustomError

from schemas.currencies import ISO_4217_CODES

EVENT_ID_PATTERN = r"^[A-Za-z0-9._:-]{1,128}$"
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
    Field(
        strict=True, description="RFC 3339 timestamp with a UTC offset; naive times are rejected."
    ),
]
DueDate = Annotated[
    Annotated[AwareDatetime, Field(strict=True)] | Annotated[date, Field(strict=True)],
    Field(description="RFC 3339 date (2026-12-01) or timestamp with a UTC offset."),
]
Money = Annotated[
    Decimal,
    Field(ge=0, allow_inf_nan=False, description="Decimal amount >= 0 in `currency`."),
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
