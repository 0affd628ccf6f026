"""The durable queue's retry rules: backoff within its bounds, DEAD after the limit,
never DEAD when the caller says so (verification waits for the PACS however long)."""

from __future__ import annotations

import threading
from pathlib import Path
from types import SimpleNamespace
from typing import cast

import pytest
from sqlalchemy import select, text

from gateway.core import jobs
from gateway.core.context import ProcessContext
from gateway.core.database import Database
from gateway.core.models import Job, JobState
from gateway.core.settings import Settings
from gateway.process.worker import Worker
from tests.support.wait import wait_until


def _fail_once(database: Database, max_attempts: int | None) -> Job:
    with database.write_session() as session:
        claimed = jobs.claim(session, ["verify"], lease_s=0)
        assert len(claimed) == 1
        jobs.fail(session, [claimed[0].id], "refused", max_attempts=max_attempts, cap_s=1e-6)
    with database.write_session() as session:
        job = session.scalars(select(Job)).one()
        session.expunge(job)
    return job


def test_buried_after_max_attempts(database: Database) -> None:
    with database.write_session() as session:
        jobs.enqueue(session, "verify", "1.2.3")
    states = [_fail_once(database, 3).state for _ in range(3)]
    assert states == [JobState.PENDING, JobState.PENDING, JobState.DEAD]


def test_never_buried_without_a_limit(database: Database) -> None:
    with database.write_session() as session:
        jobs.enqueue(session, "verify", "1.2.3")
    for _ in range(30):
        job = _fail_once(database, None)
        assert job.state == JobState.PENDING
    assert job.attempts == 30
    assert job.last_error == "refused"


@pytest.mark.unit
def test_backoff_bounds() -> None:
    for attempts in range(1, 20):
        delay = jobs.backoff_s(attempts, 2.0, 300.0)
        full = min(300.0, 2.0 * 2 ** (attempts - 1))
        assert full / 2 <= delay <= full


def test_bookkeeping_sessions_commit_like_durable_ones(database: Database) -> None:
    """``durable=False`` only skips waiting for the disk: the rows are committed alike."""
    with database.write_session(durable=False) as session:
        jobs.enqueue(session, "forward", "7", "pacs")
    with database.write_session(durable=False) as session:
        (claimed,) = jobs.claim(session, ["forward"], destination="pacs")
        assert claimed.ref == "7"
    with database.write_session() as session:
        job = session.scalars(select(Job)).one()
        assert (job.state, job.attempts) == (JobState.RUNNING, 1)


def _state(database: Database) -> tuple[str, int]:
    with database.session_factory() as session:
        job = session.scalars(select(Job)).one()
        return job.state, job.attempts


def _claim(database: Database) -> list[int]:
    with database.write_session() as session:
        return [c.id for c in jobs.claim(session, ["verify"])]


def test_enqueue_while_running_runs_again_after_the_run(database: Database) -> None:
    """An event during a run is not lost: the job runs once more, then is DONE."""
    with database.write_session() as session:
        jobs.enqueue(session, "verify", "1.2.3")
    (job_id,) = _claim(database)
    with database.write_session() as session:  # the event arrives while the job runs
        jobs.enqueue(session, "verify", "1.2.3")
    with database.write_session() as session:
        jobs.finish(session, [job_id])
    assert _state(database) == (JobState.PENDING, 0)
    assert _claim(database) == [job_id]
    with database.write_session() as session:
        jobs.finish(session, [job_id])
    assert _state(database) == (JobState.DONE, 1)
    assert _claim(database) == []


def test_enqueue_while_pending_stays_one_run(database: Database) -> None:
    with database.write_session() as session:
        jobs.enqueue(session, "verify", "1.2.3")
        jobs.enqueue(session, "verify", "1.2.3")
    with database.write_session() as session:
        jobs.enqueue(session, "verify", "1.2.3")
    (job_id,) = _claim(database)
    with database.write_session() as session:
        jobs.finish(session, [job_id])
    assert _state(database) == (JobState.DONE, 1)
    assert _claim(database) == []


def test_enqueue_while_running_survives_a_failed_last_attempt(database: Database) -> None:
    """The run fails for good, but an event came during it: a fresh run, not DEAD."""
    with database.write_session() as session:
        jobs.enqueue(session, "verify", "1.2.3")
    (job_id,) = _claim(database)
    with database.write_session() as session:
        jobs.enqueue(session, "verify", "1.2.3")
    with database.write_session() as session:
        jobs.fail(session, [job_id], "refused", max_attempts=1)
    assert _state(database) == (JobState.PENDING, 0)
    (again,) = _claim(database)
    with database.write_session() as session:
        jobs.fail(session, [again], "refused", max_attempts=1)
    assert _state(database) == (JobState.DEAD, 1)


def test_a_retried_or_released_run_covers_the_event(database: Database) -> None:
    """A retry or a release runs the job again anyway: no extra run after it."""
    with database.write_session() as session:
        jobs.enqueue(session, "verify", "1.2.3")
    for give_back in ("fail", "release"):
        (job_id,) = _claim(database)
        with database.write_session() as session:
            jobs.enqueue(session, "verify", "1.2.3")
        with database.write_session() as session:
            if give_back == "fail":
                jobs.fail(session, [job_id], "busy", max_attempts=None, cap_s=1e-6)
            else:
                jobs.release(session, [job_id])
        assert _state(database)[0] == JobState.PENDING
    (job_id,) = _claim(database)
    with database.write_session() as session:
        jobs.finish(session, [job_id])
    assert _state(database)[0] == JobState.DONE
    assert _claim(database) == []


def _wait_until_blocked(database: Database) -> None:
    """PostgreSQL: poll until another backend waits for a lock (the enqueue on the row).

    SQLite's writer lock is waited for inside ``BEGIN IMMEDIATE``, not observable: there
    the event may come before or during the wait, and the outcome must be the same.
    """
    if database.engine.dialect.name != "postgresql":
        return
    sql = text(
        "SELECT count(*) FROM pg_stat_activity"
        " WHERE wait_event_type = 'Lock' AND datname = current_database()"
    )

    def enqueue_waits() -> bool:
        with database.engine.connect() as conn:
            return bool(conn.scalar(sql))

    wait_until(enqueue_waits, 30, "the enqueue waiting for the claim's lock", interval=0.01)


def test_enqueue_between_a_claim_and_its_commit_runs_again(database: Database) -> None:
    """The race in one order: the claim's transaction is still open when the event comes
    (PostgreSQL: the enqueue waits for the claim's row lock, then sees RUNNING)."""
    with database.write_session() as session:
        jobs.enqueue(session, "verify", "1.2.3")
    done = threading.Event()

    def event() -> None:
        with database.write_session() as session:
            jobs.enqueue(session, "verify", "1.2.3")
        done.set()

    with database.write_session() as session:
        (claimed,) = jobs.claim(session, ["verify"])
        thread = threading.Thread(target=event)
        thread.start()
        _wait_until_blocked(database)
        assert not done.is_set()
    thread.join(30)
    assert done.is_set()
    with database.write_session() as session:
        jobs.finish(session, [claimed.id])
    assert _claim(database) == [claimed.id]


def test_worker_handler_runs_again_for_an_event_during_its_run(
    database: Database, tmp_path: Path
) -> None:
    """Through the worker loop: the handler sees the event that came during its first run."""
    seen: list[list[str]] = []
    events = ["first"]

    def handler(service: ProcessContext, job_ids: list[int]) -> None:
        seen.append(list(events))
        if len(seen) == 1:  # an event arrives while the handler works
            events.append("during the run")
            with database.write_session() as session:
                jobs.enqueue(session, "verify", "1.2.3")
        with database.write_session() as session:
            jobs.finish(session, job_ids)

    service = SimpleNamespace(
        settings=Settings(data_dir=tmp_path), db=database, periodic=[],
        job_handlers={"verify": handler},
    )  # fmt: skip
    worker = Worker(cast(ProcessContext, service))
    with database.write_session() as session:
        jobs.enqueue(session, "verify", "1.2.3")
    while worker.run_once():
        assert len(seen) <= 2, "ran more than once for one event"
    assert seen == [["first"], ["first", "during the run"]]
    assert _state(database)[0] == JobState.DONE
