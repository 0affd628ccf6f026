"""Orders as people see them: each with its patient, requested procedures and scheduled
steps, and a filtered page of them. The API (JSON) and the web UI (HTML) both show these."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from gateway.orders.models import (
    Order,
    OrderPatient,
    RequestedProcedure,
    ScheduledStep,
)


class StepOut(BaseModel):
    step_id: str
    modality: str
    station_ae: list[str]
    start_date: str
    start_time: str
    description: str
    status: str


class ProcedureOut(BaseModel):
    requested_procedure_id: str
    accession_number: str
    study_instance_uid: str
    procedure_code: str
    procedure_text: str
    coding_system: str
    steps: list[StepOut]


class OrderOut(BaseModel):
    placer_number: str
    filler_number: str
    status: str
    patient_id: str
    patient_issuer: str
    patient_name: str
    priority: str
    created_at: datetime
    updated_at: datetime
    procedures: list[ProcedureOut]


class HistoryOut(BaseModel):
    status: str
    source: str
    step_id: str | None
    at: datetime


class OrderDetail(OrderOut):
    history: list[HistoryOut]


class OrderPage(BaseModel):
    total: int
    offset: int
    limit: int
    items: list[OrderOut]


def order_out(session: Session, order: Order) -> OrderOut:
    patient = session.get(OrderPatient, order.patient_pk)
    assert patient is not None
    procedures = []
    for rp in session.scalars(
        select(RequestedProcedure)
        .where(RequestedProcedure.order_pk == order.id)
        .order_by(RequestedProcedure.id)
    ):
        steps = [
            StepOut(
                step_id=s.step_id,
                modality=s.modality,
                station_ae=[a for a in s.station_ae.split("\\") if a],
                start_date=s.start_date,
                start_time=s.start_time,
                description=s.description,
                status=s.status,
            )
            for s in session.scalars(
                select(ScheduledStep).where(ScheduledStep.rp_pk == rp.id).order_by(ScheduledStep.id)
            )
        ]
        procedures.append(
            ProcedureOut(
                requested_procedure_id=rp.requested_procedure_id,
                accession_number=rp.accession_number,
                study_instance_uid=rp.study_instance_uid,
                procedure_code=rp.procedure_code,
                procedure_text=rp.procedure_text,
                coding_system=rp.coding_system,
                steps=steps,
            )
        )
    name = "^".join([patient.family_name, patient.given_name, patient.middle_name]).rstrip("^")
    return OrderOut(
        placer_number=order.placer_number,
        filler_number=order.filler_number,
        status=order.status,
        patient_id=patient.patient_id,
        patient_issuer=patient.issuer,
        patient_name=name,
        priority=order.priority,
        created_at=order.created_at,
        updated_at=order.updated_at,
        procedures=procedures,
    )


def order_page(
    session: Session,
    *,
    status: str | None = None,
    modality: str | None = None,
    date_from: str | None = None,
    date_to: str | None = None,
    patient_id: str | None = None,
    offset: int = 0,
    limit: int = 50,
) -> OrderPage:
    """Orders, newest change first; dates are YYYYMMDD (checked by the caller)."""
    query = select(Order.id).join(OrderPatient, Order.patient_pk == OrderPatient.id)
    if status:
        query = query.where(Order.status == status.upper())
    if patient_id:
        query = query.where(OrderPatient.patient_id == patient_id)
    if modality or date_from or date_to:
        steps = select(RequestedProcedure.order_pk).join(
            ScheduledStep, ScheduledStep.rp_pk == RequestedProcedure.id
        )
        if modality:
            steps = steps.where(ScheduledStep.modality == modality.upper())
        if date_from:
            steps = steps.where(ScheduledStep.start_date >= date_from)
        if date_to:
            steps = steps.where(ScheduledStep.start_date <= date_to)
        query = query.where(Order.id.in_(steps))
    total = session.scalar(select(func.count()).select_from(query.subquery())) or 0
    ids = list(
        session.scalars(
            query.order_by(Order.updated_at.desc(), Order.id.desc()).offset(offset).limit(limit)
        )
    )
    order_by_id = {o.id: o for o in session.scalars(select(Order).where(Order.id.in_(ids)))}
    items = [order_out(session, order_by_id[i]) for i in ids]
    return OrderPage(total=total, offset=offset, limit=limit, items=items)
