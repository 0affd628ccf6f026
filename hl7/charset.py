"""MSH-18 character set labels (HL7 table 0211) to Python codecs."""

from __future__ import annotations

UTF8_LABEL = "UNICODE UTF-8"

_LABELS: dict[str, str] = {
    "ASCII": "ascii",
    "UNICODE UTF-8": "utf-8",
    "UTF-8": "utf-8",
    "UTF8": "utf-8",
    "ISO_IR 192": "utf-8",
    "8859/1": "latin-1",
    "8859/2": "iso8859-2",
    "8859/3": "iso8859-3",
    "8859/4": "iso8859-4",
    "8859/5": "iso8859-5",
    "8859/6": "iso8859-6",
    "8859/7": "iso8859-7",
    "8859/8": "iso8859-8",
    "8859/9": "iso8859-9",
    "8859/15": "iso8859-15",
    "ISO-8859-1": "latin-1",
    "ISO_IR 100": "latin-1",
}


def codec_for(label: str, default: str = "utf-8") -> str | None:
    """Python codec for an MSH-18 value; ``default`` when empty; None when unknown."""
    key = label.strip().upper()
    if not key:
        return default
    return _LABELS.get(key)
