"""Read and check the key attributes of a received DICOM dataset (header only)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from pydicom import dcmread

from dicom_nodes.identifiers import InvalidIdentifier, validate_uid
from gateway.intake.dicom_header import WANTED, read_header


class InvalidDataset(Exception):
    """A dataset the gateway will not store; ``reason`` is safe to log (no patient data)."""

    def __init__(self, reason: str, *, mismatch: bool = False) -> None:
        super().__init__(reason)
        self.reason = reason
        self.mismatch = mismatch


@dataclass(frozen=True, slots=True)
class InstanceMeta:
    sop_class_uid: str
    sop_instance_uid: str
    study_uid: str
    series_uid: str
    transfer_syntax: str
    patient_id: str = ""
    issuer: str = ""
    patient_name: str = ""
    birth_date: str = ""
    sex: str = ""
    accession_number: str = ""
    study_date: str = ""
    study_time: str = ""
    study_description: str = ""
    modality: str = ""
    series_number: str = ""
    series_description: str = ""
    body_part: str = ""
    station_name: str = ""
    instance_number: str = ""


def read_instance_meta(
    path: Path, *, expected_sop_class: str, expected_sop_instance: str
) -> InstanceMeta:
    """Parse the header of a DICOM file and check it against the C-STORE request.

    Raises :class:`InvalidDataset` when the file cannot be parsed, lacks a UID, carries
    an invalid UID, or does not match the SOP class/instance named in the request.
    """
    fast = read_header(path)
    if fast is not None:
        return _from_values(fast[0], fast[1], expected_sop_class, expected_sop_instance)
    try:
        ds = dcmread(path, stop_before_pixels=True)
    except Exception as exc:  # pydicom raises many types on corrupt input
        raise InvalidDataset(f"dataset cannot be parsed: {type(exc).__name__}") from None
    try:
        transfer_syntax = str(ds.file_meta.TransferSyntaxUID)
        values = {}
        for keyword in WANTED.values():
            element = ds.get(keyword)
            values[keyword] = "" if element is None else str(element)
    except Exception as exc:  # a value that cannot be decoded
        raise InvalidDataset(f"dataset attribute cannot be decoded: {type(exc).__name__}") from None
    return _from_values(transfer_syntax, values, expected_sop_class, expected_sop_instance)


def _from_values(
    transfer_syntax: str,
    values: dict[str, str],
    expected_sop_class: str,
    expected_sop_instance: str,
) -> InstanceMeta:
    def text(keyword: str, limit: int = 64) -> str:
        return values.get(keyword, "").strip()[:limit]

    try:
        transfer_syntax = validate_uid(transfer_syntax, "transfer syntax")
        uids = {}
        for keyword in ("SOPClassUID", "SOPInstanceUID", "StudyInstanceUID", "SeriesInstanceUID"):
            raw = values.get(keyword, "").strip()
            if not raw:
                raise InvalidDataset(f"dataset lacks {keyword}")
            uids[keyword] = validate_uid(raw, keyword)
        if uids["SOPClassUID"] != expected_sop_class.rstrip("\x00 "):
            raise InvalidDataset(
                "SOP Class UID of the dataset differs from the request", mismatch=True
            )
        if uids["SOPInstanceUID"] != expected_sop_instance.rstrip("\x00 "):
            raise InvalidDataset(
                "SOP Instance UID of the dataset differs from the request", mismatch=True
            )
    except InvalidIdentifier as exc:
        raise InvalidDataset(str(exc)) from None
    return InstanceMeta(
        sop_class_uid=uids["SOPClassUID"],
        sop_instance_uid=uids["SOPInstanceUID"],
        study_uid=uids["StudyInstanceUID"],
        series_uid=uids["SeriesInstanceUID"],
        transfer_syntax=transfer_syntax,
        patient_id=text("PatientID"),
        issuer=text("IssuerOfPatientID"),
        patient_name=text("PatientName", 324),
        birth_date=text("PatientBirthDate", 8),
        sex=text("PatientSex", 16),
        accession_number=text("AccessionNumber"),
        study_date=text("StudyDate", 8),
        study_time=text("StudyTime", 16),
        study_description=text("StudyDescription", 256),
        modality=text("Modality", 16),
        series_number=text("SeriesNumber", 12),
        series_description=text("SeriesDescription", 256),
        body_part=text("BodyPartExamined"),
        station_name=text("StationName"),
        instance_number=text("InstanceNumber", 12),
    )
