"""Parsed HL7 v2 message: segments, fields, repetitions, components, with 1-based access.

Field numbering follows the standard: ``SEG-n`` is the n-th field after the segment
ID, and for MSH, MSH-1 is the field separator and MSH-2 the encoding characters.
Values are returned unescaped; absent parts are ``""``. The HL7 null ``""`` is
returned as the two-character string ``'""'`` (see :func:`is_null`).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from functools import lru_cache

from hl7.delimiters import DEFAULT_DELIMITERS, Delimiters
from hl7.escape import unescape

HL7_NULL = '""'
# MSH-1 and MSH-2 hold separators themselves: read them with no splitting at all.
_LITERAL = Delimiters("\x00", "\x00", "\x00", "\x00", "\x00")

_PATH = re.compile(r"^([A-Z0-9]{3})(?:\((\d+)\))?-(\d+)(?:\((\d+)\))?(?:[-.](\d+)(?:[-.](\d+))?)?$")


def is_null(value: str) -> bool:
    """True for the HL7 explicit null ``""`` (meaning: delete the stored value)."""
    return value == HL7_NULL


@lru_cache(maxsize=1024)
def parse_path(path: str) -> tuple[str, int, int, int, int, int]:
    """Split ``SEG(occ)-F(rep)-C-S`` into (seg, occurrence, field, rep, comp, sub).

    Occurrence and repetition are optional, in parentheses, 1-based; component
    and subcomponent may be separated by ``-`` or ``.`` (``PID-5-1``, ``PID-3(2).4``).
    """
    m = _PATH.match(path.strip().upper())
    if m is None:
        raise ValueError(f"bad HL7 path {path!r}")
    seg, occ, fld, rep, comp, sub = m.groups()
    return (
        seg,
        int(occ or 1),
        int(fld),
        int(rep or 1),
        int(comp or 1),
        int(sub or 1),
    )


def _pick(text: str, sep: str, index: int) -> str:
    """The ``index``-th (1-based) part of ``text`` split on ``sep``."""
    if sep not in text:
        return text if index == 1 else ""
    parts = text.split(sep)
    return parts[index - 1] if 0 < index <= len(parts) else ""


class Field:
    """One repetition of a field, as raw (still escaped) text."""

    __slots__ = ("_charset", "_delims", "raw")

    def __init__(self, raw: str, delims: Delimiters, charset: str) -> None:
        self.raw = raw
        self._delims = delims
        self._charset = charset

    def component(self, index: int = 1, subcomponent: int = 1) -> str:
        """Unescaped value of component ``index``, subcomponent ``subcomponent``."""
        d = self._delims
        text = _pick(_pick(self.raw, d.component, index), d.subcomponent, subcomponent)
        return unescape(text, d, self._charset)

    def components(self) -> list[str]:
        """All components unescaped (first subcomponent of each)."""
        return [self.component(i) for i in range(1, self.raw.count(self._delims.component) + 2)]

    @property
    def text(self) -> str:
        """The whole repetition unescaped, separators kept (for free-text fields)."""
        return unescape(self.raw, self._delims, self._charset)

    def __bool__(self) -> bool:
        return bool(self.raw)

    def __repr__(self) -> str:
        return f"Field({self.raw!r})"


class Segment:
    """One segment: ``fields[0]`` is the segment ID, ``fields[n]`` is field n (raw)."""

    __slots__ = ("_charset", "_delims", "fields", "name")

    def __init__(self, fields: list[str], delims: Delimiters, charset: str) -> None:
        self.name = fields[0]
        self.fields = fields
        self._delims = delims
        self._charset = charset

    def __len__(self) -> int:
        """Number of fields present (the last field number)."""
        return len(self.fields) - 1

    def raw(self, field: int) -> str:
        """Field ``field`` exactly as received (escaped, all repetitions)."""
        fields = self.fields
        return fields[field] if 0 < field < len(fields) else ""

    def get(self, field: int, component: int = 1, subcomponent: int = 1, rep: int = 1) -> str:
        """Unescaped leaf value; ``get(5)`` is component 1 of the first repetition."""
        fields = self.fields
        if not 0 < field < len(fields):
            return ""
        text = fields[field]
        if not text:
            return ""
        if field <= 2 and self.name == "MSH":
            return text if component == 1 and rep == 1 else ""
        d = self._delims
        text = _pick(
            _pick(_pick(text, d.repetition, rep), d.component, component),
            d.subcomponent,
            subcomponent,
        )
        if d.escape in text:
            return unescape(text, d, self._charset)
        return text

    def repetitions(self, field: int) -> list[Field]:
        """Every repetition of field ``field`` ([] when empty)."""
        text = self.raw(field)
        if not text:
            return []
        if field <= 2 and self.name == "MSH":
            return [Field(text, _LITERAL, self._charset)]
        return [Field(r, self._delims, self._charset) for r in text.split(self._delims.repetition)]

    def field(self, field: int, rep: int = 1) -> Field:
        """Repetition ``rep`` (1-based) of field ``field``; an empty Field when absent."""
        reps = self.repetitions(field)
        raw = reps[rep - 1].raw if 0 < rep <= len(reps) else ""
        return Field(raw, self._delims, self._charset)

    def encode(self) -> str:
        """The segment as wire text (without terminator)."""
        if self.name == "MSH":
            return self.fields[0] + self._delims.field + self._delims.field.join(self.fields[2:])
        return self._delims.field.join(self.fields)

    def __repr__(self) -> str:
        return f"Segment({self.name!r}, {len(self)} fields)"


class Message:
    """A parsed message: ordered segments plus the encoding facts of MSH-1/2/18."""

    __slots__ = ("_by_name", "charset", "charset_label", "delimiters", "segment_list")

    def __init__(
        self,
        segment_list: list[Segment],
        delimiters: Delimiters = DEFAULT_DELIMITERS,
        charset: str = "utf-8",
        charset_label: str = "",
    ) -> None:
        self.segment_list = segment_list
        self.delimiters = delimiters
        self.charset = charset
        self.charset_label = charset_label
        by_name: dict[str, list[Segment]] = {}
        for seg in segment_list:
            by_name.setdefault(seg.name, []).append(seg)
        self._by_name = by_name

    def __iter__(self) -> Iterator[Segment]:
        return iter(self.segment_list)

    def segments(self, name: str | None = None) -> list[Segment]:
        """All segments, or all segments with ID ``name``, in message order."""
        if name is None:
            return list(self.segment_list)
        return list(self._by_name.get(name, ()))

    def segment(self, name: str, occurrence: int = 1) -> Segment | None:
        """The ``occurrence``-th (1-based) segment with ID ``name``, or None."""
        segs = self._by_name.get(name)
        if not segs or not 0 < occurrence <= len(segs):
            return None
        return segs[occurrence - 1]

    def get(self, path: str) -> str:
        """Value at a path such as ``PID-5-1``, ``PID-3(2)-4``, ``OBR(2)-4.2``."""
        seg_name, occ, field, rep, comp, sub = parse_path(path)
        seg = self.segment(seg_name, occ)
        if seg is None:
            return ""
        return seg.get(field, comp, sub, rep)

    def repetitions(self, path: str) -> list[Field]:
        """Every repetition of the field a path names (component part ignored)."""
        seg_name, occ, field, _rep, _comp, _sub = parse_path(path)
        seg = self.segment(seg_name, occ)
        return seg.repetitions(field) if seg is not None else []

    @property
    def msh(self) -> Segment:
        """The MSH segment (always the first one)."""
        return self.segment_list[0]

    @property
    def message_type(self) -> str:
        """MSH-9.1, e.g. ``ORM``."""
        return self.msh.get(9, 1)

    @property
    def trigger_event(self) -> str:
        """MSH-9.2, e.g. ``O01``."""
        return self.msh.get(9, 2)

    @property
    def message_structure(self) -> str:
        """MSH-9.3, e.g. ``OMI_O23`` (often empty before v2.4)."""
        return self.msh.get(9, 3)

    @property
    def control_id(self) -> str:
        """MSH-10."""
        return self.msh.get(10)

    @property
    def version(self) -> str:
        """MSH-12.1, e.g. ``2.5.1``."""
        return self.msh.get(12)

    @property
    def processing_id(self) -> str:
        """MSH-11.1 (P, T or D)."""
        return self.msh.get(11)

    @property
    def sending_application(self) -> str:
        """MSH-3.1."""
        return self.msh.get(3)

    @property
    def sending_facility(self) -> str:
        """MSH-4.1."""
        return self.msh.get(4)

    @property
    def receiving_application(self) -> str:
        """MSH-5.1."""
        return self.msh.get(5)

    @property
    def receiving_facility(self) -> str:
        """MSH-6.1."""
        return self.msh.get(6)

    def encode(self) -> str:
        """Wire text with ``\\r`` segment terminators (as parsed, escapes untouched)."""
        return "".join(seg.encode() + "\r" for seg in self.segment_list)

    def __repr__(self) -> str:
        return (
            f"Message({self.message_type}^{self.trigger_event} v{self.version}, "
            f"{len(self.segment_list)} segments)"
        )
