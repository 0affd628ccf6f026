"""Spliced correction (gateway/reconciliation/coerce_splice.py): the head spliced from the
file's bytes and the per-study corrected elements decodes, with the file's untouched tail,
to exactly what the full re-encoding (``dcmread``, ``apply_plan``, pydicom's encoding)
produces; and it is taken (not declined) wherever it can be.

Generated instances (hypothesis): implicit and explicit VR little endian, heads with
elements of many VRs (text, person names, multi-valued strings, binary numbers, a
private block, sequences of defined and undefined length, a head longer than the first
read), touched elements present, absent (inserted in tag order), equal to the order's
or not, odd-length values, character sets with and without a change to UTF-8, and
generated plans (Vietnamese names, odd lengths, empty values). Each example corrects two
instances of a study with one :class:`StudyCorrection`, so the second may come from its
cache.
"""

from __future__ import annotations

import warnings
from datetime import UTC, datetime
from pathlib import Path

import pydicom
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from pydicom.datadict import tag_for_keyword
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.sequence import Sequence
from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian, ImplicitVRLittleEndian

from gateway.reconciliation.coerce import CoercionPlan
from gateway.reconciliation.coerce_splice import (
    FIRST_READ,
    Decline,
    StudyCorrection,
    _Short,
    walk_head,
)
from gateway.reconciliation.coerce_stream import corrected_file
from tests.test_coerce_stream import _assert_same

pytestmark = pytest.mark.unit

NOW = datetime(2026, 12, 3, 8, 0, tzinfo=UTC)
STUDY_UID = "1.2.826.0.1.3680043.8.498.1"
SERIES_UID = "1.2.826.0.1.3680043.8.498.2"

# Text for each character set: what it can encode (None: the default repertoire).
TEXTS = {
    None: ["", "HEAD", "CT CHEST W/O", "KOPF^A"],
    "ISO_IR 100": ["", "HEAD", "Müller^Jürgen", "Kopf é"],
    "ISO_IR 192": ["", "HEAD", "NGUYỄN^VĂN", "Sọ não", "Müller"],
}

plans = st.builds(
    lambda name, pid, issuer, birth, sex, accession, description, rp, step: CoercionPlan(
        values={
            k: v
            for k, v in {
                "PatientName": name,
                "PatientID": pid,
                "IssuerOfPatientID": issuer,
                "PatientBirthDate": birth,
                "PatientSex": sex,
                "AccessionNumber": accession,
                "RequestedProcedureDescription": description,
            }.items()
            if v or k == "IssuerOfPatientID"
        },
        requested_procedure_id=rp,
        scheduled_step_id=step,
    ),
    name=st.sampled_from(["NGUYỄN^VĂN AN", "TRẦN^THỊ BÌNH", "DOE^JOHN", "LE^A", "NG"]),
    pid=st.sampled_from(["BN1", "BN100", "BN1000"]),
    issuer=st.sampled_from(["", "HOSP", "BV1"]),
    birth=st.sampled_from(["19850704", ""]),
    sex=st.sampled_from(["M", "F", "O", ""]),
    accession=st.sampled_from(["ACC1", "ACC10"]),
    description=st.sampled_from(["", "CT sọ não", "CT HEAD", "MRI"]),
    rp=st.sampled_from(["", "RP1", "RP100"]),
    step=st.sampled_from(["", "SPS1"]),
)


def _item(**values: object) -> Dataset:
    item = Dataset()
    for keyword, value in values.items():
        setattr(item, keyword, value)
    return item


@st.composite
def instances(draw: st.DrawFn, charset: str | None, syntax: str) -> Dataset:
    """One CT instance of the study, its head drawn element by element."""
    texts = st.sampled_from(TEXTS[charset])
    maybe = st.booleans()
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.MediaStorageSOPClassUID = CTImageStorage
    ds.file_meta.MediaStorageSOPInstanceUID = pydicom.uid.generate_uid()
    ds.file_meta.TransferSyntaxUID = syntax
    if draw(maybe):
        ds.add_new(0x00080000, "UL", 0)  # stale group lengths
        ds.add_new(0x00100000, "UL", 0)
    if charset:
        ds.SpecificCharacterSet = charset
    ds.ImageType = ["ORIGINAL", "PRIMARY", "AXIAL"]
    ds.SOPClassUID = CTImageStorage
    ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID
    ds.StudyDate = "20261203"
    if draw(maybe):
        ds.AccessionNumber = draw(st.sampled_from(["ACC1", "ACC10", "X", ""]))
    ds.Modality = "CT"
    if draw(maybe):
        ds.InstitutionName = draw(texts)
    if draw(maybe):
        ds.ReferringPhysicianName = draw(texts)
    if draw(maybe):
        ds.StudyDescription = draw(texts)
    if draw(maybe):  # a sequence of UIDs, maybe of undefined length
        ref = _item(ReferencedSOPClassUID=CTImageStorage, ReferencedSOPInstanceUID="1.2.3.4")
        ds.ReferencedImageSequence = Sequence([ref, _item(ReferencedSOPClassUID="1.2")])
        ds["ReferencedImageSequence"].is_undefined_length = draw(maybe)
        ref.is_undefined_length_sequence_item = draw(maybe)
    if draw(maybe):  # a sequence with text in it
        ds.ProcedureCodeSequence = Sequence(
            [_item(CodeValue="CT01", CodingSchemeDesignator="L", CodeMeaning=draw(texts))]
        )
        ds["ProcedureCodeSequence"].is_undefined_length = draw(maybe)
    if draw(maybe):
        ds.add_new(0x00090010, "LO", "ACME 1.0")  # a private block
        ds.add_new(0x00091001, "OB", draw(st.binary(min_size=0, max_size=9)))
        ds.add_new(0x00091002, "LO", draw(texts))
    ds.PatientName = draw(st.sampled_from(["TYPO", "DOE^JOHN", *TEXTS[charset][1:]]))
    if draw(maybe):
        ds.PatientID = draw(st.sampled_from(["BN1", "BN100", "WRONG"]))
    if draw(maybe):
        ds.IssuerOfPatientID = draw(st.sampled_from(["", "HOSP", "OTHER"]))
    if draw(maybe):
        ds.PatientBirthDate = draw(st.sampled_from(["19850704", "19800101", ""]))
    if draw(maybe):
        ds.PatientSex = draw(st.sampled_from(["M", "F", "O", ""]))
    if draw(maybe):
        ds.PatientAge = "041Y"
    if draw(maybe):
        ds.PatientComments = draw(texts)
    if draw(maybe):
        ds.SliceThickness = "0.625"
        ds.CTDIvol = draw(st.floats(0, 100, allow_nan=False))
    ds.StudyInstanceUID = STUDY_UID
    ds.SeriesInstanceUID = SERIES_UID
    ds.InstanceNumber = draw(st.integers(1, 9999))
    ds.ImagePositionPatient = ["-125.0", "-125.0", str(draw(st.integers(-500, 500)))]
    if draw(maybe):
        ds.ImageComments = draw(texts)
    ds.Rows = ds.Columns = 2
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 12, 11, 0
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.PixelSpacing = ["0.48828125", "0.48828125"]
    if draw(st.integers(0, 9)) == 0:  # a head longer than the first read (a CSA-like block)
        ds.add_new(0x00290010, "LO", "SIEMENS CSA HEADER")
        ds.add_new(0x00291010, "OB", b"\x01\x02" * (FIRST_READ // 2 + 100))
    if draw(maybe):
        ds.RequestedProcedureDescription = draw(texts)
    if draw(maybe):
        ds.RequestAttributesSequence = Sequence(
            [_item(RequestedProcedureID=draw(st.sampled_from(["RP1", "RP9"])))]
        )
        ds["RequestAttributesSequence"].is_undefined_length = draw(maybe)
    if draw(maybe):  # corrected before: the history is kept
        old = _item(PatientID="OLD", PatientName=draw(texts))
        history = _item(ModifyingSystem="OTHER", ModifiedAttributesSequence=Sequence([old]))
        ds.OriginalAttributesSequence = Sequence([history])
    ds.add_new(0x7FE00010, "OW", draw(st.binary(min_size=8, max_size=8)))
    return ds


def _save(ds: Dataset, path: Path) -> Path:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ds.save_as(path, enforce_file_format=True)
    return path


def _kept_text_not_ascii(ds: Dataset, plan: CoercionPlan) -> bool:
    """Whether an element the splice keeps (not touched) holds non-ASCII text, also
    inside a sequence: such a head cannot be kept as bytes when the charset changes."""
    touched = {0x00080005, 0x00400275, 0x04000561} | {tag_for_keyword(k) for k in plan.values}

    def text(d: Dataset) -> bool:
        for elem in d:
            if elem.VR == "SQ":
                if any(text(item) for item in elem.value):
                    return True
            elif isinstance(elem.value, bytes):
                continue
            elif not str(elem.value).isascii():
                return True
        return False

    return any(
        text(Dataset({e.tag: e})) for e in ds if e.tag not in touched and e.tag <= 0x04000561
    )


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(data=st.data(), plan=plans)
def test_spliced_correction_equals_the_full_reencoding(
    tmp_path: Path, data: st.DataObject, plan: CoercionPlan
) -> None:
    charset = data.draw(st.sampled_from([None, "ISO_IR 100", "ISO_IR 192"]))
    syntax = data.draw(st.sampled_from([ImplicitVRLittleEndian, ExplicitVRLittleEndian]))
    correction = StudyCorrection(plan, NOW)
    for n in range(2):  # two instances of the study: the second may use the cache
        ds = data.draw(instances(charset, syntax))
        path = _save(ds, tmp_path / f"i{n}.dcm")
        spliced = correction.splice(path)
        event("spliced" if spliced is not None else "declined: kept text")
        if spliced is None:
            # Declined only when kept text cannot stay as bytes in UTF-8.
            assert charset != "ISO_IR 192" and not all(v.isascii() for v in plan.values.values())
            assert _kept_text_not_ascii(ds, plan)
        headed = corrected_file(path, correction)
        assert headed is not None  # the pixel data is all of the tail: never the full path
        _assert_same(path, plan, headed)
        file = path.read_bytes()
        assert file[headed.tail_offset :].startswith(b"\xe0\x7f\x10\x00")  # the pixel data
        if spliced is not None:
            assert headed.head == spliced.head


def test_head_walk_stops_before_the_tail_and_skips_undefined_lengths(tmp_path: Path) -> None:
    ds = Dataset()
    ds.PatientName = "A"
    ds.ReferencedImageSequence = Sequence([_item(ReferencedSOPInstanceUID="1.2")])
    ds["ReferencedImageSequence"].is_undefined_length = True
    ds.Rows = 2
    ds.add_new(0x7FE00010, "OW", b"\0" * 8)
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.file_meta.MediaStorageSOPClassUID = CTImageStorage
    ds.file_meta.MediaStorageSOPInstanceUID = "1.2.3"
    data = _save(ds, tmp_path / "w.dcm").read_bytes()
    start = data.index(b"\x08\x00\x40\x11SQ")
    elements, tail = walk_head(data, start, implicit=False)
    assert [tag for tag, _, _ in elements] == [0x00081140, 0x00100010, 0x00280010]
    assert data[elements[1][1] :].startswith(b"\x10\x00\x10\x00PN")
    assert data[tail:].startswith(b"\xe0\x7f\x10\x00OW")
    # Cut inside the head: more bytes are needed, unless the file ends there.
    with pytest.raises(_Short):
        walk_head(data[: tail - 4], start, implicit=False, whole=False)
    with pytest.raises(Decline):
        walk_head(data[: elements[0][2] - 4], start, implicit=False, whole=True)


def test_cache_is_per_touched_bytes(tmp_path: Path) -> None:
    """Two instances of a study whose patient elements differ are each corrected with
    their own originals (the cache is keyed by the touched elements' bytes)."""
    plan = CoercionPlan(values={"PatientID": "BN1", "PatientName": "NGUYỄN^VĂN AN"})
    correction = StudyCorrection(plan, NOW)
    for n, old_id in enumerate(["WRONG1", "WRONG22", "WRONG1"]):
        ds = Dataset()
        ds.file_meta = FileMetaDataset()
        ds.file_meta.TransferSyntaxUID = ImplicitVRLittleEndian
        ds.file_meta.MediaStorageSOPClassUID = CTImageStorage
        ds.file_meta.MediaStorageSOPInstanceUID = f"1.2.3.{n}"
        ds.PatientName = "TYPO"
        ds.PatientID = old_id
        ds.add_new(0x7FE00010, "OW", b"\0" * 8)
        path = _save(ds, tmp_path / f"c{n}.dcm")
        headed = corrected_file(path, correction)
        assert headed is not None
        _assert_same(path, plan, headed)
        streamed = pydicom.dcmread(
            pydicom.filebase.DicomBytesIO(
                path.read_bytes()[: headed.dataset_offset]
                + headed.head
                + path.read_bytes()[headed.tail_offset :]
            )
        )
        previous = streamed.OriginalAttributesSequence[0].ModifiedAttributesSequence[0]
        assert previous.PatientID == old_id
        assert streamed.SpecificCharacterSet == "ISO_IR 192"
    assert len(correction._cache) == 2
