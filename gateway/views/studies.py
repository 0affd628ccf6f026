"""Studies as people see them: a summary per study (patient, order match, modalities,
instances, state) and a filtered page of them. The API and the web UI both show these."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel
from sqlalchemy import func, select
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
    total = session.scalar(select(func.count()).select_from(query.subquery())) or 0
    ids = list(
        session.scalars(
            query.order_by(Study.last_received_at.desc(), Study.id.desc())
            .offset(offset)
            .limit(limit)
        )
    )
    return StudyPage(total=total, offset=offset, limit=limit, items=summaries(session, ids))


def summary(session: Session, study_pk: int) -> StudySummary:
    return summaries(session, [study_pk])[0]


def summaries(session: Session, study_pks: list[int]) -> list[StudySummary]:
    """The summaries of ``study_pks``, in that order: four queries for the whole page."""
    if not study_pks:
        return []
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
            )
            .join(Patient, Study.patient_pk == Patient.id)
            .where(Study.id.in_(study_pks))
        )
    }
    modalities: dict[int, set[str]] = {pk: set() for pk in study_pks}
    for pk, modality in session.execute(
        select(Series.study_pk, Series.modality).where(Series.study_pk.in_(study_pks)).distinct()
    ):
        if modality:
            modalities[pk].add(modality)
    counts = {
        pk: int(n)
        for pk, n in session.execute(
            select(Series.study_pk, func.count(Instance.id))
            .join(Instance, Instance.series_pk == Series.id)
            .where(Series.study_pk.in_(study_pks))
            .group_by(Series.study_pk)
        )
    }
    matches = {
        pk: (state, reason)
        for pk, state, reason in session.execute(
            select(StudyMatch.study_pk, StudyMatch.state, StudyMatch.reason).where(
                StudyMatch.study_pk.in_(study_pks)
            )
        )
    }
    out = []
    for pk in study_pks:
        row = rows[pk]
        match = matches.get(pk, ("", ""))
        out.append(
            StudySummary(
                study_uid=row.study_uid,
                match_state=match[0],
                match_reason=match[1],
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
