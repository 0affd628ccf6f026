"""Build one process's context: the database (migrated unless told not to), the instance
store and the receiver. The wiring (``gateway.process.wiring``) then plugs the steps in."""

from __future__ import annotations

import subprocess
import sys

from gateway.core.context import ProcessContext
from gateway.core.database import Database
from gateway.core.instance_store import InstanceStore
from gateway.core.procutil import die_with_parent
from gateway.core.settings import Settings
from gateway.intake.receive import InstanceHook, Receiver


def create_context(settings: Settings, *, migrate: bool = True) -> ProcessContext:
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    db = Database.from_settings(settings)
    if migrate:
        from gateway.core.migrate import upgrade  # Alembic: ~10 MB, stays resident

        upgrade(db.engine)
    store = InstanceStore(settings.store_path, fsync=settings.store.fsync)
    hooks: list[InstanceHook] = []
    receiver = Receiver(
        db, store, hooks=hooks, high_water_percent=settings.forward.disk_high_water_percent
    )
    return ProcessContext(settings, db, store, receiver)


def upgrade_in_child(settings: Settings) -> None:
    """Apply the migrations in a short child process (``gateway.core.migrate``), so the
    long-running process that calls this never imports Alembic; the settings go on stdin
    (no secret in a command line). Raises ``SystemExit`` if the migration failed (its
    error is in the log: the child writes to the same stderr)."""
    child = subprocess.run(
        [sys.executable, "-m", "gateway.core.migrate"],
        input=settings.model_dump_json().encode(),
        preexec_fn=die_with_parent,
        check=False,
    )
    if child.returncode != 0:
        raise SystemExit(f"risgate: the database migration failed (exit {child.returncode})")
