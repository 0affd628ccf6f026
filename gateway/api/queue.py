"""Queue routes over :mod:`gateway.operations.queue`: job counts, dead jobs, retry."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query
from pydantic import BaseModel, Field
from sqlalchemy.orm import Session

from gateway.auth.deps import get_read_session, get_session
from gateway.operations.queue import QueueStatus, retry_dead, status

router = APIRouter(prefix="/api/queue", tags=["queue"])


class RetryRequest(BaseModel):
    ids: list[int] = Field(default_factory=list, description="dead job ids; empty = all")
    kind: str | None = Field(default=None, max_length=32)


class RetryResult(BaseModel):
    retried: int


@router.get("", response_model=QueueStatus)
def queue_status(
    session: Annotated[Session, Depends(get_read_session)],
    dead_limit: Annotated[int, Query(ge=0, le=1000)] = 100,
) -> QueueStatus:
    return status(session, dead_limit)


@router.post("/retry", response_model=RetryResult)
def retry(body: RetryRequest, session: Annotated[Session, Depends(get_session)]) -> RetryResult:
    return RetryResult(retried=retry_dead(session, body.ids, body.kind))
