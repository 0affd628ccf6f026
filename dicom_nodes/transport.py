"""Association server sockets: TCP_NODELAY on every connection, SO_REUSEPORT to share a port.

Measured here: without TCP_NODELAY each C-STORE response stalls about 45 ms (Nagle and
delayed ACK). Plain connections reach other receiver processes by hand-off from the main
process (:mod:`dicom_nodes.dispatch`); SO_REUSEPORT still lets every process accept on the
TLS port. A TLS server wraps each connection without
handshaking in the acceptor thread (the association's thread does it on first read).
On the fast path (:mod:`dicom_nodes.fast_path`) associations wait for events
(:mod:`dicom_nodes.event_driven`) and share the server's supported contexts instead of
deep-copying them; otherwise they are pynetdicom's own.
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Callable
from typing import Any

from pynetdicom.transport import ThreadedAssociationServer

from dicom_nodes.dispatch import Dispatcher
from dicom_nodes.event_driven import CountingRequestHandler, EventDrivenRequestHandler


def tune_socket(sock: socket.socket) -> None:
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


class SharedContexts(list):
    """The server's supported contexts, handed to each association without a deep copy.

    pynetdicom deep-copies them for every association (about 13 ms of CPU for the 171
    contexts and 2,724 transfer syntaxes here); negotiation only reads them.
    """

    def __deepcopy__(self, memo: dict[int, Any]) -> list[Any]:
        return list(self)


class FastAssociationServer(ThreadedAssociationServer):
    """Threaded association server with SO_REUSEPORT and TCP_NODELAY; with ``fast``,
    associations that wait for events instead of polling (:mod:`dicom_nodes.event_driven`)
    and share the supported contexts; without, stock pynetdicom associations."""

    def __init__(self, *args: Any, fast: bool = True, **kwargs: Any) -> None:
        kwargs.setdefault(
            "request_handler", EventDrivenRequestHandler if fast else CountingRequestHandler
        )
        self.active = 0  # associations being served by this process
        self._active_lock = threading.Lock()
        # Set in the main process of several receivers: hands connections to the others.
        self.dispatcher: Dispatcher | None = None
        # Set in a receiver process: tells the main process a connection ended.
        self.on_connection_done: Callable[[], None] | None = None
        super().__init__(*args, **kwargs)
        if fast:
            self.contexts = SharedContexts(self.contexts)

    def process_request(self, request: Any, client_address: Any) -> None:
        if self.dispatcher is not None and self.dispatcher.hand_off(
            request, client_address, self.active
        ):
            request.close()  # the other process holds its own descriptor of the connection
            return
        # pynetdicom leaves an accepted socket without a timeout: a send to a peer that
        # stopped reading (or a read from one that stopped half-way through a PDU) would
        # hold the association's thread for ever, its network timeout then waiting on it
        # too. With one, the call fails after dicom.network_timeout_s and pynetdicom
        # takes it as the connection closed (Evt17): the association ends.
        request.settimeout(self.ae.network_timeout)
        with self._active_lock:
            self.active += 1
        super().process_request(request, client_address)

    def connection_ended(self) -> None:
        """Called by the request handler when a connection's association ended."""
        with self._active_lock:
            self.active -= 1
        if self.on_connection_done is not None:
            self.on_connection_done()

    def server_bind(self) -> None:
        assert self.socket is not None
        self.socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        super().server_bind()

    def get_request(self) -> tuple[socket.socket, tuple[str, int]]:
        assert self.socket is not None
        client, address = self.socket.accept()
        tune_socket(client)
        if self.ssl_context is not None:
            # The handshake runs on first read, in the association's own thread: a
            # silent or slow TLS client cannot stall the acceptor for everyone else.
            client = self.ssl_context.wrap_socket(
                client, server_side=True, do_handshake_on_connect=False
            )
        return client, address


class HandedConnectionServer(FastAssociationServer):
    """A receiver process's server: it does not listen; the main process hands it
    connections (:mod:`dicom_nodes.dispatch`), served as if accepted here."""

    def server_bind(self) -> None:
        pass

    def server_activate(self) -> None:
        pass

    def shutdown(self) -> None:
        # serve_forever never ran: nothing to wait for.
        self.server_close()
        if self in self.ae._servers:
            self.ae._servers.remove(self)
