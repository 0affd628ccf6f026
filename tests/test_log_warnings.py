"""Python warnings reach the structured JSON log without their text: pydicom's value
warnings quote the element's value (a patient's name or id)."""

from __future__ import annotations

import io
import json
import logging
import sys
import warnings
from pathlib import Path

import pytest
from pydicom.dataelem import RawDataElement
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.tag import Tag
from pydicom.uid import DeflatedExplicitVRLittleEndian, generate_uid

from gateway.core.logs import setup_logging, warning_summary
from gateway.intake.instance_meta import read_instance_meta

pytestmark = pytest.mark.unit

CT = "1.2.840.10008.5.1.4.1.1.2"
SECRET = b"NGUYEN BI MAT"  # patient data where a number belongs: pydicom warns, quoting it


def _deflated_file(path: Path, sop_uid: str) -> None:
    """A header the gateway's fast reader leaves to pydicom (deflated), whose Instance
    Number (IS) holds patient data, as a misconfigured modality may write it."""
    ds = Dataset()
    ds.SOPClassUID, ds.SOPInstanceUID = CT, sop_uid
    ds.StudyInstanceUID, ds.SeriesInstanceUID = generate_uid(), generate_uid()
    ds.PatientID = "BN-SECRET-42"
    tag = Tag(0x00200013)
    ds[tag] = RawDataElement(tag, "IS", len(SECRET) + 1, SECRET + b" ", 0, False, True)
    ds.file_meta = FileMetaDataset()
    ds.file_meta.MediaStorageSOPClassUID, ds.file_meta.MediaStorageSOPInstanceUID = CT, sop_uid
    ds.file_meta.TransferSyntaxUID = DeflatedExplicitVRLittleEndian
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # writing it warns too (before the test's logging)
        ds.save_as(path, enforce_file_format=True)


def test_pydicom_warning_while_reading_a_header_is_logged_without_the_value(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "deflated.dcm"
    sop_uid = generate_uid()
    _deflated_file(path, sop_uid)
    stderr = io.StringIO()
    monkeypatch.setattr(sys, "stderr", stderr)
    monkeypatch.setattr(warnings, "showwarning", warnings.showwarning)  # restored after
    root = logging.getLogger()
    monkeypatch.setattr(root, "handlers", root.handlers[:])
    monkeypatch.setattr(root, "level", root.level)
    for name in ("pydicom", "pynetdicom"):  # setup_logging quiets them: restored after
        monkeypatch.setattr(logging.getLogger(name), "level", logging.getLogger(name).level)
    setup_logging("INFO")
    with warnings.catch_warnings():
        warnings.simplefilter("always")
        meta = read_instance_meta(path, expected_sop_class=CT, expected_sop_instance=sop_uid)
    assert meta.sop_instance_uid == sop_uid  # read by pydicom, which warned
    records = [json.loads(line) for line in stderr.getvalue().splitlines()]
    warned = [r for r in records if r["logger"] == "py.warnings"]
    assert warned, records
    assert all(r["level"] == "WARNING" for r in warned)
    assert any(r["msg"].startswith("UserWarning at pydicom/") for r in warned)
    assert any("VR IS" in r["msg"] for r in warned)
    assert "NGUYEN" not in stderr.getvalue() and "SECRET" not in stderr.getvalue()


def test_warning_summary_keeps_the_tags_and_vrs_only() -> None:
    text = "Invalid value for VR PN in (0010,0010): 'NGUYEN^VAN AN'; see (0010, 0020) too"
    summary = warning_summary(UserWarning(text), UserWarning, "/x/pydicom/valuerep.py", 12)
    assert summary == (
        "UserWarning at pydicom/valuerep.py:12; tag (0010,0010), (0010,0020); VR PN "
        "(text withheld: it may quote data)"
    )
