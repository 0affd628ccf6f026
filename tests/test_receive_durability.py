"""The receive path's durability with the file's fsync running beside the index commit.

- the answer waits for the fsync: the row is committed (visible to another connection)
  while the fsync is held, and ``receive`` returns only once it is released;
- a failed fsync withdraws the row and its forward jobs, removes the file and answers
  out of resources;
- after a power cut (simulated: the file of a committed row cut short or missing), the
  start-up check (only after a run that did not stop cleanly) withdraws the row, and a
  re-send is stored again, not taken for a duplicate; a re-send alone repairs it too; a
  purged study's missing files are left be.
"""

from __future__ import annotations

import errno
import os
import threading
from collections.abc import Iterator
from pathlib import Path

import pydicom
import pytest
from sqlalchemy import create_engine, select, text, update

from gateway.core import instance_store
from gateway.core.context import ProcessContext
from gateway.core.models import Instance, Job, Study
from gateway.core.settings import Settings
from gateway.intake.receive import ReceiveResult
from gateway.intake.recovery import start_receiving, withdraw_broken_recent
from gateway.process.startup import create_context
from gateway.process.wiring import install_receive_hooks
from tests.support.ctgen import make_ct_study
from tests.support.receive import receive_file


@pytest.fixture
def service(db_url: str, tmp_path: Path) -> Iterator[ProcessContext]:
    settings = Settings(
        data_dir=tmp_path / "var",
        database={"url": db_url},
        reconcile={"unmatched": "forward"},
        forward={"destinations": [{"name": "pacs", "host": "127.0.0.1", "port": 9}]},
    )
    svc = create_context(settings)
    install_receive_hooks(svc)
    yield svc
    svc.close()


@pytest.fixture
def study(tmp_path: Path) -> list[Path]:
    return make_ct_study(tmp_path / "ct", 3, size=64)[1]


def _rows(service: ProcessContext) -> tuple[list[tuple[int, str, int]], list[str]]:
    """(instance pk, path, size) rows and the refs of forward jobs, from the database."""
    with service.db.read_session() as session:
        instances = [
            (pk, path, size)
            for pk, path, size in session.execute(
                select(Instance.id, Instance.path, Instance.size).order_by(Instance.id)
            )
        ]
        jobs = list(session.scalars(select(Job.ref).where(Job.kind == "forward")))
    return instances, jobs


def test_answer_waits_for_the_fsync_the_row_does_not(
    service: ProcessContext, study: list[Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    release = threading.Event()
    held: list[Path] = []
    real_fsync = instance_store._fsync_path

    def held_fsync(path: Path) -> None:
        if path.suffix == ".dcm":
            held.append(path)
            assert release.wait(30)
        real_fsync(path)

    monkeypatch.setattr(instance_store, "_fsync_path", held_fsync)
    results: list[ReceiveResult] = []
    receiving = threading.Thread(target=lambda: results.append(receive_file(service, study[0])))
    receiving.start()
    # The row commits while the file's fsync is held; the answer does not come.
    engine = create_engine(str(service.settings.database_url))
    try:
        for _ in range(300):
            with engine.connect() as conn:
                if conn.execute(text("SELECT count(*) FROM instances")).scalar_one():
                    break
            threading.Event().wait(0.05)
        else:
            pytest.fail("the index row never committed while the fsync was held")
    finally:
        engine.dispose()
    assert held and not results
    receiving.join(0.3)
    assert receiving.is_alive() and not results
    release.set()
    receiving.join(30)
    assert [r.outcome.name for r in results] == ["STORED"]


def test_failed_fsync_withdraws_row_jobs_and_file(
    service: ProcessContext, study: list[Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    assert receive_file(service, study[0]).outcome.name == "STORED"
    real_fsync = instance_store._fsync_path

    def failing_fsync(path: Path) -> None:
        if path.suffix == ".dcm":
            raise OSError(errno.EIO, os.strerror(errno.EIO))
        real_fsync(path)

    monkeypatch.setattr(instance_store, "_fsync_path", failing_fsync)
    result = receive_file(service, study[1])
    assert result.outcome.name == "OUT_OF_RESOURCES"
    assert "Input/output error" in result.reason
    instances, jobs = _rows(service)
    assert len(instances) == 1 and jobs == [str(instances[0][0])]
    files = sorted(p.name for p in service.store.instances_dir.rglob("*.dcm"))
    assert files == [Path(instances[0][1]).name]
    # The disk is back: the modality's re-send is stored.
    monkeypatch.setattr(instance_store, "_fsync_path", real_fsync)
    assert receive_file(service, study[1]).outcome.name == "STORED"
    assert len(_rows(service)[0]) == 2


def _power_cut(service: ProcessContext, relative: str, *, keep: int | None) -> None:
    """What a power cut can leave of a file whose row committed first: a short file, or
    none (the directory entry made durable, the data not)."""
    path = service.store.absolute(relative)
    if keep is None:
        path.unlink()
    else:
        os.truncate(path, keep)


def test_start_up_check_withdraws_rows_of_short_or_missing_files(
    service: ProcessContext, study: list[Path]
) -> None:
    assert [receive_file(service, p).outcome.name for p in study] == ["STORED"] * 3
    instances, _ = _rows(service)
    _power_cut(service, instances[1][1], keep=0)
    _power_cut(service, instances[2][1], keep=None)
    assert withdraw_broken_recent(service.receiver) == 2
    assert _rows(service) == ([instances[0]], [str(instances[0][0])])
    assert withdraw_broken_recent(service.receiver) == 0
    # The modality sends what it never saw acknowledged: stored, not duplicates.
    assert [receive_file(service, p).outcome.name for p in study[1:]] == ["STORED", "STORED"]
    after, jobs = _rows(service)
    assert [size for _, _, size in after] == [p.stat().st_size for p in study]
    assert all(service.store.intact(path, size) for _, path, size in after)
    assert sorted(jobs) == sorted(str(pk) for pk, _, _ in after)


def test_re_send_replaces_a_short_file_without_the_start_up_check(
    service: ProcessContext, study: list[Path]
) -> None:
    assert receive_file(service, study[0]).outcome.name == "STORED"
    (_, relative, size), *_ = _rows(service)[0]
    _power_cut(service, relative, keep=size // 2)
    assert receive_file(service, study[0]).outcome.name == "STORED"
    instances, jobs = _rows(service)
    assert [(path, size) for _, path, size in instances] == [(relative, size)]
    assert service.store.absolute(relative).read_bytes() == study[0].read_bytes()
    assert jobs == [str(instances[0][0])]
    # An intact copy: a re-send is a duplicate, as before.
    assert receive_file(service, study[0]).outcome.name == "DUPLICATE"


def test_purged_studies_files_are_gone_on_purpose(
    service: ProcessContext, study: list[Path]
) -> None:
    assert [receive_file(service, p).outcome.name for p in study] == ["STORED"] * 3
    instances, _ = _rows(service)
    study_uid = pydicom.dcmread(study[0], stop_before_pixels=True).StudyInstanceUID
    service.store.delete_study(study_uid)
    with service.db.write_session() as session:
        session.execute(update(Study).values(purged_at=Study.first_received_at))
    assert withdraw_broken_recent(service.receiver) == 0
    assert receive_file(service, study[0]).outcome.name == "DUPLICATE"
    assert _rows(service)[0] == instances


def test_start_up_check_runs_only_after_a_run_that_did_not_stop_cleanly(
    service: ProcessContext, study: list[Path]
) -> None:
    assert [receive_file(service, p).outcome.name for p in study] == ["STORED"] * 3
    instances, _ = _rows(service)
    mark_clean_stop = start_receiving(service.receiver)  # first run: nothing checked
    _power_cut(service, instances[2][1], keep=0)
    mark_clean_stop()
    start_receiving(service.receiver)  # after a clean stop: a changed file is left be
    assert _rows(service)[0] == instances
    start_receiving(service.receiver)  # the run before did not stop cleanly
    assert _rows(service)[0] == instances[:2]
