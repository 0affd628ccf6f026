"""The instance store: received files on disk, named only from validated UIDs.

Layout: ``<root>/instances/<study uid>/<series uid>/<sop instance uid>.dcm``, and
``<root>/tmp`` for files still being received (same file system, so a rename is atomic).
A file is renamed into place, then its data and directory entry are fsynced while the
caller indexes it: the caller acknowledges only when both are durable
(:meth:`Placement.wait_durable`), and withdraws the index row if the fsync fails.
"""

from __future__ import annotations

import os
import shutil
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from dicom_nodes.identifiers import validate_uid
from dicom_nodes.spare_files import is_unused_spare

if TYPE_CHECKING:
    from gateway.intake.instance_meta import InstanceMeta


@dataclass(frozen=True)
class Placement:
    """A file renamed to its final place whose fsyncs may still be running."""

    relative: str
    syncs: tuple[Future[None], ...] = ()

    def wait_durable(self) -> None:
        """Return once the file's data and its directory entry are on disk; raise the
        fsync's ``OSError`` if either failed (then the file may not survive a power cut)."""
        errors = [exc for f in self.syncs if (exc := f.exception()) is not None]
        if errors:
            raise errors[0]


class InstanceStore:
    def __init__(self, root: Path, *, fsync: bool = True) -> None:
        self.root = root
        self.instances_dir = root / "instances"
        self.tmp_root = root / "tmp"
        # One temp dir per process, so a process never removes a sibling's live files.
        self.tmp_dir = self.tmp_root / str(os.getpid())
        self.fsync = fsync
        self._known_dirs: set[Path] = set()
        for d in (self.root, self.instances_dir, self.tmp_root, self.tmp_dir):
            d.mkdir(parents=True, exist_ok=True)

    def relative_path(self, study_uid: str, series_uid: str, sop_uid: str) -> str:
        parts = [
            validate_uid(study_uid, "Study Instance UID"),
            validate_uid(series_uid, "Series Instance UID"),
            validate_uid(sop_uid, "SOP Instance UID") + ".dcm",
        ]
        return "/".join(parts)

    def absolute(self, relative: str) -> Path:
        return self.instances_dir / relative

    def _ensure_dir(self, directory: Path) -> None:
        if directory in self._known_dirs:
            return
        missing: list[Path] = []
        d = directory
        while not d.exists():
            missing.append(d)
            d = d.parent
        directory.mkdir(parents=True, exist_ok=True)
        if self.fsync:
            for created in reversed(missing):
                _fsync_dir(created.parent)
        self._known_dirs.add(directory)

    def place(self, tmp_path: Path, meta: InstanceMeta) -> Placement:
        """Move a received temp file to its final place and start making it durable.

        The file is renamed now; its data and its directory entry are fsynced in the
        background, at the same time as each other and as the caller's index commit (the
        file system journals them together: one wait per instance instead of two in a
        row). The caller acknowledges only after :meth:`Placement.wait_durable`. A process
        killed in between leaves the renamed file in the page cache, complete; a power cut
        may leave an index row whose file is short or missing, never acknowledged:
        ``gateway.intake.recovery`` withdraws such rows at start-up, and a re-send of the
        instance replaces it (``Receiver``).
        """
        relative = self.relative_path(meta.study_uid, meta.series_uid, meta.sop_instance_uid)
        target = self.absolute(relative)
        self._ensure_dir(target.parent)
        os.replace(tmp_path, target)
        if not self.fsync:
            return Placement(relative)
        return Placement(
            relative,
            (_SYNC_POOL.submit(_fsync_path, target), _SYNC_POOL.submit(_fsync_path, target.parent)),
        )

    def intact(self, relative: str, size: int) -> bool:
        """Whether an indexed file is still there with the size it was indexed with."""
        try:
            return self.absolute(relative).stat().st_size == size
        except OSError:
            return False

    def discard(self, tmp_path: Path) -> None:
        tmp_path.unlink(missing_ok=True)

    def remove(self, relative: str) -> None:
        """Delete an indexed file (one withdrawn from the index)."""
        self.absolute(relative).unlink(missing_ok=True)

    def mark_in_use(self) -> bool:
        """Mark the store as written by a running DICOM node (durably, before the first
        answer); whether the previous run's mark was still there: it did not stop cleanly."""
        mark = self.root / IN_USE_MARK
        unclean = mark.exists()
        mark.touch()
        if self.fsync:
            _fsync_dir(self.root)
        return unclean

    def mark_stopped(self) -> None:
        """The DICOM node stopped cleanly: every answered instance's file is on disk."""
        (self.root / IN_USE_MARK).unlink(missing_ok=True)

    def clean_tmp(self) -> int:
        """Remove temp files of dead processes: receptions never acknowledged."""
        count = 0
        for entry in self.tmp_root.iterdir():
            if entry == self.tmp_dir or (entry.name.isdigit() and _pid_alive(int(entry.name))):
                continue
            if entry.is_dir():
                count += sum(1 for f in entry.iterdir() if not is_unused_spare(f))
                shutil.rmtree(entry, ignore_errors=True)
        return count

    def delete_study(self, study_uid: str) -> None:
        shutil.rmtree(self.instances_dir / validate_uid(study_uid), ignore_errors=True)
        self._known_dirs = {d for d in self._known_dirs if d.exists()}

    def used_percent(self) -> float:
        usage = shutil.disk_usage(self.root)
        return 100.0 * (usage.total - usage.free) / usage.total if usage.total else 0.0


# In the store root while a DICOM node writes to the store (``mark_in_use``).
IN_USE_MARK = "receiving.mark"

# Two fsyncs per instance in flight, for each association of the process.
_SYNC_POOL = ThreadPoolExecutor(max_workers=8, thread_name_prefix="fsync")


def _fsync_path(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _fsync_dir(directory: Path) -> None:
    _fsync_path(directory)


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
