"""Stored HL7 messages as people see them: raw and parsed, with the ACK sent; masked for
roles that do not need patient data. The API and the web UI both show these."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from gateway.auth.mask import mask_hl7
from gateway.orders.models import HL7MessageRow
from hl7.errors import HL7Error
from hl7.parse import parse


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
    # built by message_out only: raw and ack are bytes on the row, decoded (or masked) here
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


def message_out(row: HL7MessageRow, mask: bool = False) -> MessageOut:
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


def message_page(
    session: Session,
    *,
    mask: bool,
    status: str | None = None,
    message_type: str | None = None,
    control_id: str | None = None,
    offset: int = 0,
    limit: int = 50,
) -> MessagePage:
    """Messages, newest first; ``mask``: structure only, no patient data."""
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
        items=[message_out(r, mask) for r in rows],
    )
