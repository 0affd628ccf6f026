"""The hand-encoded File Meta Information and C-STORE requests and responses equal
pydicom's and pynetdicom's, byte for byte."""

from __future__ import annotations

import io
import os
import struct
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydicom.filewriter import write_file_meta_info
from pydicom.uid import UID
from pynetdicom.dimse_messages import C_STORE_RQ, C_STORE_RSP, DIMSEMessage
from pynetdicom.dimse_primitives import C_STORE
from pynetdicom.dsutils import create_file_meta
from pynetdicom.pdu_primitives import P_DATA

from dicom_nodes.dimse_shortcuts import (
    FileMeta,
    FileSlice,
    decode_store_response,
    file_meta_bytes,
    file_slices,
    store_request_command,
    store_response_command,
)

pytestmark = pytest.mark.unit

component = st.one_of(st.just("0"), st.from_regex(r"[1-9][0-9]{0,9}", fullmatch=True))
PRINTABLE = st.characters(min_codepoint=32, max_codepoint=126)
uids = st.lists(component, min_size=2, max_size=8).map(".".join).filter(lambda u: len(u) <= 64)


def _pdv_value(piece: FileSlice) -> bytes:
    """A slice's PDV value as pynetdicom sends it (control header included)."""
    return bytes((piece.control,)) + os.pread(piece.file.fileno(), piece.length, piece.offset)


def _store_response(
    sop_class: str | None,
    sop_instance: str | None,
    message_id: int,
    status: int,
    comment: str | None,
) -> C_STORE:
    primitive = C_STORE()
    primitive.MessageIDBeingRespondedTo = message_id
    primitive.AffectedSOPClassUID = sop_class
    primitive.AffectedSOPInstanceUID = sop_instance
    primitive.Status = status
    primitive.ErrorComment = comment
    return primitive


store_responses = st.builds(
    _store_response,
    sop_class=st.one_of(st.none(), uids),
    sop_instance=st.one_of(st.none(), uids),
    message_id=st.integers(0, 0xFFFF),
    status=st.sampled_from([0x0000, 0xA700, 0xA900, 0xC000, 0x0110, 0xB000]),
    comment=st.one_of(st.none(), st.text(PRINTABLE, max_size=64)),
)


@given(sop_class=uids, sop_instance=uids, syntax=uids)
def test_file_meta_bytes_match_pydicom(sop_class: str, sop_instance: str, syntax: str) -> None:
    expected = io.BytesIO()
    write_file_meta_info(
        expected,
        create_file_meta(
            sop_class_uid=UID(sop_class),
            sop_instance_uid=UID(sop_instance),
            transfer_syntax=UID(syntax),
        ),
    )
    assert file_meta_bytes(FileMeta(sop_class, sop_instance, syntax)) == expected.getvalue()


@given(primitive=store_responses)
def test_store_response_command_matches_pynetdicom(primitive: C_STORE) -> None:
    message = C_STORE_RSP()
    message.primitive_to_message(primitive)
    (pdata,) = message.encode_msg(1, 131072)
    ((_context, pdv),) = pdata.presentation_data_value_list
    assert store_response_command(primitive) == pdv[1:]


@settings(max_examples=40, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    size=st.sampled_from([0, 1, 99, 16378, 16379, 32756, 200_000]),
    max_pdu=st.sampled_from([0, 16384, 131072]),
    message_id=st.integers(0, 0xFFFF),
    priority=st.sampled_from([0, 1, 2]),
)
def test_store_request_pdvs_match_pynetdicom(
    tmp_path: Path, size: int, max_pdu: int, message_id: int, priority: int
) -> None:
    path = tmp_path / "instance.dcm"
    path.write_bytes(b"H" * 132 + bytes(i % 251 for i in range(size)))
    primitive = C_STORE()
    primitive.MessageID = message_id
    primitive.Priority = priority
    primitive.AffectedSOPClassUID = "1.2.840.10008.5.1.4.1.1.2"
    primitive.AffectedSOPInstanceUID = "1.2.826.0.1.3680043.8.498.1"
    primitive._dataset_path = (path, 132)
    message = C_STORE_RQ()
    message.primitive_to_message(primitive)
    expected = [
        pdv
        for pdata in message.encode_msg(1, max_pdu)
        for _, pdv in pdata.presentation_data_value_list
    ]
    command = store_request_command(primitive)
    assert command is not None
    slices = file_slices(path, 132, max_pdu)
    try:
        assert [b"\x03" + command, *map(_pdv_value, slices)] == expected
        assert [piece.last for piece in slices] == [False] * (len(slices) - 1) + [True]
    finally:
        slices[0].file.close()


@given(sent=store_responses)
def test_store_response_decoded_as_pynetdicom_does(sent: C_STORE) -> None:
    encoded = store_response_command(sent)
    assert encoded is not None
    pdata = P_DATA()
    pdata.presentation_data_value_list.append((3, b"\x03" + encoded))
    message = DIMSEMessage()
    assert message.decode_msg(pdata)
    expected = message.message_to_primitive()
    mine = decode_store_response(encoded, 3)
    if sent.ErrorComment is not None and "\\" in sent.ErrorComment:
        assert mine is None  # multi-valued text: left to pynetdicom
        return
    assert mine is not None
    assert vars(mine) == vars(expected)


def test_other_commands_left_to_pynetdicom() -> None:
    echo = b"".join(
        struct.pack("<HHI", 0, element, 2) + struct.pack("<H", value)
        for element, value in ((0x0100, 0x8030), (0x0120, 1), (0x0800, 0x0101), (0x0900, 0))
    )
    assert decode_store_response(echo, 1) is None  # a C-ECHO response
    assert decode_store_response(b"\x00\x00\x00", 1) is None  # truncated
    comment = struct.pack("<HHI", 0, 0x0902, 2) + b"\\ "  # multi-valued: pynetdicom's call
    assert decode_store_response(echo.replace(b"\x30\x80", b"\x01\x80") + comment, 1) is None
