"""The correction's bookkeeping, in process on SQLite and PostgreSQL: retention keeps the
local copy of a study whose correction is pending; a purged study is corrected in the
PACS only (its jobs are not held for copies that are gone); a crash between deleting a
PACS object and storing its corrected copy loses nothing; an Orthanc that overwrites
replaces it in one step (real Orthanc, ``OverwriteInstances`` off and on)."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import cast

import pytest
from pydicom.uid import generate_uid
from sqlalchemy import select

from gateway.core.context import ProcessContext
from gateway.core.database import Database
from gateway.core.instance_store import InstanceStore
from gateway.core.models import (
    ForwardState,
    Instance,
    Job,
    JobState,
    Patient,
    Series,
    Study,
    StudyForward,
    utcnow,
)
from gateway.core.settings import Settings
from gateway.forwarding.pacs_client import OrthancClient, PacsError
from gateway.forwarding.verify import purge_verified
from gateway.operations.local_orthanc import LocalOrthanc
from gateway.reconciliation import pacs_correct
from gateway.reconciliation.coerce import CoercionPlan
from gateway.reconciliation.reconcile import CORRECTION, reprocess
from tests.support.ctgen import make_ct_study
from tests.support.pacs_objects import encoded, key_object_selection, text_report

pytestmark = pytest.mark.integration


class _Svc:
    def __init__(self, db: Database, settings: Settings, store: InstanceStore) -> None:
        self.db = db
        self.settings = settings
        self.store = store


def _verified_study(db: Database, store: InstanceStore, tmp_path: Path) -> tuple[int, str]:
    """A stable study, forwarded and verified two days ago, with its local copy."""
    study_uid, [ct] = make_ct_study(tmp_path / "ct", 1, size=16)
    series_uid, sop_uid = generate_uid(), generate_uid()
    relative = store.relative_path(study_uid, series_uid, sop_uid)
    store.absolute(relative).parent.mkdir(parents=True)
    ct.rename(store.absolute(relative))
    old = utcnow() - timedelta(days=2)
    with db.write_session() as session:
        patient = Patient(patient_id=study_uid[-16:], updated_at=old)
        session.add(patient)
        session.flush()
        study = Study(study_uid=study_uid, patient_pk=patient.id, state="STABLE",
                      first_received_at=old, last_received_at=old, stable_at=old)  # fmt: skip
        session.add(study)
        session.flush()
        series = Series(series_uid=series_uid, study_pk=study.id)
        session.add(series)
        session.flush()
        instance = Instance(sop_instance_uid=sop_uid, series_pk=series.id, sop_class_uid="1.2",
                            transfer_syntax="1.2.840.10008.1.2.1", path=relative, size=1,
                            received_at=old)  # fmt: skip
        session.add(instance)
        session.flush()
        session.add(Job(kind="forward", ref=str(instance.id), destination="pacs",
                        state=JobState.DONE, next_attempt_at=old, created_at=old,
                        updated_at=old))  # fmt: skip
        session.add(StudyForward(study_pk=study.id, destination="pacs",
                                 state=ForwardState.VERIFIED, expected=1, found=1,
                                 checked_at=old, verified_at=old))  # fmt: skip
        return study.id, study_uid


def _service(database: Database, tmp_path: Path) -> tuple[ProcessContext, InstanceStore]:
    settings = Settings(data_dir=tmp_path, forward={"retention_hours": 1})
    store = InstanceStore(tmp_path / "store", fsync=False)
    return cast(ProcessContext, _Svc(database, settings, store)), store


def _states(db: Database, kind: str) -> list[str]:
    with db.session_factory() as session:
        return list(session.scalars(select(Job.state).where(Job.kind == kind)))


def test_retention_keeps_a_study_whose_correction_is_pending(
    database: Database, tmp_path: Path
) -> None:
    service, store = _service(database, tmp_path)
    pending_pk, pending_uid = _verified_study(database, store, tmp_path / "a")
    _, other_uid = _verified_study(database, store, tmp_path / "b")
    with database.write_session() as session:
        reprocess(session, pending_pk, pending_uid)
    assert _states(database, "forward").count(JobState.HELD) == 1
    assert _states(database, CORRECTION) == [JobState.PENDING]

    assert purge_verified(service) == 1  # only the study not being corrected
    assert (store.instances_dir / pending_uid).is_dir()
    assert not (store.instances_dir / other_uid).exists()
    with database.session_factory() as session:
        purged = dict(session.execute(select(Study.study_uid, Study.purged_at)).all())
    assert purged[pending_uid] is None and purged[other_uid] is not None


def test_a_purged_study_is_corrected_in_the_pacs_only(database: Database, tmp_path: Path) -> None:
    service, store = _service(database, tmp_path)
    study_pk, study_uid = _verified_study(database, store, tmp_path)
    assert purge_verified(service) == 1
    with database.write_session() as session:
        reprocess(session, study_pk, study_uid)
    assert _states(database, "forward") == [JobState.DONE]  # nothing local to send again
    assert _states(database, CORRECTION) == [JobState.PENDING]


class _KilledAfterDelete(OrthancClient):
    """A client whose process dies right after deleting the instance it replaces."""

    def delete_instance(self, instance_id: str) -> None:
        super().delete_instance(instance_id)
        raise PacsError("killed")


def test_crash_between_delete_and_store_loses_nothing(pacs: LocalOrthanc, tmp_path: Path) -> None:
    _, files = make_ct_study(tmp_path / "ct", 1, size=16, patient_id="BN1")
    report = text_report(files, "Bình thường.")
    cfg = pacs.config
    client = OrthancClient(cfg.url, cfg.username, cfg.password, 30)
    try:
        orthanc_id, status = client.store(encoded(report))
        assert status == "Success"
        plan = CoercionPlan(values={"PatientID": "BN1", "PatientName": "LÊ^VĂN^AN"})
        staging = tmp_path / "staging"
        killed = _KilledAfterDelete(cfg.url, cfg.username, cfg.password, 30)
        with pytest.raises(PacsError, match="killed"):
            pacs_correct.correct(killed, orthanc_id, plan, staging)
        killed.close()
        assert client.study_instances(str(report.StudyInstanceUID)) == []  # deleted, not stored
        [staged] = pacs_correct.leftovers(staging)

        pacs_correct.store_staged(client, staged)  # the next attempt
        assert client.study_instances(str(report.StudyInstanceUID)) == [
            (orthanc_id, str(report.SOPInstanceUID))
        ]
        assert pacs_correct.leftovers(staging) == []
        assert not pacs_correct.correct(client, orthanc_id, plan, staging)  # already corrected
    finally:
        client.close()
    with pacs.client() as c:
        tags = c.get(f"/instances/{orthanc_id}/tags", params={"simplify": ""}).json()
    assert tags["PatientName"] == "LÊ^VĂN^AN"
    assert tags["OriginalAttributesSequence"][0]["ModifiedAttributesSequence"][0][
        "PatientName"
    ] == str(report.PatientName)


def test_same_patient_id_replaced_when_orthanc_overwrites(
    orthanc: LocalOrthanc, tmp_path: Path
) -> None:
    """With ``OverwriteInstances`` on, Orthanc replaces the instance itself (``Success``)."""
    _, files = make_ct_study(tmp_path / "ct", 1, size=16, patient_id="BN2")
    key_images = key_object_selection(files)
    cfg = orthanc.config
    client = OrthancClient(cfg.url, cfg.username, cfg.password, 30)
    try:
        orthanc_id, _ = client.store(encoded(key_images))
        plan = CoercionPlan(values={"PatientID": "BN2", "AccessionNumber": "ACC2"})
        assert pacs_correct.correct(client, orthanc_id, plan, tmp_path / "staging")
        assert client.study_instances(str(key_images.StudyInstanceUID)) == [
            (orthanc_id, str(key_images.SOPInstanceUID))
        ]
        assert pacs_correct.leftovers(tmp_path / "staging") == []
    finally:
        client.close()
    with orthanc.client() as c:
        tags = c.get(f"/instances/{orthanc_id}/tags", params={"simplify": ""}).json()
    assert tags["AccessionNumber"] == "ACC2"
    assert tags["OriginalAttributesSequence"][0]["ModifiedAttributesSequence"][0][
        "AccessionNumber"
    ] == str(key_images.AccessionNumber)
