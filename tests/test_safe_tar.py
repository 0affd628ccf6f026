"""Extraction of an untrusted tar on both branches of ``gateway.operations.safe_tar``: with
tarfile's
``data`` filter (Python 3.11.4+) and with the explicit checks alone (3.11.0-3.11.3, forced
here by hiding the filter). A hostile archive (absolute path, ``..``, links leaving the
target, a device, a FIFO) is refused and writes nothing; ``risgate restore`` refuses it
before touching the target."""

from __future__ import annotations

import io
import json
import stat
import tarfile
from collections.abc import Callable
from pathlib import Path

import pytest

from gateway.core.settings import Settings
from gateway.operations import safe_tar
from gateway.operations.backup import FORMAT, BackupError, restore

pytestmark = pytest.mark.unit

BRANCHES = ["data_filter", "explicit"]


@pytest.fixture(params=BRANCHES)
def branch(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    if request.param == "data_filter":
        if not hasattr(tarfile, "data_filter"):
            pytest.skip("this Python has no tarfile data filter (before 3.11.4)")
        monkeypatch.setattr(safe_tar, "HAS_DATA_FILTER", True)
    else:
        monkeypatch.setattr(safe_tar, "HAS_DATA_FILTER", False)
    return str(request.param)


def _file(name: str, data: bytes = b"x", mode: int = 0o644) -> tuple[tarfile.TarInfo, bytes]:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    info.mode = mode
    info.mtime = 1_700_000_000
    return info, data


def _special(name: str, kind: bytes, linkname: str = "") -> tuple[tarfile.TarInfo, bytes]:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.linkname = linkname
    return info, b""


HOSTILE: dict[str, Callable[[Path], tuple[tarfile.TarInfo, bytes]]] = {
    "absolute": lambda out: _file(str(out / "abs.txt")),
    "dotdot": lambda out: _file("../outside/up.txt"),
    "inner_dotdot": lambda out: _file("a/../../outside/up.txt"),
    "symlink_out": lambda out: _special("link", tarfile.SYMTYPE, str(out)),
    "symlink_up": lambda out: _special("link", tarfile.SYMTYPE, "../outside"),
    "hardlink_out": lambda out: _special("hard", tarfile.LNKTYPE, str(out / "victim.txt")),
    "hardlink_up": lambda out: _special("hard", tarfile.LNKTYPE, "../outside/victim.txt"),
    "chardev": lambda out: _special("tty", tarfile.CHRTYPE),
    "blockdev": lambda out: _special("disk", tarfile.BLKTYPE),
    "fifo": lambda out: _special("pipe", tarfile.FIFOTYPE),
    "empty_name": lambda out: _file(""),
}


def _archive(path: Path, members: list[tuple[tarfile.TarInfo, bytes]]) -> Path:
    with tarfile.open(path, "w") as tar:
        for info, data in members:
            tar.addfile(info, io.BytesIO(data) if info.isreg() else None)
    return path


@pytest.fixture
def places(tmp_path: Path) -> tuple[Path, Path]:
    dest = tmp_path / "dest"
    outside = tmp_path / "outside"
    dest.mkdir()
    outside.mkdir()
    (outside / "victim.txt").write_bytes(b"untouched")
    return dest, outside


def _outside_untouched(outside: Path) -> None:
    assert sorted(p.name for p in outside.iterdir()) == ["victim.txt"]
    assert (outside / "victim.txt").read_bytes() == b"untouched"


@pytest.mark.parametrize("case", sorted(HOSTILE))
def test_hostile_member_is_refused(
    case: str, branch: str, places: tuple[Path, Path], tmp_path: Path
) -> None:
    dest, outside = places
    archive = _archive(tmp_path / "h.tar", [HOSTILE[case](outside)])
    with tarfile.open(archive) as tar:
        member = tar.getmembers()[0]
        with pytest.raises(safe_tar.UnsafeMemberError):
            safe_tar.extract(tar, member, dest)
    assert list(dest.iterdir()) == []
    _outside_untouched(outside)


def test_symlink_already_in_target_is_not_followed_out(
    branch: str, places: tuple[Path, Path], tmp_path: Path
) -> None:
    dest, outside = places
    (dest / "sub").symlink_to(outside)
    archive = _archive(tmp_path / "s.tar", [_file("sub/victim.txt", b"overwritten")])
    with tarfile.open(archive) as tar, pytest.raises(safe_tar.UnsafeMemberError, match="outside"):
        safe_tar.extract(tar, tar.getmembers()[0], dest)
    _outside_untouched(outside)


@pytest.mark.parametrize(
    ("archived", "expected"), [(0o4777, 0o755), (0o644, 0o644), (0o070, 0o640)]
)
def test_regular_file_is_extracted_with_a_safe_mode(
    branch: str, places: tuple[Path, Path], tmp_path: Path, archived: int, expected: int
) -> None:
    dest, _ = places
    archive = _archive(tmp_path / "ok.tar", [_file("a/b/c.dcm", b"DICM", mode=archived)])
    with tarfile.open(archive) as tar:
        target = safe_tar.extract(tar, tar.getmember("a/b/c.dcm"), dest)
    assert target == (dest / "a/b/c.dcm").resolve()
    assert target.read_bytes() == b"DICM"
    st = target.stat()
    assert stat.S_IMODE(st.st_mode) == expected
    assert int(st.st_mtime) == 1_700_000_000


@pytest.mark.parametrize("case", ["absolute", "dotdot", "symlink_out", "hardlink_up", "fifo"])
def test_restore_refuses_a_hostile_backup_before_touching_the_target(
    case: str, branch: str, places: tuple[Path, Path], tmp_path: Path
) -> None:
    _, outside = places
    manifest = {
        "format": FORMAT,
        "created_at": "2026-01-01T00:00:00+00:00",
        "database": "sqlite",
        "revisions": [],
        "indexed_files": 0,
        "archived_files": 1,
        "missing_files": 0,
        "tables": [],
    }
    info, data = HOSTILE[case](outside)
    info.name = info.name if case == "absolute" else f"store/instances/{info.name}"
    archive = _archive(
        tmp_path / "b.tar", [_file("manifest.json", json.dumps(manifest).encode()), (info, data)]
    )
    settings = Settings(data_dir=tmp_path / "data")
    with pytest.raises(BackupError, match="unsafe backup archive"):
        restore(settings, archive)
    assert not (tmp_path / "data" / "store").exists()
    _outside_untouched(outside)
