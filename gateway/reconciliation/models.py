"""Tables of reconciliation and results: the study <-> order match, outbound HL7 messages."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import DateTime, ForeignKey, Integer, LargeBinary, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from gateway.core.models import Base


class MatchState:
    MATCHED = "MATCHED"
    UNMATCHED = "UNMATCHED"  # no order found: held or forwarded uncorrected (configurable)
    FLAGGED = "FLAGGED"  # an order found but something is off: held for a person to decide


class StudyMatch(Base):
    """Which requested procedure (order) a study belongs to, and how that was decided."""

    __tablename__ = "study_matches"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    study_pk: Mapped[int] = mapped_column(ForeignKey("studies.id"), unique=True)
    state: Mapped[str] = mapped_column(String(16), index=True)
    method: Mapped[str] = mapped_column(
        String(16), default=""
    )  # accession|study_uid|patient|manual
    rp_pk: Mapped[int | None] = mapped_column(
        ForeignKey("requested_procedures.id"), nullable=True, index=True
    )
    reason: Mapped[str] = mapped_column(Text, default="")
    linked_by: Mapped[str] = mapped_column(String(64), default="")
    created_at: Mapped[datetime] = mapped_column(DateTime())
    updated_at: Mapped[datetime] = mapped_column(DateTime())


class OutboundMessage(Base):
    """An HL7 message the gateway sends (ORU^R01, ORM status), with the peer's answer."""

    __tablename__ = "outbound_messages"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    kind: Mapped[str] = mapped_column(String(16))
    study_pk: Mapped[int] = mapped_column(ForeignKey("studies.id"), index=True)
    control_id: Mapped[str] = mapped_column(String(64))
    raw: Mapped[bytes] = mapped_column(LargeBinary)
    ack_code: Mapped[str] = mapped_column(String(2), default="")
    ack: Mapped[bytes] = mapped_column(LargeBinary, default=b"")
    error: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = mapped_column(DateTime())
    sent_at: Mapped[datetime | None] = mapped_column(DateTime(), nullable=True)
