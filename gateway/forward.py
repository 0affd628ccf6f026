"""Forwarding: every stored instance gets a job per matching destination (same transaction
as its index row); one sender thread per destination drains them while studies arrive.

Jobs are claimed with a lease (``forward.lease_s``), sent in batches over a reused
association (DICOM) or by REST upload, then finished in one transaction. A failure
counts an attempt and retries with backoff and jitter; after ``forward.max_attempts`` the
job is DEAD with its last error, until ``risgate forward retry`` or the API revives it.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from io import BytesIO
from pathlib import Path

from pydicom.dataset import Dataset
from sqlalchemy import select
from sqlalchemy.orm import Session

from dicom_nodes.storescu import SendError, StoreSCU
from gateway import jobs
from gateway.coerce import CoercionPlan, coerced_dataset, plan_for_study
from gateway.models import Instance, Job, JobState, Series
from gateway.pacs_client import OrthancClient, PacsError
from gateway.receive import StoredInstance
from gateway.routing import destinations_for
from gateway.settings import DestinationSettings, Settings

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


@dataclass
class Item:
    job_id: int
    path: Path
    sop_class_uid: str
    transfer_syntax: str
    study_pk: int
    dataset: Dataset | None = None  # the coerced copy, when the study matched an order


# After sending something, the sender looks for new jobs this often for a while.
RECENT_WORK_S = 10.0
RECENT_POLL_S = 0.05


class Sender:
    """Sends files to one destination; DICOM over a kept association, or REST upload."""

    def __init__(self, dest: DestinationSettings, calling_ae: str) -> None:
        self.dest = dest
        self.scu: StoreSCU | None = None
        self.rest: OrthancClient | None = None
        if dest.protocol == "dicom":
            self.scu = StoreSCU(
                calling_ae, dest.host, dest.port, dest.ae_title, timeout_s=dest.timeout_s
            )
        else:
            self.rest = OrthancClient.for_destination(dest)

    def send(self, items: list[Item]) -> list[str | None]:
        if self.scu is not None:
            return self.scu.send(
                [(i.dataset or i.path, i.sop_class_uid, i.transfer_syntax) for i in items]
            )
        assert self.rest is not None
        results: list[str | None] = []
        for item in items:
            try:
                if item.dataset is not None:
                    buffer = BytesIO()
                    item.dataset.save_as(buffer, enforce_file_format=True)
                    self.rest.upload_bytes(buffer.getvalue())
                else:
                    self.rest.upload(item.path)
                results.append(None)
            except PacsError as exc:
                results.append(str(exc))
                if "HTTP 4" not in str(exc):  # unreachable: the rest would fail too
                    results += [str(exc)] * (len(items) - len(results))
                    break
        return results

    def close(self) -> None:
        if self.scu is not None:
            self.scu.close()
        if self.rest is not None:
            self.rest.close()


class ForwardWorker:
    """Sender threads draining one destination's forward jobs, one association each
    (``associations`` of the destination): a multi-threaded PACS stores in parallel."""

    def __init__(self, service: object, dest: DestinationSettings) -> None:
        from gateway.service import Service

        assert isinstance(service, Service)
        self.service = service
        self.dest = dest
        self.stop_event = threading.Event()
        self.wake = threading.Event()
        self.threads = [
            threading.Thread(target=self._loop, name=f"forward-{dest.name}-{i}", daemon=True)
            for i in range(dest.associations)
        ]

    def start(self) -> None:
        for thread in self.threads:
            thread.start()

    def stop(self) -> None:
        self.stop_event.set()
        self.wake.set()
        for thread in self.threads:
            thread.join(timeout=30)

    def _loop(self) -> None:
        cfg = self.service.settings
        sender = Sender(self.dest, cfg.dicom.ae_title)
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
        with self.service.db.session(durable=False) as session:
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
        try:
            results = sender.send(items) if items else []
        except (SendError, PacsError, OSError) as exc:
            results = [str(exc)] * len(items)
        done = [i.job_id for i, r in zip(items, results, strict=True) if r is None]
        failed: dict[str, list[int]] = {}
        for job_id, reason in failed_coercion:
            failed.setdefault(reason, []).append(job_id)
        for item, error in zip(items, results, strict=True):
            if error is not None:
                failed.setdefault(error, []).append(item.job_id)
        with self.service.db.session(durable=False) as session:
            jobs.finish(session, done)
            for error, ids in failed.items():
                jobs.fail(
                    session,
                    ids,
                    f"{self.dest.name}: {error}",
                    max_attempts=fwd.max_attempts,
                    base_s=fwd.backoff_base_s,
                    cap_s=fwd.backoff_cap_s,
                )
        if failed:
            log.warning(
                "%d of %d instances not accepted by %s: %s",
                sum(len(v) for v in failed.values()),
                len(items),
                self.dest.name,
                next(iter(failed)),
            )
        return len(claimed)

    def _coerce(self, items: list[Item]) -> list[tuple[int, str]]:
        """Apply each matched study's order values; drop (and report) what cannot be read."""
        plans: dict[int, CoercionPlan | None] = {}
        system = self.service.settings.reconcile.modifying_system
        with self.service.db.sessions() as session:
            for study_pk in {i.study_pk for i in items}:
                plans[study_pk] = plan_for_study(session, study_pk, system)
        failures = []
        for item in list(items):
            plan = plans[item.study_pk]
            if plan is None:
                continue
            try:
                item.dataset = coerced_dataset(item.path, plan)
            except Exception as exc:  # an unreadable stored file: report, do not send raw
                failures.append((item.job_id, f"coercion failed: {type(exc).__name__}"))
                items.remove(item)
        return failures


def _items(
    session: Session, absolute: Callable[[str], Path], claimed: list[jobs.Claimed]
) -> tuple[list[Item], list[int]]:
    if not claimed:
        return [], []
    by_pk = {int(job.ref): job.id for job in claimed}
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
            items.append(Item(by_pk.pop(pk), path, sop_class, syntax, study_pk))
    return items, list(by_pk.values())


def release_stale_claims(session: Session) -> int:
    """At start-up of the only worker process (SQLite): leases of a killed run end now."""
    from sqlalchemy import update

    from gateway.models import utcnow

    result = session.execute(
        update(Job)
        .where(Job.kind == KIND, Job.state == JobState.RUNNING)
        .values(state=JobState.PENDING, next_attempt_at=utcnow())
    )
    return int(getattr(result, "rowcount", 0) or 0)
