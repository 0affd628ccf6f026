"""The DICOM receiver against real dcmtk peers and pynetdicom SCUs (issue: foundation).

One gateway per database serves the tests in turn (``receiver``; a start is the largest
fixed cost of these tests): each test checks what it added to the store and the index
(the files, indexed UIDs and counts after minus before), which with one test at a time
is the same check as on a fresh gateway. The SIGKILL test has a gateway of its own.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pydicom
import pytest
from pydicom.data import get_testdata_file
from pydicom.uid import generate_uid
from pynetdicom import AE, _config
from sqlalchemy import create_engine, select

from gateway.core.models import Instance
from tests.support.ctgen import make_ct_study
from tests.support.dcmtk import PROPOSE_FLAG, echoscu, storescu, storescu_acknowledged
from tests.support.gateway_proc import GatewayProcess
from tests.support.store_files import store_files

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def receiver(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[GatewayProcess]:
    """One gateway per database for the tests that do not stop it."""
    work = tmp_path_factory.mktemp(f"receive-{request.param}")
    if request.param == "sqlite":
        url = f"sqlite:///{work / 'test.db'}"
    else:
        url = request.getfixturevalue("pg_cluster").create_database()
    gateway = GatewayProcess(work / "gw", url)
    gateway.start()
    yield gateway
    gateway.kill()


@pytest.fixture(autouse=True)
def _send_files_raw() -> Iterator[None]:
    """pynetdicom SCUs send file datasets as raw bytes, unparsed (like a broken modality)."""
    _config.STORE_SEND_CHUNKED_DATASET = True
    validator = _config.VALIDATORS["UI"]
    _config.VALIDATORS["UI"] = lambda value: (True, "")  # let hostile UIDs out
    yield
    _config.STORE_SEND_CHUNKED_DATASET = False
    _config.VALIDATORS["UI"] = validator


SAMPLES = [
    "CT_small.dcm",  # CT, explicit VR little endian
    "MR_small.dcm",  # MR
    "MR_small_implicit.dcm",  # implicit VR
    "examples_ybr_color.dcm",  # US multi-frame, JPEG baseline
    "JPGExtended.dcm",  # JPEG extended
    "SC_rgb_jpeg_gdcm.dcm",  # JPEG lossless SV1
    "MR_small_jpeg_ls_lossless.dcm",  # JPEG-LS
    "MR_small_jp2klossless.dcm",  # JPEG 2000 lossless
    "JPEG2000.dcm",  # JPEG 2000
    "MR_small_RLE.dcm",  # RLE
    "image_dfl.dcm",  # deflated
    "MR_small_bigendian.dcm",  # big endian
]


def _dataset_bytes(path: Path) -> bytes:
    """The bytes after the file meta group: the dataset as it travels on the wire."""
    with open(path, "rb") as f:
        pydicom.filereader.read_preamble(f, False)
        pydicom.filereader._read_file_meta_info(f)
        return f.read()


def _elements(path: Path) -> dict[int, object]:
    ds = pydicom.dcmread(path)
    return {int(e.tag): e.value for e in ds if e.tag != 0xFFFCFFFC}


def _stored(gw: GatewayProcess, sop_uid: str) -> Path:
    path = gw.stored_file(sop_uid)
    assert path is not None, f"{sop_uid} not indexed"
    return path


def _indexed_uids(gw: GatewayProcess) -> set[str]:
    engine = create_engine(gw.config["database"]["url"])
    with engine.connect() as conn:
        uids = set(conn.execute(select(Instance.sop_instance_uid)).scalars())
    engine.dispose()
    return uids


def _store_files(gw: GatewayProcess) -> set[str]:
    return {p.name for p in store_files(gw.work / "var" / "store")}


def _study_total(gw: GatewayProcess, **filters: Any) -> int:
    """Instances in every study the API lists."""
    page = gw.get("/api/studies", limit=100, **filters)
    assert page["total"] <= 100
    return sum(item["instances"] for item in page["items"])


def test_echo_and_unknown_calling_ae(receiver: GatewayProcess) -> None:
    gateway = receiver
    assert echoscu(gateway.dicom_port).returncode == 0
    refused = echoscu(gateway.dicom_port, aet="INTRUDER")
    assert refused.returncode != 0
    assert "Calling AE Title Not Recognized" in refused.stderr + refused.stdout
    wrong_called = echoscu(gateway.dicom_port, aec="NOTME")
    assert wrong_called.returncode != 0


def _unique_copy(name: str, out: Path) -> Path:
    """pydicom's samples share UIDs between variants: give each its own instance UID."""
    ds = pydicom.dcmread(get_testdata_file(name))
    ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
    path = out / name
    ds.save_as(path, enforce_file_format=True)
    return path


def test_samples_stored_as_received_and_indexed(receiver: GatewayProcess, tmp_path: Path) -> None:
    gateway = receiver
    before = _study_total(gateway)
    for name in SAMPLES:
        path = _unique_copy(name, tmp_path)
        original = pydicom.dcmread(path, stop_before_pixels=True)
        ts = str(original.file_meta.TransferSyntaxUID)
        flags = [PROPOSE_FLAG[ts], "-R"] if ts in PROPOSE_FLAG else []
        result = storescu(gateway.dicom_port, [path], extra=flags)
        assert result.returncode == 0, (name, result.stderr)
        assert "Store Failed" not in result.stderr, name
        stored = _stored(gateway, original.SOPInstanceUID)
        # dcmtk re-encodes what it sends (drops trailing padding, may convert byte order):
        # the stored content must equal the original element by element, pixels included.
        assert _elements(stored) == _elements(path), name
    assert _study_total(gateway) - before == len(SAMPLES)
    mr = gateway.get("/api/studies", modality="MR", limit=100)
    assert mr["total"] >= 1
    assert all("MR" in item["modalities"] for item in mr["items"])


def test_pynetdicom_raw_send_is_stored_byte_identical(
    receiver: GatewayProcess, tmp_path: Path
) -> None:
    """pynetdicom sends a file's dataset bytes as they are: the store keeps them exactly."""
    gateway = receiver
    paths = [_unique_copy(name, tmp_path) for name in SAMPLES]
    ae = AE("STORESCU")
    for path in paths:
        ds = pydicom.dcmread(path, stop_before_pixels=True)
        ae.add_requested_context(ds.SOPClassUID, ds.file_meta.TransferSyntaxUID)
    assoc = ae.associate("127.0.0.1", gateway.dicom_port, ae_title="RISGATE")
    assert assoc.is_established
    try:
        for path in paths:
            assert assoc.send_c_store(path).Status == 0x0000, path.name
    finally:
        assoc.release()
    for path in paths:
        uid = pydicom.dcmread(path, stop_before_pixels=True).SOPInstanceUID
        assert _dataset_bytes(_stored(gateway, uid)) == _dataset_bytes(path), path.name


def _raw_file(tmp: Path, sop_uid: str, dataset: bytes) -> Path:
    """A Part 10 file with a valid meta header and arbitrary dataset bytes."""
    from pydicom.dataset import FileMetaDataset
    from pydicom.filewriter import write_file_meta_info

    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.2"
    meta.MediaStorageSOPInstanceUID = sop_uid
    meta.TransferSyntaxUID = "1.2.840.10008.1.2.1"
    path = tmp / f"raw{abs(hash(sop_uid))}.dcm"
    with open(path, "wb") as f:
        f.write(b"\0" * 128 + b"DICM")
        write_file_meta_info(f, meta, enforce_standard=True)
        f.write(dataset)
    return path


def test_malformed_and_hostile_files_refused_association_survives(
    receiver: GatewayProcess, tmp_path: Path
) -> None:
    gateway = receiver
    good = _unique_copy("CT_small.dcm", tmp_path)
    files_before, indexed_before = _store_files(gateway), _indexed_uids(gateway)
    ae = AE("STORESCU")
    ae.add_requested_context("1.2.840.10008.5.1.4.1.1.2", "1.2.840.10008.1.2.1")
    assoc = ae.associate("127.0.0.1", gateway.dicom_port, ae_title="RISGATE")
    assert assoc.is_established
    try:
        garbage = _raw_file(tmp_path, "1.2.3.4.5", b"\x08\x00\x16\x00UI\xff\xff" + b"junk" * 10)
        status = assoc.send_c_store(garbage)
        assert status.Status in (0xC000, 0xA900), hex(status.Status)
        # A dataset whose UIDs do not match the request
        mismatch = _raw_file(tmp_path, "1.2.3.4.6", _dataset_bytes(good))
        status = assoc.send_c_store(mismatch)
        assert status.Status == 0xA900
        for bad_uid in ("../../x", "1." + "2" * 198):
            ds = pydicom.dcmread(good)
            ds.SOPInstanceUID = bad_uid
            ds.file_meta.MediaStorageSOPInstanceUID = bad_uid
            bad = _raw_file(tmp_path, bad_uid, b"")
            with open(bad, "r+b") as f:
                f.seek(0, 2)
                buf = pydicom.filebase.DicomBytesIO()
                pydicom.filewriter.write_dataset(buf, ds)
                f.write(buf.getvalue())
            status = assoc.send_c_store(bad)
            assert status.Status != 0x0000
        # The association is still usable
        status = assoc.send_c_store(good)
        assert status.Status == 0x0000
    finally:
        assoc.release()
    store = gateway.work / "var" / "store"
    good_uid = pydicom.dcmread(good).SOPInstanceUID
    assert _store_files(gateway) - files_before == {good_uid + ".dcm"}
    assert not list((store.parent.parent).rglob("x")), "path traversal created a file"
    assert _indexed_uids(gateway) - indexed_before == {good_uid}


def test_duplicate_instance_is_idempotent(receiver: GatewayProcess, tmp_path: Path) -> None:
    gateway = receiver
    path = _unique_copy("CT_small.dcm", tmp_path)
    uid = pydicom.dcmread(path, stop_before_pixels=True).SOPInstanceUID
    files_before, indexed_before = _store_files(gateway), _indexed_uids(gateway)
    for _ in range(2):
        assert storescu(gateway.dicom_port, [path]).returncode == 0
    engine = create_engine(gateway.config["database"]["url"])
    with engine.connect() as conn:
        rows = conn.execute(
            select(Instance.duplicates).where(Instance.sop_instance_uid.not_in(indexed_before))
        )
        duplicates = rows.scalars().all()
    engine.dispose()
    assert duplicates == [1]
    assert _store_files(gateway) - files_before == {f"{uid}.dcm"}


def test_sigkill_during_send_loses_no_acknowledged_instance(
    gateway: GatewayProcess, tmp_path: Path
) -> None:
    _, files = make_ct_study(tmp_path / "study", 300, size=128)
    sop_by_file = {
        str(f): pydicom.dcmread(f, stop_before_pixels=True).SOPInstanceUID for f in files
    }
    acknowledged: list[str] = []
    for path in storescu_acknowledged(gateway.dicom_port, files):
        acknowledged.append(sop_by_file[str(path)])
        if len(acknowledged) == 120:
            gateway.kill()
    assert 120 <= len(acknowledged) < 300
    gateway.start()
    indexed = _indexed_uids(gateway)
    missing = set(acknowledged) - indexed
    assert not missing
    for uid in acknowledged[-5:]:
        assert _stored(gateway, uid).is_file()
    # After the restart the rest can be sent; nothing was left half-written.
    assert storescu(gateway.dicom_port, files).returncode == 0
    assert len(_indexed_uids(gateway)) == 300


def test_power_cut_before_acknowledgement_start_up_withdraws_and_resend_restores(
    gateway: GatewayProcess, tmp_path: Path
) -> None:
    """A power cut can leave the newest index rows with short or missing files (the row
    commits while the file's fsync runs; the answer waits for both). Simulated: SIGKILL,
    then two of the newest files cut short and one removed. The restarted gateway withdraws
    those rows before it accepts associations, and storescu's re-send stores them again."""
    _, files = make_ct_study(tmp_path / "study", 8, size=64)
    assert storescu(gateway.dicom_port, files).returncode == 0
    gateway.kill()
    newest = [_stored(gateway, pydicom.dcmread(f, stop_before_pixels=True).SOPInstanceUID)
              for f in files[-3:]]  # fmt: skip
    for path in newest[:2]:
        with open(path, "r+b") as f:
            f.truncate(path.stat().st_size // 3)
    newest[2].unlink()
    gateway.start()
    assert "withdrew 3 indexed instances" in gateway.log_path.read_text()
    assert len(_indexed_uids(gateway)) == 5
    assert storescu(gateway.dicom_port, files).returncode == 0
    assert len(_indexed_uids(gateway)) == 8
    for original in files:
        uid = pydicom.dcmread(original, stop_before_pixels=True).SOPInstanceUID
        assert _elements(_stored(gateway, uid)) == _elements(original)
