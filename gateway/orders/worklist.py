"""Modality Worklist query: open scheduled steps as MWL items matching a C-FIND identifier.

Exact keys on indexed columns (station AE, start date, modality, accession, patient id,
Study Instance UID) narrow the rows in SQL; :mod:`gateway.orders.matching` then applies
the full PS3.4 matching to each item. Cancelled, discontinued and completed steps are
never returned. Items carry Specific Character Set ``ISO_IR 192`` (UTF-8), so Vietnamese
names arrive unchanged.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from pydicom import Dataset
from pydicom.sequence import Sequence
from sqlalchemy import Select, and_, or_, select
from sqlalchemy.orm import Session

from gateway.orders.matching import has_wildcard, matches, select_keys
from gateway.orders.models import (
    Order,
    OrderPatient,
    PatientIdentifierRow,
    RequestedProcedure,
    ScheduledStep,
    StepStatus,
    Visit,
)

CHARSET = "ISO_IR 192"


@dataclass(frozen=True)
class WorklistQuery:
    """A C-FIND identifier plus what the gateway knows of the caller."""

    identifier: Dataset
    calling_ae: str = ""
    calling_modality: str | None = None  # from dicom.peers, when configured
    modality_from_calling_ae: bool = True
    max_results: int = 500


def _key(ds: Dataset | None, keyword: str) -> str:
    if ds is None or keyword not in ds:
        return ""
    value = ds.data_element(keyword)
    if value is None or value.value is None:
        return ""
    return str(value.value).strip()


def _sps_request(identifier: Dataset) -> Dataset | None:
    if "ScheduledProcedureStepSequence" not in identifier:
        return None
    items = list(identifier.ScheduledProcedureStepSequence or [])
    return items[0] if items else None


def effective_identifier(query: WorklistQuery) -> Dataset:
    """The identifier, with the caller's modality added when it names no station/modality."""
    ident = query.identifier
    sps = _sps_request(ident)
    if not (query.modality_from_calling_ae and query.calling_modality):
        return ident
    if _key(sps, "ScheduledStationAETitle") or _key(sps, "Modality"):
        return ident
    out = Dataset()
    out.update(ident)
    item = Dataset()
    if sps is not None:
        item.update(sps)
    item.Modality = query.calling_modality
    out.ScheduledProcedureStepSequence = Sequence([item])
    return out


def _exact(value: str) -> bool:
    return bool(value) and not has_wildcard(value) and "\\" not in value


def _prefilter(stmt: Select, ident: Dataset) -> Select:
    sps = _sps_request(ident)
    station = _key(sps, "ScheduledStationAETitle")
    if _exact(station):
        stmt = stmt.where(
            or_(
                ScheduledStep.station_ae == station,
                and_(
                    ScheduledStep.station_ae.contains("\\", autoescape=True),
                    ScheduledStep.station_ae.contains(station, autoescape=True),
                ),
            )
        )
    date = _key(sps, "ScheduledProcedureStepStartDate")
    if date and not has_wildcard(date):
        low, dash, high = date.partition("-")
        if not dash:
            stmt = stmt.where(ScheduledStep.start_date == date)
        else:
            if low:
                stmt = stmt.where(ScheduledStep.start_date >= low)
            if high:
                stmt = stmt.where(ScheduledStep.start_date <= high)
    modality = _key(sps, "Modality")
    if _exact(modality):
        stmt = stmt.where(ScheduledStep.modality == modality)
    step_id = _key(sps, "ScheduledProcedureStepID")
    if _exact(step_id):
        stmt = stmt.where(ScheduledStep.step_id == step_id)
    accession = _key(ident, "AccessionNumber")
    if _exact(accession):
        stmt = stmt.where(RequestedProcedure.accession_number == accession)
    rp_id = _key(ident, "RequestedProcedureID")
    if _exact(rp_id):
        stmt = stmt.where(RequestedProcedure.requested_procedure_id == rp_id)
    patient_id = _key(ident, "PatientID")
    if _exact(patient_id):
        stmt = stmt.where(OrderPatient.patient_id == patient_id)
    study_uid = _key(ident, "StudyInstanceUID")
    if study_uid:
        stmt = stmt.where(RequestedProcedure.study_instance_uid.in_(study_uid.split("\\")))
    return stmt


def _code_item(value: str, scheme: str, meaning: str) -> Dataset:
    item = Dataset()
    item.CodeValue = value[:16]
    item.CodingSchemeDesignator = scheme[:16] or "L"
    item.CodeMeaning = meaning[:64]
    return item


def _person_name(p: OrderPatient) -> str:
    return "^".join([p.family_name, p.given_name, p.middle_name]).rstrip("^")


def build_item(
    step: ScheduledStep,
    rp: RequestedProcedure,
    order: Order,
    patient: OrderPatient,
    visit: Visit | None,
    other_ids: list[tuple[str, str, str]],
) -> Dataset:
    """The full MWL item of one step (every return key PS3.4 K.6 lists)."""
    ds = Dataset()
    ds.SpecificCharacterSet = CHARSET
    ds.AccessionNumber = rp.accession_number
    ds.ReferringPhysicianName = order.requesting_physician
    ds.ReferencedStudySequence = Sequence([])
    ds.ReferencedPatientSequence = Sequence([])
    ds.PatientName = _person_name(patient)
    ds.PatientID = patient.patient_id
    ds.IssuerOfPatientID = patient.issuer
    ds.PatientBirthDate = patient.birth_date
    ds.PatientSex = patient.sex if patient.sex in ("M", "F", "O") else ""
    others = []
    for ident, authority, type_code in other_ids:
        if (ident, authority) == (patient.patient_id, patient.issuer):
            continue
        item = Dataset()
        item.PatientID = ident
        item.IssuerOfPatientID = authority
        item.TypeOfPatientID = "TEXT"
        item.add_new(0x00100024, "SQ", Sequence([]))  # Issuer of Patient ID Qualifiers
        if type_code:
            qual = Dataset()
            qual.IdentifierTypeCode = type_code[:16]
            item[0x00100024].value = Sequence([qual])
        others.append(item)
    ds.OtherPatientIDsSequence = Sequence(others)
    ds.StudyInstanceUID = rp.study_instance_uid
    ds.RequestingPhysician = order.requesting_physician
    ds.RequestedProcedureDescription = rp.procedure_text[:64]
    ds.RequestedProcedureCodeSequence = Sequence(
        [_code_item(rp.procedure_code, rp.coding_system, rp.procedure_text)]
        if rp.procedure_code
        else []
    )
    ds.RequestedProcedureID = rp.requested_procedure_id
    ds.RequestedProcedurePriority = order.priority
    ds.ReasonForTheRequestedProcedure = order.reason[:64]
    ds.PlacerOrderNumberImagingServiceRequest = order.placer_number
    ds.FillerOrderNumberImagingServiceRequest = order.filler_number
    ds.AdmissionID = visit.visit_number if visit is not None else ""
    ds.CurrentPatientLocation = visit.location if visit is not None else ""
    sps = Dataset()
    sps.ScheduledStationAETitle = step.station_ae.split("\\") if step.station_ae else ""
    sps.ScheduledProcedureStepStartDate = step.start_date
    sps.ScheduledProcedureStepStartTime = step.start_time
    sps.Modality = step.modality
    sps.ScheduledPerformingPhysicianName = ""
    sps.ScheduledProcedureStepDescription = step.description[:64]
    sps.ScheduledProtocolCodeSequence = Sequence(
        [_code_item(step.protocol_code, step.protocol_scheme, step.protocol_text)]
        if step.protocol_code
        else []
    )
    sps.ScheduledProcedureStepID = step.step_id
    sps.ScheduledStationName = step.station_name.split("\\") if step.station_name else ""
    sps.ScheduledProcedureStepLocation = step.location
    sps.ScheduledProcedureStepStatus = step.status
    ds.ScheduledProcedureStepSequence = Sequence([sps])
    return ds


def find(session: Session, query: WorklistQuery) -> Iterator[Dataset]:
    """Matching worklist items (only the requested keys), at most ``max_results``."""
    ident = effective_identifier(query)
    stmt = (
        select(ScheduledStep, RequestedProcedure, Order, OrderPatient, Visit)
        .join(RequestedProcedure, ScheduledStep.rp_pk == RequestedProcedure.id)
        .join(Order, RequestedProcedure.order_pk == Order.id)
        .join(OrderPatient, Order.patient_pk == OrderPatient.id)
        .outerjoin(Visit, Order.visit_pk == Visit.id)
        .where(ScheduledStep.status.in_(StepStatus.OPEN))
        .order_by(ScheduledStep.start_date, ScheduledStep.start_time, ScheduledStep.id)
    )
    stmt = _prefilter(stmt, ident)
    wants_other_ids = "OtherPatientIDsSequence" in ident
    sent = 0
    for step, rp, order, patient, visit in session.execute(stmt).yield_per(200):
        other_ids: list[tuple[str, str, str]] = []
        if wants_other_ids:
            other_ids = [
                (r.identifier, r.authority, r.type_code)
                for r in session.scalars(
                    select(PatientIdentifierRow).where(
                        PatientIdentifierRow.patient_pk == patient.id
                    )
                )
            ]
        item = build_item(step, rp, order, patient, visit, other_ids)
        if not matches(ident, item):
            continue
        response = select_keys(query.identifier, item)
        response.SpecificCharacterSet = CHARSET
        yield response
        sent += 1
        if sent >= query.max_results:
            return
