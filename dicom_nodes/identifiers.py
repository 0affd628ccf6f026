"""Validation of identifiers before they touch a file path, a query or a wire message."""

from __future__ import annotations

import re

_UID_RE = re.compile(r"^(0|[1-9][0-9]*)(\.(0|[1-9][0-9]*))*$")
_AE_RE = re.compile(r"^[\x20-\x5b\x5d-\x7e]{1,16}$")  # printable ASCII without backslash
_ACCESSION_RE = re.compile(r"^[\x20-\x5b\x5d-\x7e]{1,16}$")

MAX_UID_LENGTH = 64


class InvalidIdentifier(ValueError):
    """An identifier that may not be used as a path component or key."""


def is_valid_uid(value: str) -> bool:
    """True for a DICOM UID: dotted decimal, no leading zeros, at most 64 characters."""
    return 0 < len(value) <= MAX_UID_LENGTH and _UID_RE.match(value) is not None


def validate_uid(value: str, what: str = "UID") -> str:
    """Return ``value`` (stripped of DICOM padding) or raise :class:`InvalidIdentifier`."""
    cleaned = value.rstrip("\x00 ")
    if not is_valid_uid(cleaned):
        shown = cleaned[:70].encode("unicode_escape").decode("ascii")
        raise InvalidIdentifier(f"invalid {what}: {shown!r}")
    return cleaned


def validate_ae_title(value: str) -> str:
    """Return a stripped AE title or raise ``ValueError`` (used by settings and the API)."""
    cleaned = value.strip()
    if not _AE_RE.match(cleaned):
        raise ValueError(f"invalid AE title {value!r}: 1-16 printable ASCII, no backslash")
    return cleaned


def validate_accession(value: str) -> str:
    """Return a stripped accession number or raise :class:`InvalidIdentifier`."""
    cleaned = value.strip()
    if not _ACCESSION_RE.match(cleaned):
        raise InvalidIdentifier("invalid accession number: 1-16 characters, no backslash")
    return cleaned
