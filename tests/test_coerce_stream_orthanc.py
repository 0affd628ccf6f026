"""A matched study forwarded with the streaming correction (header re-encoded, pixel data
from the file) arrives in a real Orthanc corrected, with its history and its pixel data
byte for byte, over DICOM (sendfile) and REST (streamed upload).

Real parts: the gateway process, Orthanc, dcmtk storescu, an HL7 order over MLLP.
"""

from __future__ import annotations

import io
from datetime import date
from pathlib import Path

import pydicom
import pytest

from gateway.operations.local_orthanc import LocalOrthanc
from tests.fixtures.orders.helpers import ack_code, orm, send_all
from tests.support.ctgen import make_ct_study
from tests.support.dcmtk import storescu
from tests.support.destination import destination_for, orthanc_study, patient_id_in_orthanc
from tests.support.wait import wait_until

pytestmark = pytest.mark.integration

TODAY = date.today().strftime("%Y%m%d")


@pytest.mark.parametrize("protocol", ["dicom", "rest"])
def test_corrected_study_in_orthanc_with_history_and_identical_pixels(
    gateway_factory: type, orthanc: LocalOrthanc, tmp_path: Path, protocol: str
) -> None:
    gw = gateway_factory.make(
        {"forward": {"destinations": [destination_for(orthanc, protocol=protocol)]}}
    )
    gw.start()
    order = orm("S1", patient_id="BN200", name="TRẦN^THỊ BÌNH", placer="PL200",
                accession="ACC200", start=f"{TODAY}080000")  # fmt: skip
    assert ack_code(send_all(gw.hl7_port, [order])[0]) == "AA"
    study_uid, files = make_ct_study(tmp_path / "s", 6, size=64, patient_id="WRONG2",
                                     patient_name="TRAN^THI", accession="ACC200")  # fmt: skip
    assert storescu(gw.dicom_port, files).returncode == 0
    wait_until(lambda: patient_id_in_orthanc(orthanc, study_uid) == "BN200", 60, "corrected")
    study = orthanc_study(orthanc, study_uid)
    assert study is not None

    def instances() -> list[dict]:
        with orthanc.client() as c:
            return list(c.get(f"/studies/{study['ID']}/instances").json())

    wait_until(lambda: len(instances()) == 6, 60, "6 instances in Orthanc")
    sent = {str(d.SOPInstanceUID): d for d in map(pydicom.dcmread, files)}
    ids = instances()
    with orthanc.client() as c:
        stored = [
            pydicom.dcmread(io.BytesIO(c.get(f"/instances/{i['ID']}/file").content)) for i in ids
        ]
    assert len(stored) == 6
    for ds in stored:
        original = sent[str(ds.SOPInstanceUID)]
        assert ds.PatientID == "BN200" and str(ds.PatientName) == "TRẦN^THỊ BÌNH"
        assert ds.SpecificCharacterSet == "ISO_IR 192"
        assert ds.AccessionNumber == "ACC200"
        previous = ds.OriginalAttributesSequence[-1].ModifiedAttributesSequence[0]
        assert previous.PatientID == "WRONG2" and str(previous.PatientName) == "TRAN^THI"
        assert ds.PixelData == original.PixelData
        assert ds.SeriesInstanceUID == original.SeriesInstanceUID
