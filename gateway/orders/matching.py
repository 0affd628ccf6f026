"""PS3.4 C.2.2.2 attribute matching for C-FIND, on pydicom datasets (no database).

Single value, wildcard (``*``, ``?``), list of UIDs, date/time/datetime ranges, sequence
matching (any item of the candidate matching the request's item), universal matching
(an empty key matches anything and asks for the value to be returned), and the combined
date-time matching of a date key with a time key. :func:`select_keys` builds the
response: only the keys the request named, sequences recursively.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from functools import lru_cache

from pydicom import Dataset
from pydicom.dataelem import DataElement
from pydicom.multival import MultiValue
from pydicom.sequence import Sequence
from pydicom.tag import BaseTag, Tag

# Never matching keys: they describe the query itself.
NOT_KEYS = {Tag(0x0008, 0x0005), Tag(0x0008, 0x0052)}
RANGE_VRS = {"DA", "TM", "DT"}
CASE_INSENSITIVE_VRS = {"PN"}
_TIME_DIGITS = 6


@lru_cache(maxsize=1024)
def _wildcard(pattern: str, ignore_case: bool) -> re.Pattern[str]:
    parts = ("." if c == "?" else ".*" if c == "*" else re.escape(c) for c in pattern)
    return re.compile("".join(parts) + r"\Z", re.DOTALL | (re.IGNORECASE if ignore_case else 0))


def has_wildcard(value: str) -> bool:
    return "*" in value or "?" in value


def _text(value: object) -> str:
    """A DICOM value as one string (multi-values joined by backslash)."""
    if value is None:
        return ""
    if isinstance(value, list | tuple | MultiValue):
        return "\\".join(str(v) for v in value)
    return str(value)


def _values(value: object) -> list[str]:
    text = _text(value)
    return [v.strip() for v in text.split("\\")] if text else [""]


def _norm_time(value: str, fill: str) -> str:
    """HHMMSS[.f] padded to 6 digits: a start pads with 0, an end with 9."""
    digits = value.replace(":", "").split(".")[0]
    return (digits + fill * _TIME_DIGITS)[:_TIME_DIGITS]


def in_range(key: str, value: str, vr: str) -> bool:
    """``value`` within the range or equal to the single value ``key`` (DA, TM, DT)."""
    if not value:
        return False
    low, dash, high = key.partition("-")
    if vr == "TM":
        cand = _norm_time(value, "0")
        if not dash:
            return _norm_time(key, "0") <= cand <= _norm_time(key, "9")
        return (not low or cand >= _norm_time(low, "0")) and (
            not high or cand <= _norm_time(high, "9")
        )
    if not dash:
        return value.startswith(key) if vr == "DT" else value == key
    return (not low or value >= low) and (not high or value[: len(high)] <= high)


def match_value(key: object, candidate: object, vr: str) -> bool:
    """Match one non-sequence element: True when ``key`` is empty (universal)."""
    key_text = _text(key).strip()
    if not key_text:
        return True
    if vr in RANGE_VRS:
        return any(in_range(key_text, c, vr) for c in _values(candidate))
    ignore_case = vr in CASE_INSENSITIVE_VRS
    cands = _values(candidate) if vr != "PN" else [_text(candidate).strip()]
    if vr == "UI":
        wanted = set(_values(key))
        return any(c in wanted for c in cands)
    if has_wildcard(key_text):
        pattern = _wildcard(key_text, ignore_case)
        return any(pattern.match(c) for c in cands)
    if ignore_case:
        return any(c.casefold() == key_text.casefold() for c in cands)
    return any(c == key_text for c in cands)


def _combined(request: Dataset, candidate: Dataset, date_kw: str, time_kw: str) -> bool | None:
    """Combined date-time range matching of a date key and a time key, or None."""
    date_key = _text(request.get(date_kw, "")).strip()
    time_key = _text(request.get(time_kw, "")).strip()
    if not (date_key and time_key and ("-" in date_key or "-" in time_key)):
        return None
    d1, _, d2 = date_key.partition("-") if "-" in date_key else (date_key, "-", date_key)
    t1, _, t2 = time_key.partition("-") if "-" in time_key else (time_key, "-", time_key)
    value = _text(candidate.get(date_kw, "")) + _norm_time(_text(candidate.get(time_kw, "")), "0")
    if len(value) < 8:
        return False
    low = (d1 + _norm_time(t1, "0")) if d1 else ""
    high = (d2 + _norm_time(t2, "9")) if d2 else ""
    return (not low or value >= low) and (not high or value <= high)


def matches(request: Dataset, candidate: Dataset) -> bool:
    """True when ``candidate`` matches every matching key of ``request``."""
    skip: set[BaseTag] = set()
    combined = _combined(
        request, candidate, "ScheduledProcedureStepStartDate", "ScheduledProcedureStepStartTime"
    )
    if combined is not None:
        if not combined:
            return False
        skip = {Tag(0x0040, 0x0002), Tag(0x0040, 0x0003)}
    for elem in request:
        if elem.tag in NOT_KEYS or elem.tag in skip or elem.tag.is_private:
            continue
        if elem.VR == "SQ":
            if not _match_sequence(elem, candidate):
                return False
            continue
        have = candidate.get(elem.tag)
        if not match_value(elem.value, have.value if have is not None else "", elem.VR):
            return False
    return True


def _match_sequence(elem: DataElement, candidate: Dataset) -> bool:
    items = list(elem.value or [])
    if not items or len(items[0]) == 0:
        return True  # universal: return the whole sequence
    have = candidate.get(elem.tag)
    cand_items: Iterable[Dataset] = have.value if have is not None and have.value else []
    request_item = items[0]
    if not _has_key_values(request_item):
        return True
    return any(matches(request_item, item) for item in cand_items)


def _has_key_values(ds: Dataset) -> bool:
    for elem in ds:
        if elem.VR == "SQ":
            if any(_has_key_values(i) for i in elem.value or []):
                return True
        elif _text(elem.value).strip():
            return True
    return False


def select_keys(request: Dataset, full: Dataset) -> Dataset:
    """The response: every key of ``request`` with ``full``'s value (empty when unknown)."""
    out = Dataset()
    for elem in request:
        if elem.tag in NOT_KEYS or elem.tag.is_private:
            continue
        have = full.get(elem.tag)
        if elem.VR == "SQ":
            items = list(elem.value or [])
            if have is None:
                out.add_new(elem.tag, "SQ", Sequence([]))
            elif not items or len(items[0]) == 0:
                out.add(have)
            else:
                out.add_new(
                    elem.tag, "SQ", Sequence([select_keys(items[0], i) for i in have.value])
                )
            continue
        if have is not None:
            out.add(have)
        else:
            out.add_new(elem.tag, elem.VR, None)
    return out
