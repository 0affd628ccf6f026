"""A seeded DICOM mutation generator for the fuzz proof test.

Each case is one association's worth of traffic built from a valid instance (a fresh SOP
Instance UID each time) of one of a few bases: a CT in explicit VR little endian, MR in
explicit and implicit VR, an RT Plan (sequences, implicit VR), Secondary Captures in
JPEG Lossless and RLE (encapsulated fragments). Then one mutation, at one of two levels:

* the data set (sent in well-formed PDUs): truncated, a length field changed (found
  from pydicom's own offsets), bits flipped, bytes appended, an odd-length value;
* the PDUs: their length or a PDV's length changed, cut short, header bits flipped,
  a presentation context id that was not accepted, one PDU over the maximum the
  gateway announced, the command set's bits flipped, the A-ASSOCIATE-RQ's bits flipped.

``none`` cases (one in eight) send the instance as it is. The same seed gives the same
cases.
"""

from __future__ import annotations

import io
import random
import struct
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pydicom
from pydicom.data import get_testdata_file
from pydicom.dataelem import RawDataElement
from pydicom.dataset import Dataset
from pydicom.filebase import DicomBytesIO
from pydicom.filereader import read_dataset
from pydicom.sequence import Sequence

from tests.support import rawdicom as raw
from tests.support.ctgen import make_ct_study

VERIFICATION_CONTEXT = 1
UNDEFINED = 0xFFFFFFFF
SHORT_VRS = {
    "AE", "AS", "AT", "CS", "DA", "DS", "DT", "FD", "FL", "IS", "LO", "LT", "PN", "SH", "SL",
    "SS", "ST", "TM", "UI", "UL", "US",
}  # fmt: skip


@dataclass(frozen=True)
class Base:
    """A valid instance to mutate: its data set and the context it travels on."""

    name: str
    dataset: Dataset
    context_id: int
    transfer_syntax: str

    @property
    def implicit(self) -> bool:
        return self.transfer_syntax == raw.IMPLICIT_LE

    def encode(self, sop_uid: str) -> bytes:
        """The data set with ``sop_uid``, encoded in its transfer syntax."""
        ds = self.dataset
        ds.SOPInstanceUID = sop_uid
        buffer = DicomBytesIO()
        buffer.is_little_endian, buffer.is_implicit_VR = True, self.implicit
        pydicom.filewriter.write_dataset(buffer, ds)
        return buffer.getvalue()


def load_bases(work: Path) -> list[Base]:
    _, (ct,) = make_ct_study(work, 1, size=16, accession="FUZZ1")
    sources = [
        ("CT explicit", ct),
        ("MR explicit", Path(str(get_testdata_file("MR_small.dcm")))),
        ("MR implicit", Path(str(get_testdata_file("MR_small_implicit.dcm")))),
        ("RT Plan implicit", Path(str(get_testdata_file("rtplan.dcm")))),
        ("SC JPEG lossless", Path(str(get_testdata_file("SC_rgb_jpeg_gdcm.dcm")))),
        ("SC RLE", Path(str(get_testdata_file("SC_rgb_rle.dcm")))),
    ]
    bases = []
    for index, (name, path) in enumerate(sources):
        ds = pydicom.dcmread(path)
        syntax = str(ds.file_meta.TransferSyntaxUID)
        del ds.file_meta
        bases.append(Base(name, ds, 3 + 2 * index, syntax))
    return bases


def contexts(bases: list[Base]) -> list[tuple[int, str, list[str]]]:
    """The presentation contexts every case proposes (Verification first)."""
    out = [(VERIFICATION_CONTEXT, raw.VERIFICATION, [raw.IMPLICIT_LE])]
    out += [(b.context_id, str(b.dataset.SOPClassUID), [b.transfer_syntax]) for b in bases]
    return out


@dataclass
class Case:
    """What one association sends: an A-ASSOCIATE-RQ, then ``payload`` (raw PDUs)."""

    number: int
    mutation: str
    base: str
    sop_class: str
    sop_uid: str
    associate_rq: bytes
    payload: bytes = b""
    # The payload ends a whole C-STORE request as far as its framing says: an answer (or
    # an abort) is due; otherwise the peer stops sending and waits for the gateway to
    # close or abort.
    complete: bool = True
    details: dict[str, object] = field(default_factory=dict)


def _length_fields(data: bytes, implicit: bool) -> list[tuple[int, str]]:
    """(offset, struct format) of each element's length field, top level and nested,
    from pydicom's offsets (``value_tell``)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ds = read_dataset(io.BytesIO(data), implicit, True)
    fields: list[tuple[int, str]] = []
    stack = [ds]
    while stack:
        current = stack.pop()
        for tag in list(current.keys()):
            element = current.get_item(tag)
            if not isinstance(element, RawDataElement):
                continue
            short = not implicit and element.VR in SHORT_VRS
            fmt = "<H" if short else "<I"
            offset = element.value_tell - (2 if short else 4)
            if offset >= 0 and struct.unpack_from(fmt, data, offset)[0] == element.length:
                fields.append((offset, fmt))
            if element.VR == "SQ" or (implicit and element.VR is None):
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    try:
                        value = current[tag].value
                    except Exception:
                        continue
                if isinstance(value, Sequence):
                    stack.extend(value)
    return fields


class DicomMutator:
    """``next()`` returns the next :class:`Case`; the same seed gives the same cases."""

    def __init__(self, seed: int, bases: list[Base], max_pdu: int, uid_root: str) -> None:
        self.rng = random.Random(seed)
        self.bases = bases
        self.max_pdu = max_pdu  # what the gateway announces in its A-ASSOCIATE-AC
        self.uid_root = uid_root
        self.count = 0
        self.contexts = contexts(bases)
        self.dataset_mutations: dict[str, Callable[[bytes, Base], bytes]] = {
            "truncate": self._truncate,
            "length": self._length,
            "bit flips": self._bit_flips,
            "appended bytes": self._appended,
            "odd value": self._odd_value,
        }
        self.pdu_mutations: dict[str, Callable[[Case, bytes, bytes], None]] = {
            "PDU length": self._pdu_length,
            "PDV length": self._pdv_length,
            "PDU cut short": self._pdu_cut,
            "PDU header bits": self._pdu_header_bits,
            "wrong context id": self._wrong_context,
            "PDU over maximum": self._oversized,
            "command bits": self._command_bits,
            "A-ASSOCIATE-RQ bits": self._associate_bits,
        }

    def uid(self) -> str:
        return f"{self.uid_root}.{self.count}"

    def next(self) -> Case:
        self.count += 1
        base = self.rng.choice(self.bases)
        sop_uid = self.uid()
        sop_class = str(base.dataset.SOPClassUID)
        case = Case(
            self.count,
            "none",
            base.name,
            sop_class,
            sop_uid,
            raw.associate_rq("STORESCU", contexts=self.contexts, max_pdu=self.max_pdu),
        )
        dataset = base.encode(sop_uid)
        command = raw.command(0x0001, sop_class, sop_uid, msg_id=self.count % 65536)
        roll = self.rng.random()
        if roll < 0.125:
            case.payload = self.frame(base.context_id, command, dataset)
        elif roll < 0.55:
            case.mutation = self.rng.choice(sorted(self.dataset_mutations))
            dataset = self.dataset_mutations[case.mutation](dataset, base)
            case.payload = self.frame(base.context_id, command, dataset)
        else:
            case.mutation = self.rng.choice(sorted(self.pdu_mutations))
            self.pdu_mutations[case.mutation](case, command, dataset)
        return case

    def frame(self, context_id: int, command: bytes, dataset: bytes, piece: int = 0) -> bytes:
        """A C-STORE request in P-DATA-TF PDUs: the command, then the data set in PDVs of
        ``piece`` bytes (default: as large as the gateway's maximum PDU allows)."""
        piece = piece or self.max_pdu - 6
        out = raw.p_data(context_id, command, is_command=True)
        for pos in range(0, max(len(dataset), 1), piece):
            last = pos + piece >= len(dataset)
            out += raw.p_data(context_id, dataset[pos : pos + piece], is_command=False, last=last)
        return out

    # -- data set mutations -----------------------------------------------------------------
    def _truncate(self, data: bytes, base: Base) -> bytes:
        return data[: self.rng.randrange(0, len(data))]

    def _length(self, data: bytes, base: Base) -> bytes:
        fields = _length_fields(data, base.implicit)
        offset, fmt = self.rng.choice(fields)
        old = struct.unpack_from(fmt, data, offset)[0]
        top = 0xFFFF if fmt == "<H" else UNDEFINED
        choices = [old + 1, old - 1, old + 2, old - 2, old * 2, 0, top, top - 1, old + 4096]
        new = self.rng.choice([c for c in choices if 0 <= c <= top and c != old] or [0])
        out = bytearray(data)
        struct.pack_into(fmt, out, offset, new)
        return bytes(out)

    def _bit_flips(self, data: bytes, base: Base) -> bytes:
        out = bytearray(data)
        for _ in range(self.rng.randint(1, 8)):
            pos = self.rng.randrange(len(out))
            out[pos] ^= 1 << self.rng.randrange(8)
        return bytes(out)

    def _appended(self, data: bytes, base: Base) -> bytes:
        return data + self.rng.randbytes(self.rng.choice([1, 2, 7, 8, 64]))

    def _odd_value(self, data: bytes, base: Base) -> bytes:
        """A private element of odd length at the end (tags ascend: after everything but
        trailing padding), as the odd Pixel Data seen in the field."""
        size = self.rng.choice([1, 3, 8191])
        value = self.rng.randbytes(size)
        if base.implicit:
            return data + struct.pack("<HHI", 0x7FE1, 0x1001, size) + value
        return data + struct.pack("<HH2s2xI", 0x7FE1, 0x1001, b"OB", size) + value

    # -- PDU mutations ----------------------------------------------------------------------
    def _pdus(self, case: Case, command: bytes, dataset: bytes) -> list[bytearray]:
        base = next(b for b in self.bases if b.name == case.base)
        piece = self.rng.choice([0, 256, 4000])
        framed = self.frame(base.context_id, command, dataset, piece)
        pdus = []
        pos = 0
        while pos < len(framed):
            length = struct.unpack_from(">I", framed, pos + 2)[0]
            pdus.append(bytearray(framed[pos : pos + 6 + length]))
            pos += 6 + length
        return pdus

    def _pdu_length(self, case: Case, command: bytes, dataset: bytes) -> None:
        pdus = self._pdus(case, command, dataset)
        target = self.rng.randrange(len(pdus))
        length = struct.unpack_from(">I", pdus[target], 2)[0]
        new = self.rng.choice([0, 1, 4, length - 1, length + 1, length + 1000, 0xFFFFFFFF])
        struct.pack_into(">I", pdus[target], 2, max(new, 0))
        case.details["pdu"] = target
        case.payload = b"".join(pdus)
        case.complete = new < length  # a longer PDU waits for bytes that never come

    def _pdv_length(self, case: Case, command: bytes, dataset: bytes) -> None:
        pdus = self._pdus(case, command, dataset)
        target = self.rng.randrange(len(pdus))
        length = struct.unpack_from(">I", pdus[target], 6)[0]
        new = self.rng.choice([0, 1, 2, length - 1, length + 1, length * 2, 0xFFFFFFFF])
        struct.pack_into(">I", pdus[target], 6, max(new, 0))
        case.payload = b"".join(pdus)

    def _pdu_cut(self, case: Case, command: bytes, dataset: bytes) -> None:
        pdus = self._pdus(case, command, dataset)
        target = self.rng.randrange(len(pdus))
        cut = self.rng.randrange(1, len(pdus[target]))
        case.payload = b"".join(pdus[:target]) + bytes(pdus[target][:cut])
        case.complete = False

    def _pdu_header_bits(self, case: Case, command: bytes, dataset: bytes) -> None:
        pdus = self._pdus(case, command, dataset)
        target = self.rng.randrange(len(pdus))
        for _ in range(self.rng.randint(1, 3)):
            pdus[target][self.rng.randrange(12)] ^= 1 << self.rng.randrange(8)
        case.payload = b"".join(pdus)

    def _wrong_context(self, case: Case, command: bytes, dataset: bytes) -> None:
        pdus = self._pdus(case, command, dataset)
        wrong = self.rng.choice([0, 2, 99, 255, VERIFICATION_CONTEXT])
        for pdu in pdus[: self.rng.choice([1, len(pdus)])]:
            pdu[10] = wrong
        case.payload = b"".join(pdus)

    def _oversized(self, case: Case, command: bytes, dataset: bytes) -> None:
        """The data set in one PDV, padded with a trailing element to exceed the maximum."""
        base = next(b for b in self.bases if b.name == case.base)
        over = self.rng.choice([1, 1024, 3 * self.max_pdu])
        need = max(self.max_pdu + over - len(dataset) - 12, 2)
        need += need % 2
        if base.implicit:
            tail = struct.pack("<HHI", 0xFFFC, 0xFFFC, need)
        else:
            tail = struct.pack("<HH2s2xI", 0xFFFC, 0xFFFC, b"OB", need)
        body = dataset + tail + b"\0" * need
        case.payload = raw.p_data(base.context_id, command, is_command=True) + raw.p_data(
            base.context_id, body, is_command=False
        )
        case.details["pdu bytes"] = len(body) + 12

    def _command_bits(self, case: Case, command: bytes, dataset: bytes) -> None:
        flipped = bytearray(command)
        for _ in range(self.rng.randint(1, 4)):
            flipped[self.rng.randrange(len(flipped))] ^= 1 << self.rng.randrange(8)
        base = next(b for b in self.bases if b.name == case.base)
        case.payload = self.frame(base.context_id, bytes(flipped), dataset)

    def _associate_bits(self, case: Case, command: bytes, dataset: bytes) -> None:
        flipped = bytearray(case.associate_rq)
        for _ in range(self.rng.randint(1, 4)):
            flipped[self.rng.randrange(len(flipped))] ^= 1 << self.rng.randrange(8)
        case.associate_rq = bytes(flipped)
        base = next(b for b in self.bases if b.name == case.base)
        case.payload = self.frame(base.context_id, command, dataset)
