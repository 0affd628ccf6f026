"""Structural check of a received data set: every element header walked to the last byte.

A C-STORE is answered "success" only for a data set whose encoding holds together
(PS3.5 section 7): each element's value fits inside its container (the data set, an item,
the file), every defined length is even (PS3.5 7.1.1), sequences and items of undefined
length end with their delimiters, and encapsulated pixel data is a list of even-length
fragments closed by a sequence delimiter. Values are skipped by their length, never
decoded: the check reads only element headers, so its cost grows with the number of
elements, not with the size of the pixel data.

Explicit and implicit VR, little and big endian, and the deflated transfer syntaxes
(inflated in memory up to :data:`MAX_INFLATED_BYTES`) are walked. In implicit VR a
defined-length element is entered as a sequence when the DICOM dictionary says its VR
is SQ; other values (private data, UN) are skipped whole.

:func:`check_dataset` works on bytes and :func:`check_file` on a Part 10 file (the
receive path's temp file); both return None when the structure is sound, else a short
reason naming only tags, lengths and offsets (no patient data; fits the 64 characters of
a C-STORE response's Error Comment).
"""

from __future__ import annotations

import mmap
import os
import struct
import zlib
from pathlib import Path

from pydicom._dicom_dict import DicomDictionary

IMPLICIT_VR_LE = "1.2.840.10008.1.2"
EXPLICIT_VR_BE = "1.2.840.10008.1.2.2"
DEFLATED = frozenset({"1.2.840.10008.1.2.1.99", "1.2.840.10008.1.2.4.95"})

# A deflated data set bigger than this once inflated is refused (a "zip bomb" would
# otherwise fill memory here and again in pydicom, which inflates the whole data set).
MAX_INFLATED_BYTES = 64 * 1024 * 1024
# Sequences nested deeper than this are refused (real data sets nest a few levels).
MAX_DEPTH = 32
# check_file reads this much of a file first (headers before pixel data fit in it).
PREFIX_BYTES = 65536

UNDEFINED = 0xFFFFFFFF
ITEM = 0xFFFEE000
ITEM_END = 0xFFFEE00D
SEQUENCE_END = 0xFFFEE0DD
PIXEL_DATA = 0x7FE00010

LONG_VRS = frozenset(
    {b"OB", b"OD", b"OF", b"OL", b"OV", b"OW", b"SQ", b"SV", b"UC", b"UN", b"UR", b"UT", b"UV"}
)
SHORT_VRS = frozenset(
    {
        b"AE",
        b"AS",
        b"AT",
        b"CS",
        b"DA",
        b"DS",
        b"DT",
        b"FD",
        b"FL",
        b"IS",
        b"LO",
        b"LT",
        b"PN",
        b"SH",
        b"SL",
        b"SS",
        b"ST",
        b"TM",
        b"UI",
        b"UL",
        b"US",
    }
)
# Tags the dictionary gives VR SQ: entered when read in implicit VR.
_SEQUENCE_TAGS = frozenset(tag for tag, entry in DicomDictionary.items() if entry[0] == "SQ")

Buffer = bytes | mmap.mmap


class _Refused(Exception):
    """The structure is broken; ``args[0]`` is the reason."""


class _Syntax:
    """How element headers are encoded in one transfer syntax."""

    __slots__ = ("explicit", "explicit_header", "implicit_header", "ul")

    def __init__(self, *, explicit: bool, little: bool) -> None:
        order = "<" if little else ">"
        self.explicit = explicit
        self.explicit_header = struct.Struct(order + "HH2sH")  # tag, VR, 2-byte length
        self.implicit_header = struct.Struct(order + "HHI")  # tag, 4-byte length
        self.ul = struct.Struct(order + "I")


EXPLICIT_LE = _Syntax(explicit=True, little=True)
IMPLICIT_LE = _Syntax(explicit=False, little=True)
EXPLICIT_BE = _Syntax(explicit=True, little=False)


def _tag(tag: int) -> str:
    return f"({tag >> 16:04X},{tag & 0xFFFF:04X})"


def check_dataset(
    data: Buffer, start: int = 0, *, explicit: bool = True, little: bool = True
) -> str | None:
    """None if the data set encoded in ``data[start:]`` is structurally sound, else why not."""
    syntax = _Syntax(explicit=explicit, little=little)
    try:
        _walk(data, start, len(data), syntax, 0, False)
    except _Refused as refused:
        return str(refused.args[0])
    return None


def check_file(path: Path) -> str | None:
    """:func:`check_part10` of a file: its first :data:`PREFIX_BYTES` read, the rest only
    if a header lies beyond them (memory-mapped then: only the pages of headers are
    read). A header-first file with its pixel data last is checked from the prefix."""
    with open(path, "rb") as f:
        size = os.fstat(f.fileno()).st_size
        if size == 0:
            return "empty file"
        prefix = f.read(PREFIX_BYTES)
        if len(prefix) == size:
            return check_part10(prefix)
        try:
            return check_part10(prefix, size)
        except struct.error:  # a header beyond the prefix
            with mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as data:
                return check_part10(data)


def check_part10(data: Buffer, size: int | None = None) -> str | None:
    """None if a Part 10 file (preamble, File Meta Information, data set) is sound.
    ``data`` may be the first bytes of a file of ``size`` bytes: reading a header beyond
    them raises :class:`struct.error`."""
    end = len(data) if size is None else size
    if end < 132 or data[128:132] != b"DICM":
        return "no DICOM preamble"
    try:
        pos, transfer_syntax = _file_meta(data, 132, end)
        if transfer_syntax == IMPLICIT_VR_LE:
            syntax = IMPLICIT_LE
        elif transfer_syntax == EXPLICIT_VR_BE:
            syntax = EXPLICIT_BE
        else:
            syntax = EXPLICIT_LE
        if transfer_syntax in DEFLATED:
            if end != len(data):
                raise struct.error("the deflated data set is inflated whole")
            data, pos = _inflate(data, pos), 0
            end = len(data)
        _walk(data, pos, end, syntax, 0, False)
    except _Refused as refused:
        return str(refused.args[0])
    return None


def _file_meta(data: Buffer, pos: int, end: int) -> tuple[int, str]:
    """Walk the group 0002 elements (explicit VR little endian); (end, transfer syntax)."""
    header = EXPLICIT_LE.explicit_header
    transfer_syntax = None
    while pos + 8 <= end:
        group, element, vr, length = header.unpack_from(data, pos)
        if group != 0x0002:
            break
        value_at = pos + 8
        if vr in LONG_VRS:
            if pos + 12 > end:
                break
            length = EXPLICIT_LE.ul.unpack_from(data, pos + 8)[0]
            value_at = pos + 12
        elif vr not in SHORT_VRS:
            raise _Refused(f"invalid VR in file meta (0002,{element:04X})")
        if length > end - value_at:
            raise _Refused(f"file meta (0002,{element:04X}) runs past the end")
        if element == 0x0010:
            if value_at + length > len(data):
                raise struct.error("transfer syntax beyond the data")
            raw = data[value_at : value_at + length]
            transfer_syntax = raw.rstrip(b"\0 ").decode("ascii", "replace")
        pos = value_at + length
    if transfer_syntax is None:
        raise _Refused("file meta lacks the transfer syntax")
    return pos, transfer_syntax


def _inflate(data: Buffer, pos: int) -> bytes:
    inflater = zlib.decompressobj(-zlib.MAX_WBITS)
    try:
        inflated = inflater.decompress(data[pos:], MAX_INFLATED_BYTES + 1)
    except zlib.error:
        raise _Refused("deflated data set cannot be inflated") from None
    if len(inflated) > MAX_INFLATED_BYTES:
        raise _Refused(f"deflated data set inflates beyond {MAX_INFLATED_BYTES >> 20} MiB")
    if not inflater.eof:
        raise _Refused("deflated data set is truncated")
    return inflated


def _walk(data: Buffer, pos: int, end: int, syntax: _Syntax, depth: int, delimited: bool) -> int:
    """Walk the elements of a data set from ``pos`` to ``end`` (or, for an item of
    undefined length, to its delimiter); return the position after it."""
    explicit = syntax.explicit
    header = syntax.explicit_header if explicit else syntax.implicit_header
    unpack, short_vrs = header.unpack_from, SHORT_VRS
    while pos < end:
        if pos + 8 > end:
            raise _Refused(f"element header at byte {pos} runs past the end")
        if explicit:
            group, element, vr, length = unpack(data, pos)
            if vr in short_vrs and group != 0xFFFE:  # the common case, kept short
                pos += 8
                if length & 1:
                    raise _Refused(f"odd length {length} of {_tag(group << 16 | element)}")
                if length > end - pos:
                    raise _Refused(
                        f"{_tag(group << 16 | element)} value of {length} bytes runs past the end"
                    )
                pos += length
                continue
        else:
            group, element, length = unpack(data, pos)
            vr = b""
        if group == 0xFFFE:  # items and delimiters carry no VR in any syntax
            return _item_tag(data, pos, syntax, delimited)
        tag = group << 16 | element
        if vr in LONG_VRS:
            if pos + 12 > end:
                raise _Refused(f"element header at byte {pos} runs past the end")
            length = syntax.ul.unpack_from(data, pos + 8)[0]
            pos += 12
        elif explicit:
            raise _Refused(f"invalid VR 0x{vr.hex().upper()} of {_tag(tag)}")
        else:
            pos += 8
        if length == UNDEFINED:
            if tag == PIXEL_DATA or vr in (b"OB", b"OW"):
                pos = _fragments(data, pos, end, syntax, tag)
            elif vr in (b"SQ", b""):
                pos = _sequence(data, pos, end, syntax, depth + 1, tag, False)
            elif vr == b"UN":  # PS3.5 6.2.2: a sequence in implicit VR little endian
                pos = _sequence(data, pos, end, IMPLICIT_LE, depth + 1, tag, False)
            else:
                raise _Refused(f"undefined length for VR {vr.decode()} of {_tag(tag)}")
            continue
        if length & 1:
            raise _Refused(f"odd length {length} of {_tag(tag)}")
        if length > end - pos:
            raise _Refused(f"{_tag(tag)} value of {length} bytes runs past the end")
        if vr == b"SQ" or (not explicit and tag in _SEQUENCE_TAGS):
            _sequence(data, pos, pos + length, syntax, depth + 1, tag, True)
        pos += length
    if delimited:
        raise _Refused("item of undefined length runs past the end")
    return pos


def _item_tag(data: Buffer, pos: int, syntax: _Syntax, delimited: bool) -> int:
    """An item or delimiter tag met among a data set's elements: the end of an item of
    undefined length (return the position after it), else refused."""
    group, element, length = syntax.implicit_header.unpack_from(data, pos)
    tag = group << 16 | element
    if tag != ITEM_END or not delimited:
        raise _Refused(f"unexpected {_tag(tag)} in a data set")
    if length:
        raise _Refused(f"item delimiter with length {length}")
    return pos + 8


def _sequence(
    data: Buffer, pos: int, end: int, syntax: _Syntax, depth: int, tag: int, defined: bool
) -> int:
    """Walk the items of sequence ``tag``: to ``end`` if its length is defined, else to
    its delimiter; return the position after it."""
    if depth > MAX_DEPTH:
        raise _Refused(f"sequences nested deeper than {MAX_DEPTH} levels")
    header = syntax.implicit_header
    while pos < end:
        if pos + 8 > end:
            raise _Refused(f"item header in {_tag(tag)} runs past the end")
        group, element, length = header.unpack_from(data, pos)
        item = group << 16 | element
        pos += 8
        if item == ITEM:
            if length == UNDEFINED:
                pos = _walk(data, pos, end, syntax, depth, True)
                continue
            if length & 1:
                raise _Refused(f"odd item length {length} in {_tag(tag)}")
            if length > end - pos:
                raise _Refused(f"item of {length} bytes in {_tag(tag)} runs past the end")
            _walk(data, pos, pos + length, syntax, depth, False)
            pos += length
        elif item == SEQUENCE_END and not defined:
            if length:
                raise _Refused(f"sequence delimiter of {_tag(tag)} with length {length}")
            return pos
        else:
            raise _Refused(f"unexpected {_tag(item)} in sequence {_tag(tag)}")
    if not defined:
        raise _Refused(f"sequence {_tag(tag)} has no delimiter")
    return pos


def _fragments(data: Buffer, pos: int, end: int, syntax: _Syntax, tag: int) -> int:
    """Walk the fragments of encapsulated ``tag`` to its sequence delimiter."""
    header = syntax.implicit_header
    while pos + 8 <= end:
        group, element, length = header.unpack_from(data, pos)
        item = group << 16 | element
        pos += 8
        if item == ITEM:
            if length & 1:  # odd, or undefined (0xFFFFFFFF)
                raise _Refused(f"odd fragment length {length} in {_tag(tag)}")
            if length > end - pos:
                raise _Refused(f"fragment of {length} bytes in {_tag(tag)} runs past the end")
            pos += length
        elif item == SEQUENCE_END:
            if length:
                raise _Refused(f"sequence delimiter of {_tag(tag)} with length {length}")
            return pos
        else:
            raise _Refused(f"unexpected {_tag(item)} in encapsulated {_tag(tag)}")
    raise _Refused(f"encapsulated {_tag(tag)} has no delimiter")
