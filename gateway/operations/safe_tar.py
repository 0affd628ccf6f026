"""Extract members of an untrusted tar (a backup being restored) without leaving the target.

Python 3.11.4 added tarfile's ``data`` extraction filter (PEP 706); earlier 3.11 releases,
such as Debian 12's 3.11.2, do not have it and their ``extract`` trusts the archive. So the
checks are done here explicitly on every Python: only regular files and directories (no
symbolic or hard links, devices or FIFOs), relative names without ``..``, and a target that
stays inside the destination even through a symbolic link already there. Where the filter
exists it is applied as well; where it does not, the extraction sets no owner and masks the
mode the same way the filter does (no setuid/setgid/sticky bits, no group or other write).
"""

from __future__ import annotations

import os
import tarfile
from pathlib import Path, PurePosixPath

HAS_DATA_FILTER: bool = hasattr(tarfile, "data_filter")


class UnsafeMemberError(ValueError):
    """An archive member that would not be a plain file or directory inside the target."""


def check_name(member: tarfile.TarInfo) -> None:
    """The checks that need no destination: the member's type and name."""
    name = member.name
    if not (member.isreg() or member.isdir()):
        raise UnsafeMemberError(f"archive member {name!r} is not a regular file or directory")
    path = PurePosixPath(name)
    if not name or path.is_absolute() or name.startswith("\\"):
        raise UnsafeMemberError(f"archive member {name!r} has an absolute or empty name")
    if ".." in path.parts:
        raise UnsafeMemberError(f"archive member {name!r} has a '..' component")
    if "\x00" in name:
        raise UnsafeMemberError(f"archive member {name!r} has a NUL in its name")


def target_of(member: tarfile.TarInfo, dest: Path) -> Path:
    """Where ``member`` lands under ``dest``; refused unless it stays inside ``dest``."""
    check_name(member)
    root = dest.resolve()
    target = (root / member.name).resolve()  # follows any symlink already under dest
    if target == root and not member.isdir():
        raise UnsafeMemberError(f"archive member {member.name!r} would replace the target")
    if target != root and root not in target.parents:
        raise UnsafeMemberError(f"archive member {member.name!r} would land outside the target")
    return target


def extract(tar: tarfile.TarFile, member: tarfile.TarInfo, dest: Path) -> Path:
    """Extract one checked member under ``dest``; returns its path."""
    target = target_of(member, dest)
    if HAS_DATA_FILTER:
        try:
            tar.extract(member, dest, filter="data")
        except tarfile.FilterError as exc:
            raise UnsafeMemberError(f"archive member {member.name!r}: {exc}") from exc
        return target
    tar.extract(member, dest, set_attrs=False)
    if member.isreg():
        mode = (member.mode & 0o755) | 0o600
        if not mode & 0o100:
            mode &= ~0o011
        os.chmod(target, mode)
        os.utime(target, (member.mtime, member.mtime))
    return target
