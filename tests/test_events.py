"""The event table: every subscribed job kind has a handler once a process is wired."""

from __future__ import annotations

from pathlib import Path

import pytest

from gateway.core import events
from gateway.core.settings import Settings
from gateway.process.startup import create_context
from gateway.process.wiring import install_pipeline

pytestmark = pytest.mark.unit


def test_every_subscribed_kind_has_a_handler(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path, database={"url": f"sqlite:///{tmp_path / 'g.db'}"})
    service = create_context(settings)
    try:
        install_pipeline(service)
        subscribed = {kind for kinds in events.SUBSCRIBERS.values() for kind in kinds}
        assert subscribed <= set(service.job_handlers), subscribed - set(service.job_handlers)
    finally:
        service.close()


def test_emit_enqueues_one_job_per_subscriber_without_any_install(tmp_path: Path) -> None:
    from sqlalchemy import select

    from gateway.core.models import Job

    settings = Settings(data_dir=tmp_path, database={"url": f"sqlite:///{tmp_path / 'g.db'}"})
    service = create_context(settings)  # nothing installed: the table is data
    try:
        with service.db.write_session() as session:
            events.emit(session, events.STUDY_STABLE, "1.2.3")
        with service.db.read_session() as session:
            kinds = sorted(j.kind for j in session.scalars(select(Job)))
        assert kinds == sorted(events.SUBSCRIBERS[events.STUDY_STABLE])
    finally:
        service.close()
