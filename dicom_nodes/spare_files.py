"""Temp files for received datasets, created ahead of the C-STOREs that need them.

pynetdicom creates the temp file of a streamed dataset when the C-STORE command arrives,
on the thread the modality waits for. Creating a file in the store's tmp dir took about a
tenth of the receiving process's time (py-spy, 0.5 MB CT instances, one association): the
file system journal is busy with the previous instance's fsyncs. :class:`SpareTempFiles`
keeps a couple of files created ahead by a background thread and hands one out at once;
when none is ready it creates one in place, as pynetdicom would.

A spare is an empty ``spare*.dcm`` in the process's own tmp dir: a process that dies
leaves at most ``spares`` of them, removed with its other temp files
(``InstanceStore.clean_tmp``, which does not count them: :func:`is_unused_spare`).
"""

from __future__ import annotations

import contextlib
import logging
import os
import queue
import threading
from pathlib import Path
from tempfile import NamedTemporaryFile
from typing import IO, Any

log = logging.getLogger(__name__)

PREFIX = "spare"
SUFFIX = ".dcm"
RETRY_S = 1.0  # after a failed creation (tmp dir gone, disk full)


class SpareTempFiles:
    """A drop-in for pynetdicom's ``NamedTemporaryFile(delete=False, mode="wb",
    suffix=".dcm")``, in ``directory``, with ``spares`` files made ahead."""

    def __init__(self, directory: Path, spares: int = 2) -> None:
        self.directory = directory
        self._ready: queue.Queue[IO[Any]] = queue.Queue()
        self._room = threading.Semaphore(spares)  # a spare is made only when one is taken
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._fill, name="spare-temp-files", daemon=True)
        self._thread.start()

    def __call__(self, *, delete: bool = True, mode: str = "w+b", suffix: str = "") -> IO[Any]:
        if not delete and mode == "wb" and suffix == SUFFIX and not self._stopped.is_set():
            with contextlib.suppress(queue.Empty):
                spare = self._ready.get_nowait()
                self._room.release()
                return spare
        return self._create(delete=delete, mode=mode, suffix=suffix)

    def _create(self, *, delete: bool = False, mode: str = "wb", suffix: str = SUFFIX) -> IO[Any]:
        return NamedTemporaryFile(
            delete=delete, mode=mode, suffix=suffix, prefix=PREFIX, dir=str(self.directory)
        )

    def _fill(self) -> None:
        while not self._stopped.is_set():
            if not self._room.acquire(timeout=RETRY_S):
                continue
            try:
                self._ready.put(self._create())
            except OSError as exc:
                self._room.release()
                log.debug("spare temp file not created: %s", exc)
                self._stopped.wait(RETRY_S)

    def stop(self) -> None:
        """Stop making spares and remove the ones not handed out."""
        self._stopped.set()
        self._thread.join(timeout=5)
        while True:
            try:
                _remove(self._ready.get_nowait())
            except queue.Empty:
                return


def is_unused_spare(path: Path) -> bool:
    """Whether ``path`` is a spare never handed out (empty, named as spares are)."""
    try:
        return path.name.startswith(PREFIX) and path.stat().st_size == 0
    except OSError:  # gone meanwhile (handed out and renamed)
        return False


def _remove(spare: IO[Any]) -> None:
    spare.close()
    with contextlib.suppress(OSError):
        os.unlink(spare.name)
