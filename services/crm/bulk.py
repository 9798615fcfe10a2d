"""Bulk upserts for the sink. On PostgreSQL a large batch travels as one JSON array and is
upserted with one ``INSERT ... SELECT ... FROM json_populate_recordset(...) ON CONFLICT``:
orjson encodes the rows in C and the server unpacks them, so the client spends almost no
time per row (rendering a ``VALUES`` list or ``COPY`` text in Python cost more than the
server's work). SQLite and very small batches take the plain executemany path; both run
the same ``ON CONFLICT`` clause. An executemany on PostgreSQL is psycopg2's
``execute_batch``: one statement a row for the server to parse and plan, so even a few
dozen rows cost more that way than one JSON statement."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from decimal import Decimal
from typing import Any

import orjson
from sqlalchemy import (
    JSON,
    Connection,
    Table,
    any_,
    bindparam,
    cast,
    func,
    literal,
    literal_column,
    select,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.sql.elements import ColumnElement

JSON_FROM = 8  # rows; fewer go through executemany

Build = Callable[[Any], Any]  # dialect insert -> the statement with its ON CONFLICT clause


def upsert(conn: Connection, model: Any, rows: Sequence[dict[str, Any]], build: Build) -> Any:
    """Insert ``rows`` (all with the same keys) into ``model``'s table with ``build``'s
    conflict clause; the result carries its ``RETURNING`` rows, if any."""
    target: Table = model.__table__
    if conn.dialect.name != "postgresql" or len(rows) < JSON_FROM:
        return conn.execute(build(dialect_insert(conn.dialect.name, target)), list(rows))
    names = _columns(target, rows[0])
    given = [n for n in names if n in rows[0]]
    defaults = [
        literal(_default(target, n), type_=target.columns[n].type) for n in names[len(given) :]
    ]
    records = func.json_populate_recordset(
        literal_column(f"NULL::{target.name}"), cast(bindparam("rows"), JSON)
    ).table_valued(*given, name="r")
    source: Any = select(*(records.c[n] for n in given), *defaults)
    payload = orjson.dumps(list(rows), default=_json_default).decode()
    statement = build(postgresql.insert(target).from_select(names, source))
    return conn.execute(statement, {"rows": payload})


def update_many(conn: Connection, model: Any, key: str, rows: Sequence[dict[str, Any]]) -> None:
    """Set other columns of ``model``'s rows found by ``key``, from ``rows`` (dicts with
    ``key`` and the same other names). PostgreSQL takes one ``UPDATE ... FROM unnest(...)``,
    the rows found through ``key``'s index (``= ANY``); SQLite an executemany."""
    if not rows:
        return
    target: Table = model.__table__
    names = [n for n in rows[0] if n != key]
    if conn.dialect.name != "postgresql":
        conn.execute(
            target.update()
            .where(target.c[key] == bindparam(f"k_{key}"))
            .values({n: bindparam(f"k_{n}") for n in names}),
            [{f"k_{n}": r[n] for n in (key, *names)} for r in rows],
        )
        return
    columns = (key, *names)
    arrays = [bindparam(f"a_{n}", [r[n] for r in rows], type_=_array(target, n)) for n in columns]
    given = func.unnest(*arrays).table_valued(*columns).render_derived(name="given")
    conn.execute(
        target.update()
        .where(target.c[key] == any_(arrays[0]), target.c[key] == given.c[key])
        .values({n: given.c[n] for n in names})
    )


def _array(target: Table, name: str) -> Any:
    return postgresql.ARRAY(target.columns[name].type)


def _json_default(value: Any) -> Any:
    if isinstance(value, Decimal):
        return str(value)  # exact: the server reads it into the numeric column
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


def among(dialect: str, column: Any, values: Iterable[Any]) -> ColumnElement[bool]:
    """``column IN values`` (sorted). On PostgreSQL one array parameter (``= ANY``): a long
    ``IN`` list costs the client a placeholder a value to render and the server one to
    parse."""
    if dialect == "postgresql":
        array = postgresql.ARRAY(column.type)
        return column == any_(bindparam(None, sorted(values), type_=array))  # type: ignore[no-any-return]
    return column.in_(sorted(values))  # type: ignore[no-any-return]


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
