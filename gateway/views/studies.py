"""Studies as people see them: a summary per study (patient, order match, modalities,
instances, state) and a filtered page of them. The API and the web UI both show these."""

from __future__ import annotations

import threading
import time
from datetime import datetime
from typing import Any

from pydantic import BaseModel
from sqlalchemy.orm import Session

from gateway.core.fastsql import FastSQL
from gateway.reconciliation.models import MatchState


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


def count_all(session: Session, sql: FastSQL | None = None) -> int:
    """How many studies there are, counted at most once a second while none is added.

    Counting every study is the list's one cost that grows with the database (10 ms of
    PostgreSQL per call at 50,000 studies): a page polled ten times a second counts once a
    second. Keyed by the highest study id (one index probe), so a new study is counted at
    once; studies rows are never deleted (retention removes files, not rows). A study
    committed out of id order (two receivers on PostgreSQL) shows within the TTL.
    """
    sql = sql or FastSQL(session)
    key = str(session.get_bind().engine.url)
    top = int(sql.scalar("SELECT max(id) FROM studies") or 0)
    now = time.monotonic()
    with _all_counts_lock:
        cached = _all_counts.get(key)
    if cached is not None and cached[0] == top and now - cached[2] < COUNT_ALL_TTL_S:
        return cached[1]
    total = int(sql.scalar("SELECT count(id) FROM studies") or 0)
    with _all_counts_lock:
        _all_counts[key] = (top, total, now)
    return total


# The list is the API's most polled read (a worklist screen refreshes it every few
# seconds), so its statements are SQL written once, run on the session's connection
# (``FastSQL``): building, caching and compiling them through SQLAlchemy, and ORM result
# handling, cost more CPU than the database's work (docs/performance.md). Every value is
# a bound parameter; the pieces of SQL are constants chosen by which filters are given.
_SUMMARY_SQL = (
    "SELECT s.id, s.study_uid, s.accession_number, s.study_date, s.state,"
    " s.first_received_at, s.last_received_at, s.stable_at, p.patient_id, p.name,"
    " m.state, m.reason"
    " FROM studies s JOIN patients p ON p.id = s.patient_pk"
    " LEFT JOIN study_matches m ON m.study_pk = s.id"
    " WHERE s.id IN ({ids})"
)
_COUNTS_SQL = (
    "SELECT se.study_pk, se.modality, count(i.id) FROM series se"
    " LEFT JOIN instances i ON i.series_pk = se.id"
    " WHERE se.study_pk IN ({ids}) GROUP BY se.study_pk, se.modality"
)


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
    where: list[str] = []
    params: list[Any] = []
    join = ""  # every study has its patient: join only to filter by one
    if matched is not None:
        where.append(
            ("s.id IN" if matched else "s.id NOT IN")
            + " (SELECT study_pk FROM study_matches WHERE state = ?)"
        )
        params.append(MatchState.MATCHED)
    if date_from:
        where.append("s.study_date >= ?")
        params.append(date_from)
    if date_to:
        where.append("s.study_date <= ?")
        params.append(date_to)
    if patient_id:
        join = " JOIN patients fp ON fp.id = s.patient_pk"
        where.append("fp.patient_id = ?")
        params.append(patient_id)
    if state:
        where.append("s.state = ?")
        params.append(state.upper())
    if modality:
        where.append("s.id IN (SELECT study_pk FROM series WHERE modality = ?)")
        params.append(modality.upper())
    chosen = "FROM studies s" + join + (" WHERE " + " AND ".join(where) if where else "")
    sql = FastSQL(session)
    if where:
        total = int(sql.scalar(f"SELECT count(*) {chosen}", params) or 0)
    else:
        total = count_all(session, sql)
    page = f"SELECT s.id {chosen} ORDER BY s.last_received_at DESC, s.id DESC LIMIT ? OFFSET ?"
    ids = [int(row[0]) for row in sql.rows(page, [*params, limit, offset])]
    return StudyPage(total=total, offset=offset, limit=limit, items=_summaries(sql, ids))


def summary(session: Session, study_pk: int) -> StudySummary:
    return summaries(session, [study_pk])[0]


def summaries(session: Session, study_pks: list[int]) -> list[StudySummary]:
    """The summaries of ``study_pks``, in that order: two queries for them all."""
    return _summaries(FastSQL(session), study_pks)


def _summaries(sql: FastSQL, study_pks: list[int]) -> list[StudySummary]:
    if not study_pks:
        return []
    ids = ", ".join("?" * len(study_pks))  # bound ids: the page's query is not run again
    rows = {int(row[0]): row for row in sql.rows(_SUMMARY_SQL.format(ids=ids), study_pks)}
    modalities: dict[int, set[str]] = {pk: set() for pk in study_pks}
    counts: dict[int, int] = {}
    for pk, modality, n in sql.rows(_COUNTS_SQL.format(ids=ids), study_pks):
        if modality:
            modalities[pk].add(modality)
        counts[pk] = counts.get(pk, 0) + int(n)
    out = []
    for pk in study_pks:
        row = rows[pk]
        out.append(
            StudySummary(
                study_uid=row[1],
                match_state=row[10] or "",
                match_reason=row[11] or "",
                patient_id=row[8],
                patient_name=row[9],
                accession_number=row[2],
                study_date=row[3],
                modalities=sorted(modalities[pk]),
                state=row[4],
                instances=counts.get(pk, 0),
                first_received_at=row[5],  # SQLite: text in SQLAlchemy's format, parsed here
                last_received_at=row[6],
                stable_at=row[7],
            )
        )
    return out
