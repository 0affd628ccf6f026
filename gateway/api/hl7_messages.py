"""HL7 message store routes over :mod:`gateway.views.hl7_messages`: the page and one message."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Query
from sqlalchemy.orm import Session

from gateway.auth.accounts import Principal
from gateway.auth.deps import current_principal, get_read_session
from gateway.auth.mask import masks_patient_data
from gateway.orders.models import HL7MessageRow
from gateway.views.hl7_messages import MessageOut, MessagePage, message_out, message_page

router = APIRouter(prefix="/api/hl7/messages", tags=["hl7"])


@router.get("", response_model=MessagePage)
def list_messages(
    session: Annotated[Session, Depends(get_read_session)],
    principal: Annotated[Principal, Depends(current_principal)],
    status: Annotated[str | None, Query(max_length=16)] = None,
    message_type: Annotated[str | None, Query(max_length=16, description="e.g. ORM^O01")] = None,
    control_id: Annotated[str | None, Query(max_length=200)] = None,
    offset: Annotated[int, Query(ge=0)] = 0,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
) -> MessagePage:
    return message_page(
        session,
        mask=masks_patient_data(principal),
        status=status,
        message_type=message_type,
        control_id=control_id,
        offset=offset,
        limit=limit,
    )


@router.get("/{message_id}", response_model=MessageOut)
def get_message(
    message_id: int,
    session: Annotated[Session, Depends(get_read_session)],
    principal: Annotated[Principal, Depends(current_principal)],
) -> MessageOut:
    row = session.get(HL7MessageRow, message_id)
    if row is None:
        raise HTTPException(404, "message not found")
    return message_out(row, masks_patient_data(principal))
