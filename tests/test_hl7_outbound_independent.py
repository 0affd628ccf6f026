"""Every outbound HL7 message, read by an independent parser (hl7apy), not the project's own.

The gateway sends ORU^R01 (study available, viewer link; ``gateway/results/notify.py``), ORM^O01
status updates (``notify.send_orm_status``) and ACKs; ``hl7/build.py`` also builds DFT^P03
charges. Each is parsed by hl7apy against its HL7 v2 model (STRICT where hl7apy's model
allows, see ``tests/support/hl7_independent.py``) and checked field by field: MSH-9, MSH-12,
MSH-18, the order and result segments, the viewer link in OBX-5 with its separators
escaped, Vietnamese names in UTF-8. The EMR peer of the integration tests
(``tests/support/emr.py``) reads what a running gateway sends the same way.
"""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal

import pytest
from hl7apy.consts import VALIDATION_LEVEL
from hl7apy.exceptions import ValidationError
from hl7apy.parser import parse_message
from hypothesis import given, settings
from hypothesis import strategies as st

from hl7.ack import build_ack
from hl7.build import ChargeLine, Endpoints, build_dft_p03, build_orm_status, build_oru_r01
from hl7.errors import HL7Error
from hl7.model import OrderData, PatientData, PatientIdentifier, PersonName, VisitData
from tests.support.hl7_independent import components, read, segments, strict, value

pytestmark = pytest.mark.unit

EP = Endpoints("RISGATE", "BVDKTINH", "EMR", "BVDKTINH", version="2.5")
NOW = datetime(2026, 12, 3, 10, 15, 0)
PATIENT = PatientData(
    identifiers=(
        PatientIdentifier("BN000123", "BVDKTINH", "MR"),
        PatientIdentifier("079085001234", "BCA", "NI"),
    ),
    family_name="NGUYỄN",
    given_name="VĂN AN",
    middle_name="ĐỨC",
    birth_date=date(1985, 7, 4),
    sex="M",
)
ORDER = OrderData(
    order_control="RE",
    order_status="CM",
    placer_order_number="PL0001",
    filler_order_number="FL0001",
    accession_number="ACC0001",
    requested_procedure_id="RP0001",
    procedure_code="18.0149.0040",
    procedure_text="CT sọ não & cột sống | có/không tiêm ^ thuốc cản quang",
    procedure_coding_system="BYT",
    modality="CT",
)
VISIT = VisitData("O", "CĐHA", "Chẩn đoán hình ảnh", PersonName("BS001", "TRẦN", "THỊ BÌNH"), "VN1")
UID = "1.2.826.0.1.3680043.8.498.12345"
URL = "https://pacs.bv.vn/viewer?StudyInstanceUIDs=" + UID + "&token=a^b|c~d\\e"
VIETNAMESE = "ĂÂĐÊÔƠƯăâđêôơưÀÁẢÃẠẰẮẲẴẶẦẤẨẪẬÈÉẺẼẸỀẾỂỄỆÌÍỈĨỊÒÓỎÕỌỒỐỔỖỘỜỚỞỠỢÙÚỦŨỤỪỨỬỮỰỲÝỶỸỴ"


def oru(**kwargs: object) -> bytes:
    args: dict = {
        "study_instance_uid": UID,
        "viewer_url": URL,
        "visit": VISIT,
        "control_id": "OUT1",
        "now": NOW,
    }
    args.update(kwargs)
    endpoints = args.pop("endpoints", EP)
    return build_oru_r01(endpoints, PATIENT, ORDER, **args)


def test_oru_r01_is_a_valid_v25_oru_with_the_viewer_link() -> None:
    raw = oru()
    assert strict(raw)
    msg = read(raw)  # STRICT: segments, groups, cardinality, required fields
    assert msg.name == "ORU_R01"
    msh = msg.msh
    assert value(msh.msh_9) == "ORU^R01^ORU_R01"
    assert value(msh.msh_12) == "2.5" and value(msh.msh_18) == "UNICODE UTF-8"
    assert value(msh.msh_10) == "OUT1" and value(msh.msh_11) == "P"
    assert (value(msh.msh_3), value(msh.msh_4)) == ("RISGATE", "BVDKTINH")
    assert (value(msh.msh_5), value(msh.msh_6)) == ("EMR", "BVDKTINH")
    assert value(msh.msh_7) == "20261203101500"

    result = msg.oru_r01_patient_result
    pid = result.oru_r01_patient.pid
    assert value(pid.pid_5) == "NGUYỄN^VĂN AN^ĐỨC"
    assert [value(r) for r in pid.pid_3] == ["BN000123^^^BVDKTINH^MR", "079085001234^^^BCA^NI"]
    assert value(pid.pid_7) == "19850704" and value(pid.pid_8) == "M"
    pv1 = result.oru_r01_patient.oru_r01_visit.pv1
    assert value(pv1.pv1_2) == "O" and value(pv1.pv1_3) == "CĐHA"
    assert value(pv1.pv1_7) == "BS001^TRẦN^THỊ BÌNH" and value(pv1.pv1_10) == "Chẩn đoán hình ảnh"
    assert value(pv1.pv1_19) == "VN1"

    order = result.oru_r01_order_observation
    assert value(order.orc.orc_1) == "RE" and value(order.orc.orc_5) == "CM"
    assert (value(order.orc.orc_2), value(order.orc.orc_3)) == ("PL0001", "FL0001")
    obr = order.obr
    assert value(obr.obr_2) == "PL0001" and value(obr.obr_3) == "FL0001"
    assert [value(c) for c in obr.obr_4.children] == [
        "18.0149.0040",
        ORDER.procedure_text,
        "BYT",
    ]
    assert value(obr.obr_18) == "ACC0001" and value(obr.obr_19) == "RP0001"
    assert value(obr.obr_24) == "CT" and value(obr.obr_25) == "F"

    link, uid = (group.obx for group in order.oru_r01_observation)
    assert (value(link.obx_1), value(link.obx_2)) == ("1", "RP")
    assert value(link.obx_3) == "VIEWER^Image viewer link^L"
    assert components(link.obx_5) == [URL, "RISGATE", "TEXT", "HTML"]
    assert value(link.obx_11) == "F"
    assert (value(uid.obx_1), value(uid.obx_2)) == ("2", "ST")
    assert value(uid.obx_3) == "113014^Study Instance UID^DCM"
    assert value(uid.obx_5) == UID and value(uid.obx_11) == "F"


def test_separators_in_the_link_are_escaped_on_the_wire() -> None:
    """hl7apy reads OBX-5 as four components only because the URL's ``& ^ | ~ \\`` are
    escaped; the wire form is the one the standard gives (section 2.7)."""
    link = segments(oru(), "OBX")[0]
    assert link.obx_5.to_er7().split("^")[0].endswith("\\T\\token=a\\S\\b\\F\\c\\R\\d\\E\\e")


@pytest.mark.parametrize("version", ["2.3", "2.3.1", "2.4", "2.5", "2.5.1"])
def test_oru_r01_in_every_version_notify_may_send(version: str) -> None:
    raw = oru(endpoints=Endpoints("RISGATE", receiving_application="EMR", version=version))
    msg = read(raw)
    assert strict(raw) == (version not in ("2.3", "2.3.1"))
    assert value(msg.msh.msh_12) == version
    # MSH-9-3 (message structure) exists from v2.3.1 on
    expected_type = "ORU^R01" if version == "2.3" else "ORU^R01^ORU_R01"
    assert value(msg.msh.msh_9) == expected_type
    link, uid = segments(raw, "OBX")
    assert components(link.obx_5)[0] == URL and value(uid.obx_5) == UID
    assert value(segments(raw, "PID")[0].pid_5) == "NGUYỄN^VĂN AN^ĐỨC"


def test_orm_o01_status_update() -> None:
    raw = build_orm_status(EP, PATIENT, ORDER, study_instance_uid=UID, visit=VISIT, now=NOW)
    assert not strict(raw)
    msg = read(raw)  # TOLERANT (crs4/hl7apy#151), groups still found
    assert value(msg.msh.msh_9) == "ORM^O01^ORM_O01" and value(msg.msh.msh_18) == "UNICODE UTF-8"
    assert value(msg.orm_o01_patient.pid.pid_5) == "NGUYỄN^VĂN AN^ĐỨC"
    assert value(msg.orm_o01_patient.orm_o01_patient_visit.pv1.pv1_19) == "VN1"
    order = msg.orm_o01_order
    assert value(order.orc.orc_1) == "SC" and value(order.orc.orc_5) == "CM"
    assert value(order.orc.orc_2) == "PL0001" and value(order.orc.orc_9) == "20261203101500"
    (detail,) = order.orm_o01_order_detail.children
    obr = detail.obr
    assert value(obr.obr_4.children[1]) == ORDER.procedure_text
    assert value(obr.obr_18) == "ACC0001" and value(obr.obr_24) == "CT"
    (zds,) = segments(raw, "ZDS")
    assert value(zds.children[0]) == f"{UID}^100^Application^DICOM"


def test_orm_o01_strict_is_refused_only_for_hl7apy_s_choice_group() -> None:
    """The reason the ORM is read TOLERANT: hl7apy wants an RQD that the standard makes
    one choice among OBR/RQD/RQ1/RXO/ODS/ODT. If hl7apy is fixed, this fails: go STRICT."""
    raw = build_orm_status(EP, PATIENT, ORDER, order_status="IP", now=NOW)
    msg = parse_message(raw.decode(), validation_level=VALIDATION_LEVEL.STRICT, find_groups=True)
    with pytest.raises(ValidationError, match="RQD"):
        msg.validate()
    assert segments(raw, "ZDS") == []  # no UID known: no ZDS
    assert value(segments(raw, "ORC")[0].orc_5) == "IP"


def test_dft_p03_charges() -> None:
    lines = [
        ChargeLine("18.0149.0040", 1, Decimal("550100"), "CT sọ não", "BYT", "T1"),
        ChargeLine("VT.FILM.3543", 2, 30000, "Phim khô 35x43"),
    ]
    raw = build_dft_p03(EP, PATIENT, lines, order=ORDER, visit=VISIT, now=NOW)
    msg = read(raw)
    assert msg.name == "DFT_P03" and value(msg.msh.msh_9) == "DFT^P03^DFT_P03"
    assert value(msg.evn.evn_1) == "P03"
    first, second = segments(raw, "FT1")
    assert value(first.ft1_7) == "18.0149.0040^CT sọ não^BYT" and value(first.ft1_6) == "CG"
    assert value(first.ft1_10) == "1" and value(first.ft1_11) == "550100&VND"
    assert value(second.ft1_10) == "2" and value(second.ft1_11) == "60000&VND"
    assert value(second.ft1_12) == "30000&VND"
    assert value(first.ft1_23) == "FL0001"


@pytest.mark.parametrize("code", ["AA", "AE", "AR"])
def test_acks_answering_an_order(code: str) -> None:
    order = (
        "MSH|^~\\&|HIS|BV|RISGATE|BV|20261203080000||ORM^O01^ORM_O01|C77|P|2.5||||||UNICODE UTF-8"
        "\rPID|1||BN1^^^BV^MR||LÊ^THỊ^HỒNG\r"
    ).encode()
    error = None if code == "AA" else HL7Error(code, "PID-3 không hợp lệ", "PID", 3)  # type: ignore[arg-type]
    raw = build_ack(order, code, error)  # type: ignore[arg-type]
    msg = read(raw)  # STRICT
    assert msg.name == "ACK" and value(msg.msh.msh_9) == "ACK^O01^ACK"
    assert value(msg.msh.msh_18) == "UNICODE UTF-8"
    assert (value(msg.msh.msh_3), value(msg.msh.msh_5)) == ("RISGATE", "HIS")
    assert value(msg.msa.msa_1) == code and value(msg.msa.msa_2) == "C77"
    errs = segments(raw, "ERR")
    if code == "AA":
        assert errs == []
    else:
        assert value(errs[0].err_2) == "PID^1^3" and value(errs[0].err_4) == "E"
        assert value(errs[0].err_8) == "PID-3 không hợp lệ"


NAME = st.text(
    alphabet=VIETNAMESE + "abcdefghijklmnopqrstuvwxyz '-.&^|~\\", min_size=1, max_size=30
)


@settings(max_examples=25, deadline=None)
@given(family=NAME, procedure=NAME, url=st.text(alphabet="abc:/?=&^|~\\%#", min_size=1))
def test_any_text_reaches_hl7apy_unchanged(family: str, procedure: str, url: str) -> None:
    """Vietnamese letters and every separator, in names, procedure text and the link."""
    patient = PatientData(identifiers=PATIENT.identifiers, family_name=family, given_name="AN")
    order = OrderData(order_control="RE", accession_number="A1", procedure_code="P1",
                      procedure_text=procedure)  # fmt: skip
    raw = build_oru_r01(EP, patient, order, study_instance_uid=UID, viewer_url=url, now=NOW)
    msg = read(raw)
    result = msg.oru_r01_patient_result
    assert value(result.oru_r01_patient.pid.pid_5.children[0]) == family
    assert value(result.oru_r01_order_observation.obr.obr_4.children[1]) == procedure
    link = result.oru_r01_order_observation.oru_r01_observation[0].obx
    assert components(link.obx_5)[0] == url
