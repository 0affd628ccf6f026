"""The job queue as operators see it: jobs by kind and state, dead jobs with their last error
(forward jobs with their study and instance), and putting dead jobs back.

The API (``/api/queue``), the web UI's queue page and ``risgate forward status|retry``
all call these.
"""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from gateway.core import jobs
from gateway.core.models import Job, JobState
from gateway.forwarding.dead_jobs import instances_of_jobs
from gateway.forwarding.verify import requeue_verification


class DeadJob(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    kind: str
    ref: str
    destination: str
    attempts: int
    last_error: str
    updated_at: datetime
    study_uid: str | None = Field(default=None, description="forward jobs: the study")
    sop_instance_uid: str | None = Field(default=None, description="forward jobs: the instance")


class QueueStatus(BaseModel):
    counts: dict[str, dict[str, int]] = Field(description="kind -> state -> number of jobs")
    dead: list[DeadJob]


def status(session: Session, dead_limit: int = 100) -> QueueStatus:
    counts: dict[str, dict[str, int]] = {}
    for kind, state, n in session.execute(
        select(Job.kind, Job.state, func.count()).group_by(Job.kind, Job.state)
    ):
        counts.setdefault(kind, {})[state] = int(n)
    dead = [
        DeadJob.model_validate(j)
        for j in session.scalars(
            select(Job)
            .where(Job.state == JobState.DEAD)
            .order_by(Job.updated_at.desc())
            .limit(dead_limit)
        )
    ]
    instances = instances_of_jobs(session, [j.id for j in dead])
    for job in dead:
        job.study_uid, job.sop_instance_uid = instances.get(job.id, (None, None))
    return QueueStatus(counts=counts, dead=dead)


def retry_dead(session: Session, ids: list[int], kind: str | None) -> int:
    """Put dead jobs back and check their studies again once they are through."""
    query = select(Job.id).where(Job.state == JobState.DEAD)
    if ids:
        query = query.where(Job.id.in_(ids))
    if kind:
        query = query.where(Job.kind == kind)
    dead_ids = list(session.scalars(query))
    count = jobs.retry_dead(session, ids=dead_ids) if dead_ids else 0
    requeue_verification(session, dead_ids)
    return count
