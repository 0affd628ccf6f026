"""Where the pipeline's parts plug into a process: job handlers, hooks, extra DIMSE services.

Each later part (forwarding, HL7 orders, worklist, MPPS, costing) adds itself here, so
``runner`` stays the same and a newcomer finds every wiring in one place. It is also the
one place the DIMSE services meet the database: ``dicom_nodes`` speaks DICOM and is
handed the small adapters below (``dicom_nodes.ports``).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence

from pydicom import Dataset

from dicom_nodes.ports import MppsResult, Recorded, WorklistQuery
from dicom_nodes.server import ServiceSpec
from gateway.core.context import ProcessContext
from gateway.core.database import Database
from gateway.forwarding.commitment.record import record_request
from gateway.orders import mpps
from gateway.orders.worklist import find


def install_pipeline(service: ProcessContext) -> None:
    """Register the receive hooks and the job handlers on ``service`` (a worker process)."""
    install_receive_hooks(service)
    install_job_handlers(service)


def install_receive_hooks(service: ProcessContext) -> None:
    """The hooks every receiving process needs, run in the indexing transaction in this
    order: match the study to its order on its first instance, then queue the instance
    for its destinations (jobs dropped again if the instance is withdrawn). A DICOM
    receiver child installs only these: job handlers run in the worker, so it never
    imports what they need (thumbnails' numpy and Pillow, the costing, the HL7 result
    messages)."""
    from gateway.forwarding import sender as forward
    from gateway.reconciliation.reconcile import Reconciler

    reconciler = Reconciler(service.settings.reconcile)
    service.receiver.hooks.append(reconciler.on_instance)
    service.receiver.hooks.append(forward.enqueue_hook(service.settings, reconciler.holds))
    service.receiver.withdraw_hooks.append(forward.forget_instance)


def install_job_handlers(service: ProcessContext) -> None:
    """Register every step's job handler and periodic task (run by the worker role)."""
    from gateway.costing import handlers as costing_jobs

    costing_jobs.install(service)
    from gateway.intake import thumbnails

    thumbnails.install(service)  # series previews on study.stable, off the receive path
    from gateway.forwarding.commitment import process as commitment

    commitment.install(service)
    from gateway.forwarding import verify
    from gateway.reconciliation import resend
    from gateway.results import notify

    verify.install(service)
    resend.install(service)
    notify.install(service)
    from gateway.operations import retention

    retention.install(service)  # HL7 message store past hl7.retention_days


def start_forwarding(service: ProcessContext) -> Callable[[], None]:
    """Start one forward sender per destination; returns their stop function."""
    from gateway.core.database import is_sqlite
    from gateway.core.procutil import STOP_WAIT_S
    from gateway.forwarding.sender import ForwardWorker, release_stale_claims

    if is_sqlite(service.db.engine):
        # On SQLite one process owns the workers: claims left by a killed run end now.
        with service.db.write_session() as session:
            release_stale_claims(session)
    workers = [ForwardWorker(service, d) for d in service.settings.forward.destinations]
    for w in workers:
        w.start()
        service.receiver.on_stored.append(w.wake.set)

    def stop() -> None:
        for w in workers:
            w.request_stop()
        deadline = time.monotonic() + STOP_WAIT_S
        for w in workers:
            w.join(deadline)

    return stop


class WorklistFromDatabase:
    """``WorklistSource``: the open scheduled steps matching a C-FIND, read in one session."""

    def __init__(self, db: Database) -> None:
        self.db = db

    def __call__(self, query: WorklistQuery) -> list[Dataset]:
        with self.db.session_factory() as session:
            return list(find(session, query))


class MppsInDatabase:
    """``MppsRecorder``: each N-CREATE / N-SET applied in its own write transaction."""

    def __init__(self, db: Database) -> None:
        self.db = db

    def create(
        self, sop_uid: str, attrs: Dataset, calling_ae: str, *, films: int | None
    ) -> MppsResult:
        with self.db.write_session() as session:
            return mpps.create(session, sop_uid, attrs, calling_ae, films=films)

    def update(self, sop_uid: str, mods: Dataset, *, films: int | None) -> MppsResult:
        with self.db.write_session() as session:
            return mpps.update(session, sop_uid, mods, films=films)


class CommitmentInDatabase:
    """``CommitmentRecorder``: the request, its items and its job in one transaction;
    ``timeout_s`` is ``commitment.timeout_s`` (when unverified instances count as failed)."""

    def __init__(self, db: Database, timeout_s: float) -> None:
        self.db = db
        self.timeout_s = timeout_s

    def __call__(
        self,
        transaction_uid: str,
        calling_ae: str,
        peer_address: str,
        references: Sequence[tuple[str, str]],
    ) -> Recorded:
        with self.db.write_session() as session:
            return record_request(
                session, transaction_uid, calling_ae, peer_address, references, self.timeout_s
            )


def dicom_services(service: ProcessContext) -> list[ServiceSpec]:
    """Extra DIMSE services (worklist, MPPS, storage commitment) for the DICOM node."""
    from dicom_nodes.commitment import CommitmentSCP
    from dicom_nodes.mpps import MppsSCP
    from dicom_nodes.worklist import WorklistSCP

    settings = service.settings
    return [
        WorklistSCP(
            WorklistFromDatabase(service.db),
            settings.dicom,
            max_results=settings.worklist.max_results,
            modality_from_calling_ae=settings.worklist.modality_from_calling_ae,
        ).spec(),
        MppsSCP(MppsInDatabase(service.db)).spec(),
        CommitmentSCP(
            CommitmentInDatabase(service.db, settings.commitment.timeout_s),
            settings.dicom.peers,
            max_references=settings.commitment.max_references,
        ).spec(),
    ]


def start_hl7(service: ProcessContext) -> Callable[[], None]:
    """Start the MLLP listener; returns its stop function."""
    from gateway.orders.hl7_listener import HL7Listener

    return HL7Listener(service.db, service.settings).start()
