"""HL7 v2 escape sequences: \\F\\ \\S\\ \\T\\ \\R\\ \\E\\ \\Xhh..\\ and formatting commands."""

from __future__ import annotations

import re

from hl7.delimiters import Delimiters

_CONTROL = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")

# Formatting / highlighting / charset-switch commands that carry no text of their own.
_DROPPED = frozenset({"H", "N", ".sp", ".fi", ".nf", ".ce", ".sk", ".in", ".ti"})


def unescape(text: str, delims: Delimiters, charset: str = "utf-8") -> str:
    """Replace escape sequences in ``text``; unknown or malformed ones stay literal."""
    esc = delims.escape
    if not esc or esc not in text:
        return text
    parts = text.split(esc)
    out = [parts[0]]
    last = len(parts) - 1
    i = 1
    while i <= last:
        if i == last:  # unterminated sequence: keep it literally
            out.append(esc + parts[i])
            break
        out.append(_translate(parts[i], delims, charset))
        out.append(parts[i + 1])
        i += 2
    return "".join(out)


def _translate(seq: str, delims: Delimiters, charset: str) -> str:
    if seq == "F":
        return delims.field
    if seq == "S":
        return delims.component
    if seq == "T":
        return delims.subcomponent
    if seq == "R":
        return delims.repetition
    if seq == "E":
        return delims.escape
    if seq == ".br":
        return "\n"
    if seq in _DROPPED or seq[:3] in _DROPPED:
        return ""
    head = seq[:1]
    if head == "X" and len(seq) > 1 and len(seq) % 2 == 1:
        try:
            return bytes.fromhex(seq[1:]).decode(charset, errors="replace")
        except (ValueError, LookupError):
            pass
    elif head in ("C", "M") and len(seq) in (5, 7):
        return ""
    return delims.escape + seq + delims.escape


def escape(text: str, delims: Delimiters) -> str:
    """Escape separators and control characters (CR, LF...) for use inside one component."""
    esc = delims.escape
    if esc in text:
        text = text.replace(esc, f"{esc}E{esc}")
    for char, code in (
        (delims.field, "F"),
        (delims.component, "S"),
        (delims.subcomponent, "T"),
        (delims.repetition, "R"),
    ):
        if char in text:
            text = text.replace(char, f"{esc}{code}{esc}")
    return _CONTROL.sub(lambda m: f"{esc}X{ord(m.group()):02X}{esc}", text)
