"""Correct studies already in the PACS: remove them there, then send them again corrected.

Triggered when a person links a study that was forwarded uncorrected, and when an ADT
update, merge or identifier change reaches a patient whose studies were forwarded. The
instances wait (HELD) while the old copy is deleted from each destination (Orthanc REST),
then go again with the order's current values and are verified.
"""

from __future__ import annotations

import logging

from sqlalchemy import select

from gateway import events, jobs
from gateway.models import Job
from gateway.pacs_client import OrthancClient, PacsError
from gateway.reconcile import release_after_removal, reprocess, studies_of_patient
from gateway.service import Service

log = logging.getLogger(__name__)

RESEND = "resend"
PATIENT_SYNC = "patient_sync"


def install(service: Service) -> None:
    events.subscribe(events.STUDY_RELINKED, RESEND)
    events.subscribe(events.PATIENT_CHANGED, PATIENT_SYNC)
    service.job_handlers[RESEND] = handle_resend
    service.job_handlers[PATIENT_SYNC] = handle_patient_sync


def _refs(service: Service, job_ids: list[int]) -> list[tuple[int, str]]:
    with service.db.sessions() as session:
        return [
            (int(i), str(r))
            for i, r in session.execute(select(Job.id, Job.ref).where(Job.id.in_(job_ids)))
        ]


def handle_resend(service: Service, job_ids: list[int]) -> None:
    fwd = service.settings.forward
    for job_id, study_uid in _refs(service, job_ids):
        try:
            for dest in fwd.destinations:
                if dest.url:
                    client = OrthancClient.for_destination(dest)
                    try:
                        client.delete_study(study_uid)
                    finally:
                        client.close()
        except PacsError as exc:
            with service.db.session() as session:
                jobs.fail(
                    session,
                    [job_id],
                    str(exc),
                    max_attempts=fwd.max_attempts,
                    base_s=fwd.backoff_base_s,
                    cap_s=fwd.backoff_cap_s,
                )
            continue
        with service.db.session() as session:
            release_after_removal(session, study_uid)
            jobs.finish(session, [job_id])
        log.info("study removed from the destinations and queued again, corrected")


def handle_patient_sync(service: Service, job_ids: list[int]) -> None:
    for job_id, ref in _refs(service, job_ids):
        with service.db.session() as session:
            if ref.isdigit():
                for study_pk, study_uid in studies_of_patient(session, int(ref)):
                    reprocess(session, study_pk, study_uid)
            jobs.finish(session, [job_id])
