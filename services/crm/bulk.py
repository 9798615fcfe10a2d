"""Bulk upserts for the sink. On PostgreSQL a large batch is copied into a temporary
staging table (``COPY``) and upserted with one ``INSERT ... SELECT ... ON CONFLICT``:
about three times the rows per second of a multi-row ``VALUES`` insert, most of the
difference being parameter rendering on the client. SQLite and small batches take the
plain executemany path; both run the same ``ON CONFLICT`` clause."""

from __future__ import annotations

import io
from collections.abc import Callable, Sequence
from typing import Any

import orjson
from sqlalchemy import (
    JSON,
    Boolean,
    Connection,
    Date,
    DateTime,
    Integer,
    Numeric,
    Table,
    column,
    select,
    table,
    text,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.types import TypeEngine

STAGE_FROM = 200  # rows; fewer go through executemany

Build = Callable[[Any], Any]  # dialect insert -> the statement with its ON CONFLICT clause


def upsert(conn: Connection, model: Any, rows: Sequence[dict[str, Any]], build: Build) -> Any:
    """Insert ``rows`` (all with the same keys) into ``model``'s table with ``build``'s
    conflict clause; the result carries its ``RETURNING`` rows, if any."""
    target: Table = model.__table__
    if conn.dialect.name != "postgresql" or len(rows) < STAGE_FROM:
        return conn.execute(build(dialect_insert(conn.dialect.name, target)), list(rows))
    names = _columns(target, rows[0])
    staging = f"stage_{target.name}"
    conn.execute(
        text(
            f"CREATE TEMP TABLE IF NOT EXISTS {staging} "
            f"(LIKE {target.name} INCLUDING DEFAULTS) ON COMMIT DELETE ROWS"
        )
    )
    conn.execute(text(f"TRUNCATE {staging}"))
    given = [n for n in names if n in rows[0]]
    fixed = "".join(
        "\t" + _text_of(target.columns[n].type)(_default(target, n)) for n in names[len(given) :]
    )
    texts = [_text_of(target.columns[n].type) for n in given]
    lines = (
        "\t".join([f(row[n]) for f, n in zip(texts, given, strict=True)]) + fixed for row in rows
    )
    buffer = io.StringIO("\n".join(lines) + "\n")
    cursor = conn.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
    try:
        cursor.copy_expert(f"COPY {staging} ({', '.join(names)}) FROM STDIN", buffer)
    finally:
        cursor.close()
    source: Any = select(*(column(n) for n in names)).select_from(table(staging))
    return conn.execute(build(postgresql.insert(target).from_select(names, source)))


def dialect_insert(dialect: str, target: Any) -> Any:
    """An ``INSERT`` with the dialect's ``ON CONFLICT`` support (PostgreSQL or SQLite)."""
    return (postgresql if dialect == "postgresql" else sqlite).insert(target)


def _columns(target: Table, first: dict[str, Any]) -> list[str]:
    """The row's columns, plus the non-null ones it leaves to a Python-side default."""
    names = [c.name for c in target.columns if c.name in first]
    for c in target.columns:
        if c.name not in first and not c.nullable and c.autoincrement is not True:
            if c.default is None or not c.default.is_scalar:
                raise ValueError(f"{target.name}.{c.name} needs a value in every row")
            names.append(c.name)
    return names


def _default(target: Table, name: str) -> Any:
    default = target.columns[name].default
    return default.arg if default is not None else None  # type: ignore[attr-defined]


_ESCAPES = str.maketrans({"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r"})
NULL = "\\N"


def _text_of(kind: TypeEngine[Any]) -> Callable[[Any], str]:
    """How a value of a column of this type is written in COPY's text format."""
    if isinstance(kind, DateTime | Date):
        return lambda v: NULL if v is None else v.isoformat()
    if isinstance(kind, Boolean):
        return lambda v: NULL if v is None else ("t" if v else "f")
    if isinstance(kind, JSON):
        # orjson escapes control characters inside strings: only backslashes are left
        return lambda v: (
            NULL if v is None else orjson.dumps(v, default=str).decode().replace("\\", "\\\\")
        )
    if isinstance(kind, Integer | Numeric):
        return lambda v: NULL if v is None else str(v)
    return _plain_text


def _plain_text(value: Any) -> str:
    if value is None:
        return NULL
    text = str(value)
    if "\\" in text or "\t" in text or "\n" in text or "\r" in text:
        return text.translate(_ESCAPES)
    return text
