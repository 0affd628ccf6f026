"""Generate synthetic CT studies (512x512, 16-bit) as DICOM files for tests and benchmarks."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import UID, CTImageStorage, ExplicitVRLittleEndian, generate_uid


def ct_header(
    sop_class: str,
    study_uid: str,
    series_uid: str,
    *,
    patient_id: str,
    patient_name: str,
    accession: str,
    study_date: str,
    patient_sex: str = "M",
) -> Dataset:
    """A new instance's file meta, identity, patient and study attributes (UTF-8)."""
    sop_uid = generate_uid()
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = UID(sop_class)
    meta.MediaStorageSOPInstanceUID = sop_uid
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.SpecificCharacterSet = "ISO_IR 192"
    ds.SOPClassUID = sop_class
    ds.SOPInstanceUID = sop_uid
    ds.StudyInstanceUID = study_uid
    ds.SeriesInstanceUID = series_uid
    ds.PatientID = patient_id
    ds.PatientName = patient_name
    ds.PatientBirthDate = "19800101"
    ds.PatientSex = patient_sex
    ds.AccessionNumber = accession
    ds.StudyDate = study_date
    ds.StudyTime = "101010"
    return ds


def set_monochrome_16(ds: Dataset, size: int) -> None:
    """Image pixel module of a 12-bit-in-16 MONOCHROME2 ``size`` x ``size`` image."""
    ds.Rows = size
    ds.Columns = size
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.BitsAllocated = 16
    ds.BitsStored = 12
    ds.HighBit = 11
    ds.PixelRepresentation = 0


def make_ct_study(
    out_dir: Path,
    count: int,
    *,
    size: int = 512,
    patient_id: str = "PAT001",
    patient_name: str = "TEST^PATIENT",
    accession: str = "ACC001",
    study_uid: str | None = None,
    study_date: str = "20261125",
    station: str = "CT01",
) -> tuple[str, list[Path]]:
    """Write ``count`` CT instances of one study and series; returns (study uid, paths)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    study_uid = study_uid or generate_uid()
    series_uid = generate_uid()
    rng = np.random.default_rng(7)
    pixels = (rng.integers(0, 2000, (size, size), dtype=np.uint16)).tobytes()
    paths = []
    for i in range(count):
        ds = ct_header(
            CTImageStorage,
            study_uid,
            series_uid,
            patient_id=patient_id,
            patient_name=patient_name,
            accession=accession,
            study_date=study_date,
        )
        ds.Modality = "CT"
        ds.StationName = station
        ds.SeriesNumber = "1"
        ds.InstanceNumber = str(i + 1)
        ds.ImageType = ["ORIGINAL", "PRIMARY", "AXIAL"]
        set_monochrome_16(ds, size)
        ds.RescaleIntercept = "-1024"
        ds.RescaleSlope = "1"
        ds.WindowCenter = "40"
        ds.WindowWidth = "400"
        ds.PixelData = pixels
        path = out_dir / f"ct_{i:05d}.dcm"
        ds.save_as(path, enforce_file_format=True)
        paths.append(path)
    return study_uid, paths
