"""Plain DBAPI statements inside a SQLAlchemy session's transaction, for the hot paths.

Used where a statement runs per message or per instance: storing an HL7 order (about
ten statements: through the ORM ~4 ms per message, through the driver ~0.2 ms), the
receive path's per-instance rows, the match-state check and the queue's claims (see
docs/decisions.md). SQL is written with ``?`` placeholders and rewritten to ``%s`` for
psycopg; timestamps follow SQLAlchemy's storage format on SQLite so ORM readers see the
same values.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from gateway.core.models import utcnow

Row = tuple[Any, ...]


def stamp(value: datetime, pg: bool) -> Any:
    """A naive UTC timestamp as a statement parameter: as is for psycopg, SQLAlchemy's
    storage format on SQLite (so comparisons with stored values hold)."""
    return value if pg else value.strftime("%Y-%m-%d %H:%M:%S.%f")


def for_driver(sql: str, pg: bool) -> str:
    """``?`` placeholders as the driver wants them (``%s`` for psycopg)."""
    return sql.replace("?", "%s") if pg else sql


class Conflict(Exception):
    """A unique constraint refused the statement (the transaction must be rolled back)."""


class FastSQL:
    """Driver-level statements on the connection of ``session`` (same transaction)."""

    def __init__(self, session: Session) -> None:
        conn = session.connection()
        self.pg = conn.dialect.name == "postgresql"
        dbapi_conn = conn.connection.driver_connection
        assert dbapi_conn is not None
        self._cursor = dbapi_conn.cursor()
        self._cache: dict[str, str] = {}
        self._integrity: type[BaseException] = conn.dialect.loaded_dbapi.IntegrityError
        self._now: Any = None

    def _sql(self, sql: str) -> str:
        if not self.pg:
            return sql
        out = self._cache.get(sql)
        if out is None:
            out = self._cache[sql] = for_driver(sql, True)
        return out

    def now(self) -> Any:
        """Naive UTC now (one value per transaction), as the database stores ``DateTime``."""
        if self._now is None:
            self._now = self.stamp(utcnow())
        return self._now

    def stamp(self, value: datetime) -> Any:
        return stamp(value, self.pg)

    def execute(self, sql: str, params: Sequence[Any] = ()) -> None:
        try:
            self._cursor.execute(self._sql(sql), tuple(params))
        except self._integrity as exc:
            raise Conflict(type(exc).__name__) from None

    def many(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        try:
            self._cursor.executemany(self._sql(sql), [tuple(r) for r in rows])
        except self._integrity as exc:
            raise Conflict(type(exc).__name__) from None

    def rows(self, sql: str, params: Sequence[Any] = ()) -> list[Row]:
        self.execute(sql, params)
        return [tuple(r) for r in self._cursor.fetchall()]

    def one(self, sql: str, params: Sequence[Any] = ()) -> Row | None:
        self.execute(sql, params)
        row = self._cursor.fetchone()
        return tuple(row) if row is not None else None

    def scalar(self, sql: str, params: Sequence[Any] = ()) -> Any:
        """The first column of the first row, or None."""
        row = self.one(sql, params)
        return row[0] if row is not None else None

    def insert(self, table: str, values: dict[str, Any]) -> int:
        """INSERT one row; returns its id (RETURNING, SQLite >= 3.35 and PostgreSQL)."""
        cols = ", ".join(values)
        marks = ", ".join("?" * len(values))
        row = self.one(
            f"INSERT INTO {table} ({cols}) VALUES ({marks}) RETURNING id", list(values.values())
        )
        assert row is not None
        return int(row[0])

    def update(self, table: str, pk: int, values: dict[str, Any]) -> None:
        sets = ", ".join(f"{c} = ?" for c in values)
        self.execute(f"UPDATE {table} SET {sets} WHERE id = ?", [*values.values(), pk])
