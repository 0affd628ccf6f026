"""One process's shared objects: settings, database, instance store, receiver, job handlers."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from gateway.core.database import Database
from gateway.core.instance_store import InstanceStore
from gateway.core.settings import Settings
from gateway.intake.receive import InstanceHook, Receiver

# A job handler gets the service and a batch of claimed job ids of its kind; it must
# finish, fail or release each of them (gateway.core.jobs).
JobHandler = Callable[["ProcessContext", list[int]], None]
# A periodic task runs on every worker pass; returns how much work it did.
PeriodicTask = Callable[["ProcessContext"], int]


@dataclass
class ProcessContext:
    settings: Settings
    db: Database
    store: InstanceStore
    receiver: Receiver
    job_handlers: dict[str, JobHandler] = field(default_factory=dict)
    periodic: list[PeriodicTask] = field(default_factory=list)

    @classmethod
    def create(cls, settings: Settings, *, migrate: bool = True) -> ProcessContext:
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
        return cls(settings, db, store, receiver)

    def close(self) -> None:
        self.db.dispose()
