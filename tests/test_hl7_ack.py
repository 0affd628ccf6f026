"""ACK building: swapped addressing, MSA, ERR per version, garbage input."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hl7.ack import build_ack
from hl7.errors import HL7Error
from hl7.inbound import receive_oversize
from hl7.interpret import interpret
from hl7.parse import complete_header, parse

pytestmark = pytest.mark.unit

FIXTURES = Path(__file__).parent / "fixtures" / "hl7"
NOW = datetime(2024, 3, 15, 9, 0, 0)


def load(name: str) -> bytes:
    return (FIXTURES / name).read_bytes()


def test_aa_ack_swaps_sender_and_receiver() -> None:
    msg = parse(load("orm_o01_v25.hl7"))
    ack = parse(build_ack(msg, control_id="ACK1", timestamp=NOW))
    assert ack.get("MSH-3") == "RISGATE" and ack.get("MSH-4") == "BVDKTINH"
    assert ack.get("MSH-5") == "HIS" and ack.get("MSH-5-2") == "BVDKT"
    assert ack.get("MSH-7") == "20240315090000"
    assert (ack.message_type, ack.trigger_event, ack.message_structure) == ("ACK", "O01", "ACK")
    assert ack.control_id == "ACK1" and ack.version == "2.5"
    assert ack.get("MSH-18") == "UNICODE UTF-8"
    assert ack.get("MSA-1") == "AA" and ack.get("MSA-2") == "MSG0002"
    assert ack.segments("ERR") == []


def test_generated_control_ids_differ() -> None:
    msg = parse(load("orm_o01_v25.hl7"))
    assert parse(build_ack(msg)).control_id != parse(build_ack(msg)).control_id


def test_ae_ack_v25_err_segment() -> None:
    raw = load("orm_o01_v25.hl7").replace("18.0015.0001^Siêu âm ổ bụng^BYT".encode(), b"")
    msg = parse(raw)
    with pytest.raises(HL7Error) as info:
        interpret(msg)
    ack = parse(build_ack(msg, error=info.value))
    assert ack.get("MSA-1") == "AE" and ack.get("MSA-2") == "MSG0002"
    assert ack.segment("ERR") is not None
    assert ack.segment("ERR").raw(2) == "OBR^2^4"  # type: ignore[union-attr]
    assert ack.get("ERR-3-1") == "101" and ack.get("ERR-3-3") == "HL70357"
    assert ack.get("ERR-4") == "E"
    assert ack.get("ERR-1") == ""


def test_component_location_in_err2() -> None:
    msg = parse(load("orm_o01_v25.hl7"))
    err = HL7Error("AE", "invalid date/time", "ORC", 7, segment_seq=2, component=4, hl7_code=102)
    ack = parse(build_ack(msg, error=err))
    assert ack.segment("ERR").raw(2) == "ORC^2^7^1^4"  # type: ignore[union-attr]


def test_v23_ack_uses_err1() -> None:
    msg = parse(load("orm_o01_v23.hl7"))
    err = HL7Error("AE", "procedure code missing", "OBR", 4, hl7_code=101)
    ack = parse(build_ack(msg, error=err))
    assert ack.version == "2.3"
    assert ack.message_structure == ""
    assert ack.get("ERR-1-1") == "OBR" and ack.get("ERR-1-3") == "4"
    assert ack.get("ERR-1-4-1") == "101"
    assert ack.get("MSA-3") == "procedure code missing"


def test_ar_for_unsupported_version_echoes_version() -> None:
    raw = load("orm_o01_v25.hl7").replace(b"|P|2.5|", b"|P|2.6|")
    with pytest.raises(HL7Error) as info:
        parse(raw)
    ack = parse(build_ack(raw, error=info.value), versions=None)
    assert ack.get("MSA-1") == "AR" and ack.get("MSA-2") == "MSG0002"
    assert ack.version == "2.6"
    assert ack.get("ERR-3-1") == "203"


def test_ack_for_garbage_without_msh() -> None:
    err = HL7Error("AR", "message does not start with MSH", "MSH", hl7_code=100)
    ack = parse(build_ack(b"\x00\xffthis is not hl7", error=err))
    assert ack.get("MSA-1") == "AR" and ack.get("MSA-2") == ""
    assert ack.version == "2.5" and ack.processing_id == "P"
    assert ack.get("ERR-3-1") == "100"


def test_ack_for_none_source() -> None:
    ack = parse(build_ack(None, "AR", text="bad"))
    assert ack.get("MSA-1") == "AR" and ack.get("MSA-3") == "bad"


def test_ack_with_custom_delimiters_keeps_them() -> None:
    msg = parse(load("orm_o01_custom_delims.hl7"))
    raw = build_ack(msg)
    assert raw.startswith(b"MSH#$*@%#")
    ack = parse(raw)
    assert ack.get("MSA-2") == "MSG0007" and ack.get("MSH-5") == "HIS"


def test_ack_for_bad_encoding_characters_uses_defaults() -> None:
    raw = b"MSH|^^^^|HIS|BV|RIS|BV|20240101||ORM^O01|C9|P|2.5\r"
    ack = parse(build_ack(raw, error=HL7Error("AR", "invalid encoding characters", "MSH", 2)))
    assert ack.delimiters.msh2 == "^~\\&"
    assert ack.get("MSA-2") == "C9" and ack.get("MSH-3") == "RIS"


def test_ack_latin1_is_encoded_latin1() -> None:
    msg = parse(load("orm_o01_latin1.hl7"))
    raw = build_ack(msg, "AE", text="Fehler: Größe")
    assert "Größe".encode("latin-1") in raw
    assert parse(raw).get("MSA-3") == "Fehler: Größe"


def test_ack_text_is_escaped() -> None:
    msg = parse(load("orm_o01_v25.hl7"))
    ack = parse(build_ack(msg, "AE", text="a|b^c"))
    assert ack.get("MSA-3") == "a|b^c"


def test_oversize_ar_echoes_the_whole_msh_of_the_kept_start() -> None:
    raw = load("orm_o01_v25.hl7")
    inbound = receive_oversize(raw[: raw.index(b"\r") + 20], 5_000_000, 1_048_576)
    assert inbound.truncated and not inbound.accepted
    ack = parse(inbound.ack(), versions=None)
    assert ack.get("MSA-1") == "AR" and ack.get("MSA-2") == "MSG0002"
    assert ack.get("MSH-5") == "HIS" and ack.version == "2.5"
    assert ack.get("ERR-3") == "207" and ack.get("ERR-4") == "E"
    assert (
        ack.get("ERR-8") == "message of 5000000 bytes exceeds the receiver's limit of 1048576 bytes"
    )


def test_oversize_ar_v23_reports_in_err1_and_msa3() -> None:
    raw = load("orm_o01_v25.hl7").replace(b"|2.5|", b"|2.3|", 1)
    ack = parse(receive_oversize(raw, len(raw) * 2, len(raw)).ack(), versions=None)
    assert ack.version == "2.3" and ack.get("MSA-1") == "AR"
    assert ack.get("ERR-1-4") == "207" and "exceeds" in ack.get("MSA-3")


@settings(max_examples=200, deadline=None)
@given(st.integers(0, 400), st.binary(max_size=8))
def test_oversize_echoes_msh_10_only_from_a_whole_msh(cut: int, lead: bytes) -> None:
    """Cut anywhere: MSA-2 is the true MSH-10 once MSH is whole, else empty."""
    raw = load("orm_o01_v25.hl7")
    lead = lead.strip(b"\x0bMSH")
    prefix = (lead + raw)[:cut]
    ack = parse(receive_oversize(prefix, len(raw) + 1, max(cut, 1)).ack(), versions=None)
    whole = complete_header(prefix) is not None
    assert ack.get("MSA-2") == ("MSG0002" if whole else "")
    if whole:
        assert b"\r" in prefix[prefix.index(b"MSH") :]
