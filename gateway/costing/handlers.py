"""The costing jobs: ``cost`` (every ``study.stable`` event enqueues one) and
``cost_retry``: a study left uncosted, tried again after a catalogue import or a mapping
change, or a study whose facts changed (linked to an order by hand, films reported by
MPPS). Both cost the study with the catalogue and mapping in force (a new revision only
when the figures change); they differ only in the reason written on a new revision.

Each job runs in its own transaction, so one bad study does not hold back the others.
A changed mapping configuration is noticed by :class:`MappingWatch` (a periodic task
of the worker role) at the first pass after start-up. Installed by :func:`install`
from ``gateway.process.wiring.install_pipeline``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from sqlalchemy import select
from sqlalchemy.orm import Session

from gateway.core import jobs
from gateway.core.context import ProcessContext
from gateway.core.models import Job, JobState, Study, StudyState, utcnow
from gateway.core.upsert import insert_for
from gateway.costing.models import MappingVersion, UncostedStudy
from gateway.costing.recording import Mappers, record_cost

log = logging.getLogger(__name__)

JOB_KIND = "cost"
RETRY_KIND = "cost_retry"
RETRY_REASON = "costed again: catalogue, mapping or study facts changed"
WORKER_USER = "system:worker"
MAX_ATTEMPTS = 10


def install(service: ProcessContext) -> None:
    """Register the ``cost`` and ``cost_retry`` handlers and the mapping watch."""
    service.job_handlers[JOB_KIND] = _handler("study stable", only_stable=False)
    service.job_handlers[RETRY_KIND] = _handler(RETRY_REASON, only_stable=True)
    service.periodic.append(MappingWatch())


def _handler(reason: str, *, only_stable: bool) -> Callable[[ProcessContext, list[int]], None]:
    def handle(service: ProcessContext, job_ids: list[int]) -> None:
        handle_cost_jobs(service, job_ids, reason=reason, only_stable=only_stable)

    return handle


def handle_cost_jobs(
    service: ProcessContext,
    job_ids: list[int],
    *,
    reason: str = "study stable",
    only_stable: bool = False,
) -> None:
    """Cost the study of each claimed job; finish it, or fail it for a retry.

    ``only_stable``: a study still arriving is left to its ``study.stable`` job.
    """
    mappers = Mappers.from_settings(service.settings.costing)
    for job_id in job_ids:
        try:
            with service.db.write_session() as session:
                job = session.get(Job, job_id)
                study = (
                    session.scalar(select(Study).where(Study.study_uid == job.ref)) if job else None
                )
                if study is not None and not (only_stable and study.state != StudyState.STABLE):
                    record_cost(
                        session,
                        study,
                        mappers,
                        reason=reason,
                        created_by=WORKER_USER,
                        store=service.store,
                    )
                jobs.finish(session, [job_id])
        except Exception as exc:
            log.exception("cost job %d failed", job_id)
            with service.db.write_session() as session:
                jobs.fail(
                    session, [job_id], f"{type(exc).__name__}: {exc}", max_attempts=MAX_ATTEMPTS
                )


def requeue_uncosted(session: Session) -> int:
    """Queue a ``cost_retry`` job for every study still uncosted (open entries of
    ``/api/costs/unmapped``) and every study whose cost job died; returns how many."""
    uids = set(
        session.scalars(select(UncostedStudy.study_uid).where(UncostedStudy.resolved_at.is_(None)))
    )
    uids |= set(
        session.scalars(
            select(Job.ref).where(Job.kind.in_([JOB_KIND, RETRY_KIND]), Job.state == JobState.DEAD)
        )
    )
    for uid in sorted(uids):
        jobs.enqueue(session, RETRY_KIND, uid)
    return len(uids)


def note_mapping(session: Session, mappers: Mappers) -> bool:
    """Record the mapping configuration in force; True (and the uncosted studies
    re-queued) if it was not seen before."""
    fingerprint, text = mappers.fingerprint()
    inserted = session.scalar(
        insert_for(session, MappingVersion.__table__)
        .values(fingerprint=fingerprint, mapping_json=text, first_seen_at=utcnow())
        .on_conflict_do_nothing(index_elements=["fingerprint"])
        .returning(MappingVersion.__table__.c.id)
    )
    if inserted is None:
        return False
    count = requeue_uncosted(session)
    log.info("costing mapping changed: %d uncosted studies queued again", count)
    return True


class MappingWatch:
    """Periodic task: at the worker's first pass, note the mapping configuration (a
    change of ``[costing]`` takes a restart, so once per process is enough)."""

    def __init__(self) -> None:
        self.done = False

    def __call__(self, service: ProcessContext) -> int:
        if self.done:
            return 0
        try:
            with service.db.write_session() as session:
                note_mapping(session, Mappers.from_settings(service.settings.costing))
            self.done = True
        except Exception as exc:  # the database may be busy: next pass tries again
            log.error("costing: mapping check failed (%s)", type(exc).__name__)
        return 0
