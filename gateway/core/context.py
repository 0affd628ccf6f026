"""One process's shared objects: settings, database, instance store, receiver, job handlers.

Every step's job handler and periodic task gets it; ``gateway.process.startup`` builds it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # annotations only: the context is built in gateway.process.startup
    from gateway.core.database import Database
    from gateway.core.instance_store import InstanceStore
    from gateway.core.settings import Settings
    from gateway.intake.receive import Receiver

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

    def close(self) -> None:
        self.db.dispose()
