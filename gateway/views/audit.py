"""The audit log as people see it: one record per row, a page of a filtered query.
The API (JSON and CSV) and the web UI's audit page both show these."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel
from sqlalchemy import Select, func, select
from sqlalchemy.orm import Session

from gateway.core.audit import AuditRecord


class AuditOut(BaseModel):
    id: int
    seq: int
    at: datetime
    user: str
    role: str
    source: str
    action: str
    object_type: str
    object_id: str
    outcome: str
    detail: str


class AuditPage(BaseModel):
    total: int
    offset: int
    limit: int
    items: list[AuditOut]


def audit_out(r: AuditRecord) -> AuditOut:
    return AuditOut(
        id=r.id,
        seq=r.seq,
        at=r.at,
        user=r.user_name,
        role=r.role,
        source=r.source,
        action=r.action,
        object_type=r.object_type,
        object_id=r.object_id,
        outcome=r.outcome,
        detail=r.detail,
    )


def filtered(
    query: Select[Any],
    *,
    user: str | None = None,
    action: str | None = None,
    object_id: str | None = None,
    since: datetime | None = None,
    before: datetime | None = None,
) -> Select[Any]:
    """``query`` (a ``select(AuditRecord)``) narrowed: exact user and object, action prefix,
    ``since`` <= time < ``before``."""
    if user:
        query = query.where(AuditRecord.user_name == user)
    if action:
        query = query.where(AuditRecord.action.startswith(action, autoescape=True))
    if object_id:
        query = query.where(AuditRecord.object_id == object_id)
    if since is not None:
        query = query.where(AuditRecord.at >= since)
    if before is not None:
        query = query.where(AuditRecord.at < before)
    return query


def audit_page(session: Session, query: Select[Any], *, offset: int, limit: int) -> AuditPage:
    """A page of ``query`` (a filtered ``select(AuditRecord)``), newest first."""
    total = session.scalar(select(func.count()).select_from(query.subquery())) or 0
    rows = session.scalars(query.order_by(AuditRecord.seq.desc()).offset(offset).limit(limit))
    return AuditPage(total=total, offset=offset, limit=limit, items=[audit_out(r) for r in rows])
