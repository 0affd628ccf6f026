"""Outbound storage SCU: one reused association per destination, TCP_NODELAY on.

Files are sent as stored (pynetdicom's chunked send: the dataset bytes go from the file
to the socket with ``sendfile``, never decoded, see :mod:`dicom_nodes.event_driven`), so
forwarding costs little CPU and no memory per instance. Whether the fast path
(event-driven association, C-STORE shortcuts, held reactor) or stock pynetdicom sends is
decided once per process by :mod:`dicom_nodes.fast_path`.

One instance's failure is its own: each result says whether the peer judged the instance
(a refusal status, or the association broken while that instance was on the wire: charged
to it) or never saw it (the association ended before it, or the sender is stopping: sent
again without counting an attempt). A peer's A-ABORT or a closed connection ends
the wait for a response at once (pynetdicom's state machine queues an empty message when
the association ends); :meth:`StoreSCU.interrupt` ends a send or an association being
opened from another thread, even a send blocked on a peer that stopped reading.
"""

from __future__ import annotations

import contextlib
import io
import logging
import socket
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from pydicom import dcmread
from pydicom.dataset import Dataset
from pynetdicom import AE, _config
from pynetdicom.association import Association
from pynetdicom.pdu_primitives import A_ABORT, A_P_ABORT

from dicom_nodes import dimse_shortcuts, fast_path
from dicom_nodes.dimse_shortcuts import HeadedFile
from dicom_nodes.event_driven import EventDrivenAE

log = logging.getLogger(__name__)

# Status codes a C-STORE SCP may answer that still mean "stored" (PS3.4 B.2.3).
_SUCCESS = {0x0000, 0xB000, 0xB007, 0xB006}


class _HeldCheckpoint(threading.Event):
    """Keeps pynetdicom's association reactor paused for the association's life.

    pynetdicom's ``send_c_store`` pauses its reactor thread per message, but a fast
    second send can start before the reactor has noticed the resume, and the reactor
    then takes the C-STORE response ("Received unexpected C-STORE service message")
    while the sender waits until the DIMSE timeout (measured here: 30 s stalls under
    load; the race of pynetdicom issue #435). This SCU expects no incoming requests, so
    the reactor stays paused until the association is released.
    """

    def __init__(self) -> None:
        super().__init__()
        self.hold = True

    def set(self) -> None:
        if not self.hold:
            super().set()


def _alive(assoc: Association) -> bool:
    """Established and its connection still served (the DUL thread ends when it closes)."""
    return bool(assoc.is_established and assoc.dul.is_alive())


class SendError(Exception):
    """An instance (or the association) could not be sent; the message is safe to log."""


@dataclass(frozen=True)
class Failure:
    """Why one instance was not stored; the reason is safe to log (no patient data).

    ``charged``: the attempt counts against this instance (the peer refused it, or the
    association broke while it was being sent). Otherwise the peer never judged it (the
    association ended before it, or the sender was interrupted) and it is simply sent again.
    """

    reason: str
    charged: bool = True


INTERRUPTED = Failure("not sent: the gateway is stopping", charged=False)
NOT_SENT = Failure("not sent: the association ended before this instance", charged=False)


def _ended_why(assoc: Association, timeout_s: float) -> str:
    """Why no C-STORE response came: the peer's abort, a closed connection, or a timeout."""
    for primitive in list(assoc.dul.to_user_queue.queue):
        if isinstance(primitive, A_ABORT):
            return "association aborted by the peer while sending this instance"
        if isinstance(primitive, A_P_ABORT):
            if primitive.provider_reason:  # an A-ABORT PDU from the peer's DICOM provider
                return (
                    "association aborted by the peer (provider reason "
                    f"{primitive.provider_reason}) while sending this instance"
                )
            return "connection closed by the peer while sending this instance"
    return f"no response within {timeout_s:g} s while sending this instance"


class StoreSCU:
    """Sends files to one DICOM node over an association kept open between batches."""

    def __init__(
        self,
        calling_ae: str,
        host: str,
        port: int,
        called_ae: str,
        *,
        timeout_s: float = 30.0,
        idle_close_s: float = 15.0,
    ) -> None:
        self._fast = fast_path.enabled()
        self.calling_ae = calling_ae
        self.host = host
        self.port = port
        self.called_ae = called_ae
        self.timeout_s = timeout_s
        # Released well before the association's own network timeout would abort it.
        self.idle_close_s = min(idle_close_s, timeout_s / 2)
        self._assoc: Association | None = None
        self._opening: AE | None = None
        self._contexts: set[tuple[str, str]] = set()
        self._last_used = 0.0
        self._interrupted = threading.Event()

    def interrupt(self) -> None:
        """From another thread: end the current send (or association being opened) now;
        this SCU sends nothing more. Its socket is shut down, which also wakes a send
        blocked on a peer that stopped reading; the results say :data:`INTERRUPTED`."""
        self._interrupted.set()
        opening = self._opening
        requested = getattr(opening, "requested", None)  # only an EventDrivenAE knows it
        for assoc in (self._assoc, requested):
            if assoc is None:
                continue
            sock = getattr(getattr(assoc.dul, "socket", None), "socket", None)
            if sock is not None:
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
            assoc.dimse.msg_queue.put((None, None))  # ends a wait for a response

    def _open(self, needed: set[tuple[str, str]]) -> Association:
        ae = EventDrivenAE(self.calling_ae) if self._fast else AE(self.calling_ae)
        ae.acse_timeout = ae.dimse_timeout = ae.network_timeout = self.timeout_s
        ae.connection_timeout = self.timeout_s
        ae.maximum_pdu_size = 131072
        contexts = sorted(needed | self._contexts)[:128]
        for sop_class, syntax in contexts:
            ae.add_requested_context(sop_class, syntax)
        # interrupt() finds the association through _opening until it is _assoc, then
        # this thread checks the flag: one way or the other, it is interrupted.
        self._opening = ae
        try:
            assoc = ae.associate(self.host, self.port, ae_title=self.called_ae)
            if assoc.is_established:
                self._hold(assoc)
                self._assoc = assoc
        finally:
            self._opening = None
        if self._interrupted.is_set():
            self.close(graceful=False)
            raise SendError("interrupted: the gateway is stopping")
        if not assoc.is_established:
            raise SendError(
                f"association with {self.called_ae}@{self.host}:{self.port} "
                f"{'rejected' if assoc.is_rejected else 'failed'}"
            )
        self._contexts = set(contexts)
        return assoc

    def _hold(self, assoc: Association) -> None:
        """Tune a new association's socket and, on the fast path, keep its reactor paused
        (_HeldCheckpoint)."""
        sock = getattr(getattr(assoc.dul, "socket", None), "socket", None)
        if sock is not None:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            # A peer that stops reading fails a send after the timeout, not never.
            sock.settimeout(self.timeout_s)
        if not self._fast:
            return
        checkpoint = _HeldCheckpoint()
        assoc._reactor_checkpoint = checkpoint  # pause the reactor (see _HeldCheckpoint)
        deadline = time.monotonic() + self.timeout_s
        while not assoc._is_paused and time.monotonic() < deadline:
            time.sleep(0.0005)

    def _association(self, needed: set[tuple[str, str]]) -> Association:
        stale = time.monotonic() - self._last_used > self.idle_close_s
        if self._assoc is not None and (
            not _alive(self._assoc) or stale or not needed <= self._contexts
        ):
            self.close()
        if self._assoc is None:
            return self._open(needed)
        return self._assoc

    def send(
        self, files: list[tuple[Path | HeadedFile | Dataset, str, str]]
    ) -> list[Failure | None]:
        """Send (path, headed file or dataset, SOP class, transfer syntax) items; None
        (stored) or a :class:`Failure` each. A path is streamed as stored, a headed file
        (a corrected header) as its head then the file's tail; a dataset (a coerced copy)
        is encoded by pynetdicom.

        Raises :class:`SendError` if the association cannot be opened at all.
        """
        if self._interrupted.is_set():
            return [INTERRUPTED] * len(files)
        _config.STORE_SEND_CHUNKED_DATASET = True
        assoc = self._association({(c, t) for _, c, t in files})
        results: list[Failure | None] = []
        ended = False
        for item, _sop_class, _syntax in files:
            if self._interrupted.is_set():
                results.append(INTERRUPTED)
            elif ended or not _alive(assoc):
                ended = True
                results.append(NOT_SENT)
            else:
                result, ended = self._store_one(assoc, item)
                results.append(result)
        self._last_used = time.monotonic()
        if any(r is not None for r in results):
            self.close(graceful=False)
        return results

    def _store_one(
        self, assoc: Association, item: Path | HeadedFile | Dataset
    ) -> tuple[Failure | None, bool]:
        """One C-STORE: its result, and whether the association ended with it."""
        try:
            if isinstance(item, HeadedFile) and self._fast:
                with dimse_shortcuts.sending_head(item):
                    status: Dataset = assoc.send_c_store(item.path)
            elif isinstance(item, HeadedFile):  # stock pynetdicom sends whole data sets
                status = assoc.send_c_store(_whole_dataset(item))
            else:
                status = assoc.send_c_store(item)
        except (OSError, ValueError, RuntimeError) as exc:
            return Failure(f"send failed: {type(exc).__name__}"), False
        code = getattr(status, "Status", None)
        if code is None:
            # No response: the association ended (or the peer stayed silent) with this
            # instance on the wire. With the reactor held, is_established does not see
            # it: nothing more is sent on this association.
            if self._interrupted.is_set():
                return INTERRUPTED, True
            return Failure(_ended_why(assoc, self.timeout_s)), True
        if code in _SUCCESS:
            return None, False
        comment = str(getattr(status, "ErrorComment", "") or "").strip()[:200]
        return Failure(f"C-STORE status 0x{code:04X} {comment}".strip()), False

    def close_if_idle(self) -> None:
        """Release the association if nothing was sent on it for ``idle_close_s``: the
        sender calls this while it waits for work, so an idle association ends with a
        release before the peer's (or pynetdicom's own) network timeout aborts it."""
        if self._assoc is not None and time.monotonic() - self._last_used > self.idle_close_s:
            self.close()

    def close(self, *, graceful: bool = True) -> None:
        """Release the association (abort it after an error: the peer may be gone)."""
        assoc, self._assoc = self._assoc, None
        if assoc is None:
            return
        checkpoint = assoc._reactor_checkpoint
        if isinstance(checkpoint, _HeldCheckpoint):
            checkpoint.hold = False
        try:
            if assoc.is_established and graceful:
                assoc.release()
            else:
                assoc.abort()
        except Exception:  # closing a broken association
            log.debug("association close failed", exc_info=True)


def _whole_dataset(item: HeadedFile) -> Dataset:
    """``item`` read whole, its corrected head in place (stock path: no sendfile shortcut)."""
    data = item.path.read_bytes()
    return dcmread(io.BytesIO(data[: item.dataset_offset] + item.head + data[item.tail_offset :]))
