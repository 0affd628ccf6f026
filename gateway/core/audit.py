"""Append-only audit log, chained by hash.

Each record stores ``hash = sha256(prev_hash + canonical content)`` where the canonical
content is the JSON of its fields (sorted keys) including its sequence number, so changing
any field, deleting a record or reordering breaks the chain at that record.
:func:`verify` walks the chain and returns the first bad record. Appends are serialised:
SQLite's ``BEGIN IMMEDIATE`` and, on PostgreSQL, a transaction-level advisory lock.

What is recorded: every view of patient data and every change, with the user, the time,
the source address, the action and the object (an id, never a patient name).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import DateTime, Integer, String, Text, select, text
from sqlalchemy.orm import Mapped, Session, mapped_column
from starlette.requests import Request

from gateway.core.database import Database
from gateway.core.models import Base, utcnow

GENESIS = "0" * 64
_PG_LOCK_KEY = 0x52495347  # "RISG": advisory lock id for audit appends


class AuditRecord(Base):
    """One append-only audit entry."""

    __tablename__ = "audit_log"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    seq: Mapped[int] = mapped_column(Integer, unique=True)
    at: Mapped[datetime] = mapped_column(DateTime(), index=True)
    user_name: Mapped[str] = mapped_column(String(64), default="", index=True)
    role: Mapped[str] = mapped_column(String(16), default="")
    source: Mapped[str] = mapped_column(String(64), default="")
    action: Mapped[str] = mapped_column(String(64), index=True)
    object_type: Mapped[str] = mapped_column(String(32), default="")
    object_id: Mapped[str] = mapped_column(String(128), default="")
    outcome: Mapped[str] = mapped_column(String(16), default="ok")
    detail: Mapped[str] = mapped_column(Text, default="")
    prev_hash: Mapped[str] = mapped_column(String(64))
    hash: Mapped[str] = mapped_column(String(64))


FIELDS = (
    "seq",
    "at",
    "user_name",
    "role",
    "source",
    "action",
    "object_type",
    "object_id",
    "outcome",
    "detail",
)


def canonical(record: AuditRecord) -> str:
    values: dict[str, object] = {f: getattr(record, f) for f in FIELDS}
    values["at"] = record.at.isoformat(timespec="microseconds")
    return json.dumps(values, sort_keys=True, ensure_ascii=False, separators=(",", ":"))


def chain_hash(prev_hash: str, record: AuditRecord) -> str:
    return hashlib.sha256((prev_hash + canonical(record)).encode()).hexdigest()


def append(
    session: Session,
    action: str,
    *,
    user: str = "",
    role: str = "",
    source: str = "",
    object_type: str = "",
    object_id: str = "",
    outcome: str = "ok",
    detail: str = "",
) -> AuditRecord:
    """Add one record at the end of the chain, in ``session``'s transaction."""
    if session.get_bind().dialect.name == "postgresql":
        session.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _PG_LOCK_KEY})
    last = session.execute(
        select(AuditRecord.seq, AuditRecord.hash).order_by(AuditRecord.seq.desc()).limit(1)
    ).first()
    seq, prev = (last[0] + 1, last[1]) if last else (1, GENESIS)
    record = AuditRecord(
        seq=seq,
        at=utcnow(),
        user_name=user[:64],
        role=role[:16],
        source=source[:64],
        action=action[:64],
        object_type=object_type[:32],
        object_id=object_id[:128],
        outcome=outcome[:16],
        detail=detail[:2000],
        prev_hash=prev,
    )
    record.hash = chain_hash(prev, record)
    session.add(record)
    session.flush()
    return record


@dataclass(frozen=True)
class VerifyResult:
    ok: bool
    checked: int
    bad_id: int | None = None
    bad_seq: int | None = None
    reason: str = ""


def _records(db: Database) -> Iterator[AuditRecord]:
    last_seq = 0
    while True:
        with db.session_factory() as session:
            batch = list(
                session.scalars(
                    select(AuditRecord)
                    .where(AuditRecord.seq > last_seq)
                    .order_by(AuditRecord.seq)
                    .limit(5000)
                )
            )
        if not batch:
            return
        yield from batch
        last_seq = batch[-1].seq


def verify(db: Database) -> VerifyResult:
    """Walk the chain from the start; the first changed, missing or moved record fails it."""
    prev_hash, expected_seq, checked = GENESIS, 1, 0
    for record in _records(db):
        if record.seq != expected_seq:
            return VerifyResult(
                False, checked, record.id, record.seq, f"record(s) before seq {record.seq} missing"
            )
        if record.prev_hash != prev_hash:
            return VerifyResult(
                False, checked, record.id, record.seq, "previous hash does not match"
            )
        if chain_hash(prev_hash, record) != record.hash:
            return VerifyResult(
                False, checked, record.id, record.seq, "content does not match its hash"
            )
        prev_hash, expected_seq, checked = record.hash, expected_seq + 1, checked + 1
    return VerifyResult(True, checked)


def record_request(
    request: Request,
    action: str,
    object_type: str = "",
    object_id: str = "",
    *,
    outcome: str = "ok",
    detail: str = "",
    user: str | None = None,
    session: Session | None = None,
) -> None:
    """Audit what the caller of ``request`` did.

    Pass the route's ``session`` when it has one (on SQLite a second transaction in the
    same thread would wait for the first); without one the record gets its own.
    """
    principal = getattr(request.state, "principal", None)
    values = {
        "user": user if user is not None else (principal.name if principal else ""),
        "role": principal.role if principal else "",
        "source": request.client.host if request.client else "",
        "object_type": object_type,
        "object_id": object_id,
        "outcome": outcome,
        "detail": detail,
    }
    if session is not None:
        append(session, action, **values)
        return
    db: Database = request.app.state.service.db
    with db.write_session() as own:
        append(own, action, **values)
