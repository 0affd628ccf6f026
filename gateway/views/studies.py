"""Studies as people see them: a summary per study (patient, order match, modalities,
instances, state) and a filtered page of them. The API and the web UI both show these."""

from __future__ import annotations

import threading
import time
from datetime import datetime
from typing import Any

from pydantic import BaseModel
from sqlalchemy import Select, func, select
from sqlalchemy.orm import Session

from gateway.core.models import Instance, Patient, Series, Study
from gateway.reconciliation.models import MatchState, StudyMatch


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


# The total of the unfiltered list per database: (highest study id, count, when counted).
_all_counts: dict[str, tuple[int, int, float]] = {}
_all_counts_lock = threading.Lock()
COUNT_ALL_TTL_S = 1.0


def count_all(session: Session) -> int:
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


def study_page(
    session: Session,
    *,
    date_from: str | None = None,
    date_to: str | None = None,
    modality: str | None = None,
    patient_id: str | None = None,
    state: str | None = None,
    matched: bool | None = None,
    offset: int = 0,
    limit: int = 50,
) -> StudyPage:
    """Studies, last received first; dates are YYYYMMDD (checked by the caller)."""
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
        total = count_all(session)
    else:
        total = session.scalar(select(func.count()).select_from(query.subquery())) or 0
    page = (
        query.order_by(Study.last_received_at.desc(), Study.id.desc()).offset(offset).limit(limit)
    )
    ids = list(session.scalars(page))
    return StudyPage(
        total=total, offset=offset, limit=limit, items=summaries(session, ids, among=page)
    )


def summary(session: Session, study_pk: int) -> StudySummary:
    return summaries(session, [study_pk])[0]


def summaries(
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
