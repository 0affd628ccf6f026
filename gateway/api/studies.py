"""Study routes: the list (:mod:`gateway.views.studies`), one study with its series and
forwarding, the link to an order and the retry of dead instances."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Query, Request
from pydantic import BaseModel, Field
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from dicom_nodes.identifiers import InvalidIdentifier, is_valid_uid
from gateway.auth.deps import get_read_session, get_service, get_session
from gateway.core.context import ProcessContext
from gateway.core.models import ForwardState, Instance, Series, Study, StudyForward
from gateway.forwarding.dead_jobs import dead_in_study, retry_study
from gateway.forwarding.pacs_client import PacsError
from gateway.orders.models import RequestedProcedure
from gateway.reconciliation import reconcile
from gateway.reconciliation.models import MatchState, StudyMatch
from gateway.results.notify import viewer_url
from gateway.views.studies import StudyPage, StudySummary, study_page, summary

router = APIRouter(prefix="/api/studies", tags=["studies"])

_DATE = re.compile(r"^\d{8}$")


class SeriesDetail(BaseModel):
    series_uid: str
    modality: str
    series_number: str
    description: str
    instances: int


class DeadInstanceDetail(BaseModel):
    job_id: int
    sop_instance_uid: str
    series_uid: str
    attempts: int
    last_error: str = Field(description="the destination's words (status and comment, or abort)")
    updated_at: datetime


class ForwardDetail(BaseModel):
    destination: str
    state: str
    expected: int
    found: int
    checked_at: datetime | None
    verified_at: datetime | None
    detail: str
    dead: list[DeadInstanceDetail] = Field(
        default_factory=list, description="instances this destination keeps refusing"
    )


class StudyDetail(StudySummary):
    series: list[SeriesDetail]
    forwarding: list[ForwardDetail]
    purged_at: datetime | None
    order_accession: str | None
    viewer_url: str | None


class LinkRequest(BaseModel):
    accession_number: str = Field(min_length=1, max_length=16)


class ForwardRetryRequest(BaseModel):
    destination: str | None = Field(default=None, max_length=64, description="None: all")


class ForwardRetryResult(BaseModel):
    study_uid: str
    retried: int


class LinkResult(BaseModel):
    study_uid: str
    match_state: str
    accession_number: str


def _check_date(value: str | None, name: str) -> None:
    if value is not None and not _DATE.match(value):
        raise HTTPException(422, f"{name} must be YYYYMMDD")


@router.get("", response_model=StudyPage)
def list_studies(
    session: Annotated[Session, Depends(get_read_session)],
    date_from: Annotated[str | None, Query(description="study date >= YYYYMMDD")] = None,
    date_to: Annotated[str | None, Query(description="study date <= YYYYMMDD")] = None,
    modality: Annotated[str | None, Query(max_length=16)] = None,
    patient_id: Annotated[str | None, Query(max_length=64)] = None,
    state: Annotated[str | None, Query(max_length=16)] = None,
    matched: Annotated[
        bool | None, Query(description="false: studies waiting to be linked to an order")
    ] = None,
    offset: Annotated[int, Query(ge=0)] = 0,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
) -> StudyPage:
    _check_date(date_from, "date_from")
    _check_date(date_to, "date_to")
    return study_page(
        session,
        date_from=date_from,
        date_to=date_to,
        modality=modality,
        patient_id=patient_id,
        state=state,
        matched=matched,
        offset=offset,
        limit=limit,
    )


@router.get("/{study_uid}", response_model=StudyDetail)
def get_study(
    study_uid: str,
    session: Annotated[Session, Depends(get_read_session)],
    service: Annotated[ProcessContext, Depends(get_service)],
) -> StudyDetail:
    if not is_valid_uid(study_uid):
        raise HTTPException(422, "study_uid is not a valid DICOM UID")
    study_pk = session.scalar(select(Study.id).where(Study.study_uid == study_uid))
    if study_pk is None:
        raise HTTPException(404, "study not found")
    head = summary(session, study_pk)
    rows = session.execute(
        select(Series, func.count(Instance.id))
        .outerjoin(Instance, Instance.series_pk == Series.id)
        .where(Series.study_pk == study_pk)
        .group_by(Series.id)
        .order_by(Series.series_number, Series.id)
    ).all()
    series = [
        SeriesDetail(
            series_uid=s.series_uid,
            modality=s.modality,
            series_number=s.series_number,
            description=s.description,
            instances=int(n),
        )
        for s, n in rows
    ]
    dead: dict[str, list[DeadInstanceDetail]] = {}
    for d in dead_in_study(session, study_pk):
        dead.setdefault(d.destination, []).append(DeadInstanceDetail(**d._asdict()))
    forwarding = [
        ForwardDetail(
            destination=f.destination,
            state=f.state,
            expected=f.expected,
            found=f.found,
            checked_at=f.checked_at,
            verified_at=f.verified_at,
            detail=f.detail,
            dead=dead.pop(f.destination, []),
        )
        for f in session.scalars(
            select(StudyForward).where(StudyForward.study_pk == study_pk).order_by(StudyForward.id)
        )
    ]
    # Dead before the study was checked (still arriving): shown all the same.
    forwarding += [
        ForwardDetail(
            destination=name,
            state=ForwardState.INCOMPLETE,
            expected=0,
            found=0,
            checked_at=None,
            verified_at=None,
            detail=f"{len(items)} dead (the destination refused them)",
            dead=items,
        )
        for name, items in dead.items()
    ]
    purged_at = session.scalar(select(Study.purged_at).where(Study.id == study_pk))
    accession = session.scalar(
        select(RequestedProcedure.accession_number)
        .join(StudyMatch, StudyMatch.rp_pk == RequestedProcedure.id)
        .where(StudyMatch.study_pk == study_pk, StudyMatch.state == MatchState.MATCHED)
    )
    link = None
    if forwarding and all(f.state == ForwardState.VERIFIED for f in forwarding):
        try:
            link = viewer_url(service, study_uid)
        except PacsError:
            link = None
    return StudyDetail(
        **head.model_dump(),
        series=series,
        forwarding=forwarding,
        purged_at=purged_at,
        order_accession=accession,
        viewer_url=link,
    )


@router.post("/{study_uid}/forward/retry", response_model=ForwardRetryResult)
def retry_forward(
    study_uid: str,
    body: ForwardRetryRequest,
    session: Annotated[Session, Depends(get_session)],
) -> ForwardRetryResult:
    """Send the study's dead instances again (attempts reset), then verify the study."""
    if not is_valid_uid(study_uid):
        raise HTTPException(422, "study_uid is not a valid DICOM UID")
    study_pk = session.scalar(select(Study.id).where(Study.study_uid == study_uid))
    if study_pk is None:
        raise HTTPException(404, "study not found")
    retried = retry_study(session, study_pk, body.destination)
    return ForwardRetryResult(study_uid=study_uid, retried=retried)


@router.post("/{study_uid}/link", response_model=LinkResult)
def link_study(
    study_uid: str,
    body: LinkRequest,
    request: Request,
    session: Annotated[Session, Depends(get_session)],
) -> LinkResult:
    """Link a study to the order with this accession number; it is then corrected and sent."""
    if not is_valid_uid(study_uid):
        raise HTTPException(422, "study_uid is not a valid DICOM UID")
    user = getattr(request.state, "user_name", "") or "api"
    try:
        result = reconcile.link(session, study_uid, body.accession_number, by=user)
    except (reconcile.LinkError, InvalidIdentifier) as exc:
        status = 404 if str(exc) == "study not found" else 409
        raise HTTPException(status, str(exc)) from None
    return LinkResult(
        study_uid=study_uid, match_state=result.state, accession_number=body.accession_number
    )
