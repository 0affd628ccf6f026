"""Tables of Storage Commitment: one request per Transaction UID, one item per instance.

A request is WAITING until every item is decided (COMMITTED, or FAILED with a PS3.4
Failure Reason), then REPORTING until the N-EVENT-REPORT is delivered (REPORTED), or
UNDELIVERED once the report attempts are used up (its job is then DEAD and can be retried).
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import DateTime, ForeignKey, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from gateway.core.models import Base


class CommitmentState:
    WAITING = "WAITING"  # some instances not yet verified in their destinations
    REPORTING = "REPORTING"  # every instance decided; the report is not delivered yet
    REPORTED = "REPORTED"  # the requesting AE answered the N-EVENT-REPORT with success
    UNDELIVERED = "UNDELIVERED"  # report attempts used up (the job is DEAD)


class ItemState:
    PENDING = "PENDING"
    COMMITTED = "COMMITTED"
    FAILED = "FAILED"


class CommitmentResult:
    SUCCESS = "SUCCESS"  # Event Type 1: every instance committed
    FAILURES = "FAILURES"  # Event Type 2: failures exist


class CommitmentRequest(Base):
    """One Request Storage Commitment (N-ACTION, Action Type 1) and its outcome."""

    __tablename__ = "commitment_requests"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    transaction_uid: Mapped[str] = mapped_column(String(64), unique=True)
    calling_ae: Mapped[str] = mapped_column(String(16), index=True)
    peer_address: Mapped[str] = mapped_column(String(64), default="")
    state: Mapped[str] = mapped_column(String(16), default=CommitmentState.WAITING, index=True)
    instances: Mapped[int] = mapped_column(Integer, default=0)
    committed: Mapped[int] = mapped_column(Integer, default=0)
    failed: Mapped[int] = mapped_column(Integer, default=0)
    received_at: Mapped[datetime] = mapped_column(DateTime(), index=True)
    deadline_at: Mapped[datetime] = mapped_column(DateTime())
    decided_at: Mapped[datetime | None] = mapped_column(DateTime(), nullable=True)
    reported_at: Mapped[datetime | None] = mapped_column(DateTime(), nullable=True)
    result: Mapped[str] = mapped_column(String(16), default="")
    event_type: Mapped[int | None] = mapped_column(Integer, nullable=True)
    report_attempts: Mapped[int] = mapped_column(Integer, default=0)
    last_error: Mapped[str] = mapped_column(Text, default="")


class CommitmentItem(Base):
    """One referenced SOP instance of a request, with its decision."""

    __tablename__ = "commitment_items"
    __table_args__ = (
        UniqueConstraint("request_pk", "sop_instance_uid", name="uq_commitment_item"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    request_pk: Mapped[int] = mapped_column(
        ForeignKey("commitment_requests.id", ondelete="CASCADE"), index=True
    )
    sop_class_uid: Mapped[str] = mapped_column(String(64))
    sop_instance_uid: Mapped[str] = mapped_column(String(64), index=True)
    state: Mapped[str] = mapped_column(String(16), default=ItemState.PENDING)
    failure_reason: Mapped[int | None] = mapped_column(Integer, nullable=True)
    decided_at: Mapped[datetime | None] = mapped_column(DateTime(), nullable=True)
