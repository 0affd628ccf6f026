"""Order routes over :mod:`gateway.views.orders`: the list (filtered, paged) and one order
with its status history."""

from __future__ import annotations

import re
from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Query
from sqlalchemy import select
from sqlalchemy.orm import Session

from gateway.auth.deps import get_read_session
from gateway.orders.models import (
    Order,
    RequestedProcedure,
    ScheduledStep,
    StatusChange,
)
from gateway.views.orders import (
    HistoryOut,
    OrderDetail,
    OrderPage,
    order_out,
    order_page,
)

router = APIRouter(prefix="/api/orders", tags=["orders"])

_DATE = re.compile(r"^\d{8}$")


@router.get("", response_model=OrderPage)
def list_orders(
    session: Annotated[Session, Depends(get_read_session)],
    status: Annotated[str | None, Query(max_length=16)] = None,
    modality: Annotated[str | None, Query(max_length=16)] = None,
    date_from: Annotated[str | None, Query(description="scheduled date >= YYYYMMDD")] = None,
    date_to: Annotated[str | None, Query(description="scheduled date <= YYYYMMDD")] = None,
    patient_id: Annotated[str | None, Query(max_length=64)] = None,
    offset: Annotated[int, Query(ge=0)] = 0,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
) -> OrderPage:
    for value, name in ((date_from, "date_from"), (date_to, "date_to")):
        if value is not None and not _DATE.match(value):
            raise HTTPException(422, f"{name} must be YYYYMMDD")
    return order_page(
        session,
        status=status,
        modality=modality,
        date_from=date_from,
        date_to=date_to,
        patient_id=patient_id,
        offset=offset,
        limit=limit,
    )


@router.get("/{accession}", response_model=OrderDetail)
def get_order(
    accession: str, session: Annotated[Session, Depends(get_read_session)]
) -> OrderDetail:
    order = session.scalar(
        select(Order)
        .join(RequestedProcedure, RequestedProcedure.order_pk == Order.id)
        .where(RequestedProcedure.accession_number == accession)
        .order_by(Order.id.desc())
        .limit(1)
    )
    if order is None:
        raise HTTPException(404, "order not found")
    step_ids: dict[int, str] = {
        pk: step_id
        for pk, step_id in session.execute(
            select(ScheduledStep.id, ScheduledStep.step_id)
            .join(RequestedProcedure, ScheduledStep.rp_pk == RequestedProcedure.id)
            .where(RequestedProcedure.order_pk == order.id)
        )
    }
    history = [
        HistoryOut(
            status=h.status,
            source=h.source,
            step_id=step_ids.get(h.step_pk) if h.step_pk is not None else None,
            at=h.at,
        )
        for h in session.scalars(
            select(StatusChange).where(StatusChange.order_pk == order.id).order_by(StatusChange.id)
        )
    ]
    return OrderDetail(**order_out(session, order).model_dump(), history=history)
