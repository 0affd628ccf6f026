"""The MLLP role: every message is stored raw, with its effects and its ACK, before the ACK.

One transaction holds the message row (raw bytes, ACK) and the orders/patient changes, so
an AA is sent only once both are committed. An application error rolls the changes back
and stores the message with its AE; a message that cannot be stored gets an AE and no
row. A repeated MSH-10 from the same sender (MSH-3 + MSH-4) is answered with the ACK
stored the first time and changes nothing. A message over ``hl7.max_message_bytes`` is
answered AR and stored as a REJECTED row holding its first ``hl7.max_message_bytes``
bytes, its full size in the error text and no dedup key (a resend after the limit was
raised is processed). Logs name message types and outcomes only.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import threading
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import replace
from datetime import timedelta

from sqlalchemy import delete, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from gateway.core.database import Database, is_sqlite
from gateway.core.fastsql import Conflict, FastSQL
from gateway.core.models import utcnow
from gateway.core.settings import Settings
from gateway.core.tls import hl7_server_context
from gateway.orders.models import HL7MessageRow, MessageStatus
from gateway.orders.persist import Context, apply, stations_by_modality
from hl7.ack import build_ack
from hl7.errors import APPLICATION_INTERNAL_ERROR, HL7Error
from hl7.inbound import Inbound, receive, receive_oversize
from hl7.interpret import with_visit_number
from hl7.message import Message
from hl7.mllp_server import MLLPServer
from hl7.parse import parse_header

log = logging.getLogger(__name__)

PURGE_INTERVAL_S = 3600.0
_STATUS = {"AA": MessageStatus.PROCESSED, "AE": MessageStatus.ERROR, "AR": MessageStatus.REJECTED}


def dedup_key(msg: Message | None) -> str | None:
    """``sender|facility|control id`` of a message with MSH-10, else None."""
    if msg is None or not msg.control_id:
        return None
    return f"{msg.sending_application}|{msg.sending_facility}|{msg.control_id}"[:400]


class HL7Handler:
    """Store-then-ACK for one message at a time (thread-safe; called from a thread pool)."""

    def __init__(self, db: Database, settings: Settings) -> None:
        self.db = db
        self.settings = settings
        peers = [(p.ae_title, p.modality) for p in settings.dicom.peers]
        self.stations = stations_by_modality(peers)
        # SQLite has one writer: messages are stored one at a time on a connection of
        # their own. PostgreSQL: a pooled session per message, several in parallel.
        self._pinned = db.pinned() if is_sqlite(db.engine) else None

    def _session(self) -> AbstractContextManager[Session]:
        """The write transaction that stores one message."""
        return self._pinned.write_session() if self._pinned is not None else self.db.write_session()

    def close(self) -> None:
        if self._pinned is not None:
            self._pinned.close()

    def handle(self, raw: bytes, peer: str) -> bytes:
        cfg = self.settings.hl7
        inbound = receive(
            raw,
            default_charset=cfg.default_charset,
            fallback_charset=cfg.fallback_charset or None,
        )
        if cfg.visit_number_field != "PV1-19" and inbound.accepted:
            assert inbound.message is not None and inbound.result is not None
            renumbered = with_visit_number(inbound.result, inbound.message, cfg.visit_number_field)
            inbound = replace(inbound, result=renumbered)
        header = inbound.message or parse_header(raw)
        key = dedup_key(header)
        try:
            ack = self._store(inbound, header, key, peer)
        except _Duplicate as dup:
            log.info("repeated HL7 message: stored ACK sent again")
            return dup.ack
        except Exception as exc:
            log.error("HL7 message could not be stored (%s): AE sent", type(exc).__name__)
            error = HL7Error(
                "AE", "message could not be stored", hl7_code=APPLICATION_INTERNAL_ERROR
            )
            try:
                return inbound.ack("AE", error=error)
            except Exception:  # an ACK addressed from the message failed: a bare one
                return build_ack(None, "AE", error)
        return ack

    def handle_oversize(self, prefix: bytes, size: int, peer: str) -> bytes:
        """AR for a message over the limit, stored with its kept start (see module doc)."""
        inbound = receive_oversize(prefix, size, self.settings.hl7.max_message_bytes)
        assert inbound.error is not None
        try:
            return self._store_refused(inbound, inbound.message, None, peer, inbound.error)
        except Exception as exc:
            log.error("oversize HL7 message could not be stored (%s): AR sent", type(exc).__name__)
            return inbound.ack()

    def _store(self, inbound: Inbound, header: Message | None, key: str | None, peer: str) -> bytes:
        """Store (and apply); one retry when a concurrent message took a key first."""
        for attempt in (1, 2):
            try:
                if inbound.accepted:
                    return self._store_accepted(inbound, header, key, peer)
                assert inbound.error is not None
                return self._store_refused(inbound, header, key, peer, inbound.error)
            except (Conflict, IntegrityError):
                if attempt == 2:
                    raise
                # e.g. two messages creating the same new patient on two connections
                # (PostgreSQL): the second sees the first's rows on its retry.
                log.info("HL7 %s met a concurrent insert: retried", _type(header))
        raise AssertionError("unreachable")

    def _insert(
        self,
        session: Session,
        inbound: Inbound,
        header: Message | None,
        key: str | None,
        peer: str,
        ack: bytes,
        error: HL7Error | None,
    ) -> int:
        """The message row (raw bytes and the ACK to send), in ``session``'s transaction."""
        db = FastSQL(session)
        code = _ack_code(ack)
        sender = f"{header.sending_application}|{header.sending_facility}" if header else ""
        kind = f"{header.message_type}^{header.trigger_event}" if header else ""
        return db.insert(
            "hl7_messages",
            {
                "dedup_key": key,
                "sender": sender[:200],
                "control_id": (header.control_id if header else "")[:200],
                "message_type": kind[:16],
                "peer": peer[:64],
                "raw": inbound.raw,
                "ack": ack,
                "ack_code": code,
                "status": _STATUS.get(code, MessageStatus.ERROR),
                "error": str(error)[:2000] if error is not None and code != "AA" else "",
                "repeats": 0,
                "received_at": db.now(),
            },
        )

    def _store_accepted(
        self, inbound: Inbound, header: Message | None, key: str | None, peer: str
    ) -> bytes:
        assert inbound.result is not None
        ack = inbound.ack()
        try:
            with self._session() as session:
                pk = self._insert(session, inbound, header, key, peer, ack, None)
                apply(session, inbound.result, Context(self.stations, pk))
        except (Conflict, IntegrityError):
            self._raise_if_duplicate(key)
            raise
        except HL7Error as err:
            log.info("HL7 %s refused with %s: %s", _type(header), err.code, err.location)
            return self._store_refused(inbound, header, key, peer, err)
        if log.isEnabledFor(logging.DEBUG):
            log.debug("HL7 %s stored and applied", _type(header))
        return ack

    def _store_refused(
        self,
        inbound: Inbound,
        header: Message | None,
        key: str | None,
        peer: str,
        error: HL7Error,
    ) -> bytes:
        ack = inbound.ack(error=error)
        try:
            with self._session() as session:
                self._insert(session, inbound, header, key, peer, ack, error)
        except (Conflict, IntegrityError):
            self._raise_if_duplicate(key)
            raise
        return ack

    def _raise_if_duplicate(self, key: str | None) -> None:
        if key is None:
            return
        with self.db.write_session() as session:
            found = session.execute(
                select(HL7MessageRow.id, HL7MessageRow.ack).where(HL7MessageRow.dedup_key == key)
            ).first()
            if found is None:
                return
            session.execute(
                update(HL7MessageRow)
                .where(HL7MessageRow.id == found.id)
                .values(repeats=HL7MessageRow.repeats + 1)
            )
        raise _Duplicate(bytes(found.ack))

    def purge(self) -> int:
        """Delete messages older than ``hl7.retention_days``; returns how many."""
        cutoff = utcnow() - timedelta(days=self.settings.hl7.retention_days)
        with self.db.write_session() as session:
            result = session.execute(
                delete(HL7MessageRow).where(HL7MessageRow.received_at < cutoff)
            )
        count = int(getattr(result, "rowcount", 0) or 0)
        if count:
            log.info("purged %d HL7 messages past retention", count)
        return count


class _Duplicate(Exception):
    def __init__(self, ack: bytes) -> None:
        super().__init__("duplicate")
        self.ack = ack


def _ack_code(ack: bytes) -> str:
    start = ack.find(b"MSA")
    return ack[start + 4 : start + 6].decode("ascii", "replace") if start >= 0 else "AE"


def _type(header: Message | None) -> str:
    """MSH-9 for logs, cut to code characters: a shifted field must not leak patient data."""
    if header is None:
        return "(no MSH)"
    text = f"{header.message_type}^{header.trigger_event}"
    return "".join(c for c in text if c.isascii() and (c.isalnum() or c == "^"))[:9]


class HL7Listener:
    """Runs :class:`hl7.mllp_server.MLLPServer` in its own asyncio thread."""

    def __init__(self, db: Database, settings: Settings, workers: int = 4) -> None:
        self.handler = HL7Handler(db, settings)
        self.settings = settings
        self._pool = concurrent.futures.ThreadPoolExecutor(workers, thread_name_prefix="hl7")
        self._inline = is_sqlite(db.engine)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._server: MLLPServer | None = None
        self._stopped: asyncio.Event | None = None

    @property
    def port(self) -> int:
        """The bound port (useful when configured with port 0)."""
        return self._server.port if self._server is not None else self.settings.hl7.port

    @property
    def server(self) -> MLLPServer | None:
        """The running MLLP server (its counters), None before start."""
        return self._server

    async def _handle(self, raw: bytes, peer: str) -> bytes:
        if self._inline:
            # SQLite has one writer at a time: a thread hop per message only adds latency.
            return self.handler.handle(raw, peer)
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._pool, self.handler.handle, raw, peer)

    async def _handle_oversize(self, prefix: bytes, size: int, peer: str) -> bytes:
        if self._inline:
            return self.handler.handle_oversize(prefix, size, peer)
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(
            self._pool, self.handler.handle_oversize, prefix, size, peer
        )

    async def _purge_loop(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            try:
                await loop.run_in_executor(self._pool, self.handler.purge)
            except Exception as exc:
                log.error("HL7 message purge failed (%s)", type(exc).__name__)
            await asyncio.sleep(PURGE_INTERVAL_S)

    async def _main(self, started: threading.Event, failure: list[BaseException]) -> None:
        cfg = self.settings.hl7
        self._server = MLLPServer(
            cfg.host,
            cfg.port,
            self._handle,
            allowed_sources=cfg.allowed_sources,
            max_message_bytes=cfg.max_message_bytes,
            idle_timeout_s=cfg.idle_timeout_s,
            ssl_context=hl7_server_context(cfg),
            oversize_handler=self._handle_oversize,
        )
        self._stopped = asyncio.Event()
        try:
            await self._server.start()
        except BaseException as exc:
            failure.append(exc)
            started.set()
            return
        started.set()
        purge = asyncio.create_task(self._purge_loop())
        await self._stopped.wait()
        purge.cancel()
        await self._server.stop()

    def start(self) -> Callable[[], None]:
        """Bind and serve in a background thread; returns the stop function."""
        started = threading.Event()
        failure: list[BaseException] = []
        self._loop = asyncio.new_event_loop()
        loop = self._loop

        def run() -> None:
            loop.run_until_complete(self._main(started, failure))
            loop.close()

        self._thread = threading.Thread(target=run, name="hl7-listener", daemon=True)
        self._thread.start()
        started.wait(30)
        if failure:
            raise failure[0]
        return self.stop

    def stop(self) -> None:
        if self._loop is not None and self._stopped is not None and not self._loop.is_closed():
            self._loop.call_soon_threadsafe(self._stopped.set)
        if self._thread is not None:
            self._thread.join(10)
        self._pool.shutdown(wait=False, cancel_futures=True)
        self.handler.close()
