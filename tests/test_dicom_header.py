"""The fast header reader agrees with pydicom, and never fails on garbage."""

from __future__ import annotations

from pathlib import Path

import pydicom
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydicom.data import get_testdata_file

from gateway.intake.dicom_header import WANTED, parse_header, read_header
from tests.support.ctgen import make_ct_study

pytestmark = pytest.mark.unit

TEST_FILES = Path(get_testdata_file("CT_small.dcm")).parent


def _pydicom_values(path: Path) -> dict[str, str]:
    ds = pydicom.dcmread(path, stop_before_pixels=True)
    return {
        k: str(ds[k].value if k != "PatientName" else ds.PatientName).strip()
        for k in WANTED.values()
        if k in ds and ds[k].value is not None and str(ds[k].value) != ""
    }


def _fast(path: Path) -> dict[str, str] | None:
    result = read_header(path)
    if result is None:
        return None
    return {k: v.strip() for k, v in result[1].items() if v.strip() and k != "SpecificCharacterSet"}


def test_agrees_with_pydicom_on_bundled_files() -> None:
    compared = 0
    for path in sorted(TEST_FILES.glob("*.dcm")):
        try:
            expected = _pydicom_values(path)
        except Exception:
            continue
        expected.pop("SpecificCharacterSet", None)
        got = _fast(path)
        if got is None:
            continue  # falls back to pydicom
        for key in set(expected) | set(got):
            if key in ("StudyDate",) or "\\" in expected.get(key, ""):
                continue
            assert got.get(key, "") == expected.get(key, ""), (path.name, key)
        compared += 1
    assert compared >= 20


def test_vietnamese_name_utf8(tmp_path: Path) -> None:
    _, files = make_ct_study(tmp_path, 1, size=8, patient_name="NGUYỄN^VĂN AN")
    result = read_header(files[0])
    assert result is not None
    assert result[1]["PatientName"] == "NGUYỄN^VĂN AN"
    assert result[0] == "1.2.840.10008.1.2.1"


def test_big_endian_falls_back() -> None:
    assert read_header(Path(get_testdata_file("MR_small_bigendian.dcm"))) is None


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=2000))
def test_garbage_never_raises(data: bytes) -> None:
    for blob in (
        data,
        b"\0" * 128 + b"DICM" + data,
        b"\0" * 128 + b"DICM\x02\x00\x00\x00UL" + data,
    ):
        result = parse_header(blob)
        assert result is None or isinstance(result[1], dict)


@pytest.mark.parametrize("cut", [200, 300, 400])
def test_truncated_real_header(tmp_path: Path, cut: int) -> None:
    _, files = make_ct_study(tmp_path, 1, size=8)
    data = files[0].read_bytes()[:cut]
    result = parse_header(data)
    assert result is None
