"""MLLP framing: encode/decode round trips, split and merged frames, junk, size limit;
oversize frames read to their end in bounded memory, junk and abandoned frames counted."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hl7.mllp import Frame, FrameDecoder, FrameTooLargeError, MLLPError, encode_frame

pytestmark = pytest.mark.unit

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


def test_frames_reads_an_oversize_frame_to_its_end_keeping_its_start() -> None:
    dec = FrameDecoder(max_size=10)
    out: list[Frame] = []
    for chunk in (b"\x0b0123456789", b"abcdef", b"ghij\x1c\r\x0bnext\x1c\r"):
        out.extend(dec.frames(chunk))
    assert out == [Frame(b"0123456789", 20), Frame(b"next", 4)]
    assert [f.truncated for f in out] == [True, False]
    assert dec.peak == 10
    assert (dec.junk_bytes, dec.abandoned_frames, dec.pending) == (0, 0, 0)


def test_frames_counts_junk_outside_frames_but_not_the_cr_after_an_end_block() -> None:
    dec = FrameDecoder()
    stream = b"\x00\xffjunk" + encode_frame(b"one") + b"\x0b" + b"two\x1cXY\r\x1c" + b"\x0b3\x1c"
    assert [f.payload for f in dec.frames(stream)] == [b"one", b"two", b"3"]
    assert dec.junk_bytes == len(b"\x00\xffjunk") + len(b"XY\r\x1c")


def test_frames_counts_a_frame_abandoned_by_a_new_start_block() -> None:
    dec = FrameDecoder(max_size=4)
    frames = list(dec.frames(b"\x0b" + b"x" * 50 + b"\x0bgood\x1c\r"))
    assert frames == [Frame(b"good", 4)]
    assert (dec.abandoned_frames, dec.frames_started, dec.peak) == (1, 2, 4)


# A stream made of: junk between frames (no <VT>), frames preceded by abandoned starts
# (<VT> and bytes without <VT>/<FS>), each frame followed by <CR>, nothing, or junk.
no_blocks = st.binary(max_size=40).map(lambda b: b.replace(b"\x0b", b"").replace(b"\x1c", b""))
junk = st.binary(max_size=40).map(lambda b: b.replace(b"\x0b", b""))
frame_items = st.tuples(
    st.lists(no_blocks, max_size=2),  # abandoned starts
    st.binary(max_size=120).map(lambda b: b.replace(b"\x0b", b"").replace(b"\x1c", b"")),
    st.sampled_from([b"\r", b"", b"\r\n", b"\n", b"X\r"]),
    junk,
)


@settings(max_examples=300, deadline=None)
@given(junk, st.lists(frame_items, max_size=6), st.integers(1, 64), st.data())
def test_frames_any_chunking_any_junk(
    lead: bytes,
    items: list[tuple[list[bytes], bytes, bytes, bytes]],
    max_size: int,
    data: st.DataObject,
) -> None:
    """Whatever the chunking: every ended frame once, in order, cut to ``max_size`` with
    its true size; every junk byte and abandoned start counted; never more held."""
    stream = lead
    expected: list[Frame] = []
    expected_junk = len(lead)
    for abandoned, payload, trailer, after in items:
        stream += b"".join(b"\x0b" + a for a in abandoned)
        stream += b"\x0b" + payload + b"\x1c" + trailer + after
        expected.append(Frame(payload[:max_size], len(payload)))
        outside = trailer + after
        expected_junk += len(outside) - (1 if outside.startswith(b"\r") else 0)
    cuts = sorted(data.draw(st.lists(st.integers(0, len(stream)), max_size=12)))
    dec = FrameDecoder(max_size)
    out: list[Frame] = []
    start = 0
    for cut in [*cuts, len(stream)]:
        out.extend(dec.frames(stream[start:cut]))
        assert dec.pending <= max_size
        start = cut
    assert out == expected
    assert dec.peak <= max_size
    assert dec.junk_bytes == expected_junk
    assert dec.abandoned_frames == sum(len(a) for a, _, _, _ in items)
    assert not dec.in_frame
