"""Property: mutated valid messages parse or raise HL7Error (nothing else); ACKs always build."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hl7.ack import build_ack
from hl7.errors import HL7Error
from hl7.interpret import interpret
from hl7.mllp import FrameDecoder, encode_frame
from hl7.parse import parse

pytestmark = pytest.mark.unit

FIXTURES = Path(__file__).parent / "fixtures" / "hl7"
SAMPLES = [p.read_bytes() for p in sorted(FIXTURES.glob("*.hl7"))]
SPECIAL = [*b"|^~\\&#$*@%\r\n\x0b\x1c\x00 0123456789AZ", 0xC3, 0xA9, 0xFF]


@st.composite
def mutated(draw: st.DrawFn) -> bytes:
    data = bytearray(draw(st.sampled_from(SAMPLES)))
    # Half of the cases keep MSH intact so that mutations reach the deeper layers.
    lo = data.find(b"\r") + 1 if draw(st.booleans()) else 0
    for _ in range(draw(st.integers(1, 4))):
        op = draw(st.sampled_from(["replace", "insert", "delete", "truncate", "dup", "swap"]))
        pos = draw(st.integers(min(lo, len(data)), max(len(data) - 1, lo)))
        if op == "replace" and pos < len(data):
            data[pos] = draw(st.sampled_from(SPECIAL) | st.integers(0, 255))
        elif op == "insert":
            data[pos:pos] = draw(st.binary(max_size=8) | st.sampled_from([b"\\X", b"\\", b"|||"]))
        elif op == "delete":
            del data[pos : pos + draw(st.integers(1, 20))]
        elif op == "truncate":
            del data[pos:]
        elif op == "dup":
            lines = bytes(data).split(b"\r")
            i = draw(st.integers(1 if lo else 0, max(len(lines) - 1, 1 if lo else 0)))
            lines.insert(i, lines[min(i, len(lines) - 1)])
            data = bytearray(b"\r".join(lines))
        else:
            lines = bytes(data).split(b"\r")
            top = max(len(lines) - 1, 0)
            first = min(1 if lo else 0, top)
            i, j = draw(st.integers(first, top)), draw(st.integers(first, top))
            lines[i], lines[j] = lines[j], lines[i]
            data = bytearray(b"\r".join(lines))
    return bytes(data)


def _framed_and_back(message: bytes) -> list[bytes]:
    """The message sent as one MLLP frame and read back (MLLPError if it cannot be framed)."""
    return list(FrameDecoder(len(message) + 1).feed(encode_frame(message)))


def check_ack(ack: bytes, code: str) -> None:
    assert _framed_and_back(ack) == [ack]  # no MLLP block bytes inside: frames unchanged
    parsed = parse(ack, versions=None, fallback_charset="latin-1")
    assert parsed.message_type == "ACK"
    assert parsed.get("MSA-1") == code


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(mutated())
def test_mutations_parse_or_raise_hl7error(raw: bytes) -> None:
    try:
        msg = parse(raw)
    except HL7Error as err:
        assert err.code in ("AE", "AR")
        check_ack(build_ack(raw, error=err), err.code)
        return
    try:
        interpret(msg)
    except HL7Error as err:
        assert err.code in ("AE", "AR")
        check_ack(build_ack(msg, error=err), err.code)
        return
    check_ack(build_ack(msg), "AA")


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=200))
def test_random_bytes_raise_hl7error_and_get_an_ack(raw: bytes) -> None:
    try:
        parse(raw)
    except HL7Error as err:
        check_ack(build_ack(raw, error=err), err.code)
    else:
        check_ack(build_ack(raw), "AA")


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=80))
def test_arbitrary_field_text_round_trips_through_ack(text: str) -> None:
    msg = parse(SAMPLES[0])
    raw = build_ack(msg, "AE", text=text)
    assert _framed_and_back(raw) == [raw]
    assert parse(raw, versions=None).get("MSA-3") == text
