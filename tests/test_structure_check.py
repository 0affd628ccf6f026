"""The structure check of received data sets (``dicom_nodes.structure_check``).

Data sets written by pydicom (every transfer syntax the gateway accepts, sequences and
items of defined and undefined length, encapsulated fragments) and pydicom's own test
files are accepted; truncations and length mutations are refused or, if they still form
a valid structure, read the same by pydicom; dcmtk's dcmdump is a second, independent
parser on seeded mutations.
"""

from __future__ import annotations

import io
import random
import struct
import subprocess
import warnings
import zlib
from collections.abc import Iterator
from pathlib import Path

import pydicom
import pytest
from hypothesis import HealthCheck, assume, event, given, settings
from hypothesis import strategies as st
from pydicom.data import get_testdata_files
from pydicom.datadict import DicomDictionary
from pydicom.dataelem import DataElement, RawDataElement
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.encaps import encapsulate
from pydicom.sequence import Sequence
from pydicom.uid import (
    DeflatedExplicitVRLittleEndian,
    ExplicitVRBigEndian,
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
    JPEGBaseline8Bit,
)

from dicom_nodes import structure_check
from dicom_nodes.structure_check import check_dataset, check_file, check_part10

SYNTAXES = [
    ImplicitVRLittleEndian,
    ExplicitVRLittleEndian,
    ExplicitVRBigEndian,
    DeflatedExplicitVRLittleEndian,
    JPEGBaseline8Bit,
]

# pydicom test files that pydicom reads but whose encoding is broken, with the reason.
KNOWN_BROKEN = {
    "MR_truncated.dcm": "(7FE0,0010) value of 8192 bytes runs past the end",
    "rtplan_truncated.dcm": "(300A,00B0) value of 976 bytes runs past the end",
    "DICOMDIR-nooffset": "item of 248 bytes in (0004,1220) runs past the end",
    "nested_priv_SQ.dcm": "odd length 9 of (0001,0002)",
    "SC_rgb_jpeg.dcm": "invalid VR 0x1800 of (0008,0008)",  # meta says explicit, data implicit
    "meta_missing_tsyntax.dcm": "file meta lacks the transfer syntax",
}


@pytest.fixture(autouse=True, scope="module")
def _no_value_validation() -> Iterator[None]:
    """Values are random: only their encoding matters here."""
    config = pydicom.config.settings
    saved = config.reading_validation_mode, config.writing_validation_mode
    config.reading_validation_mode = config.writing_validation_mode = pydicom.config.IGNORE
    yield
    config.reading_validation_mode, config.writing_validation_mode = saved


def _readable_test_files() -> dict[str, bytes]:
    out = {}
    for name in sorted(get_testdata_files()):
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                ds = pydicom.dcmread(name)
                for _ in ds.iterall():
                    pass
        except Exception:
            continue
        out[name] = Path(name).read_bytes()
    return out


READABLE = _readable_test_files()
SOUND = {
    name: data
    for name, data in READABLE.items()
    if Path(name).name not in KNOWN_BROKEN and data[128:132] == b"DICM"
}


@pytest.mark.unit
def test_pydicom_test_files_accepted_or_known_broken() -> None:
    assert len(READABLE) >= 150
    seen_broken = set()
    for name, data in READABLE.items():
        base = Path(name).name
        if data[128:132] != b"DICM":  # a bare data set, no preamble
            ds = pydicom.dcmread(io.BytesIO(data), force=True)
            reason = check_dataset(data, explicit=not ds.is_implicit_VR)
        else:
            reason = check_file(Path(name))
        assert reason == KNOWN_BROKEN.get(base), base
        if reason is not None:
            seen_broken.add(base)
    assert seen_broken == set(KNOWN_BROKEN)


@pytest.mark.integration  # runs dcmtk's dcmdump
def test_known_broken_files_confirmed_independently() -> None:
    """The odd length is in pydicom's own reading; dcmdump fails on the truncated ones."""
    path = next(n for n in READABLE if n.endswith("nested_priv_SQ.dcm"))
    ds = pydicom.dcmread(path)
    raw = next(i for item in ds[0x00010001].value for i in item.elements() if i.tag == 0x00010002)
    assert isinstance(raw, RawDataElement) and raw.length == 9
    for base in ("MR_truncated.dcm", "rtplan_truncated.dcm"):
        path = next(n for n in READABLE if n.endswith(base))
        assert _dcmdump_fails(Path(path).read_bytes()), base


# --- data sets written by pydicom ----------------------------------------------------

_VALUES: dict[str, st.SearchStrategy[object]] = {
    **{vr: st.text("0123456789", max_size=11) for vr in ("AE", "CS", "DS", "IS", "SH")},
    **{vr: st.text("ABC0123456789^", max_size=40) for vr in ("LO", "PN", "UC")},
    **{vr: st.text("ABC 0123456789", max_size=300) for vr in ("LT", "ST", "UT", "UR")},
    "UI": st.text("0123456789.", min_size=1, max_size=40),
    "DA": st.just("20261203"),
    "TM": st.just("101010"),
    "US": st.lists(st.integers(0, 0xFFFF), min_size=1, max_size=3),
    "SS": st.lists(st.integers(-0x8000, 0x7FFF), min_size=1, max_size=3),
    "UL": st.lists(st.integers(0, 0xFFFFFFFF), min_size=1, max_size=3),
    "SL": st.lists(st.integers(-(2**31), 2**31 - 1), min_size=1, max_size=3),
    "FL": st.lists(st.floats(width=32, allow_nan=False), min_size=1, max_size=3),
    "FD": st.lists(st.floats(allow_nan=False), min_size=1, max_size=3),
    "AT": st.lists(st.integers(0, 0xFFFFFFFF), min_size=1, max_size=2),
    # pydicom pads OB but writes UN as given: an odd UN would be pydicom's own bug.
    "OB": st.binary(max_size=41),
    "UN": st.binary(max_size=20).map(lambda b: b + b"\0" * (len(b) % 2)),
    "OW": st.binary(max_size=5).map(lambda b: b * 8),
    "OF": st.binary(max_size=3).map(lambda b: b * 4),
}


def _tags_by_vr() -> dict[str, list[int]]:
    out: dict[str, list[int]] = {}
    for tag, entry in DicomDictionary.items():
        if tag >> 16 in (0x0000, 0x0002, 0x0004, 0x7FE0) or tag == 0x00080005 or not entry[4]:
            continue
        if entry[0] in _VALUES or entry[0] == "SQ":
            out.setdefault(entry[0], []).append(tag)
    return {vr: sorted(tags) for vr, tags in out.items()}


_TAGS = _tags_by_vr()


@st.composite
def _datasets(draw: st.DrawFn, depth: int = 0) -> Dataset:
    ds = Dataset()
    vrs = sorted(_TAGS) if depth < 3 else sorted(set(_TAGS) - {"SQ"})
    for _ in range(draw(st.integers(0, 5))):
        vr = draw(st.sampled_from(vrs))
        tag = draw(st.sampled_from(_TAGS[vr]))
        if vr == "SQ":
            items = draw(st.lists(_datasets(depth + 1), max_size=3))
            for item in items:
                item.is_undefined_length_sequence_item = draw(st.booleans())
            element = DataElement(tag, "SQ", Sequence(items))
            element.is_undefined_length = draw(st.booleans())
        else:
            element = DataElement(tag, vr, draw(_VALUES[vr]))
        ds.add(element)
    if draw(st.booleans()):  # a private block (read back as UN in implicit VR)
        block = ds.private_block(0x0009, "RISGATE TEST", create=True)
        block.add_new(0x10, "LO", draw(_VALUES["LO"]))
        block.add_new(0x11, "OB", draw(_VALUES["OB"]))
    return ds


@st.composite
def _part10(draw: st.DrawFn) -> bytes:
    ds = draw(_datasets())
    syntax = draw(st.sampled_from(SYNTAXES))
    ds.SOPClassUID = "1.2.840.10008.5.1.4.1.1.7"
    ds.SOPInstanceUID = "1.2.3.4"
    ds.file_meta = FileMetaDataset()
    ds.file_meta.MediaStorageSOPClassUID = ds.SOPClassUID
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    ds.file_meta.TransferSyntaxUID = syntax
    ds.BitsAllocated = 8
    if syntax == JPEGBaseline8Bit:
        fragments = draw(st.lists(st.binary(min_size=1, max_size=30), min_size=1, max_size=4))
        ds.PixelData = encapsulate(fragments)
        ds["PixelData"].VR = "OB"
    elif draw(st.booleans()):
        ds.PixelData = draw(_VALUES["OW"])
        ds["PixelData"].VR = "OB"
    buffer = io.BytesIO()
    ds.save_as(buffer, enforce_file_format=True)
    return buffer.getvalue()


_PROPERTY = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@pytest.mark.unit
@_PROPERTY
@given(_part10())
def test_pydicom_written_data_sets_are_accepted(data: bytes) -> None:
    assert check_part10(data) is None
    _pydicom_structure(data)  # and pydicom reads them back


def _pydicom_structure(data: bytes) -> list[tuple[int, ...]]:
    """The tags pydicom reads (sequences entered, other values left raw), as paths; raises
    if pydicom cannot read the structure."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ds = pydicom.dcmread(io.BytesIO(data), force=True)
        return list(_paths(ds, ()))


def _paths(ds: Dataset, parent: tuple[int, ...]) -> Iterator[tuple[int, ...]]:
    for tag in list(ds.keys()):
        raw = ds.get_item(tag)
        path = (*parent, int(tag))
        yield path
        vr = raw.VR
        implicit_sq = vr is None and DicomDictionary.get(int(tag), ("",))[0] == "SQ"
        undefined_un = (
            vr == "UN"
            and isinstance(raw, RawDataElement)
            and raw.length == structure_check.UNDEFINED
        )
        if vr == "SQ" or implicit_sq or undefined_un:
            value = ds[tag].value
            if isinstance(value, Sequence):
                for index, item in enumerate(value):
                    yield from _paths(item, (*path, index))


def _samples() -> st.SearchStrategy[bytes]:
    """Sound Part 10 files: written by pydicom, or pydicom's test files."""
    return st.one_of(_part10(), st.sampled_from(sorted(SOUND)).map(SOUND.__getitem__))


def _element_ends(data: bytes) -> list[int]:
    """Where pydicom's top-level elements of defined length end (short of the file's end)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ds = pydicom.dcmread(io.BytesIO(data), force=True)
    ends = []
    for tag in list(ds.keys()):
        raw = ds.get_item(tag)
        if isinstance(raw, RawDataElement) and raw.length != structure_check.UNDEFINED:
            ends.append(raw.value_tell + raw.length)
    return [end for end in ends if end < len(data)]


@pytest.mark.unit
@_PROPERTY
@given(st.data())
def test_truncations_refused_or_a_prefix_pydicom_agrees_with(data: st.DataObject) -> None:
    whole = data.draw(_samples().filter(lambda d: b"1.2.840.10008.1.2.1.99" not in d[:400]))
    boundaries = _element_ends(whole)
    if data.draw(st.booleans()) and boundaries:  # where the structure may still hold
        cut = data.draw(st.sampled_from(boundaries))
    else:
        cut = data.draw(st.integers(0, len(whole) - 1))
    reason = check_part10(whole[:cut])
    _assert_reason_shape(reason)
    event("truncation " + ("refused" if reason else "accepted"))
    if reason is None:  # cut at an element boundary of the top level: still sound
        truncated = [p for p in _pydicom_structure(whole[:cut]) if len(p) == 1]
        original = [p for p in _pydicom_structure(whole) if len(p) == 1]
        assert truncated == original[: len(truncated)]


def _length_fields(data: bytes) -> list[tuple[int, str]]:
    """(offset, struct format) of the length field of every element pydicom reads (nested ones
    included), from its own offsets (``value_tell``)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ds = pydicom.dcmread(io.BytesIO(data), force=True)
    little = ds.original_encoding[1]
    fields = []
    stack = [ds]
    while stack:
        current = stack.pop()
        for tag in list(current.keys()):
            raw = current.get_item(tag)
            if not isinstance(raw, RawDataElement):
                continue
            short = raw.VR is not None and raw.VR.encode() in structure_check.SHORT_VRS
            size = 2 if short else 4
            offset = raw.value_tell - size
            fmt = ("<" if little else ">") + ("H" if short else "I")
            if offset > 0 and struct.unpack_from(fmt, data, offset)[0] == raw.length:
                fields.append((offset, fmt))
            if raw.VR == "SQ" or raw.VR is None:
                value = current[tag].value
                if isinstance(value, Sequence):
                    stack.extend(value)
    return fields


@pytest.mark.unit
@_PROPERTY
@given(st.data())
def test_length_mutations_refused_or_read_alike_by_pydicom(data: st.DataObject) -> None:
    whole = data.draw(_part10().filter(lambda d: b"1.2.840.10008.1.2.1.99" not in d[:400]))
    fields = _length_fields(whole)
    assume(fields)
    offset, fmt = data.draw(st.sampled_from(fields))
    old = struct.unpack_from(fmt, whole, offset)[0]
    top = 0xFFFF if fmt[1] == "H" else 0xFFFFFFFF
    new = data.draw(
        st.sampled_from([old + 1, old - 1, old + 2, old - 2, old + 8, 0, top, top - 1]).filter(
            lambda n: 0 <= n <= top and n != old
        )
    )
    mutated = bytearray(whole)
    struct.pack_into(fmt, mutated, offset, new)
    reason = check_part10(bytes(mutated))
    _assert_reason_shape(reason)
    if new & 1 and new != top:
        assert reason is not None  # an odd length is never sound
    event("length mutation " + ("refused" if reason else "accepted"))
    if reason is None:
        _pydicom_structure(bytes(mutated))


@pytest.mark.unit
@settings(max_examples=300, deadline=None)
@given(st.data())
def test_any_corruption_gives_an_answer(data: st.DataObject) -> None:
    """Overwritten bytes anywhere: a reason or None, never an exception."""
    whole = bytearray(data.draw(_samples()))
    for _ in range(data.draw(st.integers(1, 4))):
        at = data.draw(st.integers(0, len(whole) - 1))
        patch = data.draw(st.binary(min_size=1, max_size=4))
        whole[at : at + len(patch)] = patch
    _assert_reason_shape(check_part10(bytes(whole)))


def _assert_reason_shape(reason: str | None) -> None:
    """Fits a C-STORE Error Comment (LO, 64 characters) as ASCII."""
    if reason is not None:
        assert 0 < len(reason) <= 64 and reason.isascii(), reason


# --- the cases of the issue, and each rule on its own ----------------------------------


def _explicit(
    group: int, element: int, vr: bytes, value: bytes, length: int | None = None
) -> bytes:
    size = len(value) if length is None else length
    if vr in structure_check.LONG_VRS:
        return struct.pack("<HH2s2xI", group, element, vr, size) + value
    return struct.pack("<HH2sH", group, element, vr, size) + value


def _item(body: bytes, length: int | None = None) -> bytes:
    return struct.pack("<HHI", 0xFFFE, 0xE000, len(body) if length is None else length) + body


ITEM_END = struct.pack("<HHI", 0xFFFE, 0xE00D, 0)
SEQ_END = struct.pack("<HHI", 0xFFFE, 0xE0DD, 0)
HEAD = _explicit(0x0008, 0x0016, b"UI", b"1.2.840.10008.5.1.4.1.1.7\0")


@pytest.mark.unit
def test_pixel_data_declaring_more_than_follows() -> None:
    data = HEAD + _explicit(0x7FE0, 0x0010, b"OW", b"\0" * 1000, length=8192)
    assert check_dataset(data) == "(7FE0,0010) value of 8192 bytes runs past the end"


@pytest.mark.unit
def test_odd_length_pixel_data() -> None:
    data = HEAD + _explicit(0x7FE0, 0x0010, b"OB", b"\0" * 8191)
    assert check_dataset(data) == "odd length 8191 of (7FE0,0010)"


@pytest.mark.unit
def test_each_rule() -> None:
    code = _explicit(0x0008, 0x0100, b"SH", b"CODE01")
    cases = {
        # a sequence of undefined length: items of defined and undefined length
        HEAD
        + _explicit(
            0x0040,
            0xA043,
            b"SQ",
            _item(code) + _item(code, 0xFFFFFFFF) + ITEM_END + SEQ_END,
            0xFFFFFFFF,
        ): None,
        HEAD
        + _explicit(
            0x0040, 0xA043, b"SQ", _item(code) + _item(code, 0xFFFFFFFF), 0xFFFFFFFF
        ): "item of undefined length runs past the end",
        HEAD
        + _explicit(
            0x0040, 0xA043, b"SQ", _item(code), 0xFFFFFFFF
        ): "sequence (0040,A043) has no delimiter",
        HEAD
        + _explicit(
            0x0040, 0xA043, b"SQ", _item(code, len(code) + 2)
        ): "item of 16 bytes in (0040,A043) runs past the end",
        HEAD
        + _explicit(
            0x0040, 0xA043, b"SQ", _item(code, 13), 22
        ): "odd item length 13 in (0040,A043)",
        HEAD
        + _explicit(0x0040, 0xA043, b"SQ", code): "unexpected (0008,0100) in sequence (0040,A043)",
        HEAD
        + _explicit(
            0x0040, 0xA043, b"SQ", _item(code[:-2])
        ): "(0008,0100) value of 6 bytes runs past the end",
        # encapsulated pixel data: offset table, fragments, delimiter
        HEAD
        + _explicit(0x7FE0, 0x0010, b"OB", _item(b"") + _item(b"ab") + SEQ_END, 0xFFFFFFFF): None,
        HEAD
        + _explicit(
            0x7FE0, 0x0010, b"OB", _item(b"") + _item(b"abc") + SEQ_END, 0xFFFFFFFF
        ): "odd fragment length 3 in (7FE0,0010)",
        HEAD
        + _explicit(
            0x7FE0, 0x0010, b"OB", _item(b"") + _item(b"ab"), 0xFFFFFFFF
        ): "encapsulated (7FE0,0010) has no delimiter",
        HEAD
        + _explicit(
            0x7FE0, 0x0010, b"OB", _item(b"ab", 100) + SEQ_END, 0xFFFFFFFF
        ): "fragment of 100 bytes in (7FE0,0010) runs past the end",
        HEAD
        + _explicit(
            0x0008, 0x0100, b"SH", b"", 0xFFFE
        ): "(0008,0100) value of 65534 bytes runs past the end",
        HEAD
        + _explicit(
            0x0008, 0x0100, b"UT", b"", 0xFFFFFFFF
        ): "undefined length for VR UT of (0008,0100)",
        HEAD + b"\x08\x00\x20\x00zz\x02\x00ab": "invalid VR 0x7A7A of (0008,0020)",
        HEAD + b"\x08\x00\x20\x00": "element header at byte 34 runs past the end",
        HEAD + ITEM_END: "unexpected (FFFE,E00D) in a data set",
        # UN of undefined length: a sequence in implicit VR little endian (PS3.5 6.2.2)
        HEAD
        + _explicit(
            0x0009,
            0x1010,
            b"UN",
            _item(struct.pack("<HHI", 8, 0x100, 2) + b"ab") + SEQ_END,
            0xFFFFFFFF,
        ): None,
        HEAD
        + _explicit(
            0x0009,
            0x1010,
            b"UN",
            _item(struct.pack("<HHI", 8, 0x100, 3) + b"abc", 0xFFFFFFFF) + ITEM_END + SEQ_END,
            0xFFFFFFFF,
        ): "odd length 3 of (0008,0100)",
    }
    for data, expected in cases.items():
        assert check_dataset(data) == expected, data.hex()


@pytest.mark.unit
def test_implicit_and_big_endian() -> None:
    seq = struct.pack("<HHI", 0x0040, 0xA043, 16) + _item(struct.pack("<HHI", 8, 0x100, 0))
    assert check_dataset(seq, explicit=False) is None
    broken = struct.pack("<HHI", 0x0040, 0xA043, 16) + _item(struct.pack("<HHI", 8, 0x100, 2))
    assert check_dataset(broken, explicit=False) == "(0008,0100) value of 2 bytes runs past the end"
    big = struct.pack(">HH2sH", 0x0008, 0x0100, b"SH", 3) + b"abc"
    assert check_dataset(big, little=False) == "odd length 3 of (0008,0100)"
    assert check_dataset(big[:8] + b"ab", little=False) == "odd length 3 of (0008,0100)"
    good = struct.pack(">HH2sH", 0x0008, 0x0100, b"SH", 4) + b"abcd"
    assert check_dataset(good, little=False) is None


@pytest.mark.unit
def test_nesting_is_bounded() -> None:
    body = b""
    for _ in range(structure_check.MAX_DEPTH + 1):
        body = _explicit(0x0040, 0xA043, b"SQ", _item(body))
    assert check_dataset(body) == f"sequences nested deeper than {structure_check.MAX_DEPTH} levels"


def _deflated(dataset: bytes) -> bytes:
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.7"
    meta.MediaStorageSOPInstanceUID = "1.2.3"
    meta.TransferSyntaxUID = DeflatedExplicitVRLittleEndian
    buffer = io.BytesIO()
    buffer.write(b"\0" * 128 + b"DICM")
    pydicom.filewriter.write_file_meta_info(buffer, meta)
    compressor = zlib.compressobj(9, zlib.DEFLATED, -zlib.MAX_WBITS)
    return buffer.getvalue() + compressor.compress(dataset) + compressor.flush()


@pytest.mark.unit
def test_deflated(monkeypatch: pytest.MonkeyPatch) -> None:
    good = HEAD + _explicit(0x7FE0, 0x0010, b"OB", b"\0" * 1000)
    assert check_part10(_deflated(good)) is None
    odd = HEAD + _explicit(0x7FE0, 0x0010, b"OB", b"\0" * 999)
    assert check_part10(_deflated(odd)) == "odd length 999 of (7FE0,0010)"
    assert check_part10(_deflated(good)[:-3]) == "deflated data set is truncated"
    assert check_part10(_deflated(good)[:200] + b"\xff" * 50) is not None
    monkeypatch.setattr(structure_check, "MAX_INFLATED_BYTES", 500)
    assert check_part10(_deflated(good)) == "deflated data set inflates beyond 0 MiB"


@pytest.mark.unit
def test_files(tmp_path: Path) -> None:
    empty = tmp_path / "empty.dcm"
    empty.write_bytes(b"")
    assert check_file(empty) == "empty file"
    short = tmp_path / "short.dcm"
    short.write_bytes(b"\0" * 100)
    assert check_file(short) == "no DICOM preamble"


# --- dcmtk's dcmdump as a second parser --------------------------------------------------


def _dcmdump_fails(data: bytes) -> bool:
    """dcmdump reports an error reading the whole file (it tolerates some breakage)."""
    result = subprocess.run(["dcmdump", "-q", "-"], input=data, capture_output=True, timeout=30)
    return result.returncode != 0


@pytest.mark.integration  # runs dcmtk's dcmdump
def test_dcmdump_agrees_on_seeded_mutations() -> None:
    """Every file dcmdump cannot read is refused; every one accepted dcmdump reads."""
    rng = random.Random(20261203)
    bases = ("CT_small.dcm", "MR_small.dcm", "MR_small_implicit.dcm")
    bases += ("MR_small_bigendian.dcm", "JPEG2000.dcm", "rtplan.dcm")
    names = [name for name in sorted(SOUND) if Path(name).name in bases]
    assert len(names) == len(bases)
    counts = {"both refuse": 0, "both accept": 0, "only the check refuses": 0}
    for index in range(80):
        whole = SOUND[names[index % len(names)]]
        if index % 2:
            mutated = whole[: rng.randrange(300, len(whole))]
        else:  # two bytes overwritten among the headers before the pixel data
            pixels = max(whole.find(b"\xe0\x7f\x10\x00"), whole.find(b"\x7f\xe0\x00\x10"))
            at = rng.randrange(300, (pixels if pixels > 400 else len(whole)) - 4)
            mutated = whole[:at] + rng.randbytes(2) + whole[at + 2 :]
        reason = check_part10(mutated)
        dcmdump_fails = _dcmdump_fails(mutated)
        assert reason is not None or not dcmdump_fails, (Path(names[index % 6]).name, index)
        if reason is None:
            counts["both accept"] += 1
        else:
            counts["both refuse" if dcmdump_fails else "only the check refuses"] += 1
    assert counts["both refuse"] > 40 and counts["both accept"] > 10, counts


@pytest.mark.unit
def test_files_beyond_the_prefix(tmp_path: Path) -> None:
    """Large files: checked from their first bytes while headers lie there, mapped when
    one lies beyond them (an element after the pixel data)."""
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.7"
    meta.MediaStorageSOPInstanceUID = "1.2.3"
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    buffer = io.BytesIO()
    buffer.write(b"\0" * 128 + b"DICM")
    pydicom.filewriter.write_file_meta_info(buffer, meta)
    head = buffer.getvalue() + HEAD
    size = 3 * structure_check.PREFIX_BYTES
    pixels = _explicit(0x7FE0, 0x0010, b"OW", b"\0" * size)
    cases = {
        head + pixels: None,
        head + pixels + _explicit(0xFFFC, 0xFFFC, b"OB", b"\0" * 4): None,
        head + pixels + _explicit(0xFFFC, 0xFFFC, b"OB", b"\0" * 3): "odd length 3 of (FFFC,FFFC)",
        head + pixels[: size // 2]: f"(7FE0,0010) value of {size} bytes runs past the end",
        head + pixels + b"\0\0": f"element header at byte {len(head + pixels)} runs past the end",
    }
    path = tmp_path / "large.dcm"
    for data, expected in cases.items():
        path.write_bytes(data)
        assert check_file(path) == expected == check_part10(data)
