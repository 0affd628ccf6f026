"""Reconciliation: match each study to its order when its first instance arrives.

Order of evidence: AccessionNumber, then Study Instance UID, then Patient ID + modality +
a date window when that gives exactly one order. A cancelled order, a second study for
one accession, or new images for a completed order are FLAGGED, never merged silently.
Unmatched and flagged studies are held (their forward jobs wait, ``reconcile.unmatched =
"hold"``) or forwarded uncorrected, and listed for a person to link.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import date, timedelta

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from dicom_nodes.identifiers import validate_accession
from gateway.core import events, jobs
from gateway.core.fastsql import FastSQL
from gateway.core.models import (
    ForwardState,
    Instance,
    Job,
    JobState,
    Series,
    Study,
    StudyForward,
    utcnow,
)
from gateway.core.settings import ReconcileSettings
from gateway.core.upsert import insert_for
from gateway.intake.instance_meta import InstanceMeta
from gateway.intake.receive import StoredInstance
from gateway.orders.models import Order, OrderPatient, RequestedProcedure
from gateway.reconciliation.models import MatchState, StudyMatch

log = logging.getLogger(__name__)

_CANCELLED = ("CANCELED", "CANCELLED", "DISCONTINUED", "CA", "DC")
_COMPLETED = ("COMPLETED", "CM")


@dataclass(frozen=True)
class MatchResult:
    state: str
    method: str = ""
    rp_pk: int | None = None
    reason: str = ""


def _date(value: str) -> date | None:
    try:
        return date(int(value[0:4]), int(value[4:6]), int(value[6:8]))
    except (ValueError, IndexError):
        return None


def find_order(
    session: Session, meta: InstanceMeta, study_pk: int, window_days: int
) -> MatchResult:
    """Decide which requested procedure a study belongs to (read-only).

    Runs once per study inside the receive transaction, so its few lookups are driver
    statements (``FastSQL``): through SQLAlchemy's statement building most of its time
    was Python, not the indexed lookups (docs/performance.md)."""
    session.flush()  # rows pending in the session are seen, as the ORM's autoflush did
    sql = FastSQL(session)
    candidates: list[int] = []
    method = ""
    if meta.accession_number:
        candidates = _ids(
            sql, "SELECT id FROM requested_procedures WHERE accession_number = ?",
            [meta.accession_number],
        )  # fmt: skip
        method = "accession"
    if not candidates:
        candidates = _ids(
            sql, "SELECT id FROM requested_procedures WHERE study_instance_uid = ?",
            [meta.study_uid],
        )  # fmt: skip
        method = "study_uid"
    if not candidates and meta.patient_id and meta.modality:
        statement = (
            "SELECT DISTINCT rp.id FROM requested_procedures rp"
            " JOIN orders o ON o.id = rp.order_pk"
            " JOIN order_patients p ON p.id = o.patient_pk"
            " JOIN scheduled_steps st ON st.rp_pk = rp.id"
            " WHERE p.patient_id = ? AND st.modality = ?"
            f" AND o.status NOT IN ({', '.join('?' * len(_CANCELLED))})"
        )
        params: list[object] = [meta.patient_id, meta.modality.upper(), *_CANCELLED]
        day = _date(meta.study_date)
        if day is not None:
            statement += " AND st.start_date >= ? AND st.start_date <= ?"
            params += [
                (day - timedelta(days=window_days)).strftime("%Y%m%d"),
                (day + timedelta(days=window_days)).strftime("%Y%m%d"),
            ]
        candidates = _ids(sql, statement, params)
        method = "patient"
        if len(candidates) > 1:
            return MatchResult(MatchState.UNMATCHED, reason="several orders fit patient and date")
    if not candidates:
        return MatchResult(MatchState.UNMATCHED, reason="no order found")
    if len(candidates) > 1:
        return MatchResult(MatchState.FLAGGED, method, None, "several orders share the key")
    return _check(sql, candidates[0], study_pk, method)


def _ids(sql: FastSQL, statement: str, params: list[object]) -> list[int]:
    return [int(row[0]) for row in sql.rows(statement, params)]


def _check(sql: FastSQL, rp_pk: int, study_pk: int, method: str) -> MatchResult:
    status = sql.scalar(
        "SELECT o.status FROM orders o JOIN requested_procedures rp ON rp.order_pk = o.id"
        " WHERE rp.id = ?",
        [rp_pk],
    )
    other = sql.scalar(
        "SELECT study_pk FROM study_matches WHERE rp_pk = ? AND study_pk != ? AND state = ?",
        [rp_pk, study_pk, MatchState.MATCHED],
    )
    if status in _CANCELLED:
        return MatchResult(MatchState.FLAGGED, method, rp_pk, "the order is cancelled")
    if other is not None:
        return MatchResult(
            MatchState.FLAGGED, method, rp_pk, "another study is already linked to this order"
        )
    if status in _COMPLETED:
        return MatchResult(
            MatchState.FLAGGED, method, rp_pk, "images for an order already completed"
        )
    return MatchResult(MatchState.MATCHED, method, rp_pk)


def matched_order(
    session: Session, study_pk: int
) -> tuple[RequestedProcedure, Order, OrderPatient] | None:
    """The requested procedure, order and (surviving, after merges) patient of a matched
    study; None when the study is not matched."""
    row = session.execute(
        select(RequestedProcedure, Order, OrderPatient)
        .join(StudyMatch, StudyMatch.rp_pk == RequestedProcedure.id)
        .join(Order, Order.id == RequestedProcedure.order_pk)
        .join(OrderPatient, OrderPatient.id == Order.patient_pk)
        .where(StudyMatch.study_pk == study_pk, StudyMatch.state == MatchState.MATCHED)
    ).first()
    if row is None:
        return None
    rp, order, patient = row
    seen = set()
    while patient.merged_into_pk is not None and patient.id not in seen:
        seen.add(patient.id)
        survivor = session.get(OrderPatient, patient.merged_into_pk)
        if survivor is None:
            break
        patient = survivor
    return rp, order, patient


def _save(session: Session, study_pk: int, result: MatchResult, by: str = "") -> None:
    now = utcnow()
    values = {
        "state": result.state,
        "method": result.method,
        "rp_pk": result.rp_pk,
        "reason": result.reason,
        "linked_by": by,
        "updated_at": now,
    }
    session.execute(
        insert_for(session, StudyMatch.__table__)
        .values(study_pk=study_pk, created_at=now, **values)
        .on_conflict_do_update(index_elements=["study_pk"], set_=values)
    )


class Reconciler:
    """Receive hook and policy: match on a study's first instance, say whether to hold."""

    def __init__(self, settings: ReconcileSettings) -> None:
        self.settings = settings

    def state_of(self, session: Session, study_pk: int) -> str | None:
        """The study's match state (asked for every received instance: plain SQL)."""
        sql = FastSQL(session)
        # On PostgreSQL the read waits for a concurrent link of the same study.
        lock = " FOR SHARE" if sql.pg else ""
        row = sql.one(f"SELECT state FROM study_matches WHERE study_pk = ?{lock}", [study_pk])
        return str(row[0]) if row is not None else None

    def on_instance(self, session: Session, stored: StoredInstance) -> None:
        if self.state_of(session, stored.study_pk) is not None:
            return
        result = find_order(session, stored.meta, stored.study_pk, self.settings.date_window_days)
        _save(session, stored.study_pk, result)
        if result.state != MatchState.MATCHED:
            log.warning("study not matched to an order: %s", result.reason)

    def holds(self, session: Session, study_pk: int) -> bool:
        """True if the study's forward jobs must wait for a person."""
        if self.settings.unmatched != "hold":
            return False
        return self.state_of(session, study_pk) != MatchState.MATCHED


class LinkError(Exception):
    """A manual link that cannot be made; the message says why (for a 4xx)."""


def link(session: Session, study_uid: str, accession: str, by: str) -> MatchResult:
    """Link a study to the order with ``accession`` (a person's decision)."""
    accession = validate_accession(accession)
    # The study row first, as the receiver (then the match row): no lock-order deadlock
    # with an instance of the same study being indexed; ``reprocess`` needs it anyway.
    study_pk = session.scalar(
        select(Study.id).where(Study.study_uid == study_uid).with_for_update()
    )
    if study_pk is None:
        raise LinkError("study not found")
    rps = list(
        session.scalars(
            select(RequestedProcedure.id).where(RequestedProcedure.accession_number == accession)
        )
    )
    if len(rps) != 1:
        raise LinkError("no order with this accession number" if not rps else "ambiguous")
    result = _check(FastSQL(session), rps[0], study_pk, "manual")
    if result.state != MatchState.MATCHED:
        raise LinkError(result.reason)
    _save(session, study_pk, result, by)
    reprocess(session, study_pk, study_uid)
    return result


def _instance_refs(session: Session, study_pk: int) -> list[str]:
    return [
        str(pk)
        for pk in session.scalars(
            select(Instance.id)
            .join(Series, Series.id == Instance.series_pk)
            .where(Series.study_pk == study_pk)
        )
    ]


def _move_jobs(
    session: Session, refs: list[str], source: str, target: str, destination: str | None = None
) -> int:
    if not refs:
        return 0
    where = [Job.kind == "forward", Job.ref.in_(refs), Job.state == source]
    if destination is not None:
        where.append(Job.destination == destination)
    result = session.execute(
        update(Job)
        .where(*where)
        .values(state=target, attempts=0, next_attempt_at=utcnow(), updated_at=utcnow())
    )
    return int(getattr(result, "rowcount", 0) or 0)


# The job kind that corrects studies already in the PACS (``gateway.reconciliation.resend``).
CORRECTION = "resend"


def correction_pending(session: Session, study_uid: str) -> bool:
    """True while a correction of the study in the PACS is queued or running."""
    return (
        session.scalar(
            select(Job.id)
            .where(
                Job.kind == CORRECTION,
                Job.ref == study_uid,
                Job.state.notin_([JobState.DONE]),
            )
            .limit(1)
        )
        is not None
    )


def reprocess(session: Session, study_pk: int, study_uid: str) -> None:
    """After a link or a patient change: send the study (again) with the order's values.

    Instances not yet sent are released. If some were sent already (uncorrected, or with
    old values), the study's forward jobs are held while the ``resend`` job corrects the
    study in each destination (``gateway.reconciliation.resend``); the local copy is kept meanwhile
    (its ``study_forwards`` rows are no longer VERIFIED). The study row is locked first,
    so retention (``gateway.forwarding.verify.purge_verified``) either purged it before (the PACS
    copy is then corrected in place) or sees the correction pending.
    """
    purged = session.execute(
        select(Study.purged_at).where(Study.id == study_pk).with_for_update()
    ).first()
    if purged is not None and purged[0] is not None:
        events.emit(session, events.STUDY_RELINKED, study_uid)
        return
    refs = _instance_refs(session, study_pk)
    if _move_jobs(session, refs, JobState.DONE, JobState.HELD) or correction_pending(
        session, study_uid
    ):
        _move_jobs(session, refs, JobState.PENDING, JobState.HELD)
        session.execute(
            update(StudyForward)
            .where(StudyForward.study_pk == study_pk)
            .values(state=ForwardState.PENDING, detail="correction pending", checked_at=utcnow())
        )
        events.emit(session, events.STUDY_RELINKED, study_uid)
    else:
        _move_jobs(session, refs, JobState.HELD, JobState.PENDING)
        jobs.enqueue(session, "verify", study_uid)


def release_corrected(
    session: Session, study_uid: str, destination: str | None, corrected_in_place: list[int]
) -> None:
    """The destination no longer holds the study's old copies: its held forward jobs go
    (corrected at send time), then the study is verified. ``corrected_in_place`` are
    instances without a local copy, corrected in the PACS itself: their jobs are done."""
    study_pk = session.scalar(select(Study.id).where(Study.study_uid == study_uid))
    if study_pk is None:
        return
    done = [str(pk) for pk in corrected_in_place]
    _move_jobs(session, done, JobState.HELD, JobState.DONE, destination)
    refs = [r for r in _instance_refs(session, study_pk) if r not in set(done)]
    _move_jobs(session, refs, JobState.HELD, JobState.PENDING, destination)
    jobs.enqueue(session, "verify", study_uid)


def studies_of_patient(session: Session, patient_pk: int) -> list[tuple[int, str]]:
    """Matched studies of a patient and of every patient merged into it."""
    pks = {patient_pk}
    frontier = [patient_pk]
    while frontier:
        merged = list(
            session.scalars(
                select(OrderPatient.id).where(OrderPatient.merged_into_pk.in_(frontier))
            )
        )
        frontier = [pk for pk in merged if pk not in pks]
        pks.update(frontier)
    rows = session.execute(
        select(Study.id, Study.study_uid)
        .join(StudyMatch, StudyMatch.study_pk == Study.id)
        .join(RequestedProcedure, RequestedProcedure.id == StudyMatch.rp_pk)
        .join(Order, Order.id == RequestedProcedure.order_pk)
        .where(Order.patient_pk.in_(pks), StudyMatch.state == MatchState.MATCHED)
    ).all()
    return [(int(pk), str(uid)) for pk, uid in rows]
