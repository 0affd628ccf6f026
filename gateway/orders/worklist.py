"""Modality Worklist query: open scheduled steps as MWL items matching a C-FIND identifier.

Exact keys on indexed columns (station AE, start date, modality, accession, patient id,
Study Instance UID) narrow the rows in SQL; :mod:`gateway.orders.matching` then applies
the full PS3.4 matching to each item. Cancelled, discontinued and completed steps are
never returned. Items carry Specific Character Set ``ISO_IR 192`` (UTF-8), so Vietnamese
names arrive unchanged.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from pydicom import Dataset, config
from pydicom.datadict import dictionary_VR, tag_for_keyword
from pydicom.dataelem import DataElement
from pydicom.sequence import Sequence
from sqlalchemy import Select, and_, or_, select
from sqlalchemy.orm import Bundle, Session

from dicom_nodes.ports import WorklistQuery
from gateway.orders.matching import NOT_KEYS, has_wildcard, matches, select_keys
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


def _person_name(p: Any) -> str:
    return "^".join([p.family_name, p.given_name, p.middle_name]).rstrip("^")


@dataclass(frozen=True)
class _Row:
    """One step's columns, table by table (rows of SQLAlchemy bundles, no ORM objects)."""

    step: Any
    rp: Any
    order: Any
    patient: Any
    visit: Any  # all-None columns when the order has no visit
    other_ids: list[tuple[str, str, str]]


def _other_ids(row: _Row) -> Sequence:
    others = []
    for ident, authority, type_code in row.other_ids:
        if (ident, authority) == (row.patient.patient_id, row.patient.issuer):
            continue
        item = Dataset()
        item.PatientID = ident
        item.IssuerOfPatientID = authority
        item.TypeOfPatientID = "TEXT"
        quals = []
        if type_code:
            qual = Dataset()
            qual.IdentifierTypeCode = type_code[:16]
            quals.append(qual)
        item.add_new(0x00100024, "SQ", Sequence(quals))  # Issuer of Patient ID Qualifiers
        others.append(item)
    return Sequence(others)


def _codes(code: str, scheme: str, meaning: str) -> Sequence:
    return Sequence([_code_item(code, scheme, meaning)] if code else [])


# Every return key of PS3.4 K.6 the gateway knows, built only when a query asks for it.
_TOP: dict[str, Callable[[_Row], object]] = {
    "AccessionNumber": lambda r: r.rp.accession_number,
    "ReferringPhysicianName": lambda r: r.order.requesting_physician,
    "ReferencedStudySequence": lambda r: Sequence([]),
    "ReferencedPatientSequence": lambda r: Sequence([]),
    "PatientName": lambda r: _person_name(r.patient),
    "PatientID": lambda r: r.patient.patient_id,
    "IssuerOfPatientID": lambda r: r.patient.issuer,
    "PatientBirthDate": lambda r: r.patient.birth_date,
    "PatientSex": lambda r: r.patient.sex if r.patient.sex in ("M", "F", "O") else "",
    "OtherPatientIDsSequence": _other_ids,
    "StudyInstanceUID": lambda r: r.rp.study_instance_uid,
    "RequestingPhysician": lambda r: r.order.requesting_physician,
    "RequestedProcedureDescription": lambda r: r.rp.procedure_text[:64],
    "RequestedProcedureCodeSequence": lambda r: _codes(
        r.rp.procedure_code, r.rp.coding_system, r.rp.procedure_text
    ),
    "RequestedProcedureID": lambda r: r.rp.requested_procedure_id,
    "RequestedProcedurePriority": lambda r: r.order.priority,
    "ReasonForTheRequestedProcedure": lambda r: r.order.reason[:64],
    "PlacerOrderNumberImagingServiceRequest": lambda r: r.order.placer_number,
    "FillerOrderNumberImagingServiceRequest": lambda r: r.order.filler_number,
    "AdmissionID": lambda r: r.visit.visit_number or "",
    "CurrentPatientLocation": lambda r: r.visit.location or "",
}
_SPS: dict[str, Callable[[_Row], object]] = {
    "ScheduledStationAETitle": lambda r: r.step.station_ae.split("\\") if r.step.station_ae else "",
    "ScheduledProcedureStepStartDate": lambda r: r.step.start_date,
    "ScheduledProcedureStepStartTime": lambda r: r.step.start_time,
    "Modality": lambda r: r.step.modality,
    "ScheduledPerformingPhysicianName": lambda r: "",
    "ScheduledProcedureStepDescription": lambda r: r.step.description[:64],
    "ScheduledProtocolCodeSequence": lambda r: _codes(
        r.step.protocol_code, r.step.protocol_scheme, r.step.protocol_text
    ),
    "ScheduledProcedureStepID": lambda r: r.step.step_id,
    "ScheduledStationName": lambda r: (
        r.step.station_name.split("\\") if r.step.station_name else ""
    ),
    "ScheduledProcedureStepLocation": lambda r: r.step.location,
    "ScheduledProcedureStepStatus": lambda r: r.step.status,
}


_SPEC: dict[str, tuple[int, str]] = {
    kw: (int(tag_for_keyword(kw) or 0), dictionary_VR(kw))
    for kw in [*_TOP, *_SPS, "SpecificCharacterSet", "ScheduledProcedureStepSequence"]
}


def _element(keyword: str, value: object) -> DataElement:
    """A new element without pydicom's value validation (values come from our own rows)."""
    tag, vr = _SPEC[keyword]
    return DataElement(tag, vr, value, validation_mode=config.IGNORE)


def build_item(
    row: _Row, wanted: set[str] | None = None, wanted_sps: set[str] | None = None
) -> Dataset:
    """The MWL item of one step: the keys in ``wanted`` (None: every key)."""
    ds = Dataset()
    ds.add(_element("SpecificCharacterSet", CHARSET))
    for keyword, value in _TOP.items():
        if wanted is None or keyword in wanted:
            ds.add(_element(keyword, value(row)))
    if wanted is None or "ScheduledProcedureStepSequence" in wanted:
        sps = Dataset()
        for keyword, value in _SPS.items():
            if wanted_sps is None or keyword in wanted_sps:
                sps.add(_element(keyword, value(row)))
        ds.add(_element("ScheduledProcedureStepSequence", Sequence([sps])))
    return ds


def _built_exactly(request: Dataset) -> bool:
    """True when :func:`build_item` with the request's keywords is already the response:
    every key known, and no nested sequence asking for only some of its item's keys."""
    for elem in request:
        if elem.tag in NOT_KEYS:
            continue
        if elem.keyword == "ScheduledProcedureStepSequence":
            items = list(elem.value or [])
            if items and not all(
                e.keyword in _SPS and (e.VR != "SQ" or not any(len(i) for i in e.value or []))
                for e in items[0]
            ):
                return False
        elif elem.keyword not in _TOP or (
            elem.VR == "SQ" and any(len(i) for i in elem.value or [])
        ):
            return False
    return True


def _wanted(ident: Dataset) -> tuple[set[str], set[str] | None]:
    """Keywords the identifier names, at top level and in its SPS item (None: all)."""
    top = {e.keyword for e in ident if e.keyword}
    sps = _sps_request(ident)
    return top, ({e.keyword for e in sps if e.keyword} or None) if sps is not None else None


def find(session: Session, query: WorklistQuery) -> Iterator[Dataset]:
    """Matching worklist items (only the requested keys), at most ``max_results``."""
    ident = effective_identifier(query)
    stmt: Select = (
        select(
            Bundle("step", *ScheduledStep.__table__.c),
            Bundle("rp", *RequestedProcedure.__table__.c),
            Bundle("order", *Order.__table__.c),
            Bundle("patient", *OrderPatient.__table__.c),
            Bundle("visit", *Visit.__table__.c),
        )
        .join(RequestedProcedure, ScheduledStep.rp_pk == RequestedProcedure.id)
        .join(Order, RequestedProcedure.order_pk == Order.id)
        .join(OrderPatient, Order.patient_pk == OrderPatient.id)
        .outerjoin(Visit, Order.visit_pk == Visit.id)
        .where(ScheduledStep.status.in_(StepStatus.OPEN))
        .order_by(ScheduledStep.start_date, ScheduledStep.start_time, ScheduledStep.id)
    )
    stmt = _prefilter(stmt, ident)
    wanted, wanted_sps = _wanted(ident)
    exact = ident is query.identifier and _built_exactly(ident)
    sent = 0
    for step, rp, order, patient, visit in session.execute(stmt).yield_per(200):
        other_ids: list[tuple[str, str, str]] = []
        if "OtherPatientIDsSequence" in wanted:
            other_ids = [
                (r.identifier, r.authority, r.type_code)
                for r in session.scalars(
                    select(PatientIdentifierRow).where(
                        PatientIdentifierRow.patient_pk == patient.id
                    )
                )
            ]
        item = build_item(_Row(step, rp, order, patient, visit, other_ids), wanted, wanted_sps)
        if not matches(ident, item):
            continue
        if exact:
            yield item
        else:
            response = select_keys(query.identifier, item)
            response.SpecificCharacterSet = CHARSET
            yield response
        sent += 1
        if sent >= query.max_results:
            return
