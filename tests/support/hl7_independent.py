"""The gateway's outbound HL7 as an independent parser (hl7apy) reads it.

The project's own parser (``hl7/``) reading back what the project's own encoder wrote
proves little; these helpers let tests check the wire bytes against hl7apy's HL7 v2
message model instead: MSH-18 decides the decoding, then ``parse_message`` with
``VALIDATION_LEVEL.STRICT`` checks segment order, groups, cardinality and required
fields, and ``validate()`` checks the whole message again.

Where hl7apy 1.3.5's model rejects valid messages the reading is TOLERANT (structure
still found, fields still read), with the reason in ``TOLERANT_BECAUSE``:

* ORM^O01 (every version): its OBR|RQD|RQ1|RXO|ODS|ODT choice is modelled as a sequence,
  so a valid ORM^O01 is refused for a missing RQD (crs4/hl7apy#151, docs/decisions.md);
* v2.3 and v2.3.1: hl7apy's tables make ORC-7 (v2.3) and OBX-4 (v2.3.1) required, where
  its v2.4+ tables (and the gateway's default, 2.5) leave them optional.

hl7apy keeps escape sequences as they are on the wire; :func:`unescape` (written from
the standard's section 2.7, not the project's ``hl7.escape``) turns them into text.
"""

from __future__ import annotations

import re

from hl7apy.consts import VALIDATION_LEVEL
from hl7apy.core import Message, Segment
from hl7apy.parser import parse_message

CHARSETS = {"": "ascii", "UNICODE UTF-8": "utf-8"}
TOLERANT_BECAUSE = {
    "ORM": "hl7apy models ORM_O01's OBR/RQD/... choice as a sequence (crs4/hl7apy#151)",
    "2.3": "hl7apy's v2.3 table makes ORC-7 required",
    "2.3.1": "hl7apy's v2.3.1 table makes OBX-4 required",
}
_ESCAPE = re.compile(r"\\(F|S|T|R|E|X(?:[0-9A-Fa-f]{2})+)\\")
_PLAIN = {"F": "|", "S": "^", "T": "&", "R": "~", "E": "\\"}


def header_fields(raw: bytes) -> list[str]:
    """MSH split at the field separator, numbered as the standard does (index 1 = MSH-1)."""
    head = raw.split(b"\r", 1)[0].decode("ascii", errors="replace")
    assert head.startswith("MSH"), head[:20]
    sep = head[3]
    return ["MSH", sep, *head[4:].split(sep)]


def text_of(raw: bytes) -> str:
    """The message decoded as its MSH-18 says (the gateway sends only UTF-8 or none)."""
    fields = header_fields(raw)
    label = fields[18] if len(fields) > 18 else ""
    assert label in CHARSETS, f"MSH-18 {label!r}"
    return raw.decode(CHARSETS[label])


def strict(raw: bytes) -> bool:
    """Whether hl7apy's model can hold this message to STRICT (see the module's docstring)."""
    fields = header_fields(raw)
    return fields[9].split(fields[2][0])[0] not in TOLERANT_BECAUSE and (
        fields[12] not in TOLERANT_BECAUSE
    )


def read(raw: bytes) -> Message:
    """The message with its groups, STRICT-validated wherever hl7apy's model allows."""
    text = text_of(raw)
    if strict(raw):
        msg = parse_message(text, validation_level=VALIDATION_LEVEL.STRICT, find_groups=True)
        assert msg.validate()
        return msg
    return parse_message(text, validation_level=VALIDATION_LEVEL.TOLERANT, find_groups=True)


def segments(raw: bytes, name: str) -> list[Segment]:
    """Every ``name`` segment in wire order (Z-segments included, which groups drop)."""
    flat = parse_message(
        text_of(raw), validation_level=VALIDATION_LEVEL.TOLERANT, find_groups=False
    )
    return [s for s in flat.children if s.name == name]


def unescape(text: str) -> str:
    """Replace \\F\\ \\S\\ \\T\\ \\R\\ \\E\\ and \\Xhh..\\ (default delimiters, UTF-8)."""

    def plain(match: re.Match[str]) -> str:
        code = match.group(1)
        return _PLAIN.get(code) or bytes.fromhex(code[1:]).decode("utf-8")

    return _ESCAPE.sub(plain, text)


def value(element: object) -> str:
    """A field, component or segment's text as hl7apy holds it, escape sequences resolved."""
    return unescape(element.to_er7())  # type: ignore[attr-defined]


def components(element: object) -> list[str]:
    """The components of a field whose type hl7apy does not split (OBX-5 is ``varies``)."""
    return [unescape(c) for c in element.to_er7().split("^")]  # type: ignore[attr-defined]


def message_type(raw: bytes) -> str:
    """MSH-9 as ``ORU^R01`` (type and event), read by hl7apy."""
    msh = parse_message(
        text_of(raw), validation_level=VALIDATION_LEVEL.TOLERANT, find_groups=False
    ).msh
    return "^".join(msh.msh_9.to_er7().split("^")[:2])
