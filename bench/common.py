"""Shared benchmark helpers: servers on loopback, storescu runs, RSS sampling, JSON output."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from gateway.operations.local_orthanc import LocalOrthanc

STORESCU_ENV = dict(os.environ, TCP_NODELAY="1")

# The production worker poll (settings' default); the test harness polls every 0.2 s,
# whose idle passes (a few write transactions each) would weigh on every figure.
PRODUCTION_WORKER = {"worker": {"poll_interval_s": 1.0}}


@contextmanager
def scratch(prefix: str) -> Iterator[Path]:
    """A work directory for one benchmark run, deleted when the run ends, failed or not:
    a run leaves GBs of generated studies and server storage behind otherwise (and a full
    disk makes the next run's gateway refuse C-STOREs at its high-water mark)."""
    work = Path(tempfile.mkdtemp(prefix=prefix))
    try:
        yield work
    finally:
        shutil.rmtree(work, ignore_errors=True)


def storescu_send(port: int, files: Sequence[Path], aec: str, parallel: int = 1) -> float:
    """Send ``files`` with ``parallel`` storescu processes; returns seconds."""
    chunks = [list(files[i::parallel]) for i in range(parallel)]
    start = time.perf_counter()
    procs = [
        subprocess.Popen(
            [
                "storescu",
                "-aet",
                "STORESCU",
                "-aec",
                aec,
                "--max-send-pdu",
                "131072",
                "127.0.0.1",
                str(port),
                *map(str, chunk),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            env=STORESCU_ENV,
        )
        for chunk in chunks
    ]
    for p in procs:
        _, err = p.communicate()
        if p.returncode != 0 or b"Store Failed" in err:
            raise RuntimeError(f"storescu failed: {err.decode()[-500:]}")
    return time.perf_counter() - start


def wait_instances(
    orthanc: LocalOrthanc, count: int, *, every_s: float = 0.05, timeout: float = 600
) -> None:
    """Wait until ``orthanc`` holds ``count`` instances, asking its ``/statistics`` every
    ``every_s``. One HTTP client for the whole wait: making an httpx client costs ~40 ms
    of CPU (its TLS context loads the CA bundle), so a new one per 50 ms poll took most
    of a core from the servers being timed."""
    deadline = time.monotonic() + timeout
    with orthanc.client() as client:
        while int(client.get("/statistics").json()["CountInstances"]) < count:
            if time.monotonic() > deadline:
                raise TimeoutError(f"Orthanc never held {count} instances")
            time.sleep(every_s)


def tree_rss_mb(pid: int) -> float:
    """Resident memory of a process and all its descendants, in MB."""
    return sum(tree_rss_by_pid(pid).values())


def tree_rss_by_pid(pid: int) -> dict[int, float]:
    """Resident memory of a process and of each of its descendants, in MB, by pid."""
    out: dict[int, float] = {}
    pids = [pid]
    while pids:
        p = pids.pop()
        try:
            with open(f"/proc/{p}/status") as f:
                for line in f:
                    if line.startswith("VmRSS:"):
                        out[p] = int(line.split()[1]) / 1024
            with open(f"/proc/{p}/task/{p}/children") as f:
                pids += [int(c) for c in f.read().split()]
        except (FileNotFoundError, ProcessLookupError):
            continue
    return out


class RssSampler:
    """Samples a process tree's RSS in the background and keeps the peak."""

    def __init__(self, pid: int, interval: float = 0.05) -> None:
        self.pid = pid
        self.interval = interval
        self.peak = 0.0
        self.peaks: dict[int, float] = {}  # each process's own peak, by pid
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            by_pid = tree_rss_by_pid(self.pid)
            self.peak = max(self.peak, sum(by_pid.values()))
            for p, mb in by_pid.items():
                self.peaks[p] = max(self.peaks.get(p, 0.0), mb)
            time.sleep(self.interval)

    def __enter__(self) -> RssSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def emit(record: dict[str, object]) -> None:
    print(json.dumps(record), flush=True)


def wait_port(port: int, timeout: float = 30) -> None:
    import socket

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.1)
    raise TimeoutError(f"port {port} not open")


def _cpu_times() -> tuple[int, int]:
    """(all, idle) jiffies of the machine, from /proc/stat."""
    with open("/proc/stat") as f:
        values = [int(v) for v in f.readline().split()[1:]]
    return sum(values), values[3] + values[4]


def wait_quiet(busy_below: float = 0.1, window_s: float = 0.5, timeout: float = 60) -> None:
    """Wait until the machine's CPUs are busy less than ``busy_below`` over ``window_s``
    (background work of a previous round done), at most ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        total0, idle0 = _cpu_times()
        time.sleep(window_s)
        total1, idle1 = _cpu_times()
        elapsed = total1 - total0
        if elapsed and (elapsed - (idle1 - idle0)) / elapsed < busy_below:
            return
