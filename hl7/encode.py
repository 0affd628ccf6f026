"""Write HL7 v2 segments: escaping values, joining components/repetitions, MSH, bytes."""

from __future__ import annotations

import re
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from hl7.charset import codec_for
from hl7.datatypes import format_datetime
from hl7.delimiters import DEFAULT_DELIMITERS, Delimiters
from hl7.escape import escape


@dataclass(frozen=True, slots=True)
class Raw:
    """Text that is already HL7-encoded (copied from a message): written as is."""

    text: str


@dataclass(frozen=True, slots=True)
class Repeat:
    """A repeating field: each item is written as one repetition."""

    items: tuple[Component | Sequence[Component], ...]


# A component is text (escaped on output) or Raw; a list of them is subcomponents.
Component = str | Raw | None
FieldValue = Component | Repeat | Sequence[Component | Sequence[Component]]

_VERSION = re.compile(r"^2\.\d(\.\d)?$")


def new_control_id() -> str:
    """A fresh MSH-10 message control id (20 hex characters)."""
    return uuid.uuid4().hex[:20]


def version_tuple(version: str) -> tuple[int, ...]:
    """``2.5.1`` -> (2, 5, 1); () for text that is not an HL7 v2 version."""
    if not _VERSION.match(version):
        return ()
    return tuple(int(p) for p in version.split("."))


def _component(value: Component | Sequence[Component], d: Delimiters) -> str:
    if value is None:
        return ""
    if isinstance(value, Raw):
        return value.text
    if isinstance(value, str):
        return escape(value, d)
    return d.subcomponent.join(_component(v, d) for v in value)


def _repetition(value: Component | Sequence[Component | Sequence[Component]], d: Delimiters) -> str:
    if value is None or isinstance(value, str | Raw):
        return _component(value, d)
    return d.component.join(_component(v, d) for v in value).rstrip(d.component)


def encode_field(value: FieldValue, d: Delimiters = DEFAULT_DELIMITERS) -> str:
    """One field: text, Raw, a component list (nested list = subcomponents), or Repeat."""
    if isinstance(value, Repeat):
        return d.repetition.join(_repetition(v, d) for v in value.items)
    return _repetition(value, d)


def encode_segment(
    name: str, fields: Sequence[FieldValue], d: Delimiters = DEFAULT_DELIMITERS
) -> str:
    """``name|f1|f2...`` with trailing empty fields dropped; fields are 1-based in order."""
    return d.field.join([name, *(encode_field(f, d) for f in fields)]).rstrip(d.field)


def encode_msh(
    d: Delimiters,
    *,
    sending: tuple[FieldValue, FieldValue],
    receiving: tuple[FieldValue, FieldValue],
    message_type: FieldValue,
    control_id: str,
    version: str,
    processing_id: str = "P",
    charset_label: str = "",
    timestamp: datetime | None = None,
) -> str:
    """The MSH segment (MSH-3..MSH-12 and MSH-18)."""
    stamp = timestamp if timestamp is not None else datetime.now().astimezone()
    fields: list[FieldValue] = [
        sending[0],
        sending[1],
        receiving[0],
        receiving[1],
        format_datetime(stamp),
        None,
        message_type,
        control_id,
        processing_id,
        version,
        None,
        None,
        None,
        None,
        None,
        charset_label or None,
    ]
    return "MSH" + d.field + d.msh2 + d.field + encode_segment("", fields, d)[1:]


def encode_message(segments: Sequence[str], charset_label: str = "") -> bytes:
    """Join segments with ``\\r`` and encode in the charset MSH-18 announces."""
    codec = codec_for(charset_label) or "utf-8"
    return ("\r".join(segments) + "\r").encode(codec, errors="replace")
