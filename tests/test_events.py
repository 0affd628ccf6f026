"""The event table: every subscribed job kind has a handler once a process is wired."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import select

from gateway.core import events
from gateway.core.context import ProcessContext
from gateway.core.models import Job
from gateway.core.settings import Settings
from gateway.process.startup import create_context
from gateway.process.wiring import install_pipeline

pytestmark = pytest.mark.unit


@pytest.fixture
def service(tmp_path: Path) -> Iterator[ProcessContext]:
    """A process context on SQLite with nothing installed."""
    settings = Settings(data_dir=tmp_path, database={"url": f"sqlite:///{tmp_path / 'g.db'}"})
    context = create_context(settings)
    yield context
    context.close()


def test_every_subscribed_kind_has_a_handler(service: ProcessContext) -> None:
    install_pipeline(service)
    subscribed = {kind for kinds in events.SUBSCRIBERS.values() for kind in kinds}
    assert subscribed <= set(service.job_handlers), subscribed - set(service.job_handlers)


def test_emit_enqueues_one_job_per_subscriber_without_any_install(
    service: ProcessContext,
) -> None:
    with service.db.write_session() as session:  # nothing installed: the table is data
        events.emit(session, events.STUDY_STABLE, "1.2.3")
    with service.db.read_session() as session:
        kinds = sorted(j.kind for j in session.scalars(select(Job)))
    assert kinds == sorted(events.SUBSCRIBERS[events.STUDY_STABLE])
