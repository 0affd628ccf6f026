"""MLLP framing: encode/decode round trips, split and merged frames, junk, size limit."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hl7.mllp import FrameDecoder, FrameTooLargeError, MLLPError, encode_frame

MSG = b"MSH|^~\\&|A|B|C|D|20240101||ORM^O01|1|P|2.5\rPID|1||X\r"

payloads = st.binary(max_size=300).map(lambda b: b.replace(b"\x0b", b"").replace(b"\x1c", b""))


def test_encode_frame_wraps_payload() -> None:
    assert encode_frame(b"abc") == b"\x0babc\x1c\x0d"


def test_encode_frame_rejects_block_characters() -> None:
    with pytest.raises(MLLPError):
        encode_frame(b"a\x1cb")


def test_decoder_single_frame() -> None:
    assert list(FrameDecoder().feed(encode_frame(MSG))) == [MSG]


def test_decoder_byte_by_byte() -> None:
    dec = FrameDecoder()
    out: list[bytes] = []
    for b in encode_frame(MSG):
        out.extend(dec.feed(bytes([b])))
    assert out == [MSG]
    assert dec.pending == 0


def test_decoder_merged_frames_and_junk_before_start() -> None:
    data = b"junk\r\n" + encode_frame(b"one") + b"\r\n noise" + encode_frame(b"two")
    assert list(FrameDecoder().feed(data)) == [b"one", b"two"]


def test_decoder_end_block_without_trailing_cr() -> None:
    assert list(FrameDecoder().feed(b"\x0bone\x1c\x0btwo\x1c")) == [b"one", b"two"]


def test_decoder_restarts_on_new_start_block() -> None:
    assert list(FrameDecoder().feed(b"\x0babandoned\x0bgood\x1c\r")) == [b"good"]


def test_decoder_keeps_partial_frame_pending() -> None:
    dec = FrameDecoder()
    assert list(dec.feed(b"\x0bpart")) == []
    assert dec.pending == 4
    assert list(dec.feed(b"ial\x1c\r")) == [b"partial"]


def test_decoder_oversized_frame_raises_before_end() -> None:
    dec = FrameDecoder(max_size=10)
    with pytest.raises(FrameTooLargeError):
        list(dec.feed(b"\x0b" + b"x" * 11))


def test_decoder_accepts_frame_at_exact_limit() -> None:
    dec = FrameDecoder(max_size=10)
    assert list(dec.feed(encode_frame(b"x" * 10))) == [b"x" * 10]


def test_decoder_oversize_across_chunks() -> None:
    dec = FrameDecoder(max_size=10)
    assert list(dec.feed(b"\x0b12345")) == []
    with pytest.raises(FrameTooLargeError):
        list(dec.feed(b"678901"))


def test_decoder_yields_frames_completed_before_an_oversized_one() -> None:
    dec = FrameDecoder(max_size=5)
    got: list[bytes] = []
    with pytest.raises(FrameTooLargeError):
        for p in dec.feed(encode_frame(b"ok") + b"\x0b" + b"y" * 6):
            got.append(p)
    assert got == [b"ok"]


@settings(max_examples=100, deadline=None)
@given(st.lists(payloads, min_size=1, max_size=5), st.data())
def test_decoder_any_chunking_round_trips(messages: list[bytes], data: st.DataObject) -> None:
    stream = b"".join(encode_frame(m) for m in messages)
    cuts = sorted(data.draw(st.lists(st.integers(0, len(stream)), max_size=8)))
    dec = FrameDecoder()
    out: list[bytes] = []
    start = 0
    for cut in [*cuts, len(stream)]:
        out.extend(dec.feed(stream[start:cut]))
        start = cut
    assert out == messages
