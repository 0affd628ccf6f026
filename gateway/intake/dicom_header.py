"""A fast reader for the few header attributes the receive path needs.

pydicom costs about 0.4 ms per instance for this; the receive path is CPU-bound, so this
reader walks the raw little-endian elements of groups 0008-0020 only and stops before
pixel data. Anything unusual (big endian, deflate, undefined-length sequences before the
wanted tags, a header longer than the first read) returns None and the caller falls back
to pydicom, which stays the reference.
"""

from __future__ import annotations

import struct
from pathlib import Path

from pydicom.charset import convert_encodings, decode_bytes

_EXPLICIT_LE = "1.2.840.10008.1.2.1"
_IMPLICIT_LE = "1.2.840.10008.1.2"
_BIG_ENDIAN = "1.2.840.10008.1.2.2"
_DEFLATED = "1.2.840.10008.1.2.1.99"
_LONG_VRS = {
    b"OB",
    b"OD",
    b"OF",
    b"OL",
    b"OV",
    b"OW",
    b"SQ",
    b"SV",
    b"UC",
    b"UN",
    b"UR",
    b"UT",
    b"UV",
}
_READ = 65536

WANTED = {
    0x00080005: "SpecificCharacterSet",
    0x00080016: "SOPClassUID",
    0x00080018: "SOPInstanceUID",
    0x00080020: "StudyDate",
    0x00080030: "StudyTime",
    0x00080050: "AccessionNumber",
    0x00080060: "Modality",
    0x00081010: "StationName",
    0x00081030: "StudyDescription",
    0x0008103E: "SeriesDescription",
    0x00100010: "PatientName",
    0x00100020: "PatientID",
    0x00100021: "IssuerOfPatientID",
    0x00100030: "PatientBirthDate",
    0x00100040: "PatientSex",
    0x00180015: "BodyPartExamined",
    0x0020000D: "StudyInstanceUID",
    0x0020000E: "SeriesInstanceUID",
    0x00200011: "SeriesNumber",
    0x00200013: "InstanceNumber",
}
_TEXT = {
    "PatientName",
    "PatientID",
    "IssuerOfPatientID",
    "StudyDescription",
    "SeriesDescription",
    "StationName",
    "AccessionNumber",
    "BodyPartExamined",
}
_LAST_TAG = 0x00200013


def read_header(path: Path) -> tuple[str, dict[str, str]] | None:
    """(transfer syntax, {keyword: text}) from a Part 10 file, or None to fall back."""
    with open(path, "rb") as f:
        data = f.read(_READ)
    return parse_header(data)


def parse_header(data: bytes) -> tuple[str, dict[str, str]] | None:
    """Like :func:`read_header`, from the first bytes of a file."""
    try:
        return _parse(data)
    except (struct.error, ValueError, LookupError):
        return None


def _parse(data: bytes) -> tuple[str, dict[str, str]] | None:
    if len(data) < 144 or data[128:132] != b"DICM":
        return None
    # File meta: explicit VR little endian, starting with (0002,0000) group length UL.
    if data[132:138] != b"\x02\x00\x00\x00UL":
        return None
    meta_end = 144 + struct.unpack_from("<I", data, 140)[0]
    transfer_syntax = _meta_transfer_syntax(data, 144, meta_end)
    if transfer_syntax is None or transfer_syntax in (_BIG_ENDIAN, _DEFLATED):
        return None
    raw = _walk(data, meta_end, explicit=transfer_syntax != _IMPLICIT_LE)
    if raw is None:
        return None
    return transfer_syntax, _decode(raw)


def _meta_transfer_syntax(data: bytes, pos: int, end: int) -> str | None:
    while pos + 8 <= end:
        group, elem = struct.unpack_from("<HH", data, pos)
        vr = data[pos + 4 : pos + 6]
        if vr in _LONG_VRS:
            length = struct.unpack_from("<I", data, pos + 8)[0]
            pos += 12
        else:
            length = struct.unpack_from("<H", data, pos + 6)[0]
            pos += 8
        if (group, elem) == (0x0002, 0x0010):
            return data[pos : pos + length].rstrip(b"\x00 ").decode("ascii", "replace")
        pos += length
    return None


def _walk(data: bytes, pos: int, *, explicit: bool) -> dict[str, bytes] | None:
    found: dict[str, bytes] = {}
    size = len(data)
    while pos + 8 <= size:
        group, elem = struct.unpack_from("<HH", data, pos)
        tag = (group << 16) | elem
        if tag > _LAST_TAG:
            return found
        if explicit:
            vr = data[pos + 4 : pos + 6]
            if not vr.isalpha() or not vr.isupper():
                return None  # declared explicit but is not: let pydicom sort it out
            if vr in _LONG_VRS:
                if pos + 12 > size:
                    return None
                length = struct.unpack_from("<I", data, pos + 8)[0]
                pos += 12
            else:
                length = struct.unpack_from("<H", data, pos + 6)[0]
                pos += 8
        else:
            if data[pos + 4 : pos + 6].isalpha() and data[pos + 4 : pos + 6].isupper():
                return None  # declared implicit but looks explicit
            length = struct.unpack_from("<I", data, pos + 4)[0]
            pos += 8
        if length == 0xFFFFFFFF or pos + length > size:
            return None  # undefined length or header longer than the read: use pydicom
        keyword = WANTED.get(tag)
        if keyword is not None:
            found[keyword] = data[pos : pos + length]
        pos += length
    return None


def _decode(raw: dict[str, bytes]) -> dict[str, str]:
    charset = raw.get("SpecificCharacterSet", b"").decode("ascii", "replace")
    encodings = convert_encodings([c.strip() for c in charset.split("\\")] if charset else None)
    out: dict[str, str] = {}
    for keyword, value in raw.items():
        value = value.rstrip(b"\x00 ")
        if keyword in _TEXT and not value.isascii():
            delimiters = {ord("^"), ord("=")} if keyword == "PatientName" else set()
            out[keyword] = decode_bytes(value, encodings, delimiters)
        else:
            out[keyword] = value.decode("ascii", "replace")
    return out
