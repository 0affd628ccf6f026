"""The start-up migration of ``risgate serve`` runs in a short child process
(``gateway.process.startup.upgrade_in_child``): it brings the database to the heads, and a
failure stops the start with a clear error instead of serving an old schema."""

from __future__ import annotations

from pathlib import Path

import pytest
from alembic.script import ScriptDirectory
from sqlalchemy import text

from gateway.core.database import make_engine
from gateway.core.migrate import alembic_config
from gateway.core.settings import Settings
from gateway.process.startup import upgrade_in_child


def test_the_child_brings_the_database_to_the_heads(db_url: str, tmp_path: Path) -> None:
    upgrade_in_child(Settings(data_dir=tmp_path, database={"url": db_url}))
    engine = make_engine(db_url)
    try:
        with engine.connect() as conn:
            at = {row[0] for row in conn.execute(text("SELECT version_num FROM alembic_version"))}
    finally:
        engine.dispose()
    assert at == set(ScriptDirectory.from_config(alembic_config()).get_heads())


@pytest.mark.unit
def test_a_failed_migration_stops_the_start(tmp_path: Path) -> None:
    (tmp_path / "not-a-dir").write_text("")
    url = f"sqlite:///{tmp_path / 'not-a-dir' / 'g.db'}"
    with pytest.raises(SystemExit, match="the database migration failed"):
        upgrade_in_child(Settings(data_dir=tmp_path, database={"url": url}))
