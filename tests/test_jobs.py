"""The durable queue's retry rules: backoff within its bounds, DEAD after the limit,
never DEAD when the caller says so (verification waits for the PACS however long)."""

from __future__ import annotations

from sqlalchemy import select

from gateway import jobs
from gateway.db import Database
from gateway.models import Job, JobState


def _fail_once(database: Database, max_attempts: int | None) -> Job:
    with database.session() as session:
        claimed = jobs.claim(session, ["verify"], lease_s=0)
        assert len(claimed) == 1
        jobs.fail(session, [claimed[0].id], "refused", max_attempts=max_attempts, cap_s=1e-6)
    with database.session() as session:
        job = session.scalars(select(Job)).one()
        session.expunge(job)
    return job


def test_buried_after_max_attempts(database: Database) -> None:
    with database.session() as session:
        jobs.enqueue(session, "verify", "1.2.3")
    states = [_fail_once(database, 3).state for _ in range(3)]
    assert states == [JobState.PENDING, JobState.PENDING, JobState.DEAD]


def test_never_buried_without_a_limit(database: Database) -> None:
    with database.session() as session:
        jobs.enqueue(session, "verify", "1.2.3")
    for _ in range(30):
        job = _fail_once(database, None)
        assert job.state == JobState.PENDING
    assert job.attempts == 30
    assert job.last_error == "refused"


def test_backoff_bounds() -> None:
    for attempts in range(1, 20):
        delay = jobs.backoff_s(attempts, 2.0, 300.0)
        full = min(300.0, 2.0 * 2 ** (attempts - 1))
        assert full / 2 <= delay <= full


def test_bookkeeping_sessions_commit_like_durable_ones(database: Database) -> None:
    """``durable=False`` only skips waiting for the disk: the rows are committed alike."""
    with database.session(durable=False) as session:
        jobs.enqueue(session, "forward", "7", "pacs")
    with database.session(durable=False) as session:
        (claimed,) = jobs.claim(session, ["forward"], destination="pacs")
        assert claimed.ref == "7"
    with database.session() as session:
        job = session.scalars(select(Job)).one()
        assert (job.state, job.attempts) == (JobState.RUNNING, 1)
