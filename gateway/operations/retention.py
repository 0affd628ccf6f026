"""Retention: periodic purges run by the worker role (``service.periodic``).

- HL7 message store: inbound messages (raw, parsed on demand, ACK) older than
  ``hl7.retention_days`` are deleted in batches, at most once per ``INTERVAL_S``; the
  orders and patients they created stay. (The listener also purges at its start, so a
  split ``--role hl7`` deployment is covered either way; deletes are idempotent.)
- Instance store: ``gateway.forwarding.verify.purge_verified`` (``forward.retention_hours``).
- Logs go to stderr: their retention is journald's or logrotate's (docs/operations.md).
"""

from __future__ import annotations

import logging
import time
from datetime import timedelta

from sqlalchemy import delete, select

from gateway.core.context import ProcessContext
from gateway.core.models import utcnow
from gateway.orders.models import HL7MessageRow

log = logging.getLogger(__name__)

INTERVAL_S = 3600.0
BATCH = 5000


def purge_hl7_messages(service: ProcessContext, *, batch: int = BATCH) -> int:
    """Delete inbound HL7 messages past ``hl7.retention_days``; returns how many."""
    cutoff = utcnow() - timedelta(days=service.settings.hl7.retention_days)
    total = 0
    while True:
        with service.db.write_session() as session:
            ids = list(
                session.scalars(
                    select(HL7MessageRow.id).where(HL7MessageRow.received_at < cutoff).limit(batch)
                )
            )
            if ids:
                session.execute(delete(HL7MessageRow).where(HL7MessageRow.id.in_(ids)))
        total += len(ids)
        if len(ids) < batch:
            break
    if total:
        days = service.settings.hl7.retention_days
        log.info("retention: purged %d HL7 messages older than %g days", total, days)
    return total


class RetentionTask:
    """A periodic task that runs the purges at most once per ``interval_s``."""

    def __init__(self, interval_s: float = INTERVAL_S) -> None:
        self.interval_s = interval_s
        self._next = 0.0

    def __call__(self, service: ProcessContext) -> int:
        now = time.monotonic()
        if now < self._next:
            return 0
        self._next = now + self.interval_s
        try:
            purge_hl7_messages(service)
        except Exception as exc:
            log.error("retention: HL7 message purge failed (%s)", type(exc).__name__)
        return 0  # background upkeep: never keeps the worker from sleeping


def install(service: ProcessContext) -> None:
    service.periodic.append(RetentionTask())
