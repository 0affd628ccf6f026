"""MPPS through pynetdicom's SCU against a running gateway: state rules and effects.

IN PROGRESS starts the scheduled step; COMPLETED ends it (off the worklist) and makes
the received study STABLE at once, long before the idle timeout; illegal transitions get
the PS3.4 statuses.
"""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pytest
from pydicom import Dataset
from pydicom.sequence import Sequence
from pydicom.uid import generate_uid
from pynetdicom import AE
from pynetdicom.sop_class import ModalityPerformedProcedureStep  # type: ignore[attr-defined]

from tests.fixtures.orders.helpers import ack_code, findscu, omi, send_all
from tests.support.ctgen import make_ct_study
from tests.support.dcmtk import storescu

pytestmark = pytest.mark.integration

TODAY = date.today().strftime("%Y%m%d")
SPS = "ScheduledProcedureStepSequence[0]."


def _create_attrs(study_uid: str, status: str = "IN PROGRESS") -> Dataset:
    ds = Dataset()
    ds.SpecificCharacterSet = "ISO_IR 192"
    item = Dataset()
    item.StudyInstanceUID = study_uid
    item.AccessionNumber = "MP1"
    item.ScheduledProcedureStepID = "SMPL1"
    item.RequestedProcedureID = "RPMPL1"
    ds.ScheduledStepAttributesSequence = Sequence([item])
    ds.PatientName = "VÕ^THỊ^HỒNG"
    ds.PatientID = "MP1"
    ds.PerformedStationAETitle = "MODALITY"
    ds.PerformedProcedureStepStartDate = TODAY
    ds.PerformedProcedureStepStartTime = "100000"
    ds.PerformedProcedureStepStatus = status
    ds.PerformedProcedureStepID = "PPS1"
    ds.Modality = "CT"
    ds.PerformedSeriesSequence = Sequence([])
    return ds


def _set_status(status: str) -> Dataset:
    ds = Dataset()
    ds.PerformedProcedureStepStatus = status
    ds.PerformedProcedureStepEndDate = TODAY
    ds.PerformedProcedureStepEndTime = "101500"
    return ds


def test_mpps_states_and_study_completion(gateway_factory: type, tmp_path: Path) -> None:
    gw = gateway_factory.make({"studies": {"stable_after_s": 3600}})
    gw.start()
    study_uid = generate_uid()
    acks = send_all(
        gw.hl7_port,
        [
            omi("MP-1", patient_id="MP1", name="VÕ^THỊ^HỒNG", placer="MPL1", accession="MP1",
                start=f"{TODAY}100000", station="MODALITY", study_uid=study_uid),
        ],
    )  # fmt: skip
    assert [ack_code(a) for a in acks] == ["AA"]
    _, files = make_ct_study(
        tmp_path / "ct", 2, size=32, patient_id="MP1", accession="MP1", study_uid=study_uid
    )
    assert storescu(gw.dicom_port, files).returncode == 0
    assert gw.get(f"/api/studies/{study_uid}")["state"] == "RECEIVING"

    ae = AE("MODALITY")
    ae.add_requested_context(ModalityPerformedProcedureStep)
    assoc = ae.associate("127.0.0.1", gw.dicom_port, ae_title="RISGATE")
    assert assoc.is_established
    try:
        mpps_uid = generate_uid()
        status, _ = assoc.send_n_create(
            _create_attrs(study_uid), ModalityPerformedProcedureStep, mpps_uid
        )
        assert status.Status == 0x0000
        items = findscu(gw.dicom_port, tmp_path / "rsp", {"AccessionNumber": "MP1"})
        assert [
            i.ScheduledProcedureStepSequence[0].ScheduledProcedureStepStatus for i in items
        ] == ["STARTED"]
        # The same instance again, and a creation that is not IN PROGRESS, are refused.
        status, _ = assoc.send_n_create(
            _create_attrs(study_uid), ModalityPerformedProcedureStep, mpps_uid
        )
        assert status.Status == 0x0111
        status, _ = assoc.send_n_create(
            _create_attrs(study_uid, "COMPLETED"), ModalityPerformedProcedureStep, generate_uid()
        )
        assert status.Status == 0x0106
        status, _ = assoc.send_n_set(
            _set_status("COMPLETED"), ModalityPerformedProcedureStep, generate_uid()
        )
        assert status.Status == 0x0112

        status, _ = assoc.send_n_set(
            _set_status("COMPLETED"), ModalityPerformedProcedureStep, mpps_uid
        )
        assert status.Status == 0x0000
        # COMPLETED: the study is stable now, not after the hour-long idle timeout.
        assert gw.get(f"/api/studies/{study_uid}")["state"] == "STABLE"
        assert findscu(gw.dicom_port, tmp_path / "rsp", {"AccessionNumber": "MP1"}) == []
        order = gw.get("/api/orders/MP1")
        assert order["status"] == "COMPLETED"
        assert [h["source"] for h in order["history"]][-2:] == ["MPPS", "MPPS"]

        # No update after COMPLETED: 0x0110 with error id 0xA710.
        status, _ = assoc.send_n_set(
            _set_status("DISCONTINUED"), ModalityPerformedProcedureStep, mpps_uid
        )
        assert status.Status == 0x0110
        assert status.ErrorID == 0xA710
    finally:
        assoc.release()
