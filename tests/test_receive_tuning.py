"""The receive path's hand-encoded File Meta Information and C-STORE responses equal
pydicom's and pynetdicom's, byte for byte."""

from __future__ import annotations

import io

from hypothesis import given
from hypothesis import strategies as st
from pydicom.filewriter import write_file_meta_info
from pydicom.uid import UID
from pynetdicom.dimse_messages import C_STORE_RSP
from pynetdicom.dimse_primitives import C_STORE
from pynetdicom.dsutils import create_file_meta

from dicom_nodes.receive_tuning import FileMeta, file_meta_bytes, store_response_command

component = st.one_of(st.just("0"), st.from_regex(r"[1-9][0-9]{0,9}", fullmatch=True))
PRINTABLE = st.characters(min_codepoint=32, max_codepoint=126)
uids = st.lists(component, min_size=2, max_size=8).map(".".join).filter(lambda u: len(u) <= 64)


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


@given(
    sop_class=st.one_of(st.none(), uids),
    sop_instance=st.one_of(st.none(), uids),
    message_id=st.integers(0, 0xFFFF),
    status=st.sampled_from([0x0000, 0xA700, 0xA900, 0xC000, 0x0110, 0xB000]),
    comment=st.one_of(
        st.none(), st.text(st.characters(min_codepoint=32, max_codepoint=126), max_size=64)
    ),
)
def test_store_response_command_matches_pynetdicom(
    sop_class: str | None,
    sop_instance: str | None,
    message_id: int,
    status: int,
    comment: str | None,
) -> None:
    primitive = C_STORE()
    primitive.MessageIDBeingRespondedTo = message_id
    primitive.AffectedSOPClassUID = sop_class
    primitive.AffectedSOPInstanceUID = sop_instance
    primitive.Status = status
    primitive.ErrorComment = comment
    message = C_STORE_RSP()
    message.primitive_to_message(primitive)
    (pdata,) = message.encode_msg(1, 131072)
    ((_context, pdv),) = pdata.presentation_data_value_list
    assert store_response_command(primitive) == pdv[1:]
