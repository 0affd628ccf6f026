"""Streaming coercion: a matched instance corrected by re-encoding its header only.

Every element a :class:`~gateway.reconciliation.coerce.CoercionPlan` touches (patient and
study level,
the Request Attributes Sequence, the Specific Character Set) and the Original Attributes
Sequence (0400,0561) itself come before the first element whose tag is above
(0400,0561): the *head*. The rest (the *tail*: pixel data, and whatever follows) leaves
from the file as stored (``sendfile`` on the DICOM path, streamed on the REST path).
Memory per instance: the head only.

The head is first spliced (:mod:`gateway.reconciliation.coerce_splice`: the touched
elements corrected once per study, every other element kept as its bytes). Where the
splice declines (big endian, a head it cannot walk, text it cannot keep), the head is
read with pydicom, corrected with :func:`~gateway.reconciliation.coerce.apply_plan` and
encoded again in the file's transfer syntax; group length elements of the head are
dropped (retired in data sets; those of the changed groups would be wrong).

:func:`corrected_file` returns None when the shortcut could change what the PACS reads;
the caller then uses :func:`~gateway.reconciliation.coerce.coerced_dataset` (full decode, full
encode): a deflated transfer syntax, a data set not encoded as its transfer syntax says,
or a Specific Character Set changed to UTF-8 while the tail may hold text encoded in the
old one.
"""

from __future__ import annotations

import os
import struct
from datetime import datetime
from pathlib import Path
from typing import BinaryIO

from pydicom.datadict import dictionary_VR
from pydicom.filebase import DicomBytesIO
from pydicom.filereader import read_dataset, read_partial, read_preamble
from pydicom.filewriter import write_dataset
from pydicom.tag import BaseTag
from pydicom.uid import UID

from dicom_nodes.dimse_shortcuts import HeadedFile
from gateway.reconciliation.coerce import CoercionPlan, apply_plan
from gateway.reconciliation.coerce_splice import (
    CHARSET_FREE_VRS,
    DEFLATED,
    LAST_TOUCHED,
    UNDEFINED,
    StudyCorrection,
)

# Any VR of the tail outside CHARSET_FREE_VRS (text, SQ, UN) stops the shortcut when the
# character set changes.
LONG_VRS = frozenset({"OB", "OD", "OF", "OL", "OV", "OW", "SQ", "UC", "UN", "UR", "UT", "SV", "UV"})


def corrected_file(path: Path, correction: StudyCorrection) -> HeadedFile | None:
    """The corrected head of ``path`` and where its untouched tail starts, or None (use
    the full re-encoding)."""
    spliced = correction.splice(path)
    if spliced is not None:
        if spliced.charset_changed:
            with open(path, "rb") as f:
                end = os.fstat(f.fileno()).st_size
                if _tail_may_hold_text(f, spliced.tail_offset, end, spliced.implicit, True):
                    return None
        return HeadedFile(path, spliced.head, spliced.tail_offset, spliced.dataset_offset)
    return _reencoded_head(path, correction.plan, correction.now)


def _reencoded_head(path: Path, plan: CoercionPlan, now: datetime | None) -> HeadedFile | None:
    """:func:`corrected_file` by a pydicom decode and encode of the head."""
    with open(path, "rb") as f:
        read_preamble(f, False)
        meta = read_dataset(f, False, True, stop_when=lambda tag, vr, length: tag.group != 2)
        dataset_offset = f.tell()
        syntax = UID(str(meta.get("TransferSyntaxUID", "")))
        if not syntax or syntax in DEFLATED or not syntax.is_transfer_syntax:
            return None
        f.seek(0)
        ds = read_partial(f, stop_when=lambda tag, vr, length: tag > LAST_TOUCHED)
        tail_offset = f.tell()
        encoding = (syntax.is_implicit_VR, syntax.is_little_endian)
        if ds.original_encoding != encoding:
            return None
        charset = ds.get("SpecificCharacterSet")
        apply_plan(ds, plan, now)
        end = os.fstat(f.fileno()).st_size
        if ds.get("SpecificCharacterSet") != charset and _tail_may_hold_text(
            f, tail_offset, end, *encoding
        ):
            return None
    for tag in [elem.tag for elem in ds if elem.tag.element == 0]:
        del ds[tag]
    out = DicomBytesIO()
    out.is_implicit_VR, out.is_little_endian = encoding
    write_dataset(out, ds)
    return HeadedFile(path, out.getvalue(), tail_offset, dataset_offset)


def _tail_may_hold_text(f: BinaryIO, pos: int, end: int, implicit: bool, little: bool) -> bool:
    """Whether a top-level element from ``pos`` to ``end`` may hold text (its VR is not
    character-set free, or is unknown); reads element headers only."""
    order = "<" if little else ">"
    while pos < end:
        f.seek(pos)
        header = f.read(8)
        if len(header) < 8:
            return True
        group, element = struct.unpack(order + "HH", header[:4])
        tag = BaseTag(group << 16 | element)
        if implicit:
            if tag.is_private:
                return True
            try:
                vr = dictionary_VR(tag)
            except KeyError:
                return True
            (length,) = struct.unpack(order + "I", header[4:])
            size = 8
        else:
            vr = header[4:6].decode("ascii", "replace")
            if vr in LONG_VRS:
                (length,) = struct.unpack(order + "I", f.read(4))
                size = 12
            else:
                (length,) = struct.unpack(order + "H", header[6:])
                size = 8
        if not CHARSET_FREE_VRS.issuperset(vr.split(" or ")):  # "OB or OW" when implicit
            return True
        if length == UNDEFINED:
            if tag != 0x7FE00010:
                return True
            after = _after_fragments(f, pos + size, end, order)
            if after is None:
                return True
            pos = after
        else:
            pos += size + length
    return False


def _after_fragments(f: BinaryIO, pos: int, end: int, order: str) -> int | None:
    """The offset after the sequence delimiter of encapsulated pixel data whose first
    item starts at ``pos`` (item headers only are read), or None if it is malformed."""
    while pos + 8 <= end:
        f.seek(pos)
        group, element, length = struct.unpack(order + "HHI", f.read(8))
        tag = group << 16 | element
        if tag == 0xFFFEE0DD:
            return pos + 8
        if tag != 0xFFFEE000 or length == UNDEFINED:
            return None
        pos += 8 + length
    return None
