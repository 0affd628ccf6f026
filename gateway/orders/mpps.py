"""MPPS records and their effect on scheduled steps (PS3.4 F.7 state rules).

N-CREATE must say IN PROGRESS; N-SET may keep it IN PROGRESS or end it COMPLETED or
DISCONTINUED; once ended, nothing may change it. The linked step (found by the
scheduled step attributes: step id, accession, Study Instance UID) follows: STARTED,
COMPLETED or DISCONTINUED. COMPLETED makes the study stable at once.
"""

from __future__ import annotations

import json

from pydicom import Dataset
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from dicom_nodes.ports import MppsOutcome as Outcome
from dicom_nodes.ports import MppsResult
from gateway.core import events
from gateway.core.models import Study, utcnow
from gateway.intake.stability import mark_complete_now
from gateway.orders.models import (
    MppsRecord,
    Order,
    RequestedProcedure,
    ScheduledStep,
    StatusChange,
    StepStatus,
)

IN_PROGRESS = "IN PROGRESS"
COMPLETED = "COMPLETED"
DISCONTINUED = "DISCONTINUED"
FINAL = (COMPLETED, DISCONTINUED)
_STEP_STATUS = {
    IN_PROGRESS: StepStatus.STARTED,
    COMPLETED: StepStatus.COMPLETED,
    DISCONTINUED: StepStatus.DISCONTINUED,
}


def _text(ds: Dataset, keyword: str) -> str:
    value = ds.get(keyword)
    return str(value).strip() if value is not None else ""


def _find_step(session: Session, attrs: Dataset) -> tuple[ScheduledStep | None, str, str]:
    """The scheduled step an MPPS refers to, with its Study Instance UID and accession."""
    for item in attrs.get("ScheduledStepAttributesSequence") or []:
        study_uid = _text(item, "StudyInstanceUID")
        accession = _text(item, "AccessionNumber")
        step_id = _text(item, "ScheduledProcedureStepID")
        stmt = select(ScheduledStep, RequestedProcedure).join(
            RequestedProcedure, ScheduledStep.rp_pk == RequestedProcedure.id
        )
        if step_id:
            stmt = stmt.where(ScheduledStep.step_id == step_id)
        if study_uid:
            stmt = stmt.where(RequestedProcedure.study_instance_uid == study_uid)
        elif accession:
            stmt = stmt.where(RequestedProcedure.accession_number == accession)
        elif not step_id:
            continue
        row = session.execute(stmt.limit(1)).first()
        if row is not None:
            step, rp = row
            return step, rp.study_instance_uid, rp.accession_number
        return None, study_uid, accession
    return None, "", ""


def _series(attrs: Dataset) -> str:
    out = []
    for item in attrs.get("PerformedSeriesSequence") or []:
        out.append(
            {
                "series_uid": _text(item, "SeriesInstanceUID"),
                "instances": len(item.get("ReferencedImageSequence") or []),
            }
        )
    return json.dumps(out)


def _step_follows(session: Session, record: MppsRecord, status: str) -> None:
    if record.step_pk is None:
        return
    step = session.get(ScheduledStep, record.step_pk)
    if step is None:
        return
    step.status = _STEP_STATUS[status]
    step.updated_at = utcnow()
    rp = session.get(RequestedProcedure, step.rp_pk)
    order = session.get(Order, rp.order_pk) if rp is not None else None
    if order is None:
        return
    session.flush()
    statuses = set(
        session.scalars(
            select(ScheduledStep.status)
            .join(RequestedProcedure, ScheduledStep.rp_pk == RequestedProcedure.id)
            .where(RequestedProcedure.order_pk == order.id)
        )
    )
    if statuses <= {StepStatus.COMPLETED, StepStatus.CANCELED, StepStatus.DISCONTINUED}:
        order.status = (
            StepStatus.COMPLETED if StepStatus.COMPLETED in statuses else StepStatus.DISCONTINUED
        )
    else:
        order.status = StepStatus.STARTED
    order.updated_at = utcnow()
    session.add(
        StatusChange(
            order_pk=order.id, step_pk=step.id, status=step.status, source="MPPS", at=utcnow()
        )
    )


def _films_reported(session: Session, record: MppsRecord) -> None:
    """Tell costing that the study of ``record`` (by UID, else accession) has a film count."""
    uid = record.study_instance_uid
    if not uid and record.accession_number:
        uid = (
            session.scalar(
                select(Study.study_uid)
                .where(Study.accession_number == record.accession_number)
                .order_by(Study.id.desc())
                .limit(1)
            )
            or ""
        )
    if uid:
        events.emit(session, events.FILMS_REPORTED, uid)


def create(
    session: Session, sop_uid: str, attrs: Dataset, calling_ae: str, *, films: int | None = None
) -> MppsResult:
    """N-CREATE: a new IN PROGRESS step, linked to its scheduled step when known.

    ``films``: films printed per the Film Consumption Sequence, None if not reported.
    """
    status = _text(attrs, "PerformedProcedureStepStatus")
    if status != IN_PROGRESS:
        return MppsResult(Outcome.INVALID_VALUE, "N-CREATE status must be IN PROGRESS")
    if session.scalar(select(MppsRecord.id).where(MppsRecord.sop_instance_uid == sop_uid)):
        return MppsResult(Outcome.DUPLICATE, "MPPS instance exists")
    step, study_uid, accession = _find_step(session, attrs)
    now = utcnow()
    record = MppsRecord(
        sop_instance_uid=sop_uid,
        status=status,
        step_pk=step.id if step is not None else None,
        study_instance_uid=study_uid,
        accession_number=accession[:16],
        calling_ae=calling_ae[:16],
        performed_station_ae=_text(attrs, "PerformedStationAETitle")[:16],
        modality=_text(attrs, "Modality")[:16],
        series_json=_series(attrs),
        films_printed=films,
        created_at=now,
        updated_at=now,
    )
    session.add(record)
    try:
        session.flush()
    except IntegrityError:
        return MppsResult(Outcome.DUPLICATE, "MPPS instance exists")
    _step_follows(session, record, status)
    if films is not None:
        _films_reported(session, record)
    return MppsResult(Outcome.OK)


def update(
    session: Session, sop_uid: str, mods: Dataset, *, films: int | None = None
) -> MppsResult:
    """N-SET: refused once the step is COMPLETED or DISCONTINUED; ``films`` (reported
    films printed, None if the N-SET does not say) replaces the recorded count."""
    record = session.scalar(
        select(MppsRecord).where(MppsRecord.sop_instance_uid == sop_uid).with_for_update()
    )
    if record is None:
        return MppsResult(Outcome.NO_SUCH_INSTANCE, "no such MPPS instance")
    if record.status in FINAL:
        return MppsResult(Outcome.FINALISED, "Performed Procedure Step may no longer be updated")
    status = _text(mods, "PerformedProcedureStepStatus") or record.status
    if status not in _STEP_STATUS:
        return MppsResult(Outcome.INVALID_VALUE, "invalid Performed Procedure Step Status")
    if "PerformedSeriesSequence" in mods:
        record.series_json = _series(mods)
    if films is not None and films != record.films_printed:
        record.films_printed = films
        _films_reported(session, record)
    changed = status != record.status
    record.status = status
    record.updated_at = utcnow()
    completed = False
    if changed:
        _step_follows(session, record, status)
    if status == COMPLETED and record.study_instance_uid:
        completed = mark_complete_now(session, record.study_instance_uid)
    return MppsResult(Outcome.OK, study_completed=completed)
