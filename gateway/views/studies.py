"""Studies as people see them: a summary per study (patient, order match, modalities,
instances, state) and a filtered page of them. The API and the web UI both show these."""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
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


def count_all(session: Session) -> int:
    """How many studies there are, counted at most once a second while none is added.

    Counting every study is the list's one cost that grows with the database (10 ms of
    PostgreSQL per call at 50,000 studies): a page polled ten times a second counts once a
    second. Keyed by the highest study id (one index probe), so a new study is counted at
    once; studies rows are never deleted (retention removes files, not rows). A study
    committed out of id order (two receivers on PostgreSQL) shows within the TTL.
    """
    sql = FastSQL(session)
    key = str(session.get_bind().engine.url)
    top = _scalar(sql, "SELECT max(id) FROM studies")
    now = time.monotonic()
    with _all_counts_lock:
        cached = _all_counts.get(key)
    if cached is not None and cached[0] == top and now - cached[2] < COUNT_ALL_TTL_S:
        return cached[1]
    total = _scalar(sql, "SELECT count(id) FROM studies")
    with _all_counts_lock:
        _all_counts[key] = (top, total, now)
    return total


def _scalar(sql: FastSQL, statement: str, params: Sequence[Any] = ()) -> int:
    row = sql.one(statement, params)
    return int(row[0] or 0) if row is not None else 0


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
    total = count_all(session) if not where else _scalar(sql, f"SELECT count(*) {chosen}", params)
    page = f"SELECT s.id {chosen} ORDER BY s.last_received_at DESC, s.id DESC LIMIT ? OFFSET ?"
    page_params = [*params, limit, offset]
    ids = [int(row[0]) for row in sql.rows(page, page_params)]
    # The page's query stands in for the list of its ids in the summaries' queries.
    items = _summaries(sql, ids, page, page_params)
    return StudyPage(total=total, offset=offset, limit=limit, items=items)


def summary(session: Session, study_pk: int) -> StudySummary:
    return summaries(session, [study_pk])[0]


def summaries(session: Session, study_pks: list[int]) -> list[StudySummary]:
    """The summaries of ``study_pks``, in that order: two queries for them all."""
    marks = ", ".join("?" * len(study_pks))
    return _summaries(FastSQL(session), study_pks, marks, study_pks)


def _summaries(
    sql: FastSQL, study_pks: list[int], ids: str, params: Sequence[Any]
) -> list[StudySummary]:
    """Summaries of ``study_pks``, which SQL ``ids`` (a list or a query, with ``params``)
    selects."""
    if not study_pks:
        return []
    rows = {int(row[0]): row for row in sql.rows(_SUMMARY_SQL.format(ids=ids), params)}
    modalities: dict[int, set[str]] = {pk: set() for pk in study_pks}
    counts: dict[int, int] = {}
    for pk, modality, n in sql.rows(_COUNTS_SQL.format(ids=ids), params):
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
