"""Verification and clean-up: when a study is stable, ask each destination whether it holds
every instance (Orthanc REST, by SOP Instance UID); re-queue what is missing; delete the
local copy only after verification and ``forward.retention_hours``.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from sqlalchemy import Select, String, cast, func, select, update
from sqlalchemy.orm import Session

from gateway.core import events, jobs
from gateway.core.context import ProcessContext
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
from gateway.core.upsert import insert_for
from gateway.forwarding.pacs_client import OrthancClient, PacsError
from gateway.forwarding.sender import KIND as FORWARD

log = logging.getLogger(__name__)

KIND = "verify"


def install(service: ProcessContext) -> None:
    service.job_handlers[KIND] = handle
    service.periodic.append(purge_verified)


def _record(session: Session, study_pk: int, dest: str, state: str, **values: object) -> None:
    now = utcnow()
    row = {"state": state, "checked_at": now, **values}
    if state in (ForwardState.VERIFIED, ForwardState.SENT):
        row["verified_at"] = now
    values = {"expected": 0, "found": 0, "detail": "", **row}
    stmt = insert_for(session, StudyForward.__table__).values(
        study_pk=study_pk, destination=dest, **values
    )
    session.execute(
        stmt.on_conflict_do_update(index_elements=["study_pk", "destination"], set_=row)
    )


def handle(service: ProcessContext, job_ids: list[int]) -> None:
    fwd = service.settings.forward
    for job_id in job_ids:
        with service.db.session_factory() as session:
            study_uid = session.scalar(select(Job.ref).where(Job.id == job_id))
        try:
            again = verify_study(service, str(study_uid))
        except PacsError as exc:
            # A PACS that does not answer is waited for, however long: a dead verification
            # would leave the study unverified and its local copy kept until someone noticed.
            with service.db.write_session() as session:
                jobs.fail(
                    session,
                    [job_id],
                    str(exc),
                    max_attempts=None,
                    base_s=fwd.backoff_base_s,
                    cap_s=fwd.backoff_cap_s,
                )
            continue
        with service.db.write_session() as session:
            if again:
                jobs.release(session, [job_id], delay_s=fwd.verify_retry_s)
            else:
                jobs.finish(session, [job_id])


def verify_study(service: ProcessContext, study_uid: str) -> bool:
    """Check every destination of a study; True if it must be checked again later."""
    fwd = service.settings.forward
    with service.db.session_factory() as session:
        study_pk = session.scalar(select(Study.id).where(Study.study_uid == study_uid))
        if study_pk is None:
            return False
        instances = dict(
            session.execute(
                select(Instance.id, Instance.sop_instance_uid)
                .join(Series, Instance.series_pk == Series.id)
                .where(Series.study_pk == study_pk)
            ).all()
        )
        refs = [str(pk) for pk in instances]
        states = session.execute(
            select(Job.destination, Job.state, func.count())
            .where(Job.kind == FORWARD, Job.ref.in_(refs))
            .group_by(Job.destination, Job.state)
        ).all()
    by_dest: dict[str, dict[str, int]] = {}
    for dest_name, state, count in states:
        by_dest.setdefault(dest_name, {})[state] = int(count)
    again = False
    incomplete = False
    for dest in fwd.destinations:
        counts = by_dest.get(dest.name)
        if not counts:
            continue
        expected = sum(counts.values())
        done = counts.get(JobState.DONE, 0)
        waiting = counts.get(JobState.PENDING, 0) + counts.get(JobState.RUNNING, 0)
        dead = counts.get(JobState.DEAD, 0)
        held = counts.get(JobState.HELD, 0)
        # Not sent yet: held for a person (linking checks again) or queued.
        pending = (
            (ForwardState.HELD, f"{held} held: not matched") if held
            else (ForwardState.PENDING, f"{waiting} queued") if waiting
            else None
        )  # fmt: skip
        if pending is not None:
            with service.db.write_session() as session:
                _record(session, study_pk, dest.name, pending[0], expected=expected,
                        found=done, detail=pending[1])  # fmt: skip
            again = again or bool(waiting and not held)
            incomplete = incomplete or bool(held)
            continue
        incomplete = incomplete or bool(dead)
        dead_note = f"{dead} dead (the destination refused them)" if dead else ""
        if not (fwd.verify and dest.url):
            state = ForwardState.INCOMPLETE if dead else ForwardState.SENT
            with service.db.write_session() as session:
                _record(session, study_pk, dest.name, state, expected=expected, found=done,
                        detail=dead_note or "sent; destination not verifiable")  # fmt: skip
            continue
        client = OrthancClient.for_destination(dest)
        try:
            remote = client.study_sop_uids(study_uid)
        finally:
            client.close()
        # The dead ones are not re-queued: they wait for a person (retry action).
        dead_refs = _dead_refs(service, dest.name, refs) if dead else set()
        wanted = {pk: uid for pk, uid in instances.items() if str(pk) in refs}
        missing = [
            pk for pk, uid in wanted.items() if uid not in remote and str(pk) not in dead_refs
        ]
        found = sum(1 for uid in wanted.values() if uid in remote)
        with service.db.write_session() as session:
            for pk in missing:
                jobs.enqueue(session, FORWARD, str(pk), dest.name)
            state = ForwardState.INCOMPLETE if missing or dead else ForwardState.VERIFIED
            notes = [f"{len(missing)} missing in {dest.name}: re-queued"] if missing else []
            if dead:
                notes.append(f"{dead_note}; {found} of {len(wanted)} verified")
            _record(session, study_pk, dest.name, state, expected=len(wanted),
                    found=found, detail="; ".join(notes))  # fmt: skip
        if missing:
            log.warning("%d instances missing in %s: re-queued", len(missing), dest.name)
            again = True
    if by_dest and not again and not incomplete:
        with service.db.write_session() as session:
            events.emit(session, events.STUDY_VERIFIED, study_uid)
    return again


def _not_done(cutoff: datetime) -> Select[int]:
    """Studies not verified everywhere for the retention time."""
    return select(StudyForward.study_pk).where(
        StudyForward.state.notin_([ForwardState.VERIFIED, ForwardState.SENT])
        | (StudyForward.verified_at > cutoff)
    )


def _dead_refs(service: ProcessContext, destination: str, refs: list[str]) -> set[str]:
    with service.db.session_factory() as session:
        return set(
            session.scalars(
                select(Job.ref).where(
                    Job.kind == FORWARD,
                    Job.destination == destination,
                    Job.state == JobState.DEAD,
                    Job.ref.in_(refs),
                )
            )
        )


def purge_verified(service: ProcessContext) -> int:
    """Delete local copies of studies verified everywhere longer than the retention time.

    Each study is checked again under its row lock (``reconcile.reprocess`` takes it too)
    with no forward job left waiting: a correction that holds the study's jobs keeps its
    local copy, however long it waits for the PACS.
    """
    fwd = service.settings.forward
    cutoff = utcnow() - timedelta(hours=fwd.retention_hours)
    with service.db.session_factory() as session:
        candidates = list(
            session.scalars(
                select(Study.study_uid)
                .where(
                    Study.purged_at.is_(None),
                    Study.id.in_(select(StudyForward.study_pk)),
                    Study.id.notin_(_not_done(cutoff)),
                    Study.state == "STABLE",
                )
                .limit(100)
            )
        )
    purged = 0
    for study_uid in candidates:
        with service.db.write_session() as session:
            study_pk = session.scalar(
                select(Study.id)
                .where(Study.study_uid == study_uid, Study.purged_at.is_(None))
                .with_for_update()
            )
            if study_pk is None or _still_needed(session, study_pk, cutoff):
                continue
            service.store.delete_study(study_uid)
            session.execute(update(Study).where(Study.id == study_pk).values(purged_at=utcnow()))
            purged += 1
    if purged:
        log.info("purged the local copies of %d verified studies", purged)
    return purged


def _still_needed(session: Session, study_pk: int, cutoff: datetime) -> bool:
    """Read after the row lock: a correction committed meanwhile is seen."""
    if session.scalar(
        select(Study.id).where(Study.id == study_pk, Study.id.in_(_not_done(cutoff)))
    ):
        return True
    waiting = (
        select(Job.id)
        .join(Instance, Job.ref == cast(Instance.id, String))
        .join(Series, Series.id == Instance.series_pk)
        .where(
            Job.kind == FORWARD,
            Series.study_pk == study_pk,
            Job.state.in_([JobState.HELD, JobState.PENDING, JobState.RUNNING]),
        )
        .limit(1)
    )
    return session.scalar(waiting) is not None


def requeue_verification(session: Session, job_ids: list[int]) -> None:
    """After dead forward jobs are retried, check their studies again."""
    refs = list(session.scalars(select(Job.ref).where(Job.id.in_(job_ids), Job.kind == FORWARD)))
    if not refs:
        return
    study_uids = session.scalars(
        select(Study.study_uid)
        .join(Series, Series.study_pk == Study.id)
        .join(Instance, Instance.series_pk == Series.id)
        .where(Instance.id.in_([int(r) for r in refs]))
        .distinct()
    )
    for uid in study_uids:
        jobs.enqueue(session, KIND, uid)
