"""Spliced correction: a matched instance's header corrected without decoding it.

The elements a :class:`~gateway.reconciliation.coerce.CoercionPlan` may touch (the plan's values,
(0008,0005) Specific Character Set, (0040,0275) Request Attributes Sequence and
(0400,0561) Original Attributes Sequence) are found by walking the element headers of
the file's head (everything before the first tag above (0400,0561)); every other element
of the head is kept as its bytes, and the tail (pixel data) is not read at all.

The touched elements are corrected by :func:`~gateway.reconciliation.coerce.apply_plan` itself, on a
small data set made of their raw bytes alone, and encoded by pydicom in the file's
transfer syntax: what they become is exactly what the full re-encoding makes of them.
The instances of a study carry the same patient and study elements, so that result is
kept per study (:class:`StudyCorrection`, keyed by the touched elements' raw bytes and
the modification time to the second): a study's instances after the first are walked
and spliced only (tens of microseconds instead of a pydicom decode and encode of the
head, ~4 ms).

When the plan switches the Specific Character Set, a kept element can stay as it is
only if its bytes read the same in both character sets: binary or default-repertoire
VRs, or seven-bit text without an escape (ASCII in every character set DICOM allows).
Anything else, and anything unusual (big endian, deflated, a data set not encoded as
its transfer syntax says, an unknown VR, a malformed or very large head), returns None:
the caller corrects the instance with pydicom (:mod:`gateway.reconciliation.coerce_stream`).
"""

from __future__ import annotations

import io
import struct
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import NamedTuple

from pydicom.datadict import dictionary_VR, private_dictionary_VR, tag_for_keyword
from pydicom.filebase import DicomBytesIO
from pydicom.filereader import read_dataset
from pydicom.filewriter import write_dataset
from pydicom.uid import UID

from gateway.reconciliation.coerce import CoercionPlan, apply_plan

DEFLATED = frozenset({"1.2.840.10008.1.2.1.99", "1.2.840.10008.1.2.4.95"})
# The highest tag a correction writes: (0400,0561) Original Attributes Sequence.
LAST_TOUCHED = 0x04000561
ALWAYS_TOUCHED = frozenset({0x00080005, 0x00400275, LAST_TOUCHED})

FIRST_READ = 16 * 1024
MAX_HEAD = 8 * 1024 * 1024  # a head larger than this goes the pydicom way
MAX_DEPTH = 16
CACHE_SIZE = 64

UNDEFINED = 0xFFFFFFFF
ITEM = 0xFFFEE000
ITEM_END = 0xFFFEE00D
SEQUENCE_END = 0xFFFEE0DD

LONG_VRS = frozenset(
    {b"OB", b"OD", b"OF", b"OL", b"OV", b"OW", b"SQ", b"SV", b"UC", b"UN", b"UR", b"UT", b"UV"}
)
SHORT_VRS = frozenset(
    {b"AE", b"AS", b"AT", b"CS", b"DA", b"DS", b"DT", b"FD", b"FL", b"IS", b"LO", b"LT"}
    | {b"PN", b"SH", b"SL", b"SS", b"ST", b"TM", b"UI", b"UL", b"US"}
)
# VRs whose bytes do not depend on the Specific Character Set.
CHARSET_FREE_VRS = frozenset(
    {"AE", "AS", "AT", "CS", "DA", "DS", "DT", "FD", "FL", "IS", "OB", "OD", "OF"}
    | {"OL", "OV", "OW", "SL", "SS", "SV", "TM", "UI", "UL", "UR", "US", "UV"}
)
ESC = 0x1B


class Decline(Exception):
    """The head cannot be spliced (or needs more bytes than were read)."""


class _Short(Decline):
    """The walk needs bytes beyond the buffer."""


class Element(NamedTuple):
    """An element: its tag, explicit VR (b"" when implicit) and byte ranges (the whole
    element, and its value without the header and any sequence delimiter)."""

    tag: int
    vr: bytes
    start: int
    value_start: int
    value_end: int
    end: int


@dataclass(frozen=True)
class Spliced:
    """A corrected head (``head`` replaces the file's bytes from ``dataset_offset`` to
    ``tail_offset``) and whether the Specific Character Set changed (then the caller
    checks that the tail holds no text)."""

    head: bytes
    tail_offset: int
    dataset_offset: int
    charset_changed: bool
    implicit: bool


class StudyCorrection:
    """One study's plan, with the corrected touched elements of the instances seen."""

    def __init__(self, plan: CoercionPlan, now: datetime | None = None) -> None:
        self.plan = plan
        self.now = now
        keywords = (tag_for_keyword(k) for k in plan.values)
        self.touched = ALWAYS_TOUCHED | {tag for tag in keywords if tag is not None}
        self._cache: dict[tuple[bool, bytes, str], tuple[list[tuple[int, bytes]], bool]] = {}

    def splice(self, path: Path) -> Spliced | None:
        """The corrected head of ``path``, or None (correct it with pydicom)."""
        try:
            return self._splice(path)
        except (Decline, struct.error, ValueError, KeyError, LookupError):
            return None

    def _splice(self, path: Path) -> Spliced:
        with open(path, "rb") as f:
            data = f.read(FIRST_READ)
            whole = len(data) < FIRST_READ
            dataset_offset, implicit = _file_meta(data)
            while True:
                try:
                    elements, tail_offset = walk_head(data, dataset_offset, implicit, whole)
                    break
                except _Short:  # read more, walk again
                    if whole or len(data) >= MAX_HEAD:
                        raise Decline("head cut short or too large") from None
                    more = f.read(len(data))
                    whole = len(more) < len(data)
                    data += more
        touched = self.touched
        raw = b"".join([data[start:end] for tag, start, end in elements if tag in touched])
        moment = (self.now or datetime.now(UTC)).replace(microsecond=0)
        key = (implicit, raw, moment.isoformat())
        cached = self._cache.get(key)
        if cached is None:
            if len(self._cache) >= CACHE_SIZE:
                self._cache.clear()
            cached = self._cache[key] = _corrected(raw, implicit, self.plan, moment)
        replacements, charset_changed = cached
        # Group lengths are dropped (retired in data sets; those of changed groups
        # would be wrong), as pydicom's encoding drops them.
        pieces = [
            (tag, data[start:end])
            for tag, start, end in elements
            if tag not in touched and tag & 0xFFFF
        ]
        if charset_changed:
            kept = (_element(data, start, implicit, 0) for tag, start, _ in elements)
            _check_charset_free(data, (e for e in kept if e.tag not in touched), implicit, 0)
        pieces += replacements
        pieces.sort(key=lambda p: p[0])
        head = b"".join([p[1] for p in pieces])
        return Spliced(head, tail_offset, dataset_offset, charset_changed, implicit)


def _file_meta(data: bytes) -> tuple[int, bool]:
    """(where the data set starts, implicit VR?) from a Part 10 file's first bytes;
    declines anything but implicit and explicit VR little endian."""
    if len(data) < 132 or data[128:132] != b"DICM":
        raise Decline("no Part 10 preamble")
    pos = 132
    syntax = None
    while pos + 8 <= len(data):
        group, element = struct.unpack_from("<HH", data, pos)
        if group != 0x0002:
            break
        vr = data[pos + 4 : pos + 6]
        if vr in LONG_VRS:
            (length,) = struct.unpack_from("<I", data, pos + 8)
            pos += 12
        elif vr in SHORT_VRS:
            (length,) = struct.unpack_from("<H", data, pos + 6)
            pos += 8
        else:
            raise Decline("file meta not explicit VR")
        if element == 0x0010:
            syntax = data[pos : pos + length].rstrip(b"\0 ").decode("ascii")
        pos += length
    else:
        raise Decline("file meta longer than the first read")
    implicit = _implicit_by_syntax.get(syntax or "")
    if implicit is None:
        uid = UID(syntax or "")
        if not uid.is_transfer_syntax or uid in DEFLATED or not uid.is_little_endian:
            raise Decline("transfer syntax not spliced")
        implicit = _implicit_by_syntax[uid] = uid.is_implicit_VR
    return pos, implicit


_implicit_by_syntax: dict[str, bool] = {}  # the little endian, not deflated syntaxes seen


def _looks_explicit(data: bytes, pos: int) -> bool:
    """pydicom's test of a data set's first element: two upper-case letters as VR."""
    return 0x40 < data[pos + 4] < 0x5B and 0x40 < data[pos + 5] < 0x5B


def walk_head(
    data: bytes, pos: int, implicit: bool, whole: bool = True
) -> tuple[list[tuple[int, int, int]], int]:
    """(tag, start, end) of each top-level element from ``pos`` up to the first tag
    above (0400,0561), and the offset where that tag starts (the end of the data set if
    there is none).

    ``whole``: ``data`` holds the whole file. Raises :class:`_Short` when ``data`` ends
    inside the head, :class:`Decline` when the head is malformed or unusual."""
    size = len(data)
    if pos + 6 <= size and _looks_explicit(data, pos) == implicit:
        raise Decline("data set not encoded as its transfer syntax says")
    elements: list[tuple[int, int, int]] = []
    last = -1
    unpack = struct.unpack_from
    while pos < size or not whole:
        if pos + 8 > size:
            raise _Short
        group, elem, vr, length = unpack("<HH2sH", data, pos)
        tag = group << 16 | elem
        if tag > LAST_TOUCHED:
            return elements, pos
        if tag <= last:
            raise Decline("elements out of order")
        last = tag
        if not implicit and vr in SHORT_VRS:  # most elements: walked here
            end = pos + 8 + length
            if end > size:
                raise _Short
        else:
            end = _element(data, pos, implicit, 0).end
        elements.append((tag, pos, end))
        pos = end
    return elements, pos


def _element(data: bytes, pos: int, implicit: bool, depth: int) -> Element:
    """The element at ``pos`` (its value skipped, undefined-length sequences walked)."""
    if pos + 8 > len(data):
        raise _Short
    tag = struct.unpack_from("<HH", data, pos)
    if implicit:
        (length,) = struct.unpack_from("<I", data, pos + 4)
        vr = b""
        start = pos + 8
    else:
        vr = data[pos + 4 : pos + 6]
        if vr in LONG_VRS:
            if pos + 12 > len(data):
                raise _Short
            (length,) = struct.unpack_from("<I", data, pos + 8)
            start = pos + 12
        elif vr in SHORT_VRS:
            (length,) = struct.unpack_from("<H", data, pos + 6)
            start = pos + 8
        else:
            raise Decline("unknown VR")
    if length != UNDEFINED:
        end = start + length
        if end > len(data):
            raise _Short
        return Element(tag[0] << 16 | tag[1], vr, pos, start, end, end)
    if implicit or vr == b"SQ":
        end = _sequence_end(data, start, implicit, depth + 1)
    elif vr == b"UN":  # PS3.5 6.2.2: an undefined-length UN is an implicit VR sequence
        end = _sequence_end(data, start, True, depth + 1)
    else:
        raise Decline("undefined length in the head")
    return Element(tag[0] << 16 | tag[1], vr, pos, start, end - 8, end)


def _items(data: bytes, pos: int, end: int, implicit: bool, depth: int) -> Iterator[Element]:
    """The items of a sequence value from ``pos`` to ``end`` (or to its sequence
    delimiter); each item's value range holds its elements."""
    if depth > MAX_DEPTH:
        raise Decline("nested too deep")
    while pos < end:
        if pos + 8 > len(data):
            raise _Short
        group, elem, length = struct.unpack_from("<HHI", data, pos)
        tag = group << 16 | elem
        if tag == SEQUENCE_END:
            return
        if tag != ITEM:
            raise Decline("not an item")
        start = pos + 8
        if length != UNDEFINED:
            pos = start + length
            if pos > len(data):
                raise _Short
            yield Element(tag, b"", start - 8, start, pos, pos)
            continue
        pos = start
        while True:  # an undefined-length item: its elements, up to the item delimiter
            if pos + 8 > len(data):
                raise _Short
            group, elem = struct.unpack_from("<HH", data, pos)
            if group << 16 | elem == ITEM_END:
                break
            pos = _element(data, pos, implicit, depth).end
        yield Element(tag, b"", start - 8, start, pos, pos + 8)
        pos += 8


def _sequence_end(data: bytes, pos: int, implicit: bool, depth: int) -> int:
    """The end of an undefined-length sequence whose first item starts at ``pos``."""
    for item in _items(data, pos, len(data) + 1, implicit, depth):
        pos = item.end
    if pos + 8 > len(data):
        raise _Short
    if struct.unpack_from("<HH", data, pos) != (0xFFFE, 0xE0DD):
        raise Decline("no sequence delimiter")
    return pos + 8


def _item_elements(data: bytes, item: Element, implicit: bool, depth: int) -> Iterator[Element]:
    pos = item.value_start
    while pos < item.value_end:
        if not implicit and not _looks_explicit(data, pos):
            raise Decline("implicit VR item in an explicit VR data set")
        element = _element(data, pos, implicit, depth)
        yield element
        pos = element.end


def _elements_of(data: bytes, implicit: bool) -> Iterator[Element]:
    """Each top-level element of an encoded data set."""
    pos = 0
    while pos < len(data):
        element = _element(data, pos, implicit, 0)
        yield element
        pos = element.end


def _corrected(
    raw: bytes, implicit: bool, plan: CoercionPlan, moment: datetime
) -> tuple[list[tuple[int, bytes]], bool]:
    """The touched elements (their raw bytes, in tag order) corrected and encoded, by
    tag; and whether the Specific Character Set changed."""
    ds = read_dataset(io.BytesIO(raw), implicit, True)
    if raw and ds.original_encoding != (implicit, True):
        raise Decline("touched elements not encoded as the transfer syntax says")
    charset = ds.get("SpecificCharacterSet")
    apply_plan(ds, plan, moment)
    out = DicomBytesIO()
    out.is_implicit_VR, out.is_little_endian = implicit, True
    write_dataset(out, ds)
    encoded = out.getvalue()
    pieces = [(e.tag, encoded[e.start : e.end]) for e in _elements_of(encoded, implicit)]
    return pieces, ds.get("SpecificCharacterSet") != charset


def _check_charset_free(
    data: bytes, elements: Iterable[Element], implicit: bool, depth: int
) -> None:
    """Decline unless each of ``elements`` (of one data set or item, in tag order) reads
    the same whatever the character set: a binary or default-repertoire VR, a value
    pydicom keeps as bytes (UN), seven-bit text without an escape, or a sequence of
    such. The VR is the one pydicom reads the element with."""
    creators: dict[int, bytes] = {}
    for element in elements:
        vr = _reading_vr(element, creators)
        if element.tag >> 16 & 1 and 0x0010 <= element.tag & 0xFFFF <= 0x00FF:
            creators[element.tag] = data[element.value_start : element.value_end]
        if vr in CHARSET_FREE_VRS or (vr == "UN" and element.value_end == element.end):
            continue
        if vr == "SQ" or element.value_end != element.end:  # defined or undefined length
            nested = implicit or element.vr == b"UN"  # an undefined-length UN is implicit
            for item in _items(data, element.value_start, element.value_end, nested, depth + 1):
                _check_charset_free(
                    data, _item_elements(data, item, nested, depth + 1), nested, depth + 1
                )
            continue
        value = data[element.value_start : element.value_end]
        if not value.isascii() or ESC in value:
            raise Decline("text that the new character set would read otherwise")


def _reading_vr(element: Element, creators: dict[int, bytes]) -> str:
    """The VR pydicom reads ``element`` with (its hooks ``raw_element_vr`` and
    ``_private_vr_for_tag``): the explicit VR, else the dictionary's, else (private) the
    private dictionary's by the block's creator; "UN" (kept as bytes) when unknown. A
    VR of several ("US or SS") is given as its first, all of them charset free."""
    tag = element.tag
    if element.vr and (element.vr != b"UN" or element.value_end - element.value_start >= 0xFFFF):
        return element.vr.decode("ascii")
    if not tag >> 16 & 1:  # public
        try:
            return dictionary_VR(tag).split(" or ")[0]
        except KeyError:
            return "UN"
    if 0x0010 <= tag & 0xFFFF <= 0x00FF:
        return "LO"  # a private creator
    creator = creators.get(tag & 0xFFFF0000 | (tag & 0xFF00) >> 8)
    if creator is None or not tag & 0xFF00:
        return "UN"
    if not creator.isascii():
        raise Decline("private creator not ASCII")
    try:
        return private_dictionary_VR(tag, creator.rstrip(b"\0 ").decode("ascii")).split(" or ")[0]
    except KeyError:
        return "UN"
