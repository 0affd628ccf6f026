"""The job table as a durable queue: enqueue, claim with a lease, finish, retry, bury.

A claimed job gets a lease (its ``next_attempt_at`` moves to the lease end); a worker
killed mid-job leaves it RUNNING and it is claimed again once the lease runs out.
On PostgreSQL claims use ``FOR UPDATE SKIP LOCKED`` so several processes share the queue.

No event is lost to a running job: an enqueue while the job is RUNNING sets its
``rerun`` flag (the run may have read its data before the event's transaction), and
the end of that run (``finish``, or ``fail`` at its last attempt) puts it back to
PENDING with fresh attempts instead of DONE or DEAD. A claim clears the flag, since
the run it starts sees every event committed before it; so does a retry or a release,
which run the job again anyway. An enqueue while PENDING (or HELD) changes nothing.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from datetime import timedelta
from typing import NamedTuple

from sqlalchemy import and_, case, func, select, update
from sqlalchemy.orm import Session

from gateway.core.fastsql import FastSQL
from gateway.core.models import Job, JobState, utcnow
from gateway.core.upsert import insert_for


def enqueue(
    session: Session,
    kind: str,
    ref: str,
    destination: str = "",
) -> None:
    """Add a job, put a finished one back to PENDING, or mark a running one for a rerun.

    Idempotent per key: a PENDING or HELD job stays as it is.
    """
    now = utcnow()
    table = Job.__table__.c
    running = table.state == JobState.RUNNING
    stmt = insert_for(session, Job.__table__).values(
        kind=kind,
        ref=ref,
        destination=destination,
        state=JobState.PENDING,
        attempts=0,
        next_attempt_at=now,
        last_error="",
        created_at=now,
        updated_at=now,
    )
    stmt = stmt.on_conflict_do_update(
        index_elements=["kind", "ref", "destination"],
        set_={
            "state": case((running, table.state), else_=JobState.PENDING),
            "attempts": case((running, table.attempts), else_=0),
            "next_attempt_at": case((running, table.next_attempt_at), else_=now),
            "rerun": running,
            "updated_at": now,
        },
        where=table.state.in_([JobState.DONE, JobState.DEAD, JobState.RUNNING]),
    )
    session.execute(stmt)


def enqueue_new(
    session: Session, kind: str, ref: str, destinations: Sequence[str], state: str
) -> None:
    """Add one job per destination unless it exists; plain SQL (once per received instance)."""
    sql = FastSQL(session)
    now = sql.now()
    sql.many(
        "INSERT INTO jobs (kind, ref, destination, state, attempts, next_attempt_at,"
        " last_error, created_at, updated_at) VALUES (?, ?, ?, ?, 0, ?, '', ?, ?)"
        " ON CONFLICT (kind, ref, destination) DO NOTHING",
        [(kind, ref, dest, state, now, now, now) for dest in destinations],
    )


class Claimed(NamedTuple):
    id: int
    ref: str
    attempts: int = 1  # counting this one


def claim(
    session: Session,
    kinds: Sequence[str],
    *,
    limit: int = 50,
    lease_s: float = 300.0,
    destination: str | None = None,
) -> list[Claimed]:
    """Claim due jobs of ``kinds``: PENDING ones and RUNNING ones whose lease ran out.

    A claim clears ``rerun``: the run starts after every event committed so far.

    One ``UPDATE ... RETURNING`` in plain SQL (the senders claim after every stored
    instance); on PostgreSQL the rows are picked with ``FOR UPDATE SKIP LOCKED``.
    """
    sql = FastSQL(session)
    start = utcnow()
    now, lease_end = sql.stamp(start), sql.stamp(start + timedelta(seconds=lease_s))
    where = f"kind IN ({', '.join('?' * len(kinds))}) AND state IN (?, ?) AND next_attempt_at <= ?"
    params: list[object] = [*kinds, JobState.PENDING, JobState.RUNNING, now]
    if destination is not None:
        where += " AND destination = ?"
        params.append(destination)
    lock = " FOR UPDATE SKIP LOCKED" if sql.pg else ""
    rows = sql.rows(
        "UPDATE jobs SET state = ?, attempts = attempts + 1, next_attempt_at = ?, updated_at = ?,"
        f" rerun = ? WHERE id IN (SELECT id FROM jobs WHERE {where}"
        f" ORDER BY next_attempt_at, id LIMIT ?{lock}) RETURNING id, ref, attempts",
        [JobState.RUNNING, lease_end, now, False, *params, limit],
    )
    return [Claimed(int(pk), str(ref), int(attempts)) for pk, ref, attempts in rows]


def finish(session: Session, job_ids: Sequence[int]) -> None:
    """Mark jobs DONE; one enqueued again during its run goes back to PENDING instead."""
    if job_ids:
        now = utcnow()
        session.execute(
            update(Job)
            .where(Job.id.in_(job_ids))
            .values(
                state=case((Job.rerun, JobState.PENDING), else_=JobState.DONE),
                attempts=case((Job.rerun, 0), else_=Job.attempts),
                next_attempt_at=case((Job.rerun, now), else_=Job.next_attempt_at),
                rerun=False,
                last_error="",
                updated_at=now,
            )
        )


def backoff_s(attempts: int, base_s: float, cap_s: float) -> float:
    """Exponential backoff with full jitter in [delay/2, delay]."""
    delay = min(cap_s, base_s * (2 ** max(0, attempts - 1)))
    return delay / 2 + random.random() * delay / 2


def fail(
    session: Session,
    job_ids: Sequence[int],
    error: str,
    *,
    max_attempts: int | None,
    base_s: float = 2.0,
    cap_s: float = 300.0,
) -> None:
    """Record a failed attempt: retry later with backoff, or bury as DEAD.

    ``max_attempts=None`` never buries: the job retries at most every ``cap_s`` for good.
    A job enqueued again during its last attempt is not buried: the new event gets
    attempts of its own, as an enqueue after DEAD would give it.
    """
    now = utcnow()
    for job in session.scalars(select(Job).where(Job.id.in_(job_ids))):
        job.last_error = error[:2000]
        job.updated_at = now
        rerun, job.rerun = job.rerun, False
        if max_attempts is not None and job.attempts >= max_attempts:
            if rerun:
                job.state, job.attempts, job.next_attempt_at = JobState.PENDING, 0, now
            else:
                job.state = JobState.DEAD
        else:
            job.state = JobState.PENDING
            job.next_attempt_at = now + timedelta(seconds=backoff_s(job.attempts, base_s, cap_s))


def release(session: Session, job_ids: Sequence[int], *, delay_s: float = 0.0) -> None:
    """Give claimed jobs back without counting an attempt (e.g. shutdown)."""
    if job_ids:
        session.execute(
            update(Job)
            .where(Job.id.in_(job_ids))
            .values(
                state=JobState.PENDING,
                attempts=func.max(Job.attempts - 1, 0)
                if session.get_bind().dialect.name == "sqlite"
                else func.greatest(Job.attempts - 1, 0),
                next_attempt_at=utcnow() + timedelta(seconds=delay_s),
                rerun=False,
            )
        )


def retry_dead(session: Session, kind: str | None = None, ids: Sequence[int] = ()) -> int:
    """Put DEAD jobs back to PENDING; returns how many."""
    cond = Job.state == JobState.DEAD
    if kind:
        cond = and_(cond, Job.kind == kind)
    if ids:
        cond = and_(cond, Job.id.in_(ids))
    result = session.execute(
        update(Job)
        .where(cond)
        .values(state=JobState.PENDING, attempts=0, next_attempt_at=utcnow(), updated_at=utcnow())
    )
    return int(getattr(result, "rowcount", 0) or 0)
