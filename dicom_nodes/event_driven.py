"""Associations that wait for events instead of polling every millisecond.

pynetdicom's two threads per association poll: the DUL loop sleeps 1 ms whenever it has
nothing to do, and the association reactor sleeps 1 ms between looks at its message
queue. Each C-STORE crosses both loops twice (request in, response out), so up to a few
milliseconds per instance go to sleeping, and idle associations burn CPU. Here:

* the DUL blocks in ``poll`` on its socket and on a wake-up pipe, written whenever a
  primitive is queued for sending or the thread is told to stop;
* the reactor blocks on its DIMSE message queue.

On the C-STORE path, where every wake-up of another thread costs latency and CPU:

* an accepted association serves a C-STORE request on the DUL thread that decoded it
  (:class:`_InlineStoreQueue`), not on the reactor;
* C-STORE P-DATA are written to the socket by the thread that makes them when no queued
  P-DATA is still to leave (:meth:`WakeableDUL.send_now`), not handed to the DUL thread;
* a forwarded dataset goes out from its file: each P-DATA-TF carries a
  :class:`~dicom_nodes.dimse_shortcuts.FileSlice`, sent as 12 header bytes and
  ``sendfile`` (no read into Python, no PDU encoding);
* a received dataset is queued for writeback after each fragment
  (:mod:`dicom_nodes.writeback`), so the store's fsync waits for the tail only;
* a P-DATA-TF in the middle of a received C-STORE dataset is read into one reused
  buffer and its fragments written to the dataset's file from there
  (:mod:`dicom_nodes.dataset_stream`): no PDU objects, copies, events or state machine
  step for it. The last fragment, commands and anything unusual go pynetdicom's way.

Protocol errors end in an A-ABORT, as PS3.8 asks, where pynetdicom dropped the
connection on an exception: a P-DATA on a presentation context that was not accepted,
a command set that cannot be decoded, an abort decided while a C-STORE is served on the
DUL thread (an unknown SOP class). After an A-ABORT, what the peer still sends is
dropped unread instead of parsed (and logged, and answered) 6 bytes at a time.

Used for the associations the gateway accepts (:class:`EventDrivenRequestHandler`) and
for those it requests to send instances (:class:`EventDrivenAE`).

Both waits are bounded (:data:`MAX_WAIT_S`), so timers (ARTIM, network timeout) and
release/abort checks still run, at most that much later.
"""

from __future__ import annotations

import contextlib
import logging
import os
import queue
import select
import socket
import ssl
import struct
import threading
import time
from collections.abc import Callable
from pathlib import Path
from queue import Empty
from typing import Any, cast

from pynetdicom import AE, evt
from pynetdicom.association import Association
from pynetdicom.dimse import DIMSEServiceProvider
from pynetdicom.dimse_primitives import C_STORE
from pynetdicom.dul import DULServiceProvider
from pynetdicom.pdu import P_DATA_TF
from pynetdicom.pdu_primitives import P_DATA
from pynetdicom.transport import AddressInformation, AssociationSocket, RequestHandler

from dicom_nodes.dataset_stream import middle_fragments
from dicom_nodes.dimse_shortcuts import (
    FileSlice,
    decode_store_response,
    file_slices,
    store_request_command,
    store_response_command,
)
from dicom_nodes.writeback import start_writeback

log = logging.getLogger(__name__)

# Events whose handlers expect pynetdicom's own encoding path (PDU objects, bytes sent).
_SENT_EVENTS = (evt.EVT_DIMSE_SENT, evt.EVT_PDU_SENT, evt.EVT_DATA_SENT)

MAX_WAIT_S = 0.02
PRE_CONNECT_SLEEP_S = 0.001
READ_PIECE_BYTES = 256 * 1024


class WakeableDUL(DULServiceProvider):
    """A DUL provider whose idle wait ends as soon as there is data or work."""

    def __init__(self, assoc: Association) -> None:
        super().__init__(assoc)
        self._run_loop_delay = 0  # the loop's sleep becomes a bare yield: we wait below
        self._wake_lock = threading.Lock()
        self._wake_r, self._wake_w = os.pipe()
        os.set_blocking(self._wake_r, False)
        os.set_blocking(self._wake_w, False)
        self._poller: select.poll | None = None
        self._send_lock = threading.Lock()
        self._queued_pdata = 0  # queued P-DATA primitives not yet sent
        self._send_failed = False  # the connection failed a send: Evt17 is queued
        self._body: bytearray | None = None  # a received PDU, for _stream_dataset_pdu

    def _wake(self) -> None:
        with self._wake_lock:
            if self._wake_w < 0:
                return
            with contextlib.suppress(BlockingIOError):  # already full of wake-ups
                os.write(self._wake_w, b"\0")

    def send_pdu(self, primitive: Any) -> None:
        if isinstance(primitive, P_DATA):
            with self._send_lock:
                self._queued_pdata += 1
        super().send_pdu(primitive)
        self._wake()

    def _send(self, pdu: Any) -> None:
        """The state machine's sends (queued primitives, its own PDUs), one whole PDU at a
        time with :meth:`send_now`'s."""
        with self._send_lock:
            self._write(pdu)
            if isinstance(pdu, P_DATA_TF):  # DT-1: a queued P-DATA has left
                self._queued_pdata -= 1

    def send_now(self, primitive: P_DATA) -> bool:
        """Send a P-DATA primitive from the calling thread, as DT-1 would, when the
        association is established and no queued P-DATA is still to leave (so nothing is
        overtaken); False (nothing sent) otherwise, and the caller queues it. Saves a
        wake-up of the DUL thread per PDU on the path the peer waits for."""
        with self._send_lock:
            if self._queued_pdata or self.state_machine.current_state != "Sta6":
                return False
            self._write(P_DATA_TF(primitive))
        return True

    def _write(self, pdu: Any) -> None:
        items = getattr(pdu, "presentation_data_value_items", None)
        if items is not None and len(items) == 1:
            value = items[0].presentation_data_value
            if isinstance(value, FileSlice):
                self._send_slice(items[0].presentation_context_id, value)
                return
        super()._send(pdu)

    def _send_slice(self, context_id: int, piece: FileSlice) -> None:
        """One P-DATA-TF PDU with one dataset PDV: the 12 header bytes, then the file's
        bytes through ``sendfile`` (no copy into Python; on TLS Python reads them)."""
        header = struct.pack(
            ">BBIIBB", 0x04, 0, piece.length + 6, piece.length + 2, context_id, piece.control
        )
        sock = getattr(self.socket, "socket", None)
        try:
            if self._send_failed:
                return  # the rest of this dataset has nowhere to go (Evt17 queued once)
            if sock is None:
                raise OSError("no connection")
            # MSG_MORE: the header leaves with the data (TLS sockets take no flags).
            more = piece.length and not isinstance(sock, ssl.SSLSocket)
            sock.sendall(header, socket.MSG_MORE if more else 0)
            if piece.length:
                sock.sendfile(piece.file, piece.offset, piece.length)
        except (OSError, ValueError):
            self._send_failed = True
            self.event_queue.put("Evt17")  # as pynetdicom's send: transport closed
        finally:
            if piece.last:
                piece.file.close()

    def kill_dul(self) -> None:
        super().kill_dul()
        self._wake()

    def _read_pdu_data(self) -> None:
        if self.state_machine.current_state == "Sta13":
            self._discard_input()
            return
        sock = self.socket
        if isinstance(sock, BulkReadSocket) and self._stream_dataset_pdu(sock):
            return
        super()._read_pdu_data()

    def _dataset_target(self) -> tuple[Any, int, int] | None:
        """(the open file, its presentation context, the largest PDU we accept) of the
        C-STORE dataset being received, when the next PDU may be written there directly:
        established, nothing queued before it, no handler watching raw PDUs."""
        if (
            self.state_machine.current_state != "Sta6"
            or not self.event_queue.empty()
            or not self._recv_pdu.empty()
        ):
            return None
        assoc = self.assoc
        if assoc._handlers.get(evt.EVT_DATA_RECV) or assoc._handlers.get(evt.EVT_PDU_RECV):
            return None
        message = assoc.dimse.message
        data_file = getattr(message, "_data_set_file", None)
        context_id = getattr(message, "context_id", None)
        if data_file is None or data_file.closed or context_id is None:
            return None
        limit = (assoc.acceptor if assoc.is_acceptor else assoc.requestor).maximum_length
        if not limit:
            return None
        return data_file, context_id, limit

    def _stream_dataset_pdu(self, sock: BulkReadSocket) -> bool:
        """Read the next PDU and, if it is a P-DATA-TF of middle fragments of the dataset
        being received (:func:`~dicom_nodes.dataset_stream.middle_fragments`), write them
        to its file; True when done so (or when the read failed: Evt17, as pynetdicom).
        Otherwise what was read is put back on the socket and False returned: pynetdicom
        then reads the PDU as ever (and reports a short one as it does)."""
        target = self._dataset_target()
        if target is None:
            return False
        data_file, context_id, limit = target
        head = memoryview(bytearray(6))
        try:
            got = sock.read_into(head)
        except (OSError, TimeoutError) as exc:
            return self._read_failed(exc)
        length = int.from_bytes(head[2:6], "big")
        if got < 6 or head[0] != 0x04 or length > limit:
            sock.unread(head[:got])
            return False
        if self._body is None or len(self._body) < length:  # at most our maximum PDU
            self._body = bytearray(length)
        with memoryview(self._body)[:length] as body:
            try:
                got = sock.read_into(body)
            except (OSError, TimeoutError) as exc:
                return self._read_failed(exc)
            fragments = middle_fragments(body, context_id) if got == length else None
            if fragments is None:
                sock.unread(body[:got])
                sock.unread(head)
                return False
            try:
                for start, end in fragments:
                    data_file.file.write(body[start:end])
                data_file.file.flush()
            except OSError as exc:
                # As when pynetdicom's own write fails (WaitingDIMSE.receive_primitive).
                log.warning("received dataset not written (%s): association aborted", exc)
                self.event_queue.put("Evt19")
                return True
        start_writeback(data_file.fileno())
        return True

    def _read_failed(self, exc: BaseException) -> bool:
        """A read of the PDU failed (timeout, reset): as pynetdicom's own read, the
        connection counts as closed (Evt17). Returns True: the PDU was dealt with."""
        log.warning("connection lost in the middle of a PDU (%s): association ended", exc)
        self.event_queue.put("Evt17")
        return True

    def _discard_input(self) -> None:
        """After an A-ABORT (Sta13: waiting for the connection to close), what the peer
        still sends is dropped unread. pynetdicom parses it 6 bytes at a time, logging an
        error and sending another A-ABORT for each piece of a garbage PDU: tens of
        thousands of each for one large PDU whose length was cut short."""
        sock = getattr(self.socket, "socket", None)
        try:
            data = sock.recv(READ_PIECE_BYTES) if sock is not None else b""
        except (OSError, ValueError):
            data = b""
        if not data:
            self.event_queue.put("Evt17")  # transport closed

    def _is_transport_event(self) -> bool:
        if self.event_queue.empty() and self.to_provider_queue.empty() and not self._kill_thread:
            self._wait_for_data()
        return super()._is_transport_event()

    def _wait_for_data(self) -> None:
        sock = getattr(self.socket, "socket", None)
        if sock is None or not getattr(self.socket, "_is_connected", False):
            time.sleep(PRE_CONNECT_SLEEP_S)  # a requestor still connecting: nothing to poll
            return
        if self.state_machine.current_state == "Sta13":
            return
        if isinstance(self.socket, BulkReadSocket) and self.socket.pending:
            return  # bytes put back are waiting to be read
        if isinstance(sock, ssl.SSLSocket) and sock.pending():
            return  # decrypted bytes already buffered: poll would not see them
        if self._poller is None:
            try:
                fileno = sock.fileno()
            except OSError:
                return
            if fileno < 0:
                return
            self._poller = select.poll()
            self._poller.register(fileno, select.POLLIN | select.POLLPRI)
            self._poller.register(self._wake_r, select.POLLIN)
        try:
            events = self._poller.poll(MAX_WAIT_S * 1000)
        except (OSError, ValueError):
            return  # the connection went away: the caller's check reports it
        if any(fd == self._wake_r for fd, _ in events):
            with contextlib.suppress(BlockingIOError):
                os.read(self._wake_r, 4096)

    def run_reactor(self) -> None:
        try:
            super().run_reactor()
        finally:
            with self._wake_lock:
                os.close(self._wake_r)
                os.close(self._wake_w)
                self._wake_r = self._wake_w = -1


class BulkReadSocket(AssociationSocket):
    """Reads a PDU in large pieces instead of pynetdicom's 4 KB appends (32 calls and
    copies per 128 KB PDU; measured ~85 us per PDU against ~20 us this way).

    Memory grows only with the bytes that arrive, never with the length a peer declares.
    Bytes read ahead can be put back (:meth:`unread`): the next reads return them first.
    """

    _piece: bytearray | None = None
    _unread: bytes = b""

    @property
    def pending(self) -> bool:
        """Bytes put back and not yet read again."""
        return bool(self._unread)

    @property
    def ready(self) -> bool:
        return self.pending or super().ready

    def unread(self, data: bytes | bytearray | memoryview) -> None:
        """Put ``data`` back in front of what the next read returns."""
        if len(data):
            self._unread = bytes(data) + self._unread

    def _take_unread(self, limit: int) -> bytes:
        taken, self._unread = self._unread[:limit], self._unread[limit:]
        return taken

    def read_into(self, view: memoryview) -> int:
        """Fill ``view``, from what was put back then from the socket; returns how many
        bytes came (fewer when the connection closed). Errors (a timeout, a reset) are
        raised: the caller takes the connection as closed."""
        taken = self._take_unread(len(view))
        got = len(taken)
        view[:got] = taken
        sock = self.socket
        assert sock is not None
        while got < len(view):
            count = sock.recv_into(view[got:])
            if not count:
                break
            got += count
        return got

    def recv(self, nr_bytes: int) -> bytearray:
        buffer = bytearray(self._take_unread(nr_bytes))
        sock = self.socket
        assert sock is not None
        if self._piece is None:
            self._piece = bytearray(READ_PIECE_BYTES)
        view = memoryview(self._piece)
        try:
            while len(buffer) < nr_bytes:
                count = sock.recv_into(view, min(READ_PIECE_BYTES, nr_bytes - len(buffer)))
                if not count:  # connection closed: what arrived so far, as pynetdicom does
                    break
                buffer += view[:count]
        finally:
            view.release()
        return buffer


class _InlineStoreQueue(queue.Queue[Any]):
    """The DIMSE message queue of an accepted association: a complete C-STORE request is
    served at once on the DUL thread that decoded it, instead of waking the association
    reactor to serve it and the DUL again to send the answer (two thread hand-offs per
    instance on the path the modality waits for). Other messages queue as usual."""

    def __init__(self, assoc: Association) -> None:
        super().__init__()
        self._assoc = assoc

    def put(self, item: Any, block: bool = True, timeout: float | None = None) -> None:
        context_id, primitive = item
        if type(primitive) is C_STORE and primitive.MessageIDBeingRespondedTo is None:
            assoc = self._assoc
            # An abort from here (an unknown SOP class) only queues the A-ABORT: the
            # blocking one waits for this very thread, and the A-ABORT was never sent.
            assoc.abort = assoc._abort_nonblocking  # type: ignore[method-assign]
            try:
                assoc._serve_request(primitive, context_id)
            except Exception:  # the storage service answers handler failures itself
                log.exception("C-STORE request could not be served")
            finally:
                assoc.abort = assoc._abort_blocking  # type: ignore[method-assign]
            return
        super().put(item, block, timeout)


class WaitingDIMSE(DIMSEServiceProvider):
    """The reactor's non-blocking look at the message queue waits a little instead;
    C-STORE requests (streamed from a file) and responses are encoded directly, and
    C-STORE responses decoded directly (:mod:`dicom_nodes.dimse_shortcuts`). On accepted
    associations C-STORE requests are served on the DUL thread (:class:`_InlineStoreQueue`).
    """

    def __init__(self, assoc: Association) -> None:
        super().__init__(assoc)
        if assoc.is_acceptor:
            self.msg_queue = _InlineStoreQueue(assoc)

    def receive_primitive(self, primitive: Any) -> None:
        pdvs = primitive.presentation_data_value_list
        accepted = self.assoc._accepted_cx
        if any(context_id not in accepted for context_id, _ in pdvs):
            # pynetdicom would fail on it (KeyError) and drop the connection unannounced.
            log.warning("P-DATA on a presentation context not accepted: association aborted")
            self.dul.event_queue.put("Evt19")  # an invalid PDU: A-ABORT (AA-8)
            return
        if (
            self.message is None
            and len(pdvs) == 1
            and pdvs[0][1][:1] == b"\x03"  # a whole command in one fragment
            and not self.assoc._handlers.get(evt.EVT_DIMSE_RECV)
        ):
            context_id, data = pdvs[0]
            response = decode_store_response(data[1:], context_id)
            if response is not None:
                self.msg_queue.put((context_id, response))
                return
        before = self.message
        try:
            super().receive_primitive(primitive)
        except Exception as exc:  # a command set pynetdicom cannot decode (bits flipped)
            log.warning("undecodable DIMSE message (%s): association aborted", type(exc).__name__)
            self.dul.event_queue.put("Evt19")  # as an invalid PDU: A-ABORT (AA-8)
            return
        message = before if before is not None else self.message
        dataset_file = getattr(message, "_data_set_file", None)
        if dataset_file is not None and not dataset_file.closed:
            start_writeback(dataset_file.fileno())

    def send_msg(self, primitive: Any, context_id: int) -> None:
        handlers = self.assoc._handlers
        if type(primitive) is C_STORE and not any(map(handlers.get, _SENT_EVENTS)):
            limit = self.maximum_pdu_size
            pdvs: list[FileSlice] = []
            if primitive.MessageIDBeingRespondedTo is not None:
                command = store_response_command(primitive)
            else:
                command = store_request_command(primitive)
            if command is not None and (not limit or len(command) + 6 <= limit):
                if primitive.MessageIDBeingRespondedTo is None:  # dataset at (file, offset)
                    path, offset = cast(tuple[Path, int], primitive._dataset_path)
                    pdvs = file_slices(path, offset, limit)
                values: list[Any] = [b"\x03" + command, *pdvs]
                for value in values:
                    # A FileSlice stands in for the PDV's bytes until WakeableDUL._write.
                    pdata = P_DATA()
                    pdata.presentation_data_value_list.append((context_id, value))
                    self._send_pdata(pdata)
                return
        super().send_msg(primitive, context_id)

    def _send_pdata(self, pdata: P_DATA) -> None:
        """Straight to the socket when the DUL allows it, else through its queue."""
        dul = self.dul
        if not (isinstance(dul, WakeableDUL) and dul.send_now(pdata)):
            dul.send_pdu(pdata)

    def get_msg(self, block: bool = False) -> Any:
        if block:
            return super().get_msg(block=True)
        try:
            return self.msg_queue.get(timeout=MAX_WAIT_S)
        except Empty:
            return None, None


def make_event_driven(assoc: Association) -> None:
    """Swap a new association's (not yet started) DUL and DIMSE providers for waiting
    ones."""
    old, dul = assoc.dul, WakeableDUL(assoc)
    dul.socket = old.socket
    if dul.socket is not None:
        dul.socket.__class__ = BulkReadSocket  # same state, faster reads
    while not old.event_queue.empty():  # "Evt5", queued when the socket was attached
        dul.event_queue.put(old.event_queue.get_nowait())
    assoc.dul = dul
    assoc.dimse = WaitingDIMSE(assoc)
    # These timeouts are pushed into the DUL's timers by their setters: push them again.
    assoc.acse_timeout = assoc.acse_timeout
    assoc.network_timeout = assoc.network_timeout


class CountingRequestHandler(RequestHandler):
    """pynetdicom's per-connection handler (stock association, DUL and DIMSE) that calls
    the server's ``connection_ended()`` (if it has one) when the association's thread
    ends, or at once if the association could not be started."""

    def handle(self) -> None:
        ended: Callable[[], None] = getattr(self.server, "connection_ended", lambda: None)
        try:
            assoc = self._create_association()
            evt.trigger(assoc, evt.EVT_CONN_OPEN, {"address": self.client_address})
        except BaseException:
            ended()
            raise
        run = assoc.run

        def run_then_report() -> None:
            try:
                run()
            finally:
                ended()

        assoc.run = run_then_report  # type: ignore[method-assign]
        assoc.start()


class EventDrivenRequestHandler(CountingRequestHandler):
    """The association server's per-connection handler, with waiting providers."""

    def _create_association(self) -> Association:
        assoc = super()._create_association()
        make_event_driven(assoc)
        return assoc


class EventDrivenAE(AE):
    """An AE whose requested associations wait for events too (outbound C-STORE).

    ``requested`` is the association being requested, as soon as it exists (so another
    thread can interrupt it while ``associate`` waits for the peer)."""

    requested: Association | None = None

    def _create_socket(
        self,
        assoc: Association,
        address: AddressInformation,
        tls_args: tuple[ssl.SSLContext, str] | None,
    ) -> AssociationSocket:
        make_event_driven(assoc)  # called before the socket is attached and anything runs
        sock = BulkReadSocket(assoc, address=address)
        sock.tls_args = tls_args
        self.requested = assoc
        return sock
