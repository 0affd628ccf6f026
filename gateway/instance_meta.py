"""Read and check the key attributes of a received DICOM dataset (header only)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from pydicom import dcmread
from pydicom.errors import InvalidDicomError

from gateway.identifiers import InvalidIdentifier, validate_uid

_TAGS = [
    "SpecificCharacterSet",
    "SOPClassUID",
    "SOPInstanceUID",
    "StudyInstanceUID",
    "SeriesInstanceUID",
    "PatientID",
    "IssuerOfPatientID",
    "PatientName",
    "PatientBirthDate",
    "PatientSex",
    "AccessionNumber",
    "StudyDate",
    "StudyTime",
    "StudyDescription",
    "Modality",
    "SeriesNumber",
    "SeriesDescription",
    "BodyPartExamined",
    "StationName",
    "InstanceNumber",
]


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


def _text(ds: object, keyword: str, limit: int = 64) -> str:
    value = getattr(ds, keyword, None)
    if value is None:
        return ""
    return str(value).strip()[:limit]


def read_instance_meta(
    path: Path, *, expected_sop_class: str, expected_sop_instance: str
) -> InstanceMeta:
    """Parse the header of a DICOM file and check it against the C-STORE request.

    Raises :class:`InvalidDataset` when the file cannot be parsed, lacks a UID, carries
    an invalid UID, or does not match the SOP class/instance named in the request.
    """
    try:
        ds = dcmread(path, stop_before_pixels=True, specific_tags=_TAGS)
    except (InvalidDicomError, ValueError, EOFError, OSError, KeyError, TypeError) as exc:
        raise InvalidDataset(f"dataset cannot be parsed: {type(exc).__name__}") from None
    except Exception as exc:  # pydicom raises many types on corrupt input
        raise InvalidDataset(f"dataset cannot be parsed: {type(exc).__name__}") from None
    try:
        transfer_syntax = validate_uid(str(ds.file_meta.TransferSyntaxUID), "transfer syntax")
        uids = {}
        for keyword in ("SOPClassUID", "SOPInstanceUID", "StudyInstanceUID", "SeriesInstanceUID"):
            raw = getattr(ds, keyword, None)
            if raw is None or not str(raw).strip():
                raise InvalidDataset(f"dataset lacks {keyword}")
            uids[keyword] = validate_uid(str(raw), keyword)
        if uids["SOPClassUID"] != expected_sop_class.rstrip("\x00 "):
            raise InvalidDataset(
                "SOP Class UID of the dataset differs from the request", mismatch=True
            )
        if uids["SOPInstanceUID"] != expected_sop_instance.rstrip("\x00 "):
            raise InvalidDataset(
                "SOP Instance UID of the dataset differs from the request", mismatch=True
            )
        return InstanceMeta(
            sop_class_uid=uids["SOPClassUID"],
            sop_instance_uid=uids["SOPInstanceUID"],
            study_uid=uids["StudyInstanceUID"],
            series_uid=uids["SeriesInstanceUID"],
            transfer_syntax=transfer_syntax,
            patient_id=_text(ds, "PatientID"),
            issuer=_text(ds, "IssuerOfPatientID"),
            patient_name=_text(ds, "PatientName", 324),
            birth_date=_text(ds, "PatientBirthDate", 8),
            sex=_text(ds, "PatientSex", 16),
            accession_number=_text(ds, "AccessionNumber"),
            study_date=_text(ds, "StudyDate", 8),
            study_time=_text(ds, "StudyTime", 16),
            study_description=_text(ds, "StudyDescription", 256),
            modality=_text(ds, "Modality", 16),
            series_number=_text(ds, "SeriesNumber", 12),
            series_description=_text(ds, "SeriesDescription", 256),
            body_part=_text(ds, "BodyPartExamined"),
            station_name=_text(ds, "StationName"),
            instance_number=_text(ds, "InstanceNumber", 12),
        )
    except InvalidIdentifier as exc:
        raise InvalidDataset(str(exc)) from None
    except InvalidDataset:
        raise
    except Exception as exc:  # a value that cannot be decoded
        raise InvalidDataset(f"dataset attribute cannot be decoded: {type(exc).__name__}") from None
