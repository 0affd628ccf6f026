"""Schema migrations (Alembic), applied by ``risgate migrate`` and at start-up.

``risgate serve`` runs them in a short child process (``python -m gateway.core.migrate``,
settings as JSON on stdin, see :func:`gateway.process.startup.upgrade_in_child`), so
Alembic and the migration scripts (about 10 MB) never stay resident in a long-running
process.
"""

from __future__ import annotations

import sys
from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import Engine

MIGRATIONS_DIR = Path(__file__).parent / "migrations"


def alembic_config() -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    return cfg


def upgrade(engine: Engine, revision: str = "heads") -> None:
    """Bring the database schema up to ``revision`` (idempotent)."""
    cfg = alembic_config()
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, revision)


def main() -> None:
    """The start-up migration child: read the settings on stdin, upgrade, exit."""
    from gateway.core.database import Database
    from gateway.core.logs import setup_logging
    from gateway.core.procutil import die_with_parent
    from gateway.core.settings import Settings

    die_with_parent()
    settings = Settings.model_validate_json(sys.stdin.read())
    setup_logging(settings.log.level, settings.log.json_format)
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    db = Database.from_settings(settings)
    try:
        upgrade(db.engine)
    finally:
        db.dispose()


if __name__ == "__main__":
    main()
