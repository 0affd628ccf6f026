"""Temp files made ahead for received datasets: handed out ready, created in place when
none is, removed when stopped, not counted as lost receptions when a process died."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from dicom_nodes.spare_files import PREFIX, SpareTempFiles, is_unused_spare
from gateway.core.instance_store import InstanceStore
from tests.support.wait import wait_until

pytestmark = pytest.mark.unit


def _spares(directory: Path) -> list[Path]:
    return sorted(p for p in directory.iterdir() if is_unused_spare(p))


def test_spares_handed_out_and_removed_on_stop(tmp_path: Path) -> None:
    files = SpareTempFiles(tmp_path, spares=2)
    try:
        wait_until(lambda: len(_spares(tmp_path)) == 2, 10, "two spares made ahead")
        handed = files(delete=False, mode="wb", suffix=".dcm")  # as pynetdicom asks
        assert Path(handed.name).parent == tmp_path and Path(handed.name).name.startswith(PREFIX)
        handed.write(b"DICM")
        handed.close()
        assert not is_unused_spare(Path(handed.name))  # it received something
        other = files(delete=True, mode="w+b", suffix=".tmp")  # any other use: made in place
        assert Path(other.name).suffix == ".tmp"
        other.close()
        wait_until(lambda: len(_spares(tmp_path)) == 2, 10, "the spare replaced")
    finally:
        files.stop()
    assert _spares(tmp_path) == []
    assert [p.name for p in tmp_path.iterdir()] == [Path(handed.name).name]


def test_dead_process_spares_are_removed_and_not_counted(tmp_path: Path) -> None:
    store = InstanceStore(tmp_path, fsync=False)
    dead = store.tmp_root / "999999999"  # no such pid
    dead.mkdir()
    (dead / f"{PREFIX}abc.dcm").write_bytes(b"")  # a spare never used
    (dead / f"{PREFIX}def.dcm").write_bytes(b"\0" * 132)  # a reception cut short
    assert store.clean_tmp() == 1
    assert not dead.exists()
    assert os.path.isdir(store.tmp_dir)
