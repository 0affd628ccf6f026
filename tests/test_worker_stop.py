"""Stopping the background worker is bounded: a job handler stuck on a peer that does not
answer (a paused PACS, a silent EMR) does not hold the process, and its claimed jobs are
due again at once, uncharged."""

from __future__ import annotations

import threading
from pathlib import Path

from sqlalchemy import select

from gateway.core import jobs
from gateway.core.context import ProcessContext
from gateway.core.database import Database
from gateway.core.instance_store import InstanceStore
from gateway.core.models import Job, JobState
from gateway.core.settings import Settings
from gateway.process.worker import Worker


def test_stop_gives_back_the_jobs_of_a_stuck_handler(database: Database, tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path / "var", worker={"poll_interval_s": 0.05})
    store = InstanceStore(tmp_path / "store", fsync=False)
    service = ProcessContext(settings, database, store, receiver=None)  # type: ignore[arg-type]
    started, release = threading.Event(), threading.Event()

    def stuck(_service: ProcessContext, _ids: list[int]) -> None:
        started.set()
        release.wait(60)

    service.job_handlers["stuck"] = stuck
    with database.write_session() as session:
        jobs.enqueue(session, "stuck", "1.2.3")
    worker = Worker(service)
    worker.start()
    try:
        assert started.wait(30), "the handler never ran"
        worker.stop()  # waits STOP_WAIT_S at most, not for the handler
        assert worker.thread is not None and worker.thread.is_alive()
        with database.write_session() as session:
            job = session.scalars(select(Job)).one()
            assert (job.state, job.attempts) == (JobState.PENDING, 0)
    finally:
        release.set()
