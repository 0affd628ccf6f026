"""Database engine and sessions: SQLite (WAL) by default, PostgreSQL by URL."""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, create_engine, event, text
from sqlalchemy.orm import Session, sessionmaker

from gateway.core.fastsql import for_driver
from gateway.core.settings import Settings


def is_sqlite(engine: Engine) -> bool:
    return engine.dialect.name == "sqlite"


def make_engine(
    url: str, *, sqlite_synchronous: str = "FULL", echo: bool = False, reader: bool = False
) -> Engine:
    """Create an engine; SQLite gets WAL, a busy timeout and ``BEGIN IMMEDIATE`` writes.

    ``reader``: an SQLite engine for reads only (``PRAGMA query_only``, deferred ``BEGIN``):
    its transactions read a WAL snapshot and never wait for, nor hold, the write lock.
    """
    if url.startswith("sqlite"):
        db_path = url.split("///", 1)[-1]
        if db_path and db_path != ":memory:":
            Path(db_path).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(
            url, echo=echo, connect_args={"timeout": 60, "check_same_thread": False}
        )

        @event.listens_for(engine, "connect")
        def _on_connect(dbapi_conn: Any, _record: Any) -> None:
            dbapi_conn.isolation_level = None  # we issue BEGIN ourselves
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute(f"PRAGMA synchronous={sqlite_synchronous}")
            cur.execute("PRAGMA foreign_keys=ON")
            # No SQLite busy handler: it sleeps up to 100 ms between retries, which
            # stalls receivers in other processes. BEGIN IMMEDIATE retries below.
            cur.execute("PRAGMA busy_timeout=0")
            if reader:
                cur.execute("PRAGMA query_only=ON")
            cur.close()

        @event.listens_for(engine, "begin")
        def _on_begin(conn: Any) -> None:
            if reader:
                conn.connection.dbapi_connection.execute("BEGIN")
                return
            # Take the write lock at the start: no deadlocks from lock upgrades.
            _begin_immediate(conn.connection.dbapi_connection)

        return engine
    if url.startswith("postgresql://"):
        url = "postgresql+psycopg://" + url.removeprefix("postgresql://")
    return create_engine(url, echo=echo, pool_pre_ping=True, pool_size=10, max_overflow=20)


SQLITE_LOCK_WAIT_S = 60.0


def _begin_immediate(dbapi_conn: Any) -> None:
    """BEGIN IMMEDIATE, retrying with sub-millisecond sleeps while another writer holds it."""
    deadline = time.monotonic() + SQLITE_LOCK_WAIT_S
    delay = 0.0002
    while True:
        try:
            dbapi_conn.execute("BEGIN IMMEDIATE")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) and "busy" not in str(exc):
                raise
            if time.monotonic() > deadline:
                raise
            time.sleep(delay)
            delay = min(delay * 2, 0.002)


class Database:
    """Engine plus session factory for one process."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.session_factory = sessionmaker(engine, expire_on_commit=False)
        # SQLite has one writer at a time and its busy handler sleeps for milliseconds
        # between retries: threads of one process queue on a lock instead.
        self._write_lock: threading.Lock | None = threading.Lock() if is_sqlite(engine) else None
        self._bookkeeping: sessionmaker[Session] | None = None
        self._readers: sessionmaker[Session] | None = None

    @classmethod
    def from_settings(cls, settings: Settings) -> Database:
        return cls(
            make_engine(
                settings.database_url,
                sqlite_synchronous=settings.database.sqlite_synchronous,
                echo=settings.database.echo,
            )
        )

    @contextmanager
    def write_session(self, *, durable: bool = True) -> Iterator[Session]:
        """A session in one transaction: committed on success, rolled back on error.

        ``durable=False`` is for bookkeeping whose loss on a power failure only repeats
        work (a forward job's lease or DONE mark: the instance is sent again): its commit
        does not wait for the disk (SQLite ``synchronous=NORMAL`` in WAL mode, which a
        killed process does not lose; PostgreSQL ``synchronous_commit off``).
        """
        if self._write_lock is None:
            with self.session_factory() as session, session.begin():
                if not durable:
                    session.execute(text("SET LOCAL synchronous_commit TO OFF"))
                yield session
            return
        sessions = self.session_factory if durable else self._bookkeeping_sessions()
        with self._write_lock, sessions() as session, session.begin():
            yield session

    @contextmanager
    def read_session(self) -> Iterator[Session]:
        """A session for reads only (API and page GETs): one read-only transaction.

        It neither takes nor waits for the write lock: on SQLite a deferred ``BEGIN`` on a
        ``query_only`` connection reads a WAL snapshot while a writer commits; on
        PostgreSQL ``BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY`` (set on the pooled
        connection by psycopg, without a round trip). Either way every statement of the
        session sees the same snapshot (a page and its total agree while studies arrive).
        A write in it fails.
        """
        if self._readers is None:
            if self._write_lock is None:
                bind: Engine = self.engine.execution_options(
                    isolation_level="REPEATABLE READ", postgresql_readonly=True
                )
            else:
                url = self.engine.url.render_as_string(hide_password=False)
                bind = make_engine(url, reader=True)
            self._readers = sessionmaker(bind, expire_on_commit=False)
        with self._readers() as session, session.begin():
            yield session

    def _bookkeeping_sessions(self) -> sessionmaker[Session]:
        if self._bookkeeping is None:
            url = self.engine.url.render_as_string(hide_password=False)
            self._bookkeeping = sessionmaker(
                make_engine(url, sqlite_synchronous="NORMAL"), expire_on_commit=False
            )
        return self._bookkeeping

    def read_one(self, sql: str, params: Sequence[Any] = ()) -> tuple[Any, ...] | None:
        """One row of a single read statement (``?`` placeholders), outside any session.

        For per-instance lookups: no Session, and on SQLite no ``BEGIN IMMEDIATE`` (which
        a session's transaction takes, queueing the read behind writers): the statement
        reads the latest committed snapshot on its own.
        """
        conn = self.engine.raw_connection()
        try:
            cursor = conn.cursor()
            cursor.execute(for_driver(sql, not is_sqlite(self.engine)), tuple(params))
            row = cursor.fetchone()
            cursor.close()
            return tuple(row) if row is not None else None
        finally:
            conn.close()  # back to the pool, which rolls back PostgreSQL's read

    def pinned(self) -> PinnedSession:
        """A session on a connection of its own, for a hot path (see PinnedSession)."""
        return PinnedSession(self)

    def dispose(self) -> None:
        self.engine.dispose()
        for extra in (self._bookkeeping, self._readers):
            if extra is not None and extra.kw["bind"].pool is not self.engine.pool:
                extra.kw["bind"].dispose()  # an engine of its own (not the readers' options)


class PinnedSession:
    """Transactions on one connection kept open: no pool checkout and no new Session per
    transaction (~50 µs less each). Callers take turns; on SQLite under the write lock.
    """

    def __init__(self, db: Database) -> None:
        self._db = db
        self._lock = db._write_lock or threading.Lock()
        self._conn: Connection | None = None
        self._session: Session | None = None

    @contextmanager
    def write_session(self) -> Iterator[Session]:
        """Like :meth:`Database.write_session`: committed on success, rolled back on error."""
        with self._lock:
            if self._conn is None or self._conn.invalidated or self._conn.closed:
                self._close()
                self._conn = self._db.engine.connect()
                self._session = Session(
                    bind=self._conn, join_transaction_mode="rollback_only", expire_on_commit=False
                )
            assert self._session is not None
            try:
                with self._conn.begin():
                    yield self._session
            finally:
                self._session.close()

    def close(self) -> None:
        with self._lock:
            self._close()

    def _close(self) -> None:
        if self._session is not None:
            self._session.close()
        if self._conn is not None:
            self._conn.close()
        self._conn = self._session = None
