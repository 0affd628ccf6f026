"""Build one process's context: the database (migrated unless told not to), the instance
store and the receiver. The wiring (``gateway.process.wiring``) then plugs the steps in."""

from __future__ import annotations

from gateway.core.context import ProcessContext
from gateway.core.database import Database
from gateway.core.instance_store import InstanceStore
from gateway.core.settings import Settings
from gateway.intake.receive import InstanceHook, Receiver


def create_context(settings: Settings, *, migrate: bool = True) -> ProcessContext:
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    db = Database.from_settings(settings)
    if migrate:
        from gateway.core.migrate import upgrade  # Alembic: ~12 MB, not needed by receivers

        upgrade(db.engine)
    store = InstanceStore(settings.store_path, fsync=settings.store.fsync)
    hooks: list[InstanceHook] = []
    receiver = Receiver(
        db, store, hooks=hooks, high_water_percent=settings.forward.disk_high_water_percent
    )
    return ProcessContext(settings, db, store, receiver)
