"""HL7 message store routes: inbound messages, raw and parsed, with the ACK sent."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Query
from pydantic import BaseModel, ConfigDict
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from gateway.auth.accounts import Principal
from gateway.auth.deps import current_principal, get_read_session
from gateway.auth.mask import mask_hl7, masks_patient_data
from gateway.orders.models import HL7MessageRow
from hl7.errors import HL7Error
from hl7.parse import parse

router = APIRouter(prefix="/api/hl7/messages", tags=["hl7"])


class MessageMeta(BaseModel):
    """The stored columns shown as they are."""

    model_config = ConfigDict(from_attributes=True)

    id: int
    received_at: datetime
    sender: str
    control_id: str
    message_type: str
    peer: str
    status: str
    ack_code: str
    error: str
    repeats: int


class MessageOut(MessageMeta):
    # built by _out only: raw and ack are bytes on the row, decoded (or masked) here
    model_config = ConfigDict(from_attributes=False)

    raw: str
    parsed: list[list[str]] | None
    ack: str


class MessagePage(BaseModel):
    total: int
    offset: int
    limit: int
    items: list[MessageOut]


def _text(data: bytes) -> str:
    """Wire bytes as text (UTF-8, else Latin-1), segments separated by newlines."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        text = data.decode("latin-1")
    return text.replace("\r", "\n").strip("\n")


def _parsed(raw: bytes) -> list[list[str]] | None:
    """Each segment as its list of fields (decoded per MSH-18), or None if unparseable."""
    try:
        msg = parse(raw, versions=None, fallback_charset="latin-1")
    except HL7Error:
        return None
    return [seg.encode().split(msg.delimiters.field) for seg in msg.segment_list]


def _out(row: HL7MessageRow, mask: bool = False) -> MessageOut:
    meta = MessageMeta.model_validate(row).model_dump()
    if mask:  # roles that do not need patient data see the message structure only
        raw = mask_hl7(_text(row.raw))
        return MessageOut(
            **meta, raw=raw, parsed=[seg.split("|") for seg in raw.split("\n")], ack=""
        )
    return MessageOut(
        **meta,
        raw=_text(row.raw),
        parsed=_parsed(row.raw),
        ack=_text(row.ack),
    )


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
    query = select(HL7MessageRow)
    if status:
        query = query.where(HL7MessageRow.status == status.upper())
    if message_type:
        query = query.where(HL7MessageRow.message_type == message_type.upper())
    if control_id:
        query = query.where(HL7MessageRow.control_id == control_id)
    total = session.scalar(select(func.count()).select_from(query.subquery())) or 0
    rows = session.scalars(query.order_by(HL7MessageRow.id.desc()).offset(offset).limit(limit))
    return MessagePage(
        total=total,
        offset=offset,
        limit=limit,
        items=[_out(r, masks_patient_data(principal)) for r in rows],
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
    return _out(row, masks_patient_data(principal))
