"""The ``cost`` job: every ``study.stable`` event enqueues one; the handler costs the study.

Each job runs in its own transaction, so one bad study does not hold back the others.
Installed by :func:`install` from ``gateway.extensions.install_extensions``.
"""

from __future__ import annotations

import logging

from sqlalchemy import select
from sqlalchemy.orm import Session

from gateway import events, jobs
from gateway.costing.models import UncostedStudy
from gateway.costing.recording import Mappers, record_cost
from gateway.models import Job, Study
from gateway.service import Service

log = logging.getLogger(__name__)

JOB_KIND = "cost"
WORKER_USER = "system:worker"
MAX_ATTEMPTS = 10


def install(service: Service) -> None:
    """Subscribe the cost job to ``study.stable`` and register its handler."""
    events.subscribe(events.STUDY_STABLE, JOB_KIND)
    service.job_handlers[JOB_KIND] = handle_cost_jobs


def handle_cost_jobs(service: Service, job_ids: list[int]) -> None:
    """Cost the study of each claimed job; finish it, or fail it for a retry."""
    mappers = Mappers.from_settings(service.settings.costing)
    for job_id in job_ids:
        try:
            with service.db.session() as session:
                job = session.get(Job, job_id)
                study = (
                    session.scalar(select(Study).where(Study.study_uid == job.ref)) if job else None
                )
                if study is not None:
                    record_cost(
                        session,
                        study,
                        mappers,
                        reason="study stable",
                        created_by=WORKER_USER,
                        store=service.store,
                    )
                jobs.finish(session, [job_id])
        except Exception as exc:
            log.exception("cost job %d failed", job_id)
            with service.db.session() as session:
                jobs.fail(
                    session, [job_id], f"{type(exc).__name__}: {exc}", max_attempts=MAX_ATTEMPTS
                )


def requeue_uncosted(session: Session) -> int:
    """Enqueue a cost job for every open uncosted study (e.g. after a catalogue import)."""
    uids = list(
        session.scalars(select(UncostedStudy.study_uid).where(UncostedStudy.resolved_at.is_(None)))
    )
    for uid in uids:
        jobs.enqueue(session, JOB_KIND, uid)
    return len(uids)
