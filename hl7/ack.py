"""Build the ACK (MSA + ERR) for a parsed, partially parsed or unparseable message."""

from __future__ import annotations

from datetime import datetime

from hl7.charset import codec_for
from hl7.delimiters import DEFAULT_DELIMITERS, Delimiters
from hl7.encode import (
    FieldValue,
    Raw,
    encode_message,
    encode_msh,
    encode_segment,
    new_control_id,
    version_tuple,
)
from hl7.errors import ERROR_CODE_TEXT, AckCode, HL7Error
from hl7.message import Message
from hl7.parse import parse_header

DEFAULT_VERSION = "2.5"


def _usable(d: Delimiters) -> bool:
    chars = d.field + d.msh2
    return len(set(chars)) == 5 and all("!" <= c <= "~" and not c.isalnum() for c in chars)


def _clean(text: str) -> str:
    """Drop control characters (CR, LF, MLLP block bytes) from copied raw text."""
    return "".join(c for c in text if c >= " " or c == "\t")


def _copied(msg: Message | None, field: int, raw_ok: bool) -> FieldValue:
    """A MSH field of the source: raw (all components) when its delimiters are sound."""
    if msg is None:
        return None
    if raw_ok:
        return Raw(_clean(msg.msh.raw(field)))
    return _clean(msg.msh.get(field))


def _err_segment(error: HL7Error, version: tuple[int, ...], d: Delimiters) -> str:
    code = str(error.hl7_code)
    code_text = ERROR_CODE_TEXT.get(error.hl7_code, "")
    location: list[str | None] = []
    if error.segment:
        location = [error.segment, str(error.segment_seq)]
        if error.field_position is not None:
            location.append(str(error.field_position))
            if error.component is not None:
                location += ["1", str(error.component)]
    if version and version < (2, 5):
        # v2.3/2.4 ERR-1 (ELD): segment^sequence^field^code&text&HL70357
        eld: list[str | list[str | None] | None] = [*location[:3]]
        eld += [None] * (3 - len(eld))
        eld.append([code, code_text, "HL70357"])
        return encode_segment("ERR", [eld], d)
    fields: list[FieldValue] = [
        None,
        location or None,
        [code, code_text, "HL70357"],
        "E",
        None,
        None,
        None,
        error.message,
    ]
    return encode_segment("ERR", fields, d)


def build_ack(
    source: Message | bytes | str | None,
    code: AckCode | None = None,
    error: HL7Error | None = None,
    *,
    text: str | None = None,
    control_id: str | None = None,
    timestamp: datetime | None = None,
) -> bytes:
    """ACK bytes answering ``source``.

    ``source`` is the parsed message, or the raw bytes of one that failed to parse
    (its MSH is salvaged when possible), or None. ``code`` defaults to the error's
    code, or AA. Sender and receiver are swapped, MSA-2 echoes MSH-10, and for
    AE/AR an ERR segment locates the error (ERR-2/3/4 from v2.5, ERR-1 before).
    Delimiters, version, processing id and MSH-18 follow the source when usable.
    """
    msg = source if isinstance(source, Message) or source is None else parse_header(source)
    ack_code: AckCode = code or (error.code if error else "AA")
    if ack_code != "AA" and error is None:
        error = HL7Error(ack_code, text or "message not accepted")
    d = msg.delimiters if msg is not None and _usable(msg.delimiters) else DEFAULT_DELIMITERS
    raw_ok = msg is not None and d is msg.delimiters
    version = msg.version if msg is not None else ""
    if not version_tuple(version):
        version = DEFAULT_VERSION
    vtuple = version_tuple(version)
    charset_label = msg.charset_label if msg is not None else ""
    if codec_for(charset_label) is None:
        charset_label = ""
    event = _clean(msg.trigger_event) if msg is not None else ""
    message_type: FieldValue = ["ACK", event, "ACK"] if vtuple >= (2, 3, 1) else ["ACK", event]
    processing_id = (_clean(msg.processing_id) if msg is not None else "") or "P"
    segments = [
        encode_msh(
            d,
            sending=(_copied(msg, 5, raw_ok), _copied(msg, 6, raw_ok)),
            receiving=(_copied(msg, 3, raw_ok), _copied(msg, 4, raw_ok)),
            message_type=message_type,
            control_id=control_id or new_control_id(),
            version=version,
            processing_id=processing_id[:1],
            charset_label=charset_label,
            timestamp=timestamp,
        ),
        encode_segment(
            "MSA",
            [
                ack_code,
                _clean(msg.control_id) if msg is not None else "",
                text if text is not None else (error.message if error else None),
            ],
            d,
        ),
    ]
    if error is not None and ack_code != "AA":
        segments.append(_err_segment(error, vtuple, d))
    return encode_message(segments, charset_label)
