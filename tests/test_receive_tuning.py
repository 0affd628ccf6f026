"""The receive path's hand-encoded File Meta Information equals pydicom's, byte for byte."""

from __future__ import annotations

import io

from hypothesis import given
from hypothesis import strategies as st
from pydicom.filewriter import write_file_meta_info
from pydicom.uid import UID
from pynetdicom.dsutils import create_file_meta

from dicom_nodes.receive_tuning import FileMeta, file_meta_bytes

component = st.one_of(st.just("0"), st.from_regex(r"[1-9][0-9]{0,9}", fullmatch=True))
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
