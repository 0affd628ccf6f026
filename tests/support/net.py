"""Free loopback ports for servers started by the tests, and the kernel's view of a
loopback TCP connection (Linux ``/proc/net/tcp``)."""

from __future__ import annotations

import socket
from dataclasses import dataclass
from pathlib import Path

TCP_ESTABLISHED = 1


_handed_out: set[int] = set()


def free_port() -> int:
    """A loopback port nobody listens on, never one this process handed out before: the
    kernel may offer a just-closed port again at once, and a gateway given the same port
    for two of its listeners failed to start (seen in CI: HTTP and MLLP on one port)."""
    while True:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = int(s.getsockname()[1])
        if port not in _handed_out:
            _handed_out.add(port)
            return port


@dataclass(frozen=True)
class TcpEnd:
    """One end of a TCP connection as the kernel lists it."""

    state: int  # 1 established, 4 FIN-WAIT-1 (closed, data still to send), ...
    send_queue: int  # bytes written by its process, not yet acknowledged by the other end


def tcp_end(local_port: int, remote_port: int) -> TcpEnd | None:
    """The IPv4 end at ``local_port`` of a connection with ``remote_port``, seen from
    outside the process that owns it; None once the kernel has dropped it."""
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        local, remote = fields[1], fields[2]
        if int(local.split(":")[1], 16) == local_port and int(remote.split(":")[1], 16) == (
            remote_port
        ):
            return TcpEnd(int(fields[3], 16), int(fields[4].split(":")[0], 16))
    return None
