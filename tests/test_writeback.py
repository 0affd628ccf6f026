"""Early writeback of received datasets: present on Linux, harmless on any descriptor."""

from __future__ import annotations

import ctypes
import errno
import os
import sys
from pathlib import Path

import pytest

from dicom_nodes import writeback

pytestmark = pytest.mark.unit


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="sync_file_range is Linux")
def test_sync_file_range_is_found_on_linux() -> None:
    assert writeback._sync_file_range is not None


def test_writeback_keeps_the_data(tmp_path: Path) -> None:
    target = tmp_path / "instance.dcm"
    data = os.urandom(300_000)
    with target.open("wb") as f:
        f.write(data[:100_000])
        f.flush()
        writeback.start_writeback(f.fileno())
        f.write(data[100_000:])
        f.flush()
        writeback.start_writeback(f.fileno())
        os.fsync(f.fileno())
    assert target.read_bytes() == data


def test_writeback_ignores_a_bad_descriptor(tmp_path: Path) -> None:
    fd = os.open(tmp_path / "gone", os.O_WRONLY | os.O_CREAT)
    os.close(fd)
    for bad in (fd, -1):
        with pytest.raises(OSError) as closed:
            os.fstat(bad)
        assert closed.value.errno == errno.EBADF  # the descriptor really is bad
        if writeback._sync_file_range is not None:  # the call underneath does fail ...
            assert writeback._sync_file_range(bad, 0, 0, writeback.SYNC_FILE_RANGE_WRITE) == -1
            assert ctypes.get_errno() == errno.EBADF
        # ... and start_writeback does not raise: the fsync that follows reports real errors
        assert writeback.start_writeback(bad) is None


def test_requests_beyond_the_bound_are_dropped(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A stalled disk must not pile up descriptors: past MAX_PENDING waiting requests, new
    ones are skipped (the fsync still makes the file durable)."""
    import threading

    if writeback._sync_file_range is None:
        pytest.skip("sync_file_range is Linux")
    release = threading.Event()
    calls: list[int] = []

    def stalled(fd: int, offset: int, nbytes: int, flags: int) -> int:
        calls.append(fd)
        release.wait(10)
        return 0

    monkeypatch.setattr(writeback, "_sync_file_range", stalled)
    monkeypatch.setattr(writeback, "MAX_PENDING", 3)
    with (tmp_path / "f").open("wb") as f:
        before = len(os.listdir("/proc/self/fd"))
        for _ in range(10):
            writeback.start_writeback(f.fileno())
        assert writeback._pending == 3
        assert len(os.listdir("/proc/self/fd")) - before <= 3
        release.set()
        writeback._WRITER.submit(lambda: None).result(timeout=10)
    assert len(calls) == 3 and writeback._pending == 0
