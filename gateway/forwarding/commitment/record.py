"""Record a Request Storage Commitment: the request, its items and its job in one transaction.

The DIMSE layer has already validated the UIDs; this only stores. A repeated request (same
Transaction UID from the same AE, e.g. after a lost N-ACTION response) adds nothing; once
its outcome was reported (or given up), the same report is sent again.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta

from sqlalchemy import insert, select
from sqlalchemy.orm import Session

from dicom_nodes.ports import Recorded
from gateway.core import jobs
from gateway.core.models import utcnow
from gateway.forwarding.commitment.models import (
    CommitmentItem,
    CommitmentRequest,
    CommitmentState,
    ItemState,
)

KIND = "commitment"


def record_request(
    session: Session,
    transaction_uid: str,
    calling_ae: str,
    peer_address: str,
    references: Sequence[tuple[str, str]],
    timeout_s: float,
) -> Recorded:
    """Store a request for ``references`` ((SOP Class UID, SOP Instance UID) pairs)."""
    existing = session.scalar(
        select(CommitmentRequest).where(CommitmentRequest.transaction_uid == transaction_uid)
    )
    if existing is not None:
        if existing.calling_ae != calling_ae:
            return Recorded.CONFLICT
        if existing.state in (CommitmentState.REPORTED, CommitmentState.UNDELIVERED):
            # Asked again after the outcome was decided: send the same report again.
            existing.state = CommitmentState.REPORTING
            jobs.enqueue(session, KIND, transaction_uid)
        return Recorded.REPEATED
    unique: dict[str, str] = {}
    for sop_class, sop_instance in references:
        unique.setdefault(sop_instance, sop_class)
    now = utcnow()
    request = CommitmentRequest(
        transaction_uid=transaction_uid,
        calling_ae=calling_ae,
        peer_address=peer_address[:64],
        state=CommitmentState.WAITING,
        instances=len(unique),
        committed=0,
        failed=0,
        received_at=now,
        deadline_at=now + timedelta(seconds=timeout_s),
        result="",
        report_attempts=0,
        last_error="",
    )
    session.add(request)
    session.flush()
    session.execute(
        insert(CommitmentItem),
        [
            {
                "request_pk": request.id,
                "sop_class_uid": sop_class,
                "sop_instance_uid": sop_instance,
                "state": ItemState.PENDING,
            }
            for sop_instance, sop_class in unique.items()
        ],
    )
    jobs.enqueue(session, KIND, transaction_uid)
    return Recorded.NEW
