"""Coercion: the order's values applied to an instance on its way to the PACS.

The stored original is never changed. Replaced values are kept in the Original Attributes
Sequence (0400,0561) as PS3.3 C.12.1.1.9 prescribes; text with non-ASCII characters
switches the Specific Character Set to ISO_IR 192 (UTF-8). Pixel data is copied as read,
never re-encoded.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from pydicom import dcmread
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence
from sqlalchemy import select
from sqlalchemy.orm import Session

from gateway.orders.models import ScheduledStep
from gateway.reconciliation.reconcile import matched_order


@dataclass(frozen=True)
class CoercionPlan:
    """What to set on every instance of a study; ``values`` by DICOM keyword."""

    values: dict[str, str]
    requested_procedure_id: str = ""
    scheduled_step_id: str = ""
    modifying_system: str = "RISGATE"
    reason: str = "COERCE"
    extra: dict[str, str] = field(default_factory=dict)


def person_name(family: str, given: str, middle: str) -> str:
    parts = [family, given, middle]
    while parts and not parts[-1]:
        parts.pop()
    return "^".join(parts)


def plan_for_study(session: Session, study_pk: int, modifying_system: str) -> CoercionPlan | None:
    """The coercion plan of a matched study, or None (unmatched: forward as received)."""
    found = matched_order(session, study_pk)
    if found is None:
        return None
    rp, _order, patient = found
    step_id = session.scalar(
        select(ScheduledStep.step_id).where(ScheduledStep.rp_pk == rp.id).limit(1)
    )
    values = {
        "PatientName": person_name(patient.family_name, patient.given_name, patient.middle_name),
        "PatientID": patient.patient_id,
        "IssuerOfPatientID": patient.issuer,
        "PatientBirthDate": patient.birth_date,
        "PatientSex": patient.sex,
        "AccessionNumber": rp.accession_number,
    }
    if rp.procedure_text:
        values["RequestedProcedureDescription"] = rp.procedure_text[:64]
    return CoercionPlan(
        values={k: v for k, v in values.items() if v or k == "IssuerOfPatientID"},
        requested_procedure_id=rp.requested_procedure_id,
        scheduled_step_id=step_id or "",
        modifying_system=modifying_system,
    )


def apply_plan(ds: Dataset, plan: CoercionPlan, now: datetime | None = None) -> list[str]:
    """Set the plan's values on ``ds``; returns the keywords that changed."""
    ds.decode()  # every text value as str, so the character set can change safely
    originals = Dataset()
    changed: list[str] = []
    for keyword, value in plan.values.items():
        current = ds.get(keyword)
        current_text = "" if current is None else str(current)
        if current_text == value:
            continue
        if keyword == "IssuerOfPatientID" and not value and current is None:
            continue
        if keyword in ds:
            originals[keyword] = copy.deepcopy(ds[keyword])
        else:
            setattr(originals, keyword, None)  # absent before: recorded empty
        setattr(ds, keyword, value)
        changed.append(keyword)
    if plan.requested_procedure_id:
        request = Dataset()
        request.RequestedProcedureID = plan.requested_procedure_id
        if plan.scheduled_step_id:
            request.ScheduledProcedureStepID = plan.scheduled_step_id
        request.AccessionNumber = plan.values.get("AccessionNumber", "")
        old = ds.get("RequestAttributesSequence")
        old_ids = [getattr(i, "RequestedProcedureID", None) for i in old or []]
        if old_ids != [plan.requested_procedure_id]:
            if old is not None:
                originals.RequestAttributesSequence = old
            ds.RequestAttributesSequence = Sequence([request])
            changed.append("RequestAttributesSequence")
    if not changed:
        return changed
    if any(not str(v).isascii() for v in plan.values.values()):
        ds.SpecificCharacterSet = "ISO_IR 192"
    item = Dataset()
    item.ModifiedAttributesSequence = Sequence([originals])
    item.AttributeModificationDateTime = (now or datetime.now(UTC)).strftime("%Y%m%d%H%M%S")
    item.ModifyingSystem = plan.modifying_system
    item.SourceOfPreviousValues = ""
    item.ReasonForTheAttributeModification = plan.reason
    history = list(ds.get("OriginalAttributesSequence") or [])
    ds.OriginalAttributesSequence = Sequence([*history, item])
    return changed


def coerced_dataset(path: Path, plan: CoercionPlan) -> Dataset:
    """Read a stored instance and apply ``plan``; the file itself is not touched."""
    ds = dcmread(path)
    apply_plan(ds, plan)
    return ds
