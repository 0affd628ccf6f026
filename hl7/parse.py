"""Parse raw HL7 v2 bytes into a :class:`~hl7.message.Message`, raising :class:`HL7Error`.

Structural checks only (MSH, encoding characters, charset, segment IDs, message
type present, control id, version); the meaning of the content is checked by
:mod:`hl7.interpret`.
"""

from __future__ import annotations

from collections.abc import Collection

from hl7.charset import codec_for
from hl7.delimiters import Delimiters
from hl7.errors import (
    DATA_TYPE_ERROR,
    REQUIRED_FIELD_MISSING,
    SEGMENT_SEQUENCE_ERROR,
    TABLE_VALUE_NOT_FOUND,
    UNSUPPORTED_MESSAGE_TYPE,
    UNSUPPORTED_VERSION_ID,
    HL7Error,
)
from hl7.message import Message, Segment

SUPPORTED_VERSIONS: tuple[str, ...] = ("2.3", "2.3.1", "2.4", "2.5", "2.5.1")

_LEADING_JUNK = b" \t\r\n\x00\x0b\xef\xbb\xbf"
_SEGMENT_ID_CHARS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789")


def _valid_separator(char: str) -> bool:
    return len(char) == 1 and "!" <= char <= "~" and not char.isalnum()


def _delimiters(raw: bytes) -> Delimiters:
    """Read MSH-1 and MSH-2 from the start of ``raw`` (which begins with MSH)."""
    if len(raw) < 4:
        raise HL7Error(
            "AR", "message truncated inside MSH", "MSH", 1, hl7_code=SEGMENT_SEQUENCE_ERROR
        )
    fsep = chr(raw[3])
    if not _valid_separator(fsep):
        raise HL7Error("AR", "invalid field separator", "MSH", 1, hl7_code=DATA_TYPE_ERROR)
    end = len(raw)
    for term in (b"\r", b"\n"):
        pos = raw.find(term, 4)
        if 0 <= pos < end:
            end = pos
    enc = raw[4:end].split(raw[3:4], 1)[0].decode("latin-1")
    if len(enc) not in (4, 5) or not all(_valid_separator(c) for c in enc):
        raise HL7Error("AR", "invalid encoding characters", "MSH", 2, hl7_code=DATA_TYPE_ERROR)
    if len(set(enc + fsep)) != len(enc) + 1:
        raise HL7Error("AR", "encoding characters not distinct", "MSH", 2, hl7_code=DATA_TYPE_ERROR)
    return Delimiters(fsep, enc[0], enc[1], enc[2], enc[3])


def _charset_label(raw: bytes, delims: Delimiters) -> str:
    """MSH-18 (first repetition, first component) read from the raw MSH line."""
    end = len(raw)
    for term in (b"\r", b"\n"):
        pos = raw.find(term)
        if 0 <= pos < end:
            end = pos
    fields = raw[:end].split(delims.field.encode("latin-1"))
    if len(fields) < 18:
        return ""
    label = fields[17].decode("latin-1")
    label = label.split(delims.repetition, 1)[0].split(delims.component, 1)[0]
    return label.strip()


def _decode(
    raw: bytes, label: str, default_charset: str, fallback_charset: str | None
) -> tuple[str, str]:
    codec = codec_for(label, default_charset)
    if codec is None:
        raise HL7Error("AR", "unsupported character set", "MSH", 18, hl7_code=TABLE_VALUE_NOT_FOUND)
    try:
        return raw.decode(codec), codec
    except UnicodeDecodeError:
        if not label and fallback_charset:
            return raw.decode(fallback_charset, errors="replace"), fallback_charset
        raise HL7Error(
            "AE",
            "message bytes do not match the character set",
            "MSH",
            18,
            hl7_code=DATA_TYPE_ERROR,
        ) from None


def _split_segments(text: str, delims: Delimiters, codec: str) -> list[Segment]:
    if "\n" in text:
        text = text.replace("\r\n", "\r").replace("\n", "\r")
    fsep = delims.field
    segments: list[Segment] = []
    for index, line in enumerate(text.split("\r"), start=1):
        if not line or line.isspace():
            continue
        name = line[:3]
        if (
            len(name) != 3
            or not _SEGMENT_ID_CHARS.issuperset(name)
            or (len(line) > 3 and line[3] != fsep)
        ):
            raise HL7Error(
                "AE",
                f"invalid segment ID in segment {index}",
                None,
                None,
                hl7_code=SEGMENT_SEQUENCE_ERROR,
            )
        fields = line.split(fsep)
        if name == "MSH":
            if segments:
                raise HL7Error(
                    "AE", "more than one MSH segment", "MSH", hl7_code=SEGMENT_SEQUENCE_ERROR
                )
            fields.insert(1, fsep)
        segments.append(Segment(fields, delims, codec))
    return segments


def _check_header(msg: Message, versions: Collection[str] | None) -> None:
    msh = msg.msh
    if not msh.get(9, 1):
        raise HL7Error("AR", "message type missing", "MSH", 9, hl7_code=UNSUPPORTED_MESSAGE_TYPE)
    if not msh.get(10):
        raise HL7Error(
            "AE", "message control id missing", "MSH", 10, hl7_code=REQUIRED_FIELD_MISSING
        )
    if versions is not None and msh.get(12) not in versions:
        raise HL7Error("AR", "unsupported HL7 version", "MSH", 12, hl7_code=UNSUPPORTED_VERSION_ID)


def parse(
    raw: bytes | str,
    *,
    default_charset: str = "utf-8",
    fallback_charset: str | None = None,
    versions: Collection[str] | None = SUPPORTED_VERSIONS,
) -> Message:
    """Parse one HL7 v2 message.

    ``default_charset`` decodes messages with an empty MSH-18; ``fallback_charset``
    (e.g. ``latin-1``) is tried when such a message is not valid in the default.
    ``versions`` lists accepted MSH-12 values (None accepts any, e.g. for ACKs).
    Segment terminators may be ``\\r``, ``\\n`` or ``\\r\\n``.
    """
    if isinstance(raw, str):
        raw = raw.encode("utf-8")
    raw = raw.lstrip(_LEADING_JUNK)
    if not raw.startswith(b"MSH"):
        raise HL7Error(
            "AR", "message does not start with MSH", "MSH", hl7_code=SEGMENT_SEQUENCE_ERROR
        )
    delims = _delimiters(raw)
    label = _charset_label(raw, delims)
    text, codec = _decode(raw, label, default_charset, fallback_charset)
    msg = Message(_split_segments(text, delims, codec), delims, codec, label)
    _check_header(msg, versions)
    return msg


def parse_header(raw: bytes | str) -> Message | None:
    """Best-effort MSH of a message that :func:`parse` rejects; never raises.

    Used to address an ACK for garbage: returns a Message holding only MSH (or
    the fully parsed message when possible), or None when no MSH can be found.
    """
    if isinstance(raw, str):
        raw = raw.encode("utf-8", errors="replace")
    try:
        return parse(raw, versions=None)
    except HL7Error:
        pass
    start = raw.find(b"MSH")
    if start < 0 or len(raw) < start + 8:
        return None
    line = raw[start:]
    for term in (b"\r", b"\n"):
        line = line.split(term, 1)[0]
    if len(line) < 8:  # "MSH" then a segment terminator: no separators to salvage
        return None
    fsep = chr(line[3])
    if not _valid_separator(fsep):
        return None
    text = line.decode("utf-8", errors="replace")
    fields = text.split(fsep)
    enc = fields[1] if len(fields) > 1 else ""
    if len(enc) >= 4 and len(set(enc[:4] + fsep)) == 5 and all(map(_valid_separator, enc[:4])):
        delims = Delimiters(fsep, enc[0], enc[1], enc[2], enc[3])
    else:
        delims = Delimiters(fsep, "\x01", "\x02", "\x03", "\x04")
    fields.insert(1, fsep)
    return Message([Segment(fields, delims, "utf-8")], delims, "utf-8", "")


def complete_header(raw: bytes) -> Message | None:
    """The MSH of a message cut short, when its MSH segment is whole within ``raw``.

    Parsed from that one segment (MSH first, after the junk :func:`parse` skips, and
    followed by a segment terminator); None otherwise, so that no field cut in the
    middle, such as MSH-10, is ever echoed. Never raises.
    """
    start = len(raw) - len(raw.lstrip(_LEADING_JUNK))
    if not raw.startswith(b"MSH", start):
        return None
    ends = [pos for pos in (raw.find(b"\r", start), raw.find(b"\n", start)) if pos >= 0]
    if not ends:
        return None
    return parse_header(raw[start : min(ends)])
