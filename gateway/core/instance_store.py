"""The instance store: received files on disk, named only from validated UIDs.

Layout: ``<root>/instances/<study uid>/<series uid>/<sop instance uid>.dcm``, and
``<root>/tmp`` for files still being received (same file system, so a rename is atomic).
A file is fsynced, renamed into place and its directory fsynced before it is indexed.
"""

from __future__ import annotations

import os
import shutil
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING

from dicom_nodes.identifiers import validate_uid
from dicom_nodes.spare_files import is_unused_spare

if TYPE_CHECKING:
    from gateway.intake.instance_meta import InstanceMeta


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

    def place(self, tmp_path: Path, meta: InstanceMeta) -> str:
        """Make a received temp file durable at its final place; return its relative path.

        The file is renamed first, then its data and its directory entry are fsynced at
        the same time (the file system journals both in one commit); the caller indexes
        and acknowledges only after both are durable. A crash in between leaves an
        unindexed, unacknowledged file that a re-send replaces.
        """
        relative = self.relative_path(meta.study_uid, meta.series_uid, meta.sop_instance_uid)
        target = self.absolute(relative)
        self._ensure_dir(target.parent)
        os.replace(tmp_path, target)
        if self.fsync:
            directory_synced = _SYNC_POOL.submit(_fsync_path, target.parent)
            _fsync_path(target)
            directory_synced.result()
        return relative

    def discard(self, tmp_path: Path) -> None:
        tmp_path.unlink(missing_ok=True)

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


_SYNC_POOL = ThreadPoolExecutor(max_workers=4, thread_name_prefix="fsync")


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
