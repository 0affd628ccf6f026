"""Process helpers: children that die with their parent, and signal handling."""

from __future__ import annotations

import ctypes
import signal
import threading
from typing import Any

_stop = threading.Event()

# On SIGTERM, how long (seconds) each role waits for its work under way to wrap up (a send
# interrupted, a handler waiting on a PACS, an HTTP request) before the process exits;
# jobs still held then come back to the queue when their lease ends.
STOP_WAIT_S = 3


def die_with_parent() -> None:
    """Ask the kernel to SIGKILL this process when its parent dies (Linux)."""
    try:
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except OSError:  # not Linux
        pass


def install_stop_handlers() -> threading.Event:
    """SIGTERM/SIGINT set an event instead of killing the process, so cleanup runs."""

    def _handler(signum: int, _frame: Any) -> None:
        _stop.set()

    signal.signal(signal.SIGTERM, _handler)
    signal.signal(signal.SIGINT, _handler)
    return _stop
