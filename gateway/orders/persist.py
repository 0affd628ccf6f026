"""Apply an interpreted HL7 message to the orders tables, inside the caller's transaction.

Orders: NW/XO/SN/XX create or change the order, its requested procedures and scheduled
steps; CA/OC cancel, DC/OD discontinue, SC sets the status from ORC-5. A Study Instance
UID is generated when the order carries none; a step without station AE gets the AE
titles of the configured peers of its modality. Application errors raise HL7Error (AE).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime

from pydicom.uid import generate_uid
from sqlalchemy import select
from sqlalchemy.orm import Session

from gateway.models import utcnow
from gateway.orders.models import (
    Order,
    OrderPatient,
    RequestedProcedure,
    ScheduledStep,
    StatusChange,
    StepStatus,
    Visit,
)
from gateway.orders.patients import change_identifier, merge, upsert_patient
from hl7.errors import HL7Error
from hl7.model import (
    IdentifierChange,
    Interpreted,
    OrderData,
    OrderMessage,
    PatientMerge,
    PatientUpdate,
    PersonName,
    VisitData,
)

CREATE_CONTROLS = frozenset({"NW", "XO", "SN", "XX", "RO"})
STATUS_CONTROLS = frozenset({"CA", "OC", "DC", "OD", "SC"})
UNKNOWN_ORDER = 204  # HL7 table 0357: unknown key identifier


@dataclass
class Context:
    """What applying a message needs besides the data: configuration and the message row."""

    stations_by_modality: Mapping[str, str] = field(default_factory=dict)
    message_pk: int | None = None


def apply(session: Session, data: Interpreted, ctx: Context) -> None:
    """Apply one interpreted message; raises HL7Error (AE) on an application error."""
    if isinstance(data, OrderMessage):
        apply_orders(session, data, ctx)
    elif isinstance(data, PatientUpdate):
        patient = upsert_patient(session, data.patient)
        if data.visit is not None:
            _upsert_visit(session, patient, data.visit)
    elif isinstance(data, PatientMerge):
        merge(session, data.patient, data.prior_identifiers)
    elif isinstance(data, IdentifierChange):
        change_identifier(session, data.patient, data.old_identifiers)


def _person(p: PersonName | None) -> str:
    """An XCN as a DICOM PN (family^given^middle), or ''."""
    if p is None:
        return ""
    return "^".join([p.family, p.given, p.middle]).rstrip("^")


def _upsert_visit(session: Session, patient: OrderPatient, data: VisitData) -> Visit:
    row = session.scalar(
        select(Visit).where(Visit.patient_pk == patient.id, Visit.visit_number == data.visit_number)
    )
    if row is None:
        row = Visit(patient_pk=patient.id, visit_number=data.visit_number[:64])
        session.add(row)
    row.patient_class = data.patient_class[:8]
    row.location = data.location[:64]
    row.department = data.department[:64]
    row.attending_doctor = _person(data.attending_doctor)[:200]
    row.updated_at = utcnow()
    session.flush()
    return row


def _find_order(session: Session, data: OrderData) -> Order | None:
    if data.placer_order_number:
        found = session.scalar(
            select(Order).where(Order.placer_number == data.placer_order_number).limit(1)
        )
        if found is not None:
            return found
    if data.filler_order_number:
        found = session.scalar(
            select(Order).where(Order.filler_number == data.filler_order_number).limit(1)
        )
        if found is not None:
            return found
    if data.accession_number:
        return session.scalar(
            select(Order)
            .join(RequestedProcedure, RequestedProcedure.order_pk == Order.id)
            .where(RequestedProcedure.accession_number == data.accession_number)
            .limit(1)
        )
    return None


def accession_of(data: OrderData) -> str:
    """OBR-18 / IPC-1, else the filler or placer order number (SH: 16 characters)."""
    return (data.accession_number or data.filler_order_number or data.placer_order_number)[:16]


def _rp_id(data: OrderData) -> str:
    return (data.requested_procedure_id or accession_of(data))[:16]


def _history(
    session: Session,
    order: Order,
    step: ScheduledStep | None,
    status: str,
    source: str,
    ctx: Context,
) -> None:
    session.add(
        StatusChange(
            order_pk=order.id,
            step_pk=step.id if step is not None else None,
            status=status,
            source=source[:32],
            message_pk=ctx.message_pk,
            at=utcnow(),
        )
    )


def apply_orders(session: Session, msg: OrderMessage, ctx: Context) -> None:
    patient = upsert_patient(session, msg.patient)
    visit = _upsert_visit(session, patient, msg.visit) if msg.visit is not None else None
    sender = msg.header.sending_application[:64]
    seen: dict[tuple[str, str], Order] = {}
    for data in msg.orders:
        key = (data.placer_order_number, data.filler_order_number)
        order = seen.get(key) or _find_order(session, data)
        control = data.order_control
        if control in CREATE_CONTROLS or (
            order is None and control == "SC" and data.procedure_code
        ):
            order = _upsert_order(session, order, patient, visit, sender, data, ctx)
            seen[key] = order
            continue
        if order is None:
            raise HL7Error("AE", "unknown order", "ORC", 2, hl7_code=UNKNOWN_ORDER)
        seen[key] = order
        _set_status(session, order, data.step_status, f"HL7 {control}", ctx)


def _set_status(session: Session, order: Order, status: str, source: str, ctx: Context) -> None:
    """Order-level status change: every step of the order follows."""
    now = utcnow()
    order.status = status
    order.last_control = source[-2:]
    order.updated_at = now
    steps = session.scalars(
        select(ScheduledStep)
        .join(RequestedProcedure, ScheduledStep.rp_pk == RequestedProcedure.id)
        .where(RequestedProcedure.order_pk == order.id)
    )
    for step in steps:
        if step.status != status:
            step.status = status
            step.updated_at = now
    session.flush()
    _history(session, order, None, status, source, ctx)


def _upsert_order(
    session: Session,
    order: Order | None,
    patient: OrderPatient,
    visit: Visit | None,
    sender: str,
    data: OrderData,
    ctx: Context,
) -> Order:
    now = utcnow()
    status = data.step_status
    if order is None:
        order = Order(
            patient_pk=patient.id,
            placer_number=data.placer_order_number[:64],
            filler_number=data.filler_order_number[:64],
            sending_application=sender,
            created_at=now,
        )
        session.add(order)
    else:
        order.patient_pk = patient.id
        order.placer_number = order.placer_number or data.placer_order_number[:64]
        order.filler_number = order.filler_number or data.filler_order_number[:64]
    order.visit_pk = visit.id if visit is not None else order.visit_pk
    order.status = status
    order.last_control = data.order_control
    order.priority = data.priority
    order.requesting_physician = _person(data.requesting_physician)[:200]
    order.reason = data.reason[:256]
    order.updated_at = now
    session.flush()
    rp = _upsert_rp(session, order, data)
    step = _upsert_step(session, rp, data, status, ctx)
    _history(session, order, step, status, f"HL7 {data.order_control}", ctx)
    return order


def _upsert_rp(session: Session, order: Order, data: OrderData) -> RequestedProcedure:
    rp_id = _rp_id(data)
    rp = session.scalar(
        select(RequestedProcedure).where(
            RequestedProcedure.order_pk == order.id,
            RequestedProcedure.requested_procedure_id == rp_id,
        )
    )
    if rp is None:
        rp = RequestedProcedure(
            order_pk=order.id,
            requested_procedure_id=rp_id,
            study_instance_uid=data.study_instance_uid or generate_uid(),
        )
        session.add(rp)
    elif data.study_instance_uid:
        rp.study_instance_uid = data.study_instance_uid
    rp.accession_number = accession_of(data)
    if data.procedure_code or data.procedure_text:
        rp.procedure_code = data.procedure_code[:64]
        rp.procedure_text = data.procedure_text[:256]
        rp.coding_system = data.procedure_coding_system[:64]
    session.flush()
    return rp


def _split_start(start: datetime | None) -> tuple[str, str]:
    """Scheduled start as DICOM DA and TM, wall-clock time as the HIS sent it."""
    when = start or datetime.now()
    return when.strftime("%Y%m%d"), when.strftime("%H%M%S")


def _upsert_step(
    session: Session, rp: RequestedProcedure, data: OrderData, status: str, ctx: Context
) -> ScheduledStep:
    step_id = (data.scheduled_step_id or rp.requested_procedure_id)[:16]
    step = session.scalar(
        select(ScheduledStep).where(ScheduledStep.rp_pk == rp.id, ScheduledStep.step_id == step_id)
    )
    if step is None:
        step = ScheduledStep(rp_pk=rp.id, step_id=step_id)
        session.add(step)
    if data.scheduled_start is not None or not step.start_date:
        step.start_date, step.start_time = _split_start(data.scheduled_start)
    step.modality = data.modality or step.modality
    station = data.scheduled_station_ae or ctx.stations_by_modality.get(step.modality, "")
    step.station_ae = station[:170] or step.station_ae
    step.station_name = data.scheduled_station_name[:170] or step.station_name
    step.location = data.scheduled_location[:64] or step.location
    step.description = (data.protocol_text or data.procedure_text)[:256] or step.description
    step.protocol_code = data.protocol_code[:64]
    step.protocol_text = data.protocol_text[:256]
    step.protocol_scheme = data.protocol_coding_system[:64]
    step.status = status
    step.updated_at = utcnow()
    session.flush()
    return step


def stations_by_modality(peers: list[tuple[str, str | None]]) -> dict[str, str]:
    """Modality -> backslash-joined AE titles of the peers configured with it."""
    out: dict[str, list[str]] = {}
    for ae_title, modality in peers:
        if modality:
            out.setdefault(modality.upper(), []).append(ae_title)
    return {m: "\\".join(titles) for m, titles in out.items()}


__all__ = [
    "Context",
    "StepStatus",
    "accession_of",
    "apply",
    "stations_by_modality",
]
