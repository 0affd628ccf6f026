"""Mapping of every sample message, and AE/AR with the right field for broken ones."""

from __future__ import annotations

from datetime import date, datetime, timedelta, timezone
from pathlib import Path

import pytest

from hl7.errors import HL7Error
from hl7.inbound import receive
from hl7.interpret import interpret
from hl7.model import (
    IdentifierChange,
    OrderMessage,
    PatientIdentifier,
    PatientMerge,
    PatientUpdate,
)
from hl7.parse import parse

pytestmark = pytest.mark.unit

FIXTURES = Path(__file__).parent / "fixtures" / "hl7"


def load(name: str) -> bytes:
    return (FIXTURES / name).read_bytes()


def order_msg(name: str) -> OrderMessage:
    result = interpret(parse(load(name)))
    assert isinstance(result, OrderMessage)
    return result


def test_orm_o01_v23() -> None:
    res = order_msg("orm_o01_v23.hl7")
    assert res.header.control_id == "MSG0001" and res.header.version == "2.3"
    assert res.header.timestamp == datetime(2024, 3, 15, 8, 0)
    pat = res.patient
    assert pat.identifiers == (
        PatientIdentifier("BN000123", "BVDKTINH", "MR"),
        PatientIdentifier("079085001234", "BCA", "NI"),
        PatientIdentifier("DN4790123456789", "BHXH", "HC"),
    )
    assert pat.patient_id.id == "BN000123"
    assert pat.identifier("NI", "CCCD") == PatientIdentifier("079085001234", "BCA", "NI")
    assert (pat.family_name, pat.given_name, pat.middle_name) == ("NGUYỄN", "VĂN AN", "")
    assert pat.birth_date == date(1985, 7, 4) and pat.sex == "M"
    assert pat.address == "123 Lê Lợi, Phường Bến Thành, Hồ Chí Minh, 700000, VN"
    assert res.visit is not None
    assert (res.visit.patient_class, res.visit.location, res.visit.department) == (
        "O",
        "CDHA",
        "CDHA",
    )
    assert res.visit.attending_doctor is not None
    assert res.visit.attending_doctor.family == "TRẦN"
    assert res.visit.visit_number == "VN2024000123"
    (order,) = res.orders
    assert order.order_control == "NW" and order.order_status == "SC"
    assert order.status_key == "NW_SC" and order.step_status == "SCHEDULED"
    assert (order.placer_order_number, order.filler_order_number) == ("PL0001", "FL0001")
    assert (order.accession_number, order.requested_procedure_id) == ("ACC0001", "RP0001")
    assert order.procedure_code == "18.0149.0040"
    assert order.procedure_text == "CT sọ não không tiêm thuốc cản quang"
    assert order.procedure_coding_system == "BYT"
    assert order.modality == "CT"
    assert order.scheduled_start == datetime(2024, 3, 15, 8, 30)
    assert order.scheduled_step_id == "SPS0001"
    assert order.priority == "ROUTINE"
    assert order.reason == "Đau đầu kéo dài"
    assert order.requesting_physician is not None and order.requesting_physician.id == "BS001"
    assert order.study_instance_uid == ""


def test_orm_o01_v25_two_orders_with_tq1() -> None:
    res = order_msg("orm_o01_v25.hl7")
    assert [i.type_code for i in res.patient.identifiers] == ["MR", "CCCD", "BHYT"]
    assert res.patient.identifier("BHYT") == PatientIdentifier("GD4010123456789", "BHXH", "BHYT")
    assert len(res.orders) == 2
    first, second = res.orders
    assert first.accession_number == "ACC0002" and first.modality == "DX"
    assert first.scheduled_start == datetime(2024, 3, 16, 10, 0)
    assert first.priority == "STAT"
    assert second.accession_number == "ACC0003"
    assert second.modality == "US"  # derived from "Siêu âm"
    assert second.scheduled_start == datetime(
        2024, 3, 16, 10, 30, tzinfo=timezone(timedelta(hours=7))
    )
    assert res.visit is not None and res.visit.department == "NOI"


def test_omi_o23_ipc_steps() -> None:
    res = order_msg("omi_o23_v251.hl7")
    assert [o.scheduled_step_id for o in res.orders] == ["SPS0004A", "SPS0004B"]
    a, b = res.orders
    assert a.accession_number == "ACC0004" and a.requested_procedure_id == "RP0004"
    assert a.study_instance_uid == "1.2.840.113619.2.55.3.4.1"
    assert a.modality == "CT"
    assert (a.protocol_code, a.protocol_text, a.protocol_coding_system) == (
        "CTABD",
        "CT bụng không thuốc",
        "99BV",
    )
    assert a.scheduled_station_ae == "CT01\\CT01B" and b.scheduled_station_ae == "CT01"
    assert a.scheduled_station_name == "CT_PHONG1" and a.scheduled_location == "PHONG1"
    assert a.scheduled_start == datetime(2024, 3, 17, 14, 15)
    assert a.priority == "HIGH"
    assert a.reason == "Đau bụng"
    assert b.protocol_code == "CTABDC"
    assert a.procedure_code == b.procedure_code == "18.0220.0041"


def test_omg_o19_with_zds() -> None:
    res = order_msg("omg_o19_v251.hl7")
    (order,) = res.orders
    assert order.study_instance_uid == "1.2.826.0.1.3680043.8.498.1"
    assert order.scheduled_start == datetime(2024, 3, 18, 9, 0)  # ORC-7.4
    assert order.modality == "MR"  # derived from "cộng hưởng từ"
    assert res.patient.birth_date == date(1975, 1, 1)
    assert res.visit is None


def test_cancel_without_obr() -> None:
    res = order_msg("orm_o01_cancel_v24.hl7")
    (order,) = res.orders
    assert order.order_control == "CA" and order.step_status == "CANCELED"
    assert order.placer_order_number == "PL0001" and order.procedure_code == ""


def test_latin1_order() -> None:
    res = order_msg("orm_o01_latin1.hl7")
    assert res.patient.family_name == "MÜLLER" and res.patient.given_name == "JOSÉ"
    assert res.orders[0].modality == "MG"
    assert res.header.charset == "latin-1"


def test_custom_delimiter_order() -> None:
    res = order_msg("orm_o01_custom_delims.hl7")
    assert res.patient.family_name == "ĐỖ" and res.patient.middle_name == "TUẤN"
    assert res.orders[0].accession_number == "ACC0007"


def test_adt_a08_update() -> None:
    res = interpret(parse(load("adt_a08.hl7")))
    assert isinstance(res, PatientUpdate)
    assert res.header.trigger_event == "A08"
    assert res.patient.birth_date == date(1985, 7, 5)
    assert res.patient.address is not None and res.patient.address.startswith("12|14 Trần")
    assert res.visit is not None and res.visit.patient_class == "O"


@pytest.mark.parametrize("event", ["A01", "A04", "A31"])
def test_other_update_events(event: str) -> None:
    raw = load("adt_a08.hl7").replace(b"ADT^A08^", b"ADT^" + event.encode() + b"^")
    res = interpret(parse(raw))
    assert isinstance(res, PatientUpdate) and res.header.trigger_event == event


def test_adt_a40_merge() -> None:
    res = interpret(parse(load("adt_a40.hl7")))
    assert isinstance(res, PatientMerge)
    assert res.patient.identifiers == (PatientIdentifier("BN000123", "BVDKTINH", "MR"),)
    assert res.prior_identifiers == (PatientIdentifier("BN000999", "BVDKTINH", "MR"),)


def test_adt_a47_identifier_change() -> None:
    res = interpret(parse(load("adt_a47.hl7")))
    assert isinstance(res, IdentifierChange)
    assert res.old_identifiers == (PatientIdentifier("BN000555", "BVDKTINH", "MR"),)
    assert res.new_identifiers == (PatientIdentifier("BN000556", "BVDKTINH", "MR"),)


def test_hl7_null_reads_as_empty() -> None:
    raw = load("adt_a08.hl7").replace(b"|19850705|", b'|""|')
    res = interpret(parse(raw))
    assert isinstance(res, PatientUpdate) and res.patient.birth_date is None


# ---- errors ------------------------------------------------------------------------


def error_of(raw: bytes) -> HL7Error:
    with pytest.raises(HL7Error) as info:
        interpret(parse(raw))
    return info.value


def test_unknown_event_is_ar() -> None:
    err = error_of(load("orm_o01_v23.hl7").replace(b"ORM^O01", b"ORM^O99"))
    assert (err.code, err.segment, err.field_position, err.hl7_code) == ("AR", "MSH", 9, 201)
    assert err.location == "MSH-9.2"


@pytest.mark.parametrize("mtype", [b"ORU^R01", b"SIU^S12", b"ADT^A03"])
def test_unsupported_message_type_is_ar(mtype: bytes) -> None:
    err = error_of(load("orm_o01_v23.hl7").replace(b"ORM^O01", mtype))
    assert err.code == "AR" and err.field_position == 9 and err.hl7_code in (200, 201)


def test_missing_obr4_on_new_order_is_ae() -> None:
    raw = load("orm_o01_v23.hl7").replace(
        "18.0149.0040^CT sọ não không tiêm thuốc cản quang^BYT".encode(), b""
    )
    err = error_of(raw)
    assert (err.code, err.segment, err.field_position, err.hl7_code) == ("AE", "OBR", 4, 101)
    assert err.location == "OBR-4"


def test_missing_obr4_in_second_obr_names_occurrence() -> None:
    raw = load("orm_o01_v25.hl7").replace("18.0015.0001^Siêu âm ổ bụng^BYT".encode(), b"")
    err = error_of(raw)
    assert (err.segment, err.segment_seq, err.field_position) == ("OBR", 2, 4)


def test_new_order_without_obr_is_ae() -> None:
    raw = b"\r".join(
        line for line in load("orm_o01_v23.hl7").split(b"\r") if not line.startswith(b"OBR")
    )
    err = error_of(raw)
    assert err.code == "AE" and err.segment == "OBR"


def test_truncated_after_pid_is_ae() -> None:
    raw = load("orm_o01_v23.hl7")
    raw = raw[: raw.index(b"\rPV1")]
    err = error_of(raw)
    assert err.code == "AE" and err.segment == "ORC"


def test_truncated_mid_obr_is_ae_naming_obr4() -> None:
    raw = load("orm_o01_v23.hl7")
    raw = raw[: raw.index(b"\rOBR") + 20]  # "OBR|1|PL0001^HIS|FL0" : OBR-4 lost
    err = error_of(raw)
    assert (err.code, err.segment, err.field_position) == ("AE", "OBR", 4)


def test_missing_pid_is_ae() -> None:
    raw = b"\r".join(
        line for line in load("orm_o01_v23.hl7").split(b"\r") if not line.startswith(b"PID")
    )
    err = error_of(raw)
    assert (err.code, err.segment) == ("AE", "PID")


def test_missing_patient_id_is_ae() -> None:
    raw = load("adt_a40.hl7").replace(b"BN000123^^^BVDKTINH^MR", b"")
    err = error_of(raw)
    assert (err.code, err.segment, err.field_position) == ("AE", "PID", 3)


def test_missing_patient_name_is_ae_for_orders() -> None:
    raw = load("orm_o01_v25.hl7").replace("TRẦN^THỊ MAI^^^^^L".encode(), b"")
    err = error_of(raw)
    assert (err.code, err.segment, err.field_position) == ("AE", "PID", 5)


@pytest.mark.parametrize(
    ("old", "new", "segment", "field", "component"),
    [
        (b"|19850704|", b"|19851304|", "PID", 7, None),
        (b"|19850704|", b"|1985-07-04|", "PID", 7, None),
        (
            b"^^^20240315083000^^R||20240315080000",
            b"^^^20240230083000^^R||20240315080000",
            "ORC",
            7,
            4,
        ),
        (b"|20240315080000||ORM", b"|2024031508600||ORM", "MSH", 7, None),
    ],
)
def test_invalid_dates_are_ae(
    old: bytes, new: bytes, segment: str, field: int, component: int | None
) -> None:
    raw = load("orm_o01_v23.hl7")
    assert old in raw
    err = error_of(raw.replace(old, new, 1))
    assert (err.code, err.segment, err.field_position, err.component) == (
        "AE",
        segment,
        field,
        component,
    )
    assert err.hl7_code == 102


def test_invalid_tq1_date_is_ae() -> None:
    err = error_of(load("orm_o01_v25.hl7").replace(b"202403161000", b"2024031610xx"))
    assert (err.code, err.segment, err.field_position) == ("AE", "TQ1", 7)


def test_missing_order_control_is_ae() -> None:
    err = error_of(load("orm_o01_v23.hl7").replace(b"ORC|NW|", b"ORC||"))
    assert (err.code, err.segment, err.field_position) == ("AE", "ORC", 1)


def test_unknown_order_control_is_ae() -> None:
    err = error_of(load("orm_o01_v23.hl7").replace(b"ORC|NW|", b"ORC|ZZ|"))
    assert (err.code, err.segment, err.field_position, err.hl7_code) == ("AE", "ORC", 1, 103)


def test_obr_before_orc_is_ae() -> None:
    lines = load("orm_o01_v23.hl7").split(b"\r")
    orc = next(line for line in lines if line.startswith(b"ORC"))
    lines.remove(orc)
    lines.insert(len(lines) - 1, orc)
    err = error_of(b"\r".join(lines))
    assert err.code == "AE" and err.segment == "ORC"


def test_merge_without_mrg_is_ae() -> None:
    raw = b"\r".join(
        line for line in load("adt_a40.hl7").split(b"\r") if not line.startswith(b"MRG")
    )
    err = error_of(raw)
    assert (err.code, err.segment) == ("AE", "MRG")


def test_merge_into_itself_is_ae() -> None:
    raw = load("adt_a40.hl7").replace(b"BN000999", b"BN000123")
    err = error_of(raw)
    assert (err.code, err.segment, err.field_position) == ("AE", "MRG", 1)


def test_identifier_change_without_old_id_is_ae() -> None:
    raw = load("adt_a47.hl7").replace(b"MRG|BN000555^^^BVDKTINH^MR", b"MRG|")
    err = error_of(raw)
    assert (err.code, err.segment, err.field_position) == ("AE", "MRG", 1)


def test_error_messages_carry_no_values() -> None:
    raw = load("orm_o01_v23.hl7").replace(b"|19850704|", b"|19851304|")
    err = error_of(raw)
    assert "19851304" not in str(err) and "NGUY" not in str(err)


def test_receive_accepts_and_acks() -> None:
    inbound = receive(load("omi_o23_v251.hl7"))
    assert inbound.accepted and isinstance(inbound.result, OrderMessage)
    ack = parse(inbound.ack())
    assert ack.get("MSA-1") == "AA" and ack.get("MSA-2") == "MSG0003"
    failed = parse(inbound.ack("AE", text="database unavailable"))
    assert failed.get("MSA-1") == "AE" and failed.get("MSA-3") == "database unavailable"


def test_receive_reports_errors_with_ack() -> None:
    bad = receive(load("orm_o01_v23.hl7").replace(b"ORM^O01", b"ORM^O02"))
    assert not bad.accepted and bad.error is not None and bad.error.code == "AR"
    assert bad.message is not None
    ack = parse(bad.ack())
    assert ack.get("MSA-1") == "AR" and ack.get("MSA-2") == "MSG0001"
    garbage = receive(b"\x00garbage")
    assert garbage.message is None and garbage.error is not None
    assert parse(garbage.ack()).get("MSA-1") == "AR"
