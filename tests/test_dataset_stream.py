""":func:`dicom_nodes.dataset_stream.middle_fragments` agrees with pynetdicom's own
P-DATA-TF decoding: on PDUs built from random PDVs, and on random and cut bytes, it
either names exactly the data of pynetdicom's PDVs, all middle data set fragments of the
given context, or declines (None) and leaves the PDU to pynetdicom. And the receive
socket's put-back reads (:class:`~dicom_nodes.event_driven.BulkReadSocket`) that let a
declined PDU go to pynetdicom unchanged."""

from __future__ import annotations

import socket
import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pynetdicom.pdu import P_DATA_TF

from dicom_nodes.dataset_stream import middle_fragments
from dicom_nodes.event_driven import BulkReadSocket

pytestmark = pytest.mark.unit

CONTEXT = 1

pdvs = st.lists(
    st.tuples(
        st.sampled_from([CONTEXT, CONTEXT, CONTEXT, 3]),
        st.sampled_from([0x00, 0x00, 0x00, 0x01, 0x02, 0x03, 0xFC, 0xFE]),
        st.binary(max_size=40),
    ),
    max_size=6,
)


def _body(items: list[tuple[int, int, bytes]]) -> bytes:
    return b"".join(
        struct.pack(">IBB", len(data) + 2, ctx, control) + data for ctx, control, data in items
    )


def _pynetdicom_pdvs(body: bytes) -> list[tuple[int, bytes]] | None:
    """pynetdicom's reading of the same PDU: (context ID, PDV value) for each item."""
    pdu = P_DATA_TF()
    try:
        pdu.decode(struct.pack(">BBI", 0x04, 0, len(body)) + body)
    except Exception:
        return None
    return [
        (int(i.presentation_context_id or 0), bytes(i.presentation_data_value or b""))
        for i in pdu.presentation_data_value_items
    ]


def _check(body: bytes) -> None:
    found = middle_fragments(memoryview(body), CONTEXT)
    if found is None:
        return
    theirs = _pynetdicom_pdvs(body)
    assert theirs is not None, "accepted a PDU pynetdicom cannot decode"
    assert [body[a:b] for a, b in found] == [value[1:] for _, value in theirs]
    assert all(ctx == CONTEXT and value[0] & 0x03 == 0 for ctx, value in theirs)


@given(items=pdvs)
def test_built_pdus_read_as_pynetdicom_reads_them(items: list[tuple[int, int, bytes]]) -> None:
    body = _body(items)
    _check(body)
    middles = bool(items) and all(
        ctx == CONTEXT and control & 0x03 == 0 for ctx, control, _ in items
    )
    found = middle_fragments(body, CONTEXT)
    assert (found is not None) == middles
    if found is not None:
        assert [body[a:b] for a, b in found] == [data for _, _, data in items]


@settings(max_examples=300)
@given(items=pdvs, cut=st.integers(min_value=0, max_value=300), flip=st.integers(0, 299))
def test_cut_and_flipped_pdus_are_declined_or_read_right(
    items: list[tuple[int, int, bytes]], cut: int, flip: int
) -> None:
    body = bytearray(_body(items))
    if body:
        body[flip % len(body)] ^= 0xFF
    _check(bytes(body[: len(body) - cut % (len(body) + 1)]))


@given(body=st.binary(max_size=200))
def test_random_bytes_are_declined_or_read_right(body: bytes) -> None:
    _check(body)


def test_an_item_longer_than_the_pdu_is_declined() -> None:
    body = struct.pack(">IBB", 100, CONTEXT, 0x00) + b"x" * 10
    assert middle_fragments(body, CONTEXT) is None


def test_an_empty_pdu_is_declined() -> None:
    assert middle_fragments(b"", CONTEXT) is None


def _bulk_socket() -> tuple[BulkReadSocket, socket.socket, socket.socket]:
    """A BulkReadSocket over one end of a socket pair (no association: only its reads are
    used), that end, and the other end for the test to write."""
    ours, theirs = socket.socketpair()
    ours.settimeout(2)
    sock = BulkReadSocket.__new__(BulkReadSocket)
    sock.socket = ours
    return sock, ours, theirs


def test_bytes_put_back_are_read_first_then_the_socket() -> None:
    sock, ours, peer = _bulk_socket()
    try:
        peer.sendall(b"world!")
        sock.unread(b"lo ")
        sock.unread(b"hel")
        assert sock.pending
        view = memoryview(bytearray(5))
        assert sock.read_into(view) == 5 and bytes(view) == b"hello"
        assert bytes(sock.recv(7)) == b" world!"
        assert not sock.pending
    finally:
        peer.close()
        ours.close()


def test_a_closed_connection_gives_what_arrived() -> None:
    sock, ours, peer = _bulk_socket()
    try:
        peer.sendall(b"abc")
        peer.close()
        sock.unread(b"12")
        view = memoryview(bytearray(10))
        assert sock.read_into(view) == 5 and bytes(view[:5]) == b"12abc"
    finally:
        ours.close()


def test_a_read_that_times_out_raises() -> None:
    sock, ours, peer = _bulk_socket()
    try:
        ours.settimeout(0.1)
        peer.sendall(b"ab")
        with pytest.raises(TimeoutError):
            sock.read_into(memoryview(bytearray(4)))
    finally:
        peer.close()
        ours.close()
