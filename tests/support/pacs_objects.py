"""Objects a PACS creates in a study (a key-object selection, a text report), built with
pydicom as a viewer or reporting station would, to store straight into Orthanc."""

from __future__ import annotations

from io import BytesIO
from pathlib import Path

from pydicom import dcmread
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.sequence import Sequence
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

KEY_OBJECT_SELECTION = "1.2.840.10008.5.1.4.1.1.88.59"
BASIC_TEXT_SR = "1.2.840.10008.5.1.4.1.1.88.11"


def _code(value: str, scheme: str, meaning: str) -> Dataset:
    item = Dataset()
    item.CodeValue = value
    item.CodingSchemeDesignator = scheme
    item.CodeMeaning = meaning
    return item


def _base(ct_file: Path, sop_class: str, modality: str, series_number: str) -> Dataset:
    """Patient and study attributes copied from an image of the study, as a PACS does."""
    image = dcmread(ct_file, stop_before_pixels=True)
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.MediaStorageSOPClassUID = sop_class
    ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.SpecificCharacterSet = "ISO_IR 192"
    ds.SOPClassUID = sop_class
    ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID
    for keyword in ("PatientName", "PatientID", "PatientBirthDate", "PatientSex",
                    "StudyInstanceUID", "StudyDate", "StudyTime", "AccessionNumber"):  # fmt: skip
        setattr(ds, keyword, image.get(keyword, ""))
    ds.ReferringPhysicianName = ""
    ds.StudyID = "1"
    ds.Modality = modality
    ds.SeriesInstanceUID = generate_uid()
    ds.SeriesNumber = series_number
    ds.InstanceNumber = "1"
    ds.Manufacturer = "PACS"
    ds.ContentDate = image.get("StudyDate", "")
    ds.ContentTime = "120000"
    ds.ValueType = "CONTAINER"
    ds.ContinuityOfContent = "SEPARATE"
    ds.ReferencedPerformedProcedureStepSequence = Sequence()
    ds.PerformedProcedureCodeSequence = Sequence()
    return ds


def _evidence(ct_files: list[Path]) -> tuple[Sequence, list[Dataset]]:
    """The evidence sequence and one IMAGE content item per referenced image."""
    by_series: dict[tuple[str, str], list[Dataset]] = {}
    items = []
    for path in ct_files:
        image = dcmread(path, stop_before_pixels=True)
        ref = Dataset()
        ref.ReferencedSOPClassUID = image.SOPClassUID
        ref.ReferencedSOPInstanceUID = image.SOPInstanceUID
        by_series.setdefault((image.StudyInstanceUID, image.SeriesInstanceUID), []).append(ref)
        content = Dataset()
        content.RelationshipType = "CONTAINS"
        content.ValueType = "IMAGE"
        content.ReferencedSOPSequence = Sequence([ref])
        items.append(content)
    studies: dict[str, list[Dataset]] = {}
    for (study_uid, series_uid), refs in by_series.items():
        series = Dataset()
        series.SeriesInstanceUID = series_uid
        series.ReferencedSOPSequence = Sequence(refs)
        studies.setdefault(study_uid, []).append(series)
    evidence = []
    for study_uid, series_items in studies.items():
        study = Dataset()
        study.StudyInstanceUID = study_uid
        study.ReferencedSeriesSequence = Sequence(series_items)
        evidence.append(study)
    return Sequence(evidence), items


def key_object_selection(ct_files: list[Path]) -> Dataset:
    """A KO flagging ``ct_files`` "For Referring Provider" (DICOM PS3.16 CID 7010)."""
    ds = _base(ct_files[0], KEY_OBJECT_SELECTION, "KO", "901")
    evidence, images = _evidence(ct_files)
    ds.CurrentRequestedProcedureEvidenceSequence = evidence
    ds.ConceptNameCodeSequence = Sequence([_code("113002", "DCM", "For Referring Provider")])
    template = Dataset()
    template.MappingResource = "DCMR"
    template.TemplateIdentifier = "2010"
    ds.ContentTemplateSequence = Sequence([template])
    ds.ContentSequence = Sequence(images)
    return ds


def text_report(ct_files: list[Path], text: str) -> Dataset:
    """A Basic Text SR: the radiologist's report on the study."""
    ds = _base(ct_files[0], BASIC_TEXT_SR, "SR", "902")
    evidence, _ = _evidence(ct_files)
    ds.CurrentRequestedProcedureEvidenceSequence = evidence
    ds.ConceptNameCodeSequence = Sequence([_code("11528-7", "LN", "Radiology Report")])
    ds.CompletionFlag = "COMPLETE"
    ds.VerificationFlag = "UNVERIFIED"
    finding = Dataset()
    finding.RelationshipType = "CONTAINS"
    finding.ValueType = "TEXT"
    finding.ConceptNameCodeSequence = Sequence([_code("121071", "DCM", "Finding")])
    finding.TextValue = text
    ds.ContentSequence = Sequence([finding])
    return ds


def encoded(ds: Dataset) -> bytes:
    buffer = BytesIO()
    ds.save_as(buffer, enforce_file_format=True)
    return buffer.getvalue()
