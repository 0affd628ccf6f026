"""Study routes: list with paging and filters, and one study with its series."""

from __future__ import annotations

import re
import threading
import time
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Query, Request
from pydantic import BaseModel, Field
from sqlalchemy import Select, func, select
from sqlalchemy.orm import Session

from gateway import reconcile
from gateway.api.deps import get_read_session, get_service, get_session
from gateway.forward_dead import dead_in_study, retry_study
from gateway.identifiers import InvalidIdentifier, is_valid_uid
from gateway.models import ForwardState, Instance, Patient, Series, Study, StudyForward
from gateway.notify import viewer_url
from gateway.orders.models import RequestedProcedure
from gateway.pacs_client import PacsError
from gateway.reconcile_models import MatchState, StudyMatch
from gateway.service import Service

router = APIRouter(prefix="/api/studies", tags=["studies"])

_DATE = re.compile(r"^\d{8}$")


class StudySummary(BaseModel):
    study_uid: str
    match_state: str
    match_reason: str
    patient_id: str
    patient_name: str
    accession_number: str
    study_date: str
    modalities: list[str]
    state: str
    instances: int
    first_received_at: datetime
    last_received_at: datetime
    stable_at: datetime | None


class StudyPage(BaseModel):
    total: int
    offset: int
    limit: int
    items: list[StudySummary]


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


# The total of the unfiltered list per database: (highest study id, count, when counted).
_all_counts: dict[str, tuple[int, int, float]] = {}
_all_counts_lock = threading.Lock()
COUNT_ALL_TTL_S = 1.0


def _count_all(session: Session) -> int:
    """How many studies there are, counted at most once a second while none is added.

    Counting every study is the list's one cost that grows with the database (10 ms of
    PostgreSQL per call at 50,000 studies): a page polled ten times a second counts once a
    second. Keyed by the highest study id (one index probe), so a new study is counted at
    once; studies rows are never deleted (retention removes files, not rows). A study
    committed out of id order (two receivers on PostgreSQL) shows within the TTL.
    """
    key = str(session.get_bind().engine.url)
    top = session.scalar(select(func.max(Study.id))) or 0
    now = time.monotonic()
    with _all_counts_lock:
        cached = _all_counts.get(key)
    if cached is not None and cached[0] == top and now - cached[2] < COUNT_ALL_TTL_S:
        return cached[1]
    total = session.scalar(select(func.count(Study.id))) or 0
    with _all_counts_lock:
        _all_counts[key] = (top, total, now)
    return total


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
    query = select(Study.id)  # every study has its patient: join only to filter by one
    if matched is not None:
        is_matched = select(StudyMatch.study_pk).where(StudyMatch.state == MatchState.MATCHED)
        query = query.where(Study.id.in_(is_matched) if matched else Study.id.notin_(is_matched))
    if date_from:
        query = query.where(Study.study_date >= date_from)
    if date_to:
        query = query.where(Study.study_date <= date_to)
    if patient_id:
        query = query.join(Patient, Study.patient_pk == Patient.id).where(
            Patient.patient_id == patient_id
        )
    if state:
        query = query.where(Study.state == state.upper())
    if modality:
        query = query.where(
            Study.id.in_(select(Series.study_pk).where(Series.modality == modality.upper()))
        )
    if query.whereclause is None:
        total = _count_all(session)
    else:
        total = session.scalar(select(func.count()).select_from(query.subquery())) or 0
    page = (
        query.order_by(Study.last_received_at.desc(), Study.id.desc()).offset(offset).limit(limit)
    )
    ids = list(session.scalars(page))
    return StudyPage(
        total=total, offset=offset, limit=limit, items=_summaries(session, ids, among=page)
    )


@router.get("/{study_uid}", response_model=StudyDetail)
def get_study(
    study_uid: str,
    session: Annotated[Session, Depends(get_read_session)],
    service: Annotated[Service, Depends(get_service)],
) -> StudyDetail:
    if not is_valid_uid(study_uid):
        raise HTTPException(422, "study_uid is not a valid DICOM UID")
    study_pk = session.scalar(select(Study.id).where(Study.study_uid == study_uid))
    if study_pk is None:
        raise HTTPException(404, "study not found")
    summary = _summary(session, study_pk)
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
        **summary.model_dump(),
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


def _summary(session: Session, study_pk: int) -> StudySummary:
    return _summaries(session, [study_pk])[0]


def _summaries(
    session: Session, study_pks: list[int], among: Select[Any] | None = None
) -> list[StudySummary]:
    """The summaries of ``study_pks``, in that order: two queries for the whole page.

    ``among``: the query that gave ``study_pks`` (a page), used in the queries as a
    subquery instead of the list: rendering fifty bound ids costs more than the SQL.
    """
    if not study_pks:
        return []
    wanted: Select[Any] | list[int] = among if among is not None else study_pks
    # Columns, not entities: a page of ORM objects costs more than the queries.
    rows = {
        row.id: row
        for row in session.execute(
            select(
                Study.id,
                Study.study_uid,
                Study.accession_number,
                Study.study_date,
                Study.state,
                Study.first_received_at,
                Study.last_received_at,
                Study.stable_at,
                Patient.patient_id,
                Patient.name,
                StudyMatch.state.label("match_state"),
                StudyMatch.reason.label("match_reason"),
            )
            .join(Patient, Study.patient_pk == Patient.id)
            .outerjoin(StudyMatch, StudyMatch.study_pk == Study.id)
            .where(Study.id.in_(wanted))
        )
    }
    modalities: dict[int, set[str]] = {pk: set() for pk in study_pks}
    counts: dict[int, int] = {}
    for pk, modality, n in session.execute(
        select(Series.study_pk, Series.modality, func.count(Instance.id))
        .outerjoin(Instance, Instance.series_pk == Series.id)
        .where(Series.study_pk.in_(wanted))
        .group_by(Series.study_pk, Series.modality)
    ):
        if modality:
            modalities[pk].add(modality)
        counts[pk] = counts.get(pk, 0) + int(n)
    out = []
    for pk in study_pks:
        row = rows[pk]
        out.append(
            StudySummary(
                study_uid=row.study_uid,
                match_state=row.match_state or "",
                match_reason=row.match_reason or "",
                patient_id=row.patient_id,
                patient_name=row.name,
                accession_number=row.accession_number,
                study_date=row.study_date,
                modalities=sorted(modalities[pk]),
                state=row.state,
                instances=counts.get(pk, 0),
                first_received_at=row.first_received_at,
                last_received_at=row.last_received_at,
                stable_at=row.stable_at,
            )
        )
    return out
