"""Correct studies already in the PACS, keeping what the PACS made itself.

Triggered when a person links a study that was forwarded uncorrected, and when an ADT
update, merge or identifier change reaches a patient whose studies were forwarded:
``reconcile.reprocess`` holds the study's forward jobs and queues a ``resend`` job.
That job queues one ``resend`` job per REST destination (a destination that does not
answer holds up only its own correction) and releases the held jobs of plain DICOM
destinations (nothing to delete there: the corrected copy is simply sent again).

A destination's job looks at every instance Orthanc holds with the study's Study
Instance UID, under any Patient ID:

- an instance the gateway forwarded, whose forward job is held and whose local copy
  exists, is deleted there (only that instance); once all are gone its forward jobs are
  released and send the corrected copies (same UIDs, the order's values, the old values
  in the Original Attributes Sequence) through the durable forward queue. A crash
  between the two loses nothing: the jobs stay held, the local copy stays (retention
  skips studies whose correction is pending) and the job runs again after its lease;
- every other instance (a report, key-object selection or presentation state made in
  the PACS; a gateway instance whose local copy was purged) is corrected in place by
  ``gateway.reconciliation.pacs_correct``, keeping its UIDs: it follows the study to the corrected
  patient.

If the order's values changed while the job ran, it runs again.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import String, and_, cast, select

from gateway.core import jobs
from gateway.core.context import ProcessContext
from gateway.core.models import Instance, Job, JobState, Series, Study
from gateway.core.settings import DestinationSettings
from gateway.forwarding.pacs_client import OrthancClient, PacsError
from gateway.reconciliation import pacs_correct
from gateway.reconciliation.coerce import CoercionPlan, plan_for_study
from gateway.reconciliation.reconcile import (
    CORRECTION,
    release_corrected,
    reprocess,
    studies_of_patient,
)

log = logging.getLogger(__name__)

RESEND = CORRECTION
PATIENT_SYNC = "patient_sync"


def install(service: ProcessContext) -> None:
    service.job_handlers[RESEND] = handle_resend
    service.job_handlers[PATIENT_SYNC] = handle_patient_sync


def _jobs(service: ProcessContext, job_ids: list[int]) -> list[tuple[int, str, str]]:
    with service.db.session_factory() as session:
        return [
            (int(i), str(r), str(d))
            for i, r, d in session.execute(
                select(Job.id, Job.ref, Job.destination).where(Job.id.in_(job_ids))
            )
        ]


def handle_resend(service: ProcessContext, job_ids: list[int]) -> None:
    fwd = service.settings.forward
    by_name = {d.name: d for d in fwd.destinations}
    for job_id, study_uid, destination in _jobs(service, job_ids):
        if not destination:
            _fan_out(service, job_id, study_uid)
            continue
        dest = by_name.get(destination)
        try:
            again = correct_study(service, dest, study_uid) if dest and dest.url else False
        except PacsError as exc:
            # Retried for good (at most every backoff_cap_s): a dead correction would
            # leave the study's forward jobs held and nobody told but the queue.
            with service.db.write_session() as session:
                jobs.fail(
                    session,
                    [job_id],
                    str(exc),
                    max_attempts=None,
                    base_s=fwd.backoff_base_s,
                    cap_s=fwd.backoff_cap_s,
                )
            log.warning("correction in %s failed: %s", destination, exc)
            continue
        with service.db.write_session() as session:
            if again:
                jobs.release(session, [job_id])
            else:
                jobs.finish(session, [job_id])


def _fan_out(service: ProcessContext, job_id: int, study_uid: str) -> None:
    with service.db.write_session() as session:
        for dest in service.settings.forward.destinations:
            if dest.url:
                jobs.enqueue(session, RESEND, study_uid, dest.name)
            else:
                release_corrected(session, study_uid, dest.name, [])
        jobs.finish(session, [job_id])


@dataclass
class _Study:
    pk: int
    plan: CoercionPlan | None
    held_local: dict[str, int]  # SOP Instance UID -> instance pk: deleted, then sent again
    held_missing: dict[str, int]  # held, but the local file is gone: corrected in place
    local: set[str]  # every SOP Instance UID with a local copy (sent by the forward path)


def _load(service: ProcessContext, dest: str, study_uid: str) -> _Study | None:
    system = service.settings.reconcile.modifying_system
    with service.db.session_factory() as session:
        row = session.execute(
            select(Study.id, Study.purged_at).where(Study.study_uid == study_uid)
        ).first()
        if row is None:
            return None
        study_pk, purged_at = int(row[0]), row[1]
        plan = plan_for_study(session, study_pk, system)
        instances = session.execute(
            select(Instance.id, Instance.sop_instance_uid, Instance.path, Job.state)
            .join(Series, Series.id == Instance.series_pk)
            .outerjoin(
                Job,
                and_(
                    Job.kind == "forward",
                    Job.destination == dest,
                    Job.ref == cast(Instance.id, String),
                ),
            )
            .where(Series.study_pk == study_pk)
        ).all()
    study = _Study(study_pk, plan, {}, {}, set())
    for pk, sop_uid, rel, state in instances:
        present = purged_at is None and service.store.absolute(rel).is_file()
        if present:
            study.local.add(sop_uid)
        if state == JobState.HELD:
            (study.held_local if present else study.held_missing)[sop_uid] = int(pk)
    return study


def correct_study(service: ProcessContext, dest: DestinationSettings, study_uid: str) -> bool:
    """Correct one study in one Orthanc; True if the order changed meanwhile (run again)."""
    study = _load(service, dest.name, study_uid)
    if study is None:
        return False
    staging = pacs_correct.staging_dir(service.store.root, dest.name, study_uid)
    client = OrthancClient.for_destination(dest)
    try:
        for staged in pacs_correct.leftovers(staging):
            pacs_correct.store_staged(client, staged)
        remote = client.study_instances(study_uid)
        for orthanc_id, sop_uid in remote:
            if sop_uid in study.held_local:
                client.delete_instance(orthanc_id)
        with service.db.write_session() as session:
            release_corrected(session, study_uid, dest.name, list(study.held_missing.values()))
        if study.plan is not None:
            _correct_in_place(client, remote, study, staging)
    finally:
        client.close()
    log.info("study corrected in %s", dest.name)
    with service.db.session_factory() as session:
        now = plan_for_study(session, study.pk, service.settings.reconcile.modifying_system)
    return now != study.plan


def _correct_in_place(
    client: OrthancClient, remote: list[tuple[str, str]], study: _Study, staging: Path
) -> None:
    """Correct what the forward path cannot send again; one refused instance does not
    stop the others (the job fails after trying them all, and tries again)."""
    assert study.plan is not None
    errors: list[str] = []
    for orthanc_id, sop_uid in remote:
        if sop_uid in study.local:
            continue
        try:
            pacs_correct.correct(client, orthanc_id, study.plan, staging)
        except Exception as exc:  # refused by Orthanc, or a file pydicom cannot rewrite
            errors.append(str(exc) if isinstance(exc, PacsError) else type(exc).__name__)
    if errors:
        raise PacsError(f"{len(errors)} instances not corrected in place: {errors[0]}")


def handle_patient_sync(service: ProcessContext, job_ids: list[int]) -> None:
    for job_id, ref, _ in _jobs(service, job_ids):
        with service.db.write_session() as session:
            if ref.isdigit():  # study rows locked in one order (``reprocess`` locks each)
                for study_pk, study_uid in sorted(studies_of_patient(session, int(ref))):
                    reprocess(session, study_pk, study_uid)
            jobs.finish(session, [job_id])
