"""Storage commitment routes: requests from modalities, their outcome and report delivery."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Query
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from dicom_nodes.identifiers import is_valid_uid
from gateway.auth.deps import get_read_session
from gateway.forwarding.commitment.models import CommitmentItem, CommitmentRequest

router = APIRouter(prefix="/api/commitments", tags=["storage commitment"])


class CommitmentSummary(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    transaction_uid: str
    calling_ae: str
    state: str = Field(description="WAITING, REPORTING, REPORTED or UNDELIVERED")
    instances: int
    committed: int
    failed: int
    received_at: datetime
    deadline_at: datetime
    decided_at: datetime | None
    reported_at: datetime | None
    result: str = Field(description="SUCCESS (event type 1), FAILURES (type 2), or empty")
    event_type: int | None
    report_attempts: int
    last_error: str


class CommitmentPage(BaseModel):
    total: int
    offset: int
    limit: int
    items: list[CommitmentSummary]


class CommitmentInstance(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    sop_class_uid: str
    sop_instance_uid: str
    state: str = Field(description="PENDING, COMMITTED or FAILED")
    failure_reason: int | None = Field(description="PS3.4 Failure Reason, e.g. 274 = 0x0112")
    decided_at: datetime | None


class CommitmentDetail(CommitmentSummary):
    references: list[CommitmentInstance]


@router.get("", response_model=CommitmentPage)
def list_commitments(
    session: Annotated[Session, Depends(get_read_session)],
    offset: Annotated[int, Query(ge=0)] = 0,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    state: Annotated[str | None, Query(max_length=16)] = None,
    calling_ae: Annotated[str | None, Query(max_length=16)] = None,
) -> CommitmentPage:
    """Storage commitment requests, newest first."""
    query = select(CommitmentRequest)
    if state:
        query = query.where(CommitmentRequest.state == state.upper())
    if calling_ae:
        query = query.where(CommitmentRequest.calling_ae == calling_ae.strip())
    total = session.scalar(select(func.count()).select_from(query.subquery())) or 0
    rows = session.scalars(
        query.order_by(CommitmentRequest.received_at.desc(), CommitmentRequest.id.desc())
        .offset(offset)
        .limit(limit)
    )
    return CommitmentPage(
        total=total,
        offset=offset,
        limit=limit,
        items=[CommitmentSummary.model_validate(r) for r in rows],
    )


@router.get("/{transaction_uid}", response_model=CommitmentDetail)
def get_commitment(
    transaction_uid: str, session: Annotated[Session, Depends(get_read_session)]
) -> CommitmentDetail:
    """One request with every referenced instance and its decision."""
    if not is_valid_uid(transaction_uid):
        raise HTTPException(status_code=422, detail="invalid Transaction UID")
    row = session.scalar(
        select(CommitmentRequest).where(CommitmentRequest.transaction_uid == transaction_uid)
    )
    if row is None:
        raise HTTPException(status_code=404, detail="no such storage commitment request")
    items = session.scalars(
        select(CommitmentItem)
        .where(CommitmentItem.request_pk == row.id)
        .order_by(CommitmentItem.id)
    )
    return CommitmentDetail(
        **CommitmentSummary.model_validate(row).model_dump(),
        references=[CommitmentInstance.model_validate(i) for i in items],
    )
