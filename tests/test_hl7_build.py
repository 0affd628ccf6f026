"""Outbound builders: ORU^R01 viewer link, ORM^O01 status update, DFT^P03 charges."""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal

import pytest

from hl7.build import ChargeLine, Endpoints, build_dft_p03, build_orm_status, build_oru_r01
from hl7.model import OrderData, PatientData, PatientIdentifier, PersonName, VisitData
from hl7.parse import parse

pytestmark = pytest.mark.unit

EP = Endpoints("RISGATE", "BVDKTINH", "EMR", "BVDKTINH", version="2.5")
NOW = datetime(2024, 3, 15, 10, 0, 0)
PATIENT = PatientData(
    identifiers=(
        PatientIdentifier("BN000123", "BVDKTINH", "MR"),
        PatientIdentifier("079085001234", "BCA", "NI"),
    ),
    family_name="NGUYỄN",
    given_name="VĂN AN",
    birth_date=date(1985, 7, 4),
    sex="M",
)
ORDER = OrderData(
    order_control="NW",
    placer_order_number="PL0001",
    filler_order_number="FL0001",
    accession_number="ACC0001",
    requested_procedure_id="RP0001",
    procedure_code="18.0149.0040",
    procedure_text="CT sọ não không tiêm thuốc cản quang",
    procedure_coding_system="BYT",
    modality="CT",
)
UID = "1.2.826.0.1.3680043.8.498.12345"
URL = "https://pacs.bv.vn/viewer?StudyInstanceUIDs=" + UID + "&token=a^b|c~d\\e"


def test_oru_r01_round_trip() -> None:
    raw = build_oru_r01(
        EP, PATIENT, ORDER, study_instance_uid=UID, viewer_url=URL, control_id="OUT1", now=NOW
    )
    assert "NGUYỄN^VĂN AN".encode() in raw
    msg = parse(raw)
    assert (msg.message_type, msg.trigger_event, msg.message_structure) == ("ORU", "R01", "ORU_R01")
    assert msg.get("MSH-3") == "RISGATE" and msg.get("MSH-5") == "EMR"
    assert msg.get("MSH-18") == "UNICODE UTF-8" and msg.control_id == "OUT1"
    assert msg.get("PID-5-1") == "NGUYỄN" and msg.get("PID-5-2") == "VĂN AN"
    assert msg.get("PID-3(2)-5") == "NI" and msg.get("PID-7") == "19850704"
    assert (
        msg.get("ORC-1") == "RE" and msg.get("ORC-2") == "PL0001" and msg.get("ORC-3") == "FL0001"
    )
    assert msg.get("OBR-18") == "ACC0001" and msg.get("OBR-4-1") == "18.0149.0040"
    assert msg.get("OBR-4-2") == "CT sọ não không tiêm thuốc cản quang"
    assert msg.get("OBR-25") == "F"
    obx = msg.segments("OBX")
    assert [s.get(2) for s in obx] == ["RP", "ST"]
    assert obx[0].get(5, 1) == URL
    assert obx[1].get(5) == UID and obx[1].get(3) == "113014"


def test_url_separators_are_escaped_on_the_wire() -> None:
    raw = build_oru_r01(EP, PATIENT, ORDER, study_instance_uid=UID, viewer_url=URL, now=NOW)
    obx_line = next(line for line in raw.split(b"\r") if line.startswith(b"OBX|1|"))
    assert b"&token" not in obx_line
    assert b"\\T\\token=a\\S\\b\\F\\c\\R\\d\\E\\e" in obx_line


def test_oru_with_visit_and_v23() -> None:
    ep = Endpoints("RISGATE", version="2.3")
    visit = VisitData("O", "CDHA", "CDHA", PersonName("BS001", "TRẦN", "THỊ BÌNH"), "VN1")
    msg = parse(
        build_oru_r01(ep, PATIENT, ORDER, study_instance_uid=UID, viewer_url=URL, visit=visit)
    )
    assert msg.version == "2.3" and msg.message_structure == ""
    assert msg.get("PV1-7-2") == "TRẦN" and msg.get("PV1-19") == "VN1"


def test_orm_status_update() -> None:
    order = OrderData(
        order_control="NW", placer_order_number="PL9", accession_number="ACC9", modality="MR"
    )
    msg = parse(build_orm_status(EP, PATIENT, order, study_instance_uid=UID, now=NOW))
    assert (msg.message_type, msg.trigger_event) == ("ORM", "O01")
    assert msg.get("ORC-1") == "SC" and msg.get("ORC-5") == "CM"
    assert msg.get("ORC-2") == "PL9" and msg.get("OBR-18") == "ACC9"
    assert msg.get("ZDS-1") == UID


def test_orm_status_without_uid_has_no_zds() -> None:
    msg = parse(build_orm_status(EP, PATIENT, ORDER, order_status="IP", now=NOW))
    assert msg.get("ORC-5") == "IP" and msg.segments("ZDS") == []


def test_dft_p03_charges() -> None:
    lines = [
        ChargeLine("18.0149.0040", 1, Decimal("550100"), "CT sọ não", "BYT", "T1"),
        ChargeLine("VT.FILM.3543", 2, 30000, "Phim khô 35x43"),
    ]
    msg = parse(build_dft_p03(EP, PATIENT, lines, order=ORDER, now=NOW))
    assert (msg.message_type, msg.trigger_event) == ("DFT", "P03")
    assert msg.get("EVN-1") == "P03"
    ft1 = msg.segments("FT1")
    assert len(ft1) == 2
    assert ft1[0].get(7, 1) == "18.0149.0040" and ft1[0].get(7, 2) == "CT sọ não"
    assert ft1[0].get(6) == "CG" and ft1[0].get(10) == "1"
    assert ft1[0].get(11, 1, 1) == "550100" and ft1[0].get(11, 1, 2) == "VND"
    assert ft1[1].get(10) == "2" and ft1[1].get(11, 1, 1) == "60000"
    assert ft1[1].get(12, 1, 1) == "30000"
    assert ft1[0].get(23) == "FL0001"


def test_charge_line_amount() -> None:
    assert ChargeLine("X", 3, Decimal("1.5")).amount == Decimal("4.5")
    assert ChargeLine("X", 3).amount is None
