"""Masking of patient data for roles that do not need it (billing sees the HL7 log masked)."""

from __future__ import annotations

from gateway.auth.accounts import Principal
from gateway.auth.models import Role

# Segments that carry patient identity; their fields after the segment name are masked.
PATIENT_SEGMENTS = {"PID", "PD1", "MRG", "NK1", "GT1", "IN1", "IN2", "PV1", "PV2", "NTE", "OBX"}
MASK = "***"


def masks_patient_data(principal: Principal) -> bool:
    return principal.role == Role.BILLING


def mask_hl7(text: str) -> str:
    """Replace every field of the patient segments by ``***`` (segment names stay)."""
    lines = []
    for line in text.split("\n"):
        name = line[:3]
        if name in PATIENT_SEGMENTS:
            fields = line.split("|")
            line = "|".join([fields[0]] + [MASK if f else "" for f in fields[1:]])
        lines.append(line)
    return "\n".join(lines)
