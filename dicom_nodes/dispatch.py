"""Balanced hand-off of DICOM connections to the least busy receiver process.

With ``dicom.processes`` > 1 the main process accepts every plain DICOM connection and
either serves it or hands the socket itself (SCM_RIGHTS over a Unix socket pair) to the
receiver process with the fewest open associations; a receiver sends one byte back when
an association ends, and another when it stored an instance (the main process runs the
forward senders and wakes them). SO_REUSEPORT alone spreads connections by a hash of their ports:
four simultaneous associations often landed three on one process and one on the other.
A receiver that is gone gets nothing more; its share is served by the main process.
"""

from __future__ import annotations

import contextlib
import json
import logging
import socket
import threading
import time
from collections.abc import Callable

log = logging.getLogger(__name__)

DONE = b"\0"  # receiver -> main: one association ended
STORED = b"\1"  # receiver -> main: an instance was committed (wake the senders)
# At most one STORED per this many seconds: a sender woken once takes all that is queued,
# and it looks again shortly after each batch anyway.
STORED_EVERY_S = 0.02


def channel_pair() -> tuple[socket.socket, socket.socket]:
    """(main end, receiver end): a Unix socket pair keeping message boundaries."""
    return socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)


class Dispatcher:
    """In the main process: where each accepted connection goes."""

    def __init__(
        self, channels: list[socket.socket], on_stored: Callable[[], None] = lambda: None
    ) -> None:
        self._channels = channels
        self._on_stored = on_stored
        self._loads = [0] * len(channels)
        self._alive = [True] * len(channels)
        self._lock = threading.Lock()
        self._closing = False
        for index in range(len(channels)):
            threading.Thread(
                target=self._listen, args=(index,), name=f"dicom-handoff-{index}", daemon=True
            ).start()

    def _listen(self, index: int) -> None:
        channel = self._channels[index]
        while True:
            try:
                data = channel.recv(4096)
            except OSError:
                data = b""
            with self._lock:
                if not data:
                    if self._alive[index] and not self._closing:
                        log.error("DICOM receiver process %d is gone: serving here", index + 1)
                    self._alive[index] = False
                    return
                ended = data.count(DONE)
                self._loads[index] = max(0, self._loads[index] - ended)
            if STORED in data:
                self._on_stored()

    def hand_off(self, conn: socket.socket, address: tuple[str, int], local_load: int) -> bool:
        """Send ``conn`` to the least busy receiver unless this process is less busy.

        Returns True if it was sent (the caller then closes its own copy).
        """
        with self._lock:
            candidates = [(load, i) for i, load in enumerate(self._loads) if self._alive[i]]
            if not candidates:
                return False
            load, index = min(candidates)
            if load > local_load:
                return False
            self._loads[index] += 1
        try:
            payload = json.dumps([address[0], address[1]]).encode()
            socket.send_fds(self._channels[index], [payload], [conn.fileno()])
        except OSError:
            log.error("DICOM receiver process %d is gone: serving here", index + 1)
            with self._lock:
                self._alive[index] = False
            return False
        log.debug("connection handed to receiver process %d", index + 1)
        return True

    def close(self) -> None:
        self._closing = True
        for channel in self._channels:
            channel.close()


def receive_handed(
    channel: socket.socket, serve: Callable[[socket.socket, tuple[str, int]], None]
) -> None:
    """In a receiver process: serve each connection handed over, until the channel closes."""
    while True:
        try:
            payload, fds, _flags, _addr = socket.recv_fds(channel, 4096, 1)
        except OSError:
            return
        if not payload and not fds:
            return  # the main process is gone or closed the channel
        if not fds:
            continue
        conn = socket.socket(fileno=fds[0])
        host, port = json.loads(payload)
        serve(conn, (str(host), int(port)))


def report(channel: socket.socket, what: bytes) -> None:
    """Tell the main process an association ended (DONE) or an instance was stored
    (STORED); it may be gone, then nobody is told."""
    with contextlib.suppress(OSError):
        channel.send(what)


class StoredReporter:
    """Sends STORED to the main process, at most once per :data:`STORED_EVERY_S`."""

    def __init__(self, channel: socket.socket) -> None:
        self._channel = channel
        self._last = -STORED_EVERY_S

    def __call__(self) -> None:
        now = time.monotonic()
        if now - self._last >= STORED_EVERY_S:
            self._last = now
            report(self._channel, STORED)
