"""Dead forward jobs as people see them: which instances of a study a destination keeps
refusing, in its own words, and the study-level retry (API and web UI)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import NamedTuple

from sqlalchemy import String, cast, select
from sqlalchemy.orm import Session

from gateway.core import jobs
from gateway.core.models import Instance, Job, JobState, Series, Study
from gateway.forwarding.sender import KIND
from gateway.forwarding.verify import requeue_verification


class DeadInstance(NamedTuple):
    job_id: int
    destination: str
    sop_instance_uid: str
    series_uid: str
    attempts: int
    last_error: str
    updated_at: datetime


def dead_in_study(session: Session, study_pk: int) -> list[DeadInstance]:
    """The study's dead forward jobs, one per instance and destination."""
    rows = session.execute(
        select(
            Job.id,
            Job.destination,
            Instance.sop_instance_uid,
            Series.series_uid,
            Job.attempts,
            Job.last_error,
            Job.updated_at,
        )
        .select_from(Series)
        .join(Instance, Instance.series_pk == Series.id)
        # From the study's instances to their jobs: (kind, ref) is indexed.
        .join(Job, (Job.kind == KIND) & (Job.ref == cast(Instance.id, String)))
        .where(Series.study_pk == study_pk, Job.state == JobState.DEAD)
        .order_by(Job.destination, Job.id)
    ).all()
    return [DeadInstance(*row) for row in rows]


def instances_of_jobs(session: Session, job_ids: Sequence[int]) -> dict[int, tuple[str, str]]:
    """job id -> (study UID, SOP Instance UID) for the forward jobs among ``job_ids``."""
    refs = {
        int(ref): int(job_id)
        for job_id, ref in session.execute(
            select(Job.id, Job.ref).where(Job.kind == KIND, Job.id.in_(list(job_ids)))
        )
    }
    if not refs:
        return {}
    rows = session.execute(
        select(Instance.id, Study.study_uid, Instance.sop_instance_uid)
        .join(Series, Series.id == Instance.series_pk)
        .join(Study, Study.id == Series.study_pk)
        .where(Instance.id.in_(list(refs)))
    ).all()
    return {refs[pk]: (study_uid, sop_uid) for pk, study_uid, sop_uid in rows}


def retry_study(session: Session, study_pk: int, destination: str | None = None) -> int:
    """Put the study's dead forward jobs (to one destination, or all) back in the queue
    with their attempts reset, and check the study again once they are through."""
    ids = [
        d.job_id
        for d in dead_in_study(session, study_pk)
        if destination is None or d.destination == destination
    ]
    if not ids:
        return 0
    count = jobs.retry_dead(session, kind=KIND, ids=ids)
    requeue_verification(session, ids)
    return count
