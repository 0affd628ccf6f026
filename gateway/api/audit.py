"""Audit routes (admin only): the log, paged and filtered, and its CSV export."""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Query
from fastapi.responses import StreamingResponse
from sqlalchemy import Select, select
from sqlalchemy.orm import Session

from gateway.auth.deps import get_read_session, get_service
from gateway.core.audit import AuditRecord
from gateway.core.context import ProcessContext
from gateway.views.audit import AuditPage, audit_out, audit_page, filtered

router = APIRouter(prefix="/api/audit", tags=["audit"])

_DAY = re.compile(r"^\d{4}-\d{2}-\d{2}$")


class AuditFilter:
    def __init__(
        self,
        user: Annotated[str | None, Query(max_length=64)] = None,
        action: Annotated[
            str | None, Query(max_length=64, description="prefix, e.g. view.")
        ] = None,
        object_id: Annotated[str | None, Query(max_length=128)] = None,
        date_from: Annotated[str | None, Query(alias="from", description="YYYY-MM-DD")] = None,
        date_to: Annotated[str | None, Query(alias="to", description="YYYY-MM-DD")] = None,
    ) -> None:
        self.user, self.action, self.object_id = user, action, object_id
        self.date_from, self.date_to = date_from, date_to

    def apply(self, query: Select[Any]) -> Select[Any]:
        for value, name in ((self.date_from, "from"), (self.date_to, "to")):
            if value is not None and not _DAY.match(value):
                raise HTTPException(422, f"{name} must be YYYY-MM-DD")
        try:
            since = datetime.fromisoformat(self.date_from) if self.date_from else None
            before = (
                datetime.fromisoformat(self.date_to) + timedelta(days=1) if self.date_to else None
            )
        except ValueError:
            raise HTTPException(422, "not a valid date") from None
        return filtered(
            query,
            user=self.user,
            action=self.action,
            object_id=self.object_id,
            since=since,
            before=before,
        )


@router.get("", response_model=AuditPage)
def list_audit(
    session: Annotated[Session, Depends(get_read_session)],
    filters: Annotated[AuditFilter, Depends()],
    offset: Annotated[int, Query(ge=0)] = 0,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
) -> AuditPage:
    return audit_page(session, filters.apply(select(AuditRecord)), offset=offset, limit=limit)


COLUMNS = ["seq", "at", "user", "role", "source", "action", "object_type", "object_id",
           "outcome", "detail"]  # fmt: skip


@router.get("/export")
def export_audit(
    service: Annotated[ProcessContext, Depends(get_service)],
    filters: Annotated[AuditFilter, Depends()],
) -> StreamingResponse:
    """The filtered log as CSV (oldest first)."""
    query = filters.apply(select(AuditRecord)).order_by(AuditRecord.seq)

    def rows() -> Iterator[bytes]:
        buf = io.StringIO()
        writer = csv.writer(buf)
        writer.writerow(COLUMNS)
        with service.db.read_session() as session:
            for r in session.scalars(query):
                o = audit_out(r).model_dump()
                writer.writerow([o[c] if c != "at" else r.at.isoformat() for c in COLUMNS])
                if buf.tell() > 65536:
                    yield buf.getvalue().encode()
                    buf.seek(0)
                    buf.truncate()
        yield buf.getvalue().encode()

    return StreamingResponse(
        rows(),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": 'attachment; filename="audit.csv"'},
    )
