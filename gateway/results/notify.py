"""Results back to the EMR: ORU^R01 with a viewer link once a matched study is verified.

Every message is a row (``outbound_messages``) sent through the job queue: an unreachable
EMR or an AE/AR answer is recorded and retried with backoff; the same control id is kept
across retries so the EMR can recognise a repeat.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from datetime import date

from sqlalchemy import select
from sqlalchemy.orm import Session

from gateway.core import jobs
from gateway.core.context import ProcessContext
from gateway.core.models import Job, Study, utcnow
from gateway.core.tls import notify_client_context
from gateway.forwarding.pacs_client import OrthancClient, PacsError
from gateway.orders.models import Visit
from gateway.reconciliation.models import OutboundMessage
from gateway.reconciliation.reconcile import matched_order
from hl7 import mllp_client
from hl7.build import Endpoints, build_orm_status, build_oru_r01
from hl7.errors import HL7Error
from hl7.model import OrderData, PatientData, PatientIdentifier, VisitData
from hl7.parse import parse

log = logging.getLogger(__name__)

KIND = "notify"


def install(service: ProcessContext) -> None:
    service.job_handlers[KIND] = handle


def viewer_url(service: ProcessContext, study_uid: str) -> str:
    """The viewer link of a study, from ``notify.viewer_url_template``."""
    template = service.settings.notify.viewer_url_template
    dest = next((d for d in service.settings.forward.destinations if d.url), None)
    orthanc_url = dest.url.rstrip("/") if dest and dest.url else ""
    orthanc_id = ""
    if dest is not None and "{orthanc_study_id}" in template:
        client = OrthancClient.for_destination(dest)
        try:
            orthanc_id = client.study_id(study_uid) or ""
        finally:
            client.close()
    return template.format(
        study_uid=study_uid, orthanc_url=orthanc_url, orthanc_study_id=orthanc_id
    )


def _birth(value: str) -> date | None:
    try:
        return date(int(value[:4]), int(value[4:6]), int(value[6:8]))
    except (ValueError, IndexError):
        return None


def _order_context(
    session: Session, study_pk: int
) -> tuple[PatientData, OrderData, VisitData | None] | None:
    found = matched_order(session, study_pk)
    if found is None:
        return None
    rp, order, patient = found
    patient_data = PatientData(
        identifiers=(PatientIdentifier(patient.patient_id, patient.issuer, "MR"),),
        family_name=patient.family_name,
        given_name=patient.given_name,
        middle_name=patient.middle_name,
        birth_date=_birth(patient.birth_date),
        sex=patient.sex,
    )
    order_data = OrderData(
        order_control="RE",
        order_status="CM",
        placer_order_number=order.placer_number,
        filler_order_number=order.filler_number,
        accession_number=rp.accession_number,
        requested_procedure_id=rp.requested_procedure_id,
        procedure_code=rp.procedure_code,
        procedure_text=rp.procedure_text,
        procedure_coding_system=rp.coding_system,
        study_instance_uid=rp.study_instance_uid,
    )
    visit = session.get(Visit, order.visit_pk) if order.visit_pk else None
    visit_data = (
        VisitData(
            patient_class=visit.patient_class,
            location=visit.location,
            department=visit.department,
            visit_number=visit.visit_number,
        )
        if visit is not None
        else None
    )
    return patient_data, order_data, visit_data


def _prepare(service: ProcessContext, study_uid: str) -> list[int]:
    """Create (once) the outbound messages of a verified study; returns those unsent."""
    cfg = service.settings.notify
    endpoints = Endpoints(
        sending_facility=cfg.sending_facility,
        receiving_application=cfg.receiving_application,
        receiving_facility=cfg.receiving_facility,
        version=cfg.version,
    )
    with service.db.write_session() as session:
        study_pk = session.scalar(select(Study.id).where(Study.study_uid == study_uid))
        if study_pk is None:
            return []
        existing = session.execute(
            select(OutboundMessage.id, OutboundMessage.ack_code).where(
                OutboundMessage.study_pk == study_pk
            )
        ).all()
        if existing:
            return [pk for pk, code in existing if code != "AA"]
        context = _order_context(session, study_pk)
        if context is None:
            return []  # unmatched: nothing to tell the EMR
        patient, order, visit = context
        url = viewer_url(service, study_uid)
        messages = []
        control = uuid.uuid4().hex[:20]
        messages.append(
            (
                "ORU^R01",
                control,
                build_oru_r01(
                    endpoints,
                    patient,
                    order,
                    study_instance_uid=study_uid,
                    viewer_url=url,
                    visit=visit,
                    control_id=control,
                ),
            )
        )
        if cfg.send_orm_status:
            control = uuid.uuid4().hex[:20]
            messages.append(
                (
                    "ORM^O01",
                    control,
                    build_orm_status(
                        endpoints,
                        patient,
                        order,
                        study_instance_uid=study_uid,
                        visit=visit,
                        control_id=control,
                    ),
                )
            )
        ids = []
        for kind, control_id, raw in messages:
            row = OutboundMessage(
                kind=kind,
                study_pk=study_pk,
                control_id=control_id,
                raw=raw,
                ack_code="",
                ack=b"",
                error="",
                created_at=utcnow(),
            )
            session.add(row)
            session.flush()
            ids.append(row.id)
        return ids


def _send(service: ProcessContext, message_pk: int) -> str | None:
    """Send one message; returns None on AA, else the reason."""
    cfg = service.settings.notify
    with service.db.session_factory() as session:
        raw = session.scalar(select(OutboundMessage.raw).where(OutboundMessage.id == message_pk))
    if raw is None:
        return None
    try:
        tls = notify_client_context(cfg)
        ack = asyncio.run(mllp_client.send(cfg.host, cfg.port, raw, cfg.timeout_s, tls))
        code = parse(ack, versions=None).get("MSA-1") or ""
        error = "" if code == "AA" else f"EMR answered {code or 'no MSA-1'}"
    except (OSError, TimeoutError, HL7Error) as exc:
        ack, code, error = b"", "", f"EMR unreachable: {type(exc).__name__}"
    with service.db.write_session() as session:
        row = session.get(OutboundMessage, message_pk)
        if row is not None:
            row.ack, row.ack_code, row.error = ack, code[:2], error
            row.sent_at = utcnow() if ack else row.sent_at
    return error or None


def handle(service: ProcessContext, job_ids: list[int]) -> None:
    cfg = service.settings.notify
    fwd = service.settings.forward
    for job_id in job_ids:
        with service.db.session_factory() as session:
            study_uid = session.scalar(select(Job.ref).where(Job.id == job_id))
        if not cfg.enabled or study_uid is None:
            with service.db.write_session() as session:
                jobs.finish(session, [job_id])
            continue
        try:
            pending = _prepare(service, study_uid)
            errors = [e for e in (_send(service, pk) for pk in pending) if e]
        except PacsError as exc:
            errors = [str(exc)]
        with service.db.write_session() as session:
            if errors:
                jobs.fail(
                    session,
                    [job_id],
                    "; ".join(errors),
                    max_attempts=cfg.max_attempts,
                    base_s=fwd.backoff_base_s,
                    cap_s=fwd.backoff_cap_s,
                )
                log.warning("result message not accepted: %s", errors[0])
            else:
                jobs.finish(session, [job_id])
