"""ORM tables of the order side: patients from HL7, visits, orders, requested procedures,
scheduled procedure steps, status history, the raw HL7 message store and MPPS records.

These patients are the HIS's view (identifiers with their type codes, merges); the DICOM
index (`gateway.core.models.Patient`) is what modalities sent. Steps carry denormalised start
date/time, station AE and modality so the worklist query uses one index.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import (
    DateTime,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from gateway.core.models import Base


class StepStatus:
    """DICOM Scheduled Procedure Step Status values (0040,0020)."""

    SCHEDULED = "SCHEDULED"
    STARTED = "STARTED"
    COMPLETED = "COMPLETED"
    DISCONTINUED = "DISCONTINUED"
    CANCELED = "CANCELED"

    # Steps a modality may still perform: the worklist serves only these.
    OPEN = ("SCHEDULED", "ARRIVED", "READY", "STARTED")


class MessageStatus:
    PROCESSED = "PROCESSED"  # AA: stored with its effects
    ERROR = "ERROR"  # AE: stored, no effects
    REJECTED = "REJECTED"  # AR: stored, no effects


class OrderPatient(Base):
    """A patient as the HIS knows it; ``merged_into_pk`` set by ADT^A40."""

    __tablename__ = "order_patients"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    patient_id: Mapped[str] = mapped_column(String(64), index=True)  # main id (MR first)
    issuer: Mapped[str] = mapped_column(String(64), default="")
    family_name: Mapped[str] = mapped_column(String(128), default="")
    given_name: Mapped[str] = mapped_column(String(128), default="")
    middle_name: Mapped[str] = mapped_column(String(128), default="")
    birth_date: Mapped[str] = mapped_column(String(8), default="")
    sex: Mapped[str] = mapped_column(String(16), default="")
    address: Mapped[str] = mapped_column(String(256), default="")
    merged_into_pk: Mapped[int | None] = mapped_column(
        ForeignKey("order_patients.id"), nullable=True, index=True
    )
    created_at: Mapped[datetime] = mapped_column(DateTime())
    updated_at: Mapped[datetime] = mapped_column(DateTime())


class PatientIdentifierRow(Base):
    """One PID-3 repetition: id, assigning authority, type code (MR, NI/CCCD, BHYT...)."""

    __tablename__ = "order_patient_ids"
    __table_args__ = (UniqueConstraint("identifier", "authority", name="uq_order_patient_id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    patient_pk: Mapped[int] = mapped_column(ForeignKey("order_patients.id"), index=True)
    identifier: Mapped[str] = mapped_column(String(64))
    authority: Mapped[str] = mapped_column(String(64), default="")
    type_code: Mapped[str] = mapped_column(String(16), default="")


class Visit(Base):
    """PV1: one per patient and visit number ('' when the HIS sends none)."""

    __tablename__ = "visits"
    __table_args__ = (UniqueConstraint("patient_pk", "visit_number", name="uq_visit"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    patient_pk: Mapped[int] = mapped_column(ForeignKey("order_patients.id"))
    visit_number: Mapped[str] = mapped_column(String(64), default="")
    patient_class: Mapped[str] = mapped_column(String(8), default="")
    location: Mapped[str] = mapped_column(String(64), default="")
    department: Mapped[str] = mapped_column(String(64), default="")
    attending_doctor: Mapped[str] = mapped_column(String(200), default="")
    updated_at: Mapped[datetime] = mapped_column(DateTime())


class Order(Base):
    """One placer/filler order (an ORC group)."""

    __tablename__ = "orders"
    __table_args__ = (
        Index("ix_orders_placer", "placer_number"),
        Index("ix_orders_filler", "filler_number"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    patient_pk: Mapped[int] = mapped_column(ForeignKey("order_patients.id"), index=True)
    visit_pk: Mapped[int | None] = mapped_column(ForeignKey("visits.id"), nullable=True)
    placer_number: Mapped[str] = mapped_column(String(64), default="")
    filler_number: Mapped[str] = mapped_column(String(64), default="")
    sending_application: Mapped[str] = mapped_column(String(64), default="")
    status: Mapped[str] = mapped_column(String(16), default=StepStatus.SCHEDULED)
    last_control: Mapped[str] = mapped_column(String(4), default="")
    priority: Mapped[str] = mapped_column(String(16), default="")
    requesting_physician: Mapped[str] = mapped_column(String(200), default="")
    reason: Mapped[str] = mapped_column(String(256), default="")
    created_at: Mapped[datetime] = mapped_column(DateTime())
    updated_at: Mapped[datetime] = mapped_column(DateTime())


class RequestedProcedure(Base):
    """What is to be done (OBR-4 or IPC), with its accession number and Study Instance UID."""

    __tablename__ = "requested_procedures"
    __table_args__ = (UniqueConstraint("order_pk", "requested_procedure_id", name="uq_rp"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    order_pk: Mapped[int] = mapped_column(ForeignKey("orders.id"))
    requested_procedure_id: Mapped[str] = mapped_column(String(16))
    accession_number: Mapped[str] = mapped_column(String(16), default="", index=True)
    study_instance_uid: Mapped[str] = mapped_column(String(64), index=True)
    procedure_code: Mapped[str] = mapped_column(String(64), default="")
    procedure_text: Mapped[str] = mapped_column(String(256), default="")
    coding_system: Mapped[str] = mapped_column(String(64), default="")


class ScheduledStep(Base):
    """A Scheduled Procedure Step: modality, station AE(s), start date/time, status."""

    __tablename__ = "scheduled_steps"
    __table_args__ = (
        UniqueConstraint("rp_pk", "step_id", name="uq_step"),
        Index("ix_steps_station_date", "station_ae", "start_date"),
        Index("ix_steps_modality_date", "modality", "start_date"),
        Index("ix_steps_date", "start_date"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    rp_pk: Mapped[int] = mapped_column(ForeignKey("requested_procedures.id"))
    step_id: Mapped[str] = mapped_column(String(16))
    modality: Mapped[str] = mapped_column(String(16), default="")
    station_ae: Mapped[str] = mapped_column(String(170), default="")  # backslash-separated
    station_name: Mapped[str] = mapped_column(String(170), default="")
    location: Mapped[str] = mapped_column(String(64), default="")
    start_date: Mapped[str] = mapped_column(String(8), default="")
    start_time: Mapped[str] = mapped_column(String(14), default="")
    description: Mapped[str] = mapped_column(String(256), default="")
    protocol_code: Mapped[str] = mapped_column(String(64), default="")
    protocol_text: Mapped[str] = mapped_column(String(256), default="")
    protocol_scheme: Mapped[str] = mapped_column(String(64), default="")
    status: Mapped[str] = mapped_column(String(16), default=StepStatus.SCHEDULED)
    updated_at: Mapped[datetime] = mapped_column(DateTime())


class StatusChange(Base):
    """Status history of orders and steps: what changed, by which message or MPPS."""

    __tablename__ = "order_status_history"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    order_pk: Mapped[int] = mapped_column(ForeignKey("orders.id"), index=True)
    step_pk: Mapped[int | None] = mapped_column(ForeignKey("scheduled_steps.id"), nullable=True)
    status: Mapped[str] = mapped_column(String(16))
    source: Mapped[str] = mapped_column(String(32))  # e.g. "HL7 NW", "MPPS"
    message_pk: Mapped[int | None] = mapped_column(
        ForeignKey("hl7_messages.id", ondelete="SET NULL"), nullable=True
    )
    at: Mapped[datetime] = mapped_column(DateTime())


class HL7MessageRow(Base):
    """Every inbound message, raw, with the ACK sent; ``dedup_key`` is sender + MSH-10."""

    __tablename__ = "hl7_messages"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    dedup_key: Mapped[str | None] = mapped_column(String(400), unique=True, nullable=True)
    sender: Mapped[str] = mapped_column(String(200), default="")
    control_id: Mapped[str] = mapped_column(String(200), default="")
    message_type: Mapped[str] = mapped_column(String(16), default="")
    peer: Mapped[str] = mapped_column(String(64), default="")
    raw: Mapped[bytes] = mapped_column(LargeBinary)
    ack: Mapped[bytes] = mapped_column(LargeBinary)
    ack_code: Mapped[str] = mapped_column(String(2))
    status: Mapped[str] = mapped_column(String(16))
    error: Mapped[str] = mapped_column(Text, default="")
    repeats: Mapped[int] = mapped_column(Integer, default=0)
    received_at: Mapped[datetime] = mapped_column(DateTime(), index=True)


class MppsRecord(Base):
    """A Modality Performed Procedure Step instance (N-CREATE, then N-SETs)."""

    __tablename__ = "mpps"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    sop_instance_uid: Mapped[str] = mapped_column(String(64), unique=True)
    status: Mapped[str] = mapped_column(String(16))
    step_pk: Mapped[int | None] = mapped_column(
        ForeignKey("scheduled_steps.id"), nullable=True, index=True
    )
    study_instance_uid: Mapped[str] = mapped_column(String(64), default="", index=True)
    accession_number: Mapped[str] = mapped_column(String(16), default="")
    calling_ae: Mapped[str] = mapped_column(String(16), default="")
    performed_station_ae: Mapped[str] = mapped_column(String(16), default="")
    modality: Mapped[str] = mapped_column(String(16), default="")
    series_json: Mapped[str] = mapped_column(Text, default="[]")
    # Film Consumption Sequence (0040,0321): films printed, None when not reported
    films_printed: Mapped[int | None] = mapped_column(Integer, nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime())
    updated_at: Mapped[datetime] = mapped_column(DateTime())
