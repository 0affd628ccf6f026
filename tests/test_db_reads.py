"""Database.read_one: single-statement reads outside any session, on both databases."""

from __future__ import annotations

import sqlite3

from gateway.core.database import Database, is_sqlite


def test_read_one_returns_committed_rows(database: Database) -> None:
    assert database.read_one("SELECT id FROM instances WHERE sop_instance_uid = ?", ["1.2"]) is None
    with database.write_session() as session:
        session.connection().exec_driver_sql(
            "INSERT INTO alembic_version (version_num) VALUES ('read-one-test')"
        )
    row = database.read_one(
        "SELECT version_num FROM alembic_version WHERE version_num = ?", ["read-one-test"]
    )
    assert row == ("read-one-test",)


def test_read_one_does_not_queue_behind_a_sqlite_writer(database: Database) -> None:
    """A writer holding SQLite's write lock does not hold up the read, which sees the
    last committed snapshot (a session's transaction would wait for the lock)."""
    if not is_sqlite(database.engine):
        return
    path = database.engine.url.database
    assert path is not None
    writer = sqlite3.connect(path, isolation_level=None, timeout=0)
    try:
        writer.execute("BEGIN IMMEDIATE")
        writer.execute("INSERT INTO alembic_version (version_num) VALUES ('uncommitted')")
        row = database.read_one(
            "SELECT count(*) FROM alembic_version WHERE version_num = ?", ["uncommitted"]
        )
        assert row == (0,)
    finally:
        writer.execute("ROLLBACK")
        writer.close()


def test_read_session_does_not_wait_for_a_writer(database: Database) -> None:
    """Database.read_session (API GETs): while another connection holds the write lock
    with an uncommitted row, the read neither waits nor sees the row, on both databases;
    a write inside a read session is refused."""
    import threading

    import pytest
    from sqlalchemy import text
    from sqlalchemy.exc import DBAPIError

    with database.write_session() as session:
        session.execute(text("INSERT INTO alembic_version (version_num) VALUES ('committed')"))
    holding, release = threading.Event(), threading.Event()

    class Rollback(Exception):
        pass

    def writer() -> None:
        try:
            with database.write_session() as session:
                session.execute(
                    text("INSERT INTO alembic_version (version_num) VALUES ('pending')")
                )
                holding.set()
                release.wait(30)
                raise Rollback
        except Rollback:
            pass

    thread = threading.Thread(target=writer)
    thread.start()
    try:
        assert holding.wait(30)
        done = threading.Event()
        seen: list[str] = []

        def reader() -> None:
            with database.read_session() as session:
                seen.extend(session.scalars(text("SELECT version_num FROM alembic_version")))
            done.set()

        threading.Thread(target=reader, daemon=True).start()
        # The writer still holds its lock: the read must finish without it.
        assert done.wait(10), "read_session waited for the writer"
        assert "committed" in seen and "pending" not in seen
    finally:
        release.set()
        thread.join()
    with pytest.raises(DBAPIError), database.read_session() as session:
        session.execute(text("INSERT INTO alembic_version (version_num) VALUES ('no')"))


def test_read_session_sees_one_snapshot(database: Database) -> None:
    """Every statement of a read session sees the data as at its first read, on both
    databases (a page's ids and its rows agree while studies arrive): a row committed by
    another connection between two statements is not seen; a new session sees it."""
    from sqlalchemy import text

    count = text("SELECT count(*) FROM alembic_version WHERE version_num LIKE 'snap%'")
    with database.read_session() as reader:
        assert reader.scalar(count) == 0
        with database.write_session() as writer:
            writer.execute(text("INSERT INTO alembic_version (version_num) VALUES ('snap1')"))
        assert reader.scalar(count) == 0
        if not is_sqlite(database.engine):
            assert reader.scalar(text("SHOW transaction_isolation")) == "repeatable read"
            assert reader.scalar(text("SHOW transaction_read_only")) == "on"
    with database.read_session() as reader:
        assert reader.scalar(count) == 1
