"""A C-STORE whose data set is structurally broken is refused; its neighbours are not.

The two cases seen in the field, sent as raw bytes by a pynetdicom SCU (dcmtk's storescu
re-encodes what it sends, so it cannot send them): Pixel Data declaring 8,192 bytes of
which 1,000 follow, and Pixel Data of odd length (8,191 bytes). Both get 0xC000 with the
reason as Error Comment, between two good instances of the same association that are
stored and forwarded to a real Orthanc; nothing of the broken ones is left in the
database, the store, its temp directory or the forward queue. SQLite and PostgreSQL.
"""

from __future__ import annotations

import struct
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pydicom
import pytest
from pydicom.filewriter import write_file_meta_info
from pynetdicom import AE, _config
from sqlalchemy import create_engine, select

from gateway.core.models import Instance, Job
from gateway.operations.local_orthanc import LocalOrthanc
from tests.support.ctgen import make_ct_study
from tests.support.destination import destination_for
from tests.support.gateway_proc import GatewayProcess
from tests.support.store_files import store_files

pytestmark = pytest.mark.integration

CT = "1.2.840.10008.5.1.4.1.1.2"


@pytest.fixture(autouse=True)
def _send_files_raw() -> Iterator[None]:
    """pynetdicom sends a file's data set bytes as they are (like a broken modality)."""
    _config.STORE_SEND_CHUNKED_DATASET = True
    yield
    _config.STORE_SEND_CHUNKED_DATASET = False


def _with_pixel_data(source: Path, target: Path, declared: int, actual: int) -> Path:
    """``source`` with its Pixel Data replaced: a header declaring ``declared`` bytes,
    then ``actual`` bytes, written as they are (no padding)."""
    ds = pydicom.dcmread(source)
    del ds.PixelData
    buffer = pydicom.filebase.DicomBytesIO()
    buffer.is_little_endian, buffer.is_implicit_VR = True, False
    pydicom.filewriter.write_dataset(buffer, ds)
    pixel = struct.pack("<HH2s2xI", 0x7FE0, 0x0010, b"OW", declared) + b"\x55" * actual
    with open(target, "wb") as f:
        f.write(b"\0" * 128 + b"DICM")
        write_file_meta_info(f, ds.file_meta, enforce_standard=True)
        f.write(buffer.getvalue() + pixel)
    return target


def _uid(path: Path) -> str:
    return str(pydicom.dcmread(path, stop_before_pixels=True).SOPInstanceUID)


def _rows(gw: GatewayProcess) -> tuple[dict[int, str], list[tuple[str, str]]]:
    """{instance pk: SOP Instance UID}, [(job kind, ref)]."""
    engine = create_engine(gw.config["database"]["url"])
    with engine.connect() as conn:
        instances = dict(conn.execute(select(Instance.id, Instance.sop_instance_uid)).all())
        jobs = [(k, r) for k, r in conn.execute(select(Job.kind, Job.ref)).all()]
    engine.dispose()
    return {int(k): str(v) for k, v in instances.items()}, jobs


def _orthanc_instances(orthanc: LocalOrthanc) -> set[str]:
    with orthanc.client() as c:
        ids = c.get("/instances").json()
        return {c.get(f"/instances/{i}/simplified-tags").json()["SOPInstanceUID"] for i in ids}


def _wait_for(check: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if check():
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.3)
    raise AssertionError(f"timed out waiting for {what}")


def test_broken_data_sets_refused_neighbours_stored_and_forwarded(
    gateway_factory: Any, orthanc: LocalOrthanc, tmp_path: Path
) -> None:
    gw: GatewayProcess = gateway_factory.make(
        {"forward": {"destinations": [destination_for(orthanc)]}, "dicom": {"processes": 1}}
    )
    gw.start()
    _, files = make_ct_study(tmp_path / "ct", 4, size=64, patient_name="SECRET^NAME")
    truncated = _with_pixel_data(files[1], tmp_path / "truncated.dcm", 8192, 1000)
    odd = _with_pixel_data(files[2], tmp_path / "odd.dcm", 8191, 8191)
    sends = [files[0], truncated, odd, files[3]]

    ae = AE("STORESCU")
    ae.add_requested_context(CT, "1.2.840.10008.1.2.1")
    ae.add_requested_context("1.2.840.10008.1.1")
    assoc = ae.associate("127.0.0.1", gw.dicom_port, ae_title="RISGATE")
    assert assoc.is_established
    try:
        answers = [assoc.send_c_store(path) for path in sends]
        assert assoc.send_c_echo().Status == 0x0000
    finally:
        assoc.release()

    assert [a.Status for a in answers] == [0x0000, 0xC000, 0xC000, 0x0000]
    assert answers[1].ErrorComment == "(7FE0,0010) value of 8192 bytes runs past the end"
    assert answers[2].ErrorComment == "odd length 8191 of (7FE0,0010)"

    good = {_uid(files[0]), _uid(files[3])}
    instances, jobs = _rows(gw)
    assert set(instances.values()) == good
    assert sorted(ref for kind, ref in jobs if kind == "forward") == sorted(map(str, instances))
    store = gw.work / "var" / "store"
    stored = {p.stem for p in (store / "instances").rglob("*.dcm")}
    assert stored == good
    assert not store_files(store / "tmp")
    _wait_for(lambda: _orthanc_instances(orthanc) == good, 60, "the good instances in Orthanc")

    log = gw.log_path.read_text()
    assert "malformed data set: odd length 8191 of (7FE0,0010)" in log
    assert "malformed data set: (7FE0,0010) value of 8192 bytes runs past the end" in log
    assert "SECRET" not in log
