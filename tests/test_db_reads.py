"""Database.read_one: single-statement reads outside any session, on both databases."""

from __future__ import annotations

import sqlite3

from gateway.db import Database, is_sqlite


def test_read_one_returns_committed_rows(database: Database) -> None:
    assert database.read_one("SELECT id FROM instances WHERE sop_instance_uid = ?", ["1.2"]) is None
    with database.session() as session:
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
