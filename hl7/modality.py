"""DICOM modality from an order: an explicit code if it is one, else a guess from the text."""

from __future__ import annotations

import re
import unicodedata

DICOM_MODALITIES = frozenset(
    {
        "CR",
        "CT",
        "DX",
        "ES",
        "IO",
        "MG",
        "MR",
        "NM",
        "OT",
        "PT",
        "PX",
        "RF",
        "US",
        "XA",
        "OP",
        "BMD",
    }
)
# HL7 table 0074 (diagnostic service section) codes that name one modality.
_HL7_0074 = {"NMR": "MR", "NMS": "NM", "MRI": "MR", "XRAY": "DX", "XR": "DX", "PET": "PT"}

# Checked in order on lower-case text without diacritics (Vietnamese and English).
_KEYWORDS: tuple[tuple[re.Pattern[str], str], ...] = (
    (re.compile(r"\bpet\b"), "PT"),
    (re.compile(r"\b(ct|msct|clvt)\b|cat lop"), "CT"),
    (re.compile(r"\b(mri|mr|cht)\b|cong huong tu"), "MR"),
    (re.compile(r"nhu anh|mammo"), "MG"),
    (re.compile(r"sieu am|ultrasound|\becho|\bus\b|doppler"), "US"),
    (re.compile(r"\bdsa\b|angiograph|chup mach"), "XA"),
    (re.compile(r"x[- ]?quang|\bxq\b|x[- ]?ray|radiograph"), "DX"),
)


def fold(text: str) -> str:
    """Lower-case ``text`` and strip diacritics (``Siêu âm`` -> ``sieu am``, đ -> d)."""
    text = text.lower().replace("đ", "d")
    return "".join(c for c in unicodedata.normalize("NFD", text) if not unicodedata.combining(c))


def normalize_modality(code: str) -> str:
    """A DICOM modality for an explicit code (OBR-24, IPC-5), or ''."""
    code = code.strip().upper()
    if code in DICOM_MODALITIES:
        return code
    return _HL7_0074.get(code, "")


def guess_modality(*texts: str) -> str:
    """Guess a modality from procedure codes/descriptions; '' when nothing matches."""
    for text in texts:
        if not text:
            continue
        folded = fold(text)
        for pattern, modality in _KEYWORDS:
            if pattern.search(folded):
                return modality
    return ""
