"""Orders over MLLP into a running gateway, then dcmtk ``findscu -W`` against its worklist.

Covers: several query keys, Vietnamese names intact (ISO_IR 192), cancel (CA), change
(XO), ADT^A08 renames, ADT^A40 merges (repeat idempotent, reverse merge AE), a repeated
MSH-10 answered with the same ACK, and a modality sending no station AE title.
"""

from __future__ import annotations

from datetime import date, timedelta
from pathlib import Path

import pytest

from dicom_nodes.identifiers import is_valid_uid
from tests.fixtures.orders.helpers import ack_code, adt, findscu, omi, orm, send_all
from tests.support.gateway_proc import GatewayProcess

pytestmark = pytest.mark.integration

TODAY = date.today().strftime("%Y%m%d")
TOMORROW = (date.today() + timedelta(days=1)).strftime("%Y%m%d")
SPS = "ScheduledProcedureStepSequence[0]."
STUDY_UID = "1.2.826.0.1.3680043.8.498.4242"


def _accessions(items: list) -> list[str]:
    return sorted(str(i.AccessionNumber) for i in items)


def test_orders_to_worklist_with_changes(gateway: GatewayProcess, tmp_path: Path) -> None:
    out = tmp_path / "rsp"
    msgs = [
        orm("M1", patient_id="P1", name="NGUYỄN^VĂN AN", placer="PL1", accession="A1",
            start=f"{TODAY}083000"),
        omi("M2", patient_id="P2", name="TRẦN^THỊ MAI", placer="PL2", accession="A2",
            start=f"{TODAY}090000", station="CT01", study_uid=STUDY_UID),
        orm("M3", patient_id="P3", name="LÊ^HOÀNG^MINH", placer="PL3", accession="A3",
            start=f"{TOMORROW}100000", modality="MR",
            procedure="18.0296.0066^Chụp cộng hưởng từ sọ não^BYT"),
        orm("M4", patient_id="P4", name="PHẠM^THU^HÀ", placer="PL4", accession="A4",
            start=f"{TODAY}110000"),
        orm("M5", patient_id="P5", name="ĐỖ^MINH^TUẤN", placer="PL5", accession="A5",
            start=f"{TODAY}120000"),
    ]  # fmt: skip
    acks = send_all(gateway.hl7_port, msgs)
    assert [ack_code(a) for a in acks] == ["AA"] * 5

    # Station AE + date: only the OMI step scheduled on CT01.
    items = findscu(
        gateway.dicom_port,
        out,
        {f"{SPS}ScheduledStationAETitle": "CT01", f"{SPS}ScheduledProcedureStepStartDate": TODAY},
    )
    assert _accessions(items) == ["A2"]
    item = items[0]
    assert item.SpecificCharacterSet == "ISO_IR 192"
    assert str(item.PatientName) == "TRẦN^THỊ MAI"
    assert item.StudyInstanceUID == STUDY_UID
    assert item.ScheduledProcedureStepSequence[0].ScheduledProcedureStepStatus == "SCHEDULED"

    # No station AE: FINDSCU is a CT in dicom.peers, so it gets today's CT steps, not the MR.
    items = findscu(gateway.dicom_port, out, {f"{SPS}ScheduledProcedureStepStartDate": TODAY})
    assert _accessions(items) == ["A1", "A2", "A4", "A5"]
    by_acc = {str(i.AccessionNumber): i for i in items}
    assert str(by_acc["A1"].PatientName) == "NGUYỄN^VĂN AN"
    assert str(by_acc["A5"].PatientName) == "ĐỖ^MINH^TUẤN"
    generated = {str(i.StudyInstanceUID) for a, i in by_acc.items() if a != "A2"}
    assert len(generated) == 3 and all(is_valid_uid(u) for u in generated)
    # ORM steps carry the station AEs of the peers of their modality.
    assert list(by_acc["A1"].ScheduledProcedureStepSequence[0].ScheduledStationAETitle) == [
        "FINDSCU",
        "MODALITY",
    ]

    # Wildcards on a Vietnamese name, a date range with modality, time range.
    items = findscu(gateway.dicom_port, out, {"PatientName": "NGUY*"})
    assert _accessions(items) == ["A1"]
    # A UTF-8 request with Vietnamese letters in the wildcard key.
    items = findscu(
        gateway.dicom_port, out, {"SpecificCharacterSet": "ISO_IR 192", "PatientName": "TRẦN^THỊ*"}
    )
    assert _accessions(items) == ["A2"]
    items = findscu(
        gateway.dicom_port,
        out,
        {f"{SPS}Modality": "MR", f"{SPS}ScheduledProcedureStepStartDate": f"{TODAY}-"},
    )
    assert _accessions(items) == ["A3"]
    assert str(items[0].PatientName) == "LÊ^HOÀNG^MINH"
    items = findscu(
        gateway.dicom_port,
        out,
        {
            f"{SPS}ScheduledProcedureStepStartDate": TODAY,
            f"{SPS}ScheduledProcedureStepStartTime": "085000-113000",
        },
    )
    assert _accessions(items) == ["A2", "A4"]

    # CA removes A4; XO moves A1 to 14:00; A08 renames P1.
    acks = send_all(
        gateway.hl7_port,
        [
            orm("M6", patient_id="P4", name="PHẠM^THU^HÀ", placer="PL4", accession="A4",
                start=f"{TODAY}110000", control="CA"),
            orm("M7", patient_id="P1", name="NGUYỄN^VĂN AN", placer="PL1", accession="A1",
                start=f"{TODAY}140000", control="XO"),
            adt("M8", "A08", patient_id="P1", name="NGUYỄN^VĂN BÌNH"),
        ],
    )  # fmt: skip
    assert [ack_code(a) for a in acks] == ["AA"] * 3
    items = findscu(gateway.dicom_port, out, {f"{SPS}ScheduledProcedureStepStartDate": TODAY})
    assert _accessions(items) == ["A1", "A2", "A5"]
    a1 = next(i for i in items if i.AccessionNumber == "A1")
    assert a1.ScheduledProcedureStepSequence[0].ScheduledProcedureStepStartTime == "140000"
    assert str(a1.PatientName) == "NGUYỄN^VĂN BÌNH"

    # A40: P5 merges into P1; a repeat is accepted and changes nothing; the reverse is AE.
    acks = send_all(
        gateway.hl7_port,
        [
            adt("M9", "A40", patient_id="P1", name="NGUYỄN^VĂN BÌNH", prior="P5"),
            adt("M10", "A40", patient_id="P1", name="NGUYỄN^VĂN BÌNH", prior="P5"),
            adt("M11", "A40", patient_id="P5", name="ĐỖ^MINH^TUẤN", prior="P1"),
        ],
    )
    assert [ack_code(a) for a in acks] == ["AA", "AA", "AE"]
    items = findscu(gateway.dicom_port, out, {"PatientID": "P1"})
    assert _accessions(items) == ["A1", "A5"]
    assert {str(i.PatientName) for i in items} == {"NGUYỄN^VĂN BÌNH"}
    assert findscu(gateway.dicom_port, out, {"PatientID": "P5"}) == []

    # The same MSH-10 again: the very same ACK, nothing processed twice.
    again = send_all(gateway.hl7_port, [msgs[0]])
    assert again == [acks_first := send_all(gateway.hl7_port, [msgs[0]])[0]]
    assert acks_first.split(b"\r")[1] == b"MSA|AA|M1"
    stored = gateway.get("/api/hl7/messages", control_id="M1")
    assert stored["total"] == 1 and stored["items"][0]["repeats"] == 2

    # A modality whose AE has no modality in dicom.peers gets every open step.
    items = findscu(gateway.dicom_port, out, {}, aet="STORESCU")
    assert _accessions(items) == ["A1", "A2", "A3", "A5"]
