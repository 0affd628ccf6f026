"""ORM tables: the DICOM index (patients, studies, series, instances) and the job table.

Every background step is a :class:`Job` row (state, attempts, next attempt, last error),
so work is restartable after a kill and visible in the API.
"""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import (
    BigInteger,
    Boolean,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    false,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship


class Base(DeclarativeBase):
    pass


def utcnow() -> datetime:
    """Naive UTC now: every timestamp in the database is naive UTC."""
    return datetime.now(UTC).replace(tzinfo=None)


class StudyState:
    RECEIVING = "RECEIVING"
    STABLE = "STABLE"


class JobState:
    HELD = "HELD"  # waiting for a person (e.g. a forward job of an unmatched study)
    PENDING = "PENDING"
    RUNNING = "RUNNING"
    DONE = "DONE"
    DEAD = "DEAD"


class Patient(Base):
    __tablename__ = "patients"
    __table_args__ = (UniqueConstraint("patient_id", "issuer", name="uq_patient_key"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    patient_id: Mapped[str] = mapped_column(String(64))
    issuer: Mapped[str] = mapped_column(String(64), default="")
    name: Mapped[str] = mapped_column(String(324), default="")
    birth_date: Mapped[str] = mapped_column(String(8), default="")
    sex: Mapped[str] = mapped_column(String(16), default="")
    updated_at: Mapped[datetime] = mapped_column(DateTime())


class Study(Base):
    __tablename__ = "studies"
    __table_args__ = (
        # The study list's order (newest first): its first page without sorting them all.
        Index("ix_studies_last_received", "last_received_at", "id"),
        # The stable-study poll (RECEIVING and idle): one range whatever the statistics say.
        Index("ix_studies_state_received", "state", "last_received_at"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    study_uid: Mapped[str] = mapped_column(String(64), unique=True)
    patient_pk: Mapped[int] = mapped_column(ForeignKey("patients.id"), index=True)
    accession_number: Mapped[str] = mapped_column(String(64), default="", index=True)
    study_date: Mapped[str] = mapped_column(String(8), default="", index=True)
    study_time: Mapped[str] = mapped_column(String(16), default="")
    description: Mapped[str] = mapped_column(String(256), default="")
    calling_ae: Mapped[str] = mapped_column(String(16), default="")
    state: Mapped[str] = mapped_column(String(16), default=StudyState.RECEIVING, index=True)
    first_received_at: Mapped[datetime] = mapped_column(DateTime())
    last_received_at: Mapped[datetime] = mapped_column(DateTime())
    stable_at: Mapped[datetime | None] = mapped_column(DateTime(), nullable=True)
    purged_at: Mapped[datetime | None] = mapped_column(DateTime(), nullable=True)

    patient: Mapped[Patient] = relationship()
    series: Mapped[list[Series]] = relationship(back_populates="study")


class Series(Base):
    __tablename__ = "series"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    series_uid: Mapped[str] = mapped_column(String(64), unique=True)
    study_pk: Mapped[int] = mapped_column(ForeignKey("studies.id"), index=True)
    modality: Mapped[str] = mapped_column(String(16), default="", index=True)
    series_number: Mapped[str] = mapped_column(String(12), default="")
    body_part: Mapped[str] = mapped_column(String(64), default="")
    station_name: Mapped[str] = mapped_column(String(64), default="")
    description: Mapped[str] = mapped_column(String(256), default="")

    study: Mapped[Study] = relationship(back_populates="series")


class Instance(Base):
    __tablename__ = "instances"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    sop_instance_uid: Mapped[str] = mapped_column(String(64), unique=True)
    series_pk: Mapped[int] = mapped_column(ForeignKey("series.id"), index=True)
    sop_class_uid: Mapped[str] = mapped_column(String(64))
    transfer_syntax: Mapped[str] = mapped_column(String(64))
    instance_number: Mapped[str] = mapped_column(String(12), default="")
    path: Mapped[str] = mapped_column(String(512))
    size: Mapped[int] = mapped_column(BigInteger)
    calling_ae: Mapped[str] = mapped_column(String(16), default="")
    received_at: Mapped[datetime] = mapped_column(DateTime())
    duplicates: Mapped[int] = mapped_column(Integer, default=0)
    last_duplicate_at: Mapped[datetime | None] = mapped_column(DateTime(), nullable=True)


class Job(Base):
    """One unit of background work; unique per (kind, ref, destination)."""

    __tablename__ = "jobs"
    __table_args__ = (
        UniqueConstraint("kind", "ref", "destination", name="uq_job_key"),
        Index("ix_jobs_claim", "state", "kind", "next_attempt_at"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    kind: Mapped[str] = mapped_column(String(32))
    ref: Mapped[str] = mapped_column(String(128))
    destination: Mapped[str] = mapped_column(String(64), default="")
    state: Mapped[str] = mapped_column(String(16), default=JobState.PENDING)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(DateTime())
    last_error: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = mapped_column(DateTime())
    updated_at: Mapped[datetime] = mapped_column(DateTime())
    # Enqueued again while RUNNING: the end of this run puts it back to PENDING.
    rerun: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())


class ForwardState:
    PENDING = "PENDING"  # instances still queued for this destination
    SENT = "SENT"  # all sent; the destination cannot be verified (plain DICOM node)
    VERIFIED = "VERIFIED"  # the destination holds every instance
    INCOMPLETE = "INCOMPLETE"  # missing instances re-queued, or dead jobs
    HELD = "HELD"  # not sent: the study waits to be linked to an order


class StudyForward(Base):
    """Per study and destination: where forwarding stands, as last verified."""

    __tablename__ = "study_forwards"
    __table_args__ = (UniqueConstraint("study_pk", "destination", name="uq_study_forward"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    study_pk: Mapped[int] = mapped_column(ForeignKey("studies.id"), index=True)
    destination: Mapped[str] = mapped_column(String(64))
    state: Mapped[str] = mapped_column(String(16), default=ForwardState.PENDING)
    expected: Mapped[int] = mapped_column(Integer, default=0)
    found: Mapped[int] = mapped_column(Integer, default=0)
    checked_at: Mapped[datetime | None] = mapped_column(DateTime(), nullable=True)
    verified_at: Mapped[datetime | None] = mapped_column(DateTime(), nullable=True)
    detail: Mapped[str] = mapped_column(Text, default="")
