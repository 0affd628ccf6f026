"""Storage commitment rules on the database (SQLite and PostgreSQL), without processes:
when an instance counts as committed, the failure reasons at the deadline, request
parsing and where the report goes.
"""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest
from pydicom import Dataset
from pydicom.sequence import Sequence
from pydicom.uid import CTImageStorage, MRImageStorage
from sqlalchemy import select

from dicom_nodes.commitment import RequestError, parse_request, report_address
from dicom_nodes.config import DicomPeer
from gateway.core.database import Database
from gateway.core.models import Instance, Job, Patient, Series, Study, StudyForward, utcnow
from gateway.forwarding.commitment.models import CommitmentItem, CommitmentRequest
from gateway.forwarding.commitment.process import evaluate
from gateway.forwarding.commitment.record import Recorded, record_request

ROOT = "1.2.826.0.1.3680043.10.998"


def _study(session, n: int, state: str) -> int:
    now = utcnow()
    patient = Patient(patient_id=f"C{n}", issuer="", name="", updated_at=now)
    session.add(patient)
    session.flush()
    study = Study(
        study_uid=f"{ROOT}.{n}",
        patient_pk=patient.id,
        state=state,
        first_received_at=now,
        last_received_at=now,
    )
    session.add(study)
    session.flush()
    series = Series(series_uid=f"{ROOT}.{n}.1", study_pk=study.id, modality="CT")
    session.add(series)
    session.flush()
    return series.id


def _instance(session, series_pk: int, uid: str) -> int:
    row = Instance(
        sop_instance_uid=uid,
        series_pk=series_pk,
        sop_class_uid=CTImageStorage,
        transfer_syntax="1.2.840.10008.1.2.1",
        path=f"x/{uid}.dcm",
        size=1,
        received_at=utcnow(),
    )
    session.add(row)
    session.flush()
    return row.id


def _sent(session, instance_pk: int, dest: str, at: datetime, state: str = "DONE") -> None:
    session.add(
        Job(
            kind="forward",
            ref=str(instance_pk),
            destination=dest,
            state=state,
            attempts=1,
            next_attempt_at=at,
            last_error="",
            created_at=at,
            updated_at=at,
        )
    )


def _checked(session, series_pk: int, dest: str, state: str, at: datetime) -> None:
    study_pk = session.scalar(select(Series.study_pk).where(Series.id == series_pk))
    session.add(StudyForward(study_pk=study_pk, destination=dest, state=state, verified_at=at))


def test_committed_only_when_verified_everywhere_then_reasons_at_deadline(
    database: Database,
) -> None:
    t0 = utcnow() - timedelta(minutes=5)
    after = t0 + timedelta(minutes=1)
    uid = {k: f"{ROOT}.9.{i}" for i, k in enumerate("abcdefg", start=1)}
    with database.write_session() as s:
        one = _study(s, 1, "STABLE")  # two destinations: verified in one, sent to the other
        a = _instance(s, one, uid["a"])
        _sent(s, a, "pacs", t0)
        _sent(s, a, "archive", t0)
        _checked(s, one, "pacs", "VERIFIED", after)
        _checked(s, one, "archive", "SENT", after)
        two = _study(s, 2, "STABLE")  # verified before this instance was sent
        b = _instance(s, two, uid["b"])
        _sent(s, b, "pacs", after)
        _checked(s, two, "pacs", "VERIFIED", t0)
        three = _study(s, 3, "RECEIVING")  # routed nowhere, study still arriving
        _instance(s, three, uid["c"])
        four = _study(s, 4, "STABLE")  # routed nowhere, stable: the gateway's store
        _instance(s, four, uid["d"])
        five = _study(s, 5, "STABLE")  # forward job HELD or DEAD: never committed
        e = _instance(s, five, uid["e"])
        _sent(s, e, "pacs", t0, state="DEAD")
        _checked(s, five, "pacs", "VERIFIED", after)
        six = _study(s, 6, "STABLE")
        _instance(s, six, uid["f"])  # asked for as MR, stored as CT
    refs = [(CTImageStorage, uid[k]) for k in "abcdeg"] + [(MRImageStorage, uid["f"])]
    with database.write_session() as s:
        out = record_request(s, f"{ROOT}.100", "CTMOD", "127.0.0.1", refs + refs[:1], 60)
        assert out is Recorded.NEW
    with database.write_session() as s:
        assert record_request(s, f"{ROOT}.100", "CTMOD", "", refs, 60) is Recorded.REPEATED
        assert record_request(s, f"{ROOT}.100", "OTHER", "", refs, 60) is Recorded.CONFLICT
        jobs = list(s.scalars(select(Job.ref).where(Job.kind == "commitment")))
        assert jobs == [f"{ROOT}.100"]

    def states() -> dict[str, tuple[str, int | None]]:
        with database.write_session() as s:
            return {
                i.sop_instance_uid: (i.state, i.failure_reason)
                for i in s.scalars(select(CommitmentItem))
            }

    with database.write_session() as s:
        request = s.scalar(select(CommitmentRequest))
        assert request is not None and request.instances == 7
        assert evaluate(s, request, utcnow()) is False
    got = states()
    assert got[uid["a"]] == ("COMMITTED", None)
    assert got[uid["d"]] == ("COMMITTED", None)
    assert got[uid["f"]] == ("FAILED", 0x0119)
    for k in "bceg":
        assert got[uid[k]] == ("PENDING", None), k

    with database.write_session() as s:
        request = s.scalar(select(CommitmentRequest))
        assert request is not None
        assert evaluate(s, request, request.deadline_at) is True
        assert (request.state, request.event_type, request.result) == (
            "REPORTING",
            2,
            "FAILURES",
        )
        assert (request.committed, request.failed) == (2, 5)
    got = states()
    for k in "bce":
        assert got[uid[k]] == ("FAILED", 0x0110), k
    assert got[uid["g"]] == ("FAILED", 0x0112)


def _info(**attrs: object) -> Dataset:
    ds = Dataset()
    for key, value in attrs.items():
        setattr(ds, key, value)
    return ds


@pytest.mark.unit
def test_parse_request_statuses() -> None:
    item = _info(ReferencedSOPClassUID=CTImageStorage, ReferencedSOPInstanceUID=f"{ROOT}.1")
    ok = _info(TransactionUID=f"{ROOT}.2", ReferencedSOPSequence=Sequence([item]))
    assert parse_request(ok, 10) == (f"{ROOT}.2", [(CTImageStorage, f"{ROOT}.1")])
    cases = [
        (_info(ReferencedSOPSequence=Sequence([item])), 0x0120),
        (_info(TransactionUID="", ReferencedSOPSequence=Sequence([item])), 0x0121),
        (_info(TransactionUID="1.02", ReferencedSOPSequence=Sequence([item])), 0x0106),
        (_info(TransactionUID=f"{ROOT}.2"), 0x0120),
        (_info(TransactionUID=f"{ROOT}.2", ReferencedSOPSequence=Sequence([])), 0x0121),
        (_info(TransactionUID=f"{ROOT}.2", ReferencedSOPSequence=Sequence([_info()])), 0x0120),
    ]
    for ds, status in cases:
        with pytest.raises(RequestError) as err:
            parse_request(ds, 10)
        assert err.value.status == status
    with pytest.raises(RequestError) as err:
        parse_request(ok, 0)
    assert err.value.status == 0x0213


@pytest.mark.unit
def test_report_address() -> None:
    peers = [
        DicomPeer(ae_title="NOPORT", host="10.0.0.5"),
        DicomPeer(ae_title="CT1", host="10.0.0.0/24", port=104),
        DicomPeer(ae_title="CT2", host="ct2.local", port=105),
        DicomPeer(ae_title="CT3", port=106),
        DicomPeer(ae_title="CT4", host="10.0.1.0/24", port=107),
        DicomPeer(ae_title="CT4", host="10.0.2.9", port=108),
    ]
    assert report_address(peers, "NOPORT", "10.0.0.5") is None
    assert report_address(peers, "UNKNOWN", "10.0.0.5") is None
    assert report_address(peers, "CT1", "10.0.0.7") == ("10.0.0.7", 104)
    assert report_address(peers, "CT2", "10.0.0.7") == ("ct2.local", 105)
    assert report_address(peers, "CT3 ", "10.0.0.8") == ("10.0.0.8", 106)
    assert report_address(peers, "CT4", "10.0.2.9") == ("10.0.2.9", 108)
    assert report_address(peers, "CT4", "10.0.1.3") == ("10.0.1.3", 107)
