"""Forwarding: every stored instance gets a job per matching destination (same transaction
as its index row); one sender thread per destination drains them while studies arrive.

Jobs are claimed with a lease (``forward.lease_s``), sent in batches over a reused
association (DICOM) or by REST upload, then finished in one transaction.

One instance's failure never fails its neighbours. A failure is charged to the instance
the destination judged: the one it refused (status and comment), or the one on the wire
when the association was aborted, closed or timed out. That attempt counts and the job
retries with backoff and jitter; after ``forward.max_attempts`` it is DEAD with the
destination's words, until ``risgate forward retry``, ``POST /api/queue/retry`` or
``POST /api/studies/{uid}/forward/retry`` revives it. The instances of the batch not yet
sent go back to the queue at once without counting an attempt, and jobs that failed
before are sent last in their next batch: a suspect can only hold up other suspects.
Stopping the gateway interrupts a send at once; what was acknowledged is recorded, the
rest goes back to the queue uncharged (or through its lease if the thread is stuck).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from io import BytesIO
from pathlib import Path

from pydicom.dataset import Dataset
from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from dicom_nodes.dimse_shortcuts import HeadedFile
from dicom_nodes.storescu import INTERRUPTED, Failure, SendError, StoreSCU
from gateway.core import jobs
from gateway.core.models import Instance, Job, JobState, Series
from gateway.core.procutil import STOP_WAIT_S
from gateway.core.settings import DestinationSettings, Settings
from gateway.forwarding.pacs_client import OrthancClient, PacsError
from gateway.forwarding.routing import destinations_for
from gateway.intake.receive import StoredInstance
from gateway.reconciliation.coerce import CoercionPlan, coerced_dataset, plan_for_study
from gateway.reconciliation.coerce_splice import StudyCorrection
from gateway.reconciliation.coerce_stream import corrected_file

log = logging.getLogger(__name__)

KIND = "forward"


def enqueue_hook(
    settings: Settings, holds: Callable[[Session, int], bool]
) -> Callable[[Session, StoredInstance], None]:
    """Receive hook: queue the new instance for each destination whose rules match.

    ``holds(session, study_pk)`` says whether the study waits for a person (unmatched):
    its jobs are then HELD until the study is linked.
    """
    destinations = settings.forward.destinations

    def hook(session: Session, stored: StoredInstance) -> None:
        names = destinations_for(destinations, stored.meta, stored.calling_ae)
        if not names:
            return
        state = JobState.HELD if holds(session, stored.study_pk) else JobState.PENDING
        jobs.enqueue_new(session, KIND, str(stored.instance_pk), names, state)

    return hook


def forget_instance(session: Session, instance_pk: int) -> None:
    """Withdraw hook: an instance taken back out of the index has nothing to forward."""
    session.execute(delete(Job).where(Job.kind == KIND, Job.ref == str(instance_pk)))


@dataclass
class Item:
    job_id: int
    path: Path
    sop_class_uid: str
    transfer_syntax: str
    study_pk: int
    dataset: Dataset | None = None  # the coerced copy, when the study matched an order
    corrected: HeadedFile | None = None  # or its corrected header, the rest from the file
    attempts: int = 1  # this attempt's number: above 1, the job failed before


UPLOAD_PIECE = 1 << 20

# Studies whose corrected elements a worker keeps (the most recent ones).
KEPT_CORRECTIONS = 16

# After sending something, the sender looks for new jobs this often for a while.
RECENT_WORK_S = 10.0
RECENT_POLL_S = 0.05


class Sender:
    """Sends files to one destination; DICOM over a kept association, or REST upload."""

    def __init__(self, dest: DestinationSettings, calling_ae: str) -> None:
        self.dest = dest
        self.interrupted = threading.Event()
        self.scu: StoreSCU | None = None
        self.rest: OrthancClient | None = None
        if dest.protocol == "dicom":
            self.scu = StoreSCU(
                calling_ae, dest.host, dest.port, dest.ae_title, timeout_s=dest.timeout_s
            )
        else:
            self.rest = OrthancClient.for_destination(dest)

    def send(self, items: list[Item]) -> list[Failure | None]:
        if self.scu is not None:
            return self.scu.send(
                [
                    (i.corrected or i.dataset or i.path, i.sop_class_uid, i.transfer_syntax)
                    for i in items
                ]
            )
        assert self.rest is not None
        results: list[Failure | None] = []
        for item in items:
            if self.interrupted.is_set():
                results.append(INTERRUPTED)
                continue
            try:
                if item.corrected is not None:
                    self.rest.upload_stream(*_headed_stream(item.corrected))
                elif item.dataset is not None:
                    buffer = BytesIO()
                    item.dataset.save_as(buffer, enforce_file_format=True)
                    self.rest.upload_bytes(buffer.getvalue())
                else:
                    self.rest.upload(item.path)
                results.append(None)
            except PacsError as exc:
                results.append(Failure(str(exc)))
                if "HTTP 4" not in str(exc):  # unreachable: the rest would fail too
                    results += [Failure(str(exc))] * (len(items) - len(results))
                    break
        return results

    def interrupt(self) -> None:
        """From another thread: stop sending (a DICOM send ends at once; a REST upload
        under way ends with its own timeout)."""
        self.interrupted.set()
        if self.scu is not None:
            self.scu.interrupt()

    def close_if_idle(self) -> None:
        if self.scu is not None:
            self.scu.close_if_idle()

    def close(self) -> None:
        if self.scu is not None:
            self.scu.close()
        if self.rest is not None:
            self.rest.close()


class ForwardWorker:
    """Sender threads draining one destination's forward jobs, one association each
    (``associations`` of the destination): a multi-threaded PACS stores in parallel."""

    def __init__(self, service: object, dest: DestinationSettings) -> None:
        from gateway.core.context import ProcessContext

        assert isinstance(service, ProcessContext)
        self.service = service
        self.dest = dest
        self.stop_event = threading.Event()
        self.wake = threading.Event()
        self.senders: list[Sender] = []
        self.corrections: dict[int, StudyCorrection] = {}  # by study, while its plan holds
        self.corrections_lock = threading.Lock()  # the sender threads share them
        self.threads = [
            threading.Thread(target=self._loop, name=f"forward-{dest.name}-{i}", daemon=True)
            for i in range(dest.associations)
        ]

    def start(self) -> None:
        for thread in self.threads:
            thread.start()

    def request_stop(self) -> None:
        """Interrupt the senders: a send under way ends at once (see :meth:`join`)."""
        self.stop_event.set()
        self.wake.set()
        for sender in list(self.senders):
            sender.interrupt()

    def join(self, deadline: float) -> None:
        """Wait until ``deadline`` (monotonic) for the interrupted senders: each records
        what the destination acknowledged and gives the rest back to the queue. A thread
        still stuck then is left to die with the process; its jobs come back when their
        lease ends."""
        for thread in self.threads:
            thread.join(timeout=max(0.0, deadline - time.monotonic()))
            if thread.is_alive():
                log.warning("forward sender %s still busy at shutdown", thread.name)

    def stop(self) -> None:
        self.request_stop()
        self.join(time.monotonic() + STOP_WAIT_S)

    def _loop(self) -> None:
        cfg = self.service.settings
        sender = Sender(self.dest, cfg.dicom.ae_title)
        self.senders.append(sender)
        if self.stop_event.is_set():
            sender.interrupt()
        last_work = -RECENT_WORK_S
        try:
            while not self.stop_event.is_set():
                try:
                    sent = self.run_once(sender)
                except Exception:
                    log.exception("forwarding to %s failed", self.dest.name)
                    sent = 0
                if sent:
                    last_work = time.monotonic()
                else:
                    sender.close_if_idle()
                    # Woken when an instance is stored in this process or a receiver
                    # process; shortly after work, also poll often (receivers elsewhere).
                    recent = time.monotonic() - last_work < RECENT_WORK_S
                    self.wake.wait(RECENT_POLL_S if recent else cfg.worker.poll_interval_s)
                    self.wake.clear()
        finally:
            sender.close()

    def run_once(self, sender: Sender) -> int:
        """Claim one batch, send it, record the outcome; returns how many were claimed."""
        fwd = self.service.settings.forward
        # Leases and DONE marks lost in a power failure only send an instance again.
        with self.service.db.write_session(durable=False) as session:
            claimed = jobs.claim(
                session,
                [KIND],
                limit=fwd.batch_size,
                lease_s=fwd.lease_s,
                destination=self.dest.name,
            )
            items, missing = _items(session, self.service.store.absolute, claimed)
            if missing:
                jobs.fail(session, missing, "instance file or index row is gone", max_attempts=1)
        if not items:
            return len(claimed)
        failed_coercion = self._coerce(items)
        # Jobs that failed before go last: if one of them breaks the association, the
        # others of the batch are already through.
        items.sort(key=lambda i: i.attempts > 1)
        try:
            results = sender.send(items) if items else []
        except (SendError, PacsError, OSError) as exc:
            failure = INTERRUPTED if sender.interrupted.is_set() else Failure(str(exc))
            results = [failure] * len(items)
        done = [i.job_id for i, r in zip(items, results, strict=True) if r is None]
        stopping = [i.job_id for i, r in zip(items, results, strict=True) if r is INTERRUPTED]
        # Not sent because the association ended before them: back soon, uncharged (a
        # short wait, so a destination that aborts every association is not hammered).
        not_sent = [
            i.job_id
            for i, r in zip(items, results, strict=True)
            if r is not None and r is not INTERRUPTED and not r.charged
        ]
        failed: dict[str, list[int]] = {}
        for job_id, reason in failed_coercion:
            failed.setdefault(reason, []).append(job_id)
        for item, result in zip(items, results, strict=True):
            if result is not None and result.charged:
                failed.setdefault(result.reason, []).append(item.job_id)
        with self.service.db.write_session(durable=False) as session:
            jobs.finish(session, done)
            jobs.release(session, stopping)
            jobs.release(session, not_sent, delay_s=fwd.backoff_base_s)
            for error, ids in failed.items():
                jobs.fail(
                    session,
                    ids,
                    f"{self.dest.name}: {error}",
                    max_attempts=fwd.max_attempts,
                    base_s=fwd.backoff_base_s,
                    cap_s=fwd.backoff_cap_s,
                )
        if stopping:
            log.info(
                "stopping: %d instances for %s back in the queue", len(stopping), self.dest.name
            )
        for error, ids in failed.items():
            log.warning(
                "%d of %d instances not accepted by %s: %s (jobs %s)",
                len(ids),
                len(items),
                self.dest.name,
                error,
                ", ".join(map(str, ids[:10])),
            )
        return len(claimed)

    def _coerce(self, items: list[Item]) -> list[tuple[int, str]]:
        """Apply each matched study's order values; drop (and report) what cannot be read."""
        plans: dict[int, CoercionPlan | None] = {}
        system = self.service.settings.reconcile.modifying_system
        with self.service.db.session_factory() as session:
            for study_pk in {i.study_pk for i in items}:
                plans[study_pk] = plan_for_study(session, study_pk, system)
        failures = []
        for item in list(items):
            plan = plans[item.study_pk]
            if plan is None:
                continue
            try:
                # The header corrected, the rest sent from the file; the whole file
                # decoded and encoded only where that shortcut declines.
                item.corrected = corrected_file(item.path, self._correction(item.study_pk, plan))
                if item.corrected is None:
                    item.dataset = coerced_dataset(item.path, plan)
            except Exception as exc:  # an unreadable stored file: report, do not send raw
                failures.append((item.job_id, f"coercion failed: {type(exc).__name__}"))
                items.remove(item)
        return failures

    def _correction(self, study_pk: int, plan: CoercionPlan) -> StudyCorrection:
        """The study's correction, kept from earlier batches while its plan is the same
        (the plan is read again for every batch: an order updated meanwhile counts)."""
        with self.corrections_lock:
            correction = self.corrections.pop(study_pk, None)
            if correction is None or correction.plan != plan:
                correction = StudyCorrection(plan)
            self.corrections[study_pk] = correction  # the most recent last
            while len(self.corrections) > KEPT_CORRECTIONS:
                del self.corrections[next(iter(self.corrections))]
            return correction


def _headed_stream(headed: HeadedFile) -> tuple[Iterator[bytes], int]:
    """A corrected instance as a DICOM file for a REST upload: the stored File Meta, the
    corrected head, the file's tail, read in pieces; and its length."""
    size = headed.path.stat().st_size
    length = headed.dataset_offset + len(headed.head) + size - headed.tail_offset

    def pieces() -> Iterator[bytes]:
        with open(headed.path, "rb") as f:
            yield f.read(headed.dataset_offset)
            yield headed.head
            f.seek(headed.tail_offset)
            while chunk := f.read(UPLOAD_PIECE):
                yield chunk

    return pieces(), length


def _items(
    session: Session, absolute: Callable[[str], Path], claimed: list[jobs.Claimed]
) -> tuple[list[Item], list[int]]:
    if not claimed:
        return [], []
    by_pk = {int(job.ref): job.id for job in claimed}
    attempts = {job.id: job.attempts for job in claimed}
    rows = session.execute(
        select(
            Instance.id,
            Instance.path,
            Instance.sop_class_uid,
            Instance.transfer_syntax,
            Series.study_pk,
        )
        .join(Series, Series.id == Instance.series_pk)
        .where(Instance.id.in_(list(by_pk)))
    ).all()
    items = []
    for pk, rel, sop_class, syntax, study_pk in rows:
        path = absolute(rel)
        if path.is_file():
            job_id = by_pk.pop(pk)
            items.append(Item(job_id, path, sop_class, syntax, study_pk, attempts=attempts[job_id]))
    return items, list(by_pk.values())


def release_stale_claims(session: Session) -> int:
    """At start-up of the only worker process (SQLite): leases of a killed run end now."""
    from sqlalchemy import update

    from gateway.core.models import utcnow

    result = session.execute(
        update(Job)
        .where(Job.kind == KIND, Job.state == JobState.RUNNING)
        .values(state=JobState.PENDING, next_attempt_at=utcnow())
    )
    return int(getattr(result, "rowcount", 0) or 0)
