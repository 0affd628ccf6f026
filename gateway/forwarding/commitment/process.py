"""The ``commitment`` job: decide each referenced instance, then report to the modality.

An instance is COMMITTED only when the gateway indexed it, its study is STABLE and every
destination it was routed to holds it as last verified: its forward job is DONE and the
study's ``StudyForward`` row is VERIFIED (or SENT for a destination that cannot be
verified) with a check newer than that job. An instance routed nowhere is committed by
the gateway's own store (fsynced and never purged without a verified destination).
Undecided instances are checked again every ``commitment.check_interval_s`` until
``commitment.timeout_s`` after the request; then they fail with 0x0112 (no such object
instance: never received) or 0x0110 (processing failure: not verified in time).

Once every instance is decided the N-EVENT-REPORT is sent (``dicom_nodes.commitment``);
an unreachable modality is retried with backoff (``commitment.report_retry_*``) until
``commitment.report_max_attempts``, after which the request is UNDELIVERED and its job
DEAD (``POST /api/queue/retry`` or ``risgate`` puts it back).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TypeVar

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from dicom_nodes.commitment import Report, ReportError, report_address, send_event_report
from gateway.core import jobs
from gateway.core.context import ProcessContext
from gateway.core.models import (
    ForwardState,
    Instance,
    Job,
    JobState,
    Series,
    Study,
    StudyForward,
    StudyState,
    utcnow,
)
from gateway.forwarding.commitment.models import (
    CommitmentItem,
    CommitmentRequest,
    CommitmentResult,
    CommitmentState,
    ItemState,
)
from gateway.forwarding.commitment.record import KIND

log = logging.getLogger(__name__)

FORWARD_KIND = "forward"  # gateway.forwarding.sender.KIND (not imported: keeps this module light)

REASON_PROCESSING_FAILURE = 0x0110
REASON_NO_SUCH_INSTANCE = 0x0112
REASON_CLASS_INSTANCE_CONFLICT = 0x0119

_CHUNK = 500
_T = TypeVar("_T")


def _chunks(values: Sequence[_T]) -> Iterator[Sequence[_T]]:
    for start in range(0, len(values), _CHUNK):
        yield values[start : start + _CHUNK]


@dataclass(frozen=True)
class _Found:
    pk: int
    sop_class_uid: str
    study_pk: int
    study_stable: bool


def _index_rows(session: Session, sop_instance_uids: Sequence[str]) -> dict[str, _Found]:
    found: dict[str, _Found] = {}
    for chunk in _chunks(list(sop_instance_uids)):
        rows = session.execute(
            select(
                Instance.sop_instance_uid,
                Instance.id,
                Instance.sop_class_uid,
                Series.study_pk,
                Study.state,
            )
            .join(Series, Instance.series_pk == Series.id)
            .join(Study, Series.study_pk == Study.id)
            .where(Instance.sop_instance_uid.in_(chunk))
        )
        for uid, pk, sop_class, study_pk, state in rows:
            found[uid] = _Found(pk, sop_class, study_pk, state == StudyState.STABLE)
    return found


def _decide(session: Session, found: dict[str, _Found]) -> dict[str, bool]:
    by_pk = {f.pk: uid for uid, f in found.items()}
    routes: dict[int, list[tuple[str, str, datetime]]] = {}
    for chunk in _chunks([str(pk) for pk in by_pk]):
        for ref, dest, state, updated in session.execute(
            select(Job.ref, Job.destination, Job.state, Job.updated_at).where(
                Job.kind == FORWARD_KIND, Job.ref.in_(chunk)
            )
        ):
            routes.setdefault(int(ref), []).append((dest, state, updated))
    study_pks = sorted({f.study_pk for f in found.values()})
    verified: dict[tuple[int, str], datetime] = {}
    for pks in _chunks(study_pks):
        for study_pk, dest, when in session.execute(
            select(StudyForward.study_pk, StudyForward.destination, StudyForward.verified_at).where(
                StudyForward.study_pk.in_(pks),
                StudyForward.state.in_([ForwardState.VERIFIED, ForwardState.SENT]),
            )
        ):
            if when is not None:
                verified[(study_pk, dest)] = when
    decided: dict[str, bool] = {}
    for uid, f in found.items():
        ok = f.study_stable
        for dest, state, sent_at in routes.get(f.pk, []):
            when = verified.get((f.study_pk, dest))
            ok = ok and state == JobState.DONE and when is not None and when >= sent_at
        decided[uid] = ok
    return decided


def evaluate(session: Session, request: CommitmentRequest, now: datetime) -> bool:
    """Decide what can be decided now; True once every item of ``request`` is decided."""
    pending = list(
        session.scalars(
            select(CommitmentItem).where(
                CommitmentItem.request_pk == request.id,
                CommitmentItem.state == ItemState.PENDING,
            )
        )
    )
    if pending:
        found = _index_rows(session, [i.sop_instance_uid for i in pending])
        decided = _decide(session, found)
        expired = now >= request.deadline_at
        for item in pending:
            row = found.get(item.sop_instance_uid)
            if row is not None and row.sop_class_uid != item.sop_class_uid:
                item.state, item.failure_reason = ItemState.FAILED, REASON_CLASS_INSTANCE_CONFLICT
            elif decided.get(item.sop_instance_uid):
                item.state = ItemState.COMMITTED
            elif expired:
                item.state = ItemState.FAILED
                item.failure_reason = (
                    REASON_NO_SUCH_INSTANCE if row is None else REASON_PROCESSING_FAILURE
                )
            else:
                continue
            item.decided_at = now
        session.flush()
        if any(item.state == ItemState.PENDING for item in pending):
            return False
    items = session.scalars(select(CommitmentItem).where(CommitmentItem.request_pk == request.id))
    states = [item.state for item in items]
    request.committed = states.count(ItemState.COMMITTED)
    request.failed = states.count(ItemState.FAILED)
    request.result = CommitmentResult.FAILURES if request.failed else CommitmentResult.SUCCESS
    request.event_type = 2 if request.failed else 1
    request.decided_at = now
    request.state = CommitmentState.REPORTING
    return True


def _report_of(session: Session, request: CommitmentRequest) -> Report:
    committed: list[tuple[str, str]] = []
    failed: list[tuple[str, str, int]] = []
    for item in session.scalars(
        select(CommitmentItem)
        .where(CommitmentItem.request_pk == request.id)
        .order_by(CommitmentItem.id)
    ):
        if item.state == ItemState.COMMITTED:
            committed.append((item.sop_class_uid, item.sop_instance_uid))
        else:
            reason = item.failure_reason or REASON_PROCESSING_FAILURE
            failed.append((item.sop_class_uid, item.sop_instance_uid, reason))
    return Report(request.transaction_uid, committed, failed)


def handle(service: ProcessContext, job_ids: list[int]) -> None:
    """Job handler: finish, fail or release each claimed ``commitment`` job."""
    for job_id in job_ids:
        try:
            _handle_one(service, job_id)
        except Exception as exc:
            log.exception("commitment job %d failed", job_id)
            with service.db.write_session() as session:
                jobs.fail(session, [job_id], f"{type(exc).__name__}: {exc}", max_attempts=10)


def _handle_one(service: ProcessContext, job_id: int) -> None:
    cfg = service.settings.commitment
    now = utcnow()
    with service.db.write_session() as session:
        transaction_uid = session.scalar(select(Job.ref).where(Job.id == job_id))
        request = session.scalar(
            select(CommitmentRequest).where(CommitmentRequest.transaction_uid == transaction_uid)
        )
        if request is None or request.state == CommitmentState.REPORTED:
            jobs.finish(session, [job_id])
            return
        if request.state == CommitmentState.WAITING:
            if not evaluate(session, request, now):
                left = (request.deadline_at - now).total_seconds()
                jobs.release(session, [job_id], delay_s=max(0.0, min(cfg.check_interval_s, left)))
                return
            log.info(
                "storage commitment %s decided: %d committed, %d failed",
                transaction_uid,
                request.committed,
                request.failed,
            )
        report = _report_of(session, request)
        calling_ae, address, request_pk = request.calling_ae, request.peer_address, request.id
    error = _send(service, report, calling_ae, address)
    with service.db.write_session() as session:
        if error is None:
            session.execute(
                update(CommitmentRequest)
                .where(CommitmentRequest.id == request_pk)
                .values(
                    state=CommitmentState.REPORTED,
                    reported_at=utcnow(),
                    report_attempts=CommitmentRequest.report_attempts + 1,
                    last_error="",
                )
            )
            jobs.finish(session, [job_id])
            log.info("storage commitment %s reported to %s", transaction_uid, calling_ae)
            return
        attempts = session.scalar(select(Job.attempts).where(Job.id == job_id)) or 0
        session.execute(
            update(CommitmentRequest)
            .where(CommitmentRequest.id == request_pk)
            .values(
                state=CommitmentState.UNDELIVERED
                if attempts >= cfg.report_max_attempts
                else CommitmentState.REPORTING,
                report_attempts=CommitmentRequest.report_attempts + 1,
                last_error=error[:2000],
            )
        )
        jobs.fail(
            session,
            [job_id],
            error,
            max_attempts=cfg.report_max_attempts,
            base_s=cfg.report_retry_base_s,
            cap_s=cfg.report_retry_cap_s,
        )
    log.warning("storage commitment %s not reported: %s", transaction_uid, error)


def _send(service: ProcessContext, report: Report, calling_ae: str, address: str) -> str | None:
    """Send the N-EVENT-REPORT; None on success, else the error (safe to log)."""
    dicom = service.settings.dicom
    target = report_address(dicom.peers, calling_ae, address)
    if target is None:
        return f"no port for {calling_ae} in dicom.peers"
    try:
        send_event_report(
            report,
            calling_ae=dicom.ae_title,
            called_ae=calling_ae,
            host=target[0],
            port=target[1],
            timeout_s=service.settings.commitment.report_timeout_s,
        )
    except ReportError as exc:
        return str(exc)
    except (OSError, RuntimeError, ValueError) as exc:
        return f"report failed: {type(exc).__name__}"
    return None


def install(service: ProcessContext) -> None:
    service.job_handlers[KIND] = handle
