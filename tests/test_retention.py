"""Retention of the HL7 message store (``hl7.retention_days``), run by the worker's
periodic task on SQLite and PostgreSQL: old messages go, recent ones and the orders they
created stay (their history loses only the link to the message)."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import cast

from sqlalchemy import func, select, update

from gateway.core.context import ProcessContext
from gateway.core.database import Database
from gateway.core.models import utcnow
from gateway.core.settings import Settings
from gateway.operations.retention import RetentionTask, install, purge_hl7_messages
from gateway.orders.hl7_listener import HL7Handler
from gateway.orders.models import HL7MessageRow, Order, StatusChange
from tests.fixtures.orders.helpers import ack_code, orm


class _Svc:
    def __init__(self, db: Database, settings: Settings) -> None:
        self.db = db
        self.settings = settings
        self.periodic: list[object] = []


def _message(i: int) -> bytes:
    return orm(
        f"R{i}", patient_id=f"PR{i}", name="PHAM^VAN E", placer=f"PLR{i}",
        accession=f"AR{i}", start="20261125080000",
    )  # fmt: skip


def test_old_hl7_messages_purged_orders_kept(database: Database, tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path, hl7={"retention_days": 30})
    handler = HL7Handler(database, settings)
    for i in range(5):
        assert ack_code(handler.handle(_message(i), "127.0.0.1")) == "AA"
    with database.write_session() as session:
        old_ids = list(session.scalars(select(HL7MessageRow.id).order_by(HL7MessageRow.id)))[:3]
        session.execute(
            update(HL7MessageRow)
            .where(HL7MessageRow.id.in_(old_ids))
            .values(received_at=utcnow() - timedelta(days=31))
        )
    service = cast(ProcessContext, _Svc(database, settings))
    assert purge_hl7_messages(service, batch=2) == 3  # several batches
    with database.write_session() as session:
        assert session.scalar(select(func.count()).select_from(HL7MessageRow)) == 2
        assert session.scalar(select(func.count()).select_from(Order)) == 5
        linked = session.scalar(
            select(func.count()).select_from(StatusChange).where(StatusChange.message_pk.is_(None))
        )
        assert linked == 3
    assert purge_hl7_messages(service) == 0


def test_periodic_task_throttled_and_installed(database: Database, tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path, hl7={"retention_days": 1})
    handler = HL7Handler(database, settings)
    assert ack_code(handler.handle(_message(9), "127.0.0.1")) == "AA"
    with database.write_session() as session:
        session.execute(update(HL7MessageRow).values(received_at=utcnow() - timedelta(days=2)))
    svc = _Svc(database, settings)
    install(cast(ProcessContext, svc))
    task = svc.periodic[0]
    assert isinstance(task, RetentionTask)
    assert task(cast(ProcessContext, svc)) == 0  # never counts as work: the worker may sleep
    with database.write_session() as session:
        assert session.scalar(select(func.count()).select_from(HL7MessageRow)) == 0
    assert ack_code(handler.handle(_message(10), "127.0.0.1")) == "AA"
    with database.write_session() as session:
        session.execute(update(HL7MessageRow).values(received_at=utcnow() - timedelta(days=2)))
    task(cast(ProcessContext, svc))  # within the interval: skipped
    with database.write_session() as session:
        assert session.scalar(select(func.count()).select_from(HL7MessageRow)) == 1
