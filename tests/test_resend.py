"""Correcting a study already in the PACS keeps the objects the PACS made itself.

A key-object selection and a text report are stored straight into Orthanc (REST, as a
viewer or reporting station would); then a person links the study to its order, or an
A40 merge and an A08 update change the patient. Every instance, the PACS's own included,
ends under the corrected patient with its UIDs and the Original Attributes Sequence.
Orthanc runs with ``OverwriteInstances`` off (a hospital's may be), so nothing relies
on it. Real parts: the gateway process, Orthanc, dcmtk storescu and dsrdump, HL7 over
MLLP, SQLite and PostgreSQL.
"""

from __future__ import annotations

import subprocess
import time
from datetime import date, timedelta
from pathlib import Path

import httpx
import pytest
from sqlalchemy import create_engine, update

from gateway.core.models import Job, JobState, utcnow
from gateway.operations.local_orthanc import LocalOrthanc
from tests.fixtures.orders.helpers import ack_code, adt, orm, send_all
from tests.support.ctgen import make_ct_study
from tests.support.dcmtk import storescu
from tests.support.destination import destination_for
from tests.support.gateway_proc import GatewayProcess
from tests.support.pacs_objects import encoded, key_object_selection, text_report
from tests.support.wait import wait_until

pytestmark = pytest.mark.integration

TODAY = date.today().strftime("%Y%m%d")


def _gateway(gateway_factory: type, pacs: LocalOrthanc) -> GatewayProcess:
    gw: GatewayProcess = gateway_factory.make(
        {"forward": {"destinations": [destination_for(pacs)]}}
    )
    gw.start()
    return gw


def _holdings(pacs: LocalOrthanc, study_uid: str) -> dict[str, str]:
    """SOP Instance UID -> Patient ID of every instance Orthanc holds in the study
    (empty while a study resource disappears between two calls)."""
    found: dict[str, str] = {}
    with pacs.client() as c:
        for item in c.post("/tools/lookup", content=study_uid).json():
            if item["Type"] != "Study":
                continue
            study = c.get(f"/studies/{item['ID']}")
            instances = c.get(f"/studies/{item['ID']}/instances")
            if study.status_code == 404 or instances.status_code == 404:
                return {}
            patient_id = study.json()["PatientMainDicomTags"]["PatientID"]
            for instance in instances.json():
                found[instance["MainDicomTags"]["SOPInstanceUID"]] = patient_id
    return found


def _tags(pacs: LocalOrthanc, sop_uid: str) -> dict:
    """The instance's tags; empty while it is absent (deleted, not yet stored again)."""
    with pacs.client() as c:
        for found in c.post("/tools/lookup", content=sop_uid).json():
            if found["Type"] == "Instance":
                answer = c.get(f"/instances/{found['ID']}/tags", params={"simplify": ""})
                return dict(answer.json()) if answer.status_code == 200 else {}
    return {}


def _valid_sr(pacs: LocalOrthanc, sop_uid: str, out: Path) -> bool:
    """dcmtk's dsrdump reads the stored object as a valid SR document."""
    with pacs.client() as c:
        [found] = [
            f for f in c.post("/tools/lookup", content=sop_uid).json() if f["Type"] == "Instance"
        ]
        out.write_bytes(c.get(f"/instances/{found['ID']}/file").content)
    return subprocess.run(["dsrdump", "-q", str(out)], capture_output=True).returncode == 0


def _store_pacs_objects(pacs: LocalOrthanc, files: list[Path]) -> tuple[str, str]:
    """A KO and an SR made in the PACS (straight into Orthanc); their SOP Instance UIDs."""
    ko = key_object_selection(files[:2])
    sr = text_report(files, "Không thấy tổn thương khu trú.")
    with pacs.client() as c:
        for ds in (ko, sr):
            answer = c.post(
                "/instances", content=encoded(ds), headers={"Content-Type": "application/dicom"}
            )
            assert answer.status_code == 200 and answer.json()["Status"] == "Success"
    return str(ko.SOPInstanceUID), str(sr.SOPInstanceUID)


def _forwarded(gw: GatewayProcess, count: int) -> bool:
    return bool(gw.get("/api/queue")["counts"].get("forward") == {"DONE": count})


def _all_under(pacs: LocalOrthanc, study_uid: str, sops: set[str], patient_id: str) -> bool:
    held = _holdings(pacs, study_uid)
    return set(held) == sops and set(held.values()) == {patient_id}


def _corrected_from(tags: dict, old_patient_id: str) -> dict:
    """The last Original Attributes Sequence item; checks it names the old Patient ID."""
    item = tags["OriginalAttributesSequence"][-1]
    assert item["ModifyingSystem"] == "RISGATE"
    originals: dict = item["ModifiedAttributesSequence"][0]
    assert originals["PatientID"] == old_patient_id
    return originals


def test_link_keeps_pacs_objects(gateway_factory: type, pacs: LocalOrthanc, tmp_path: Path) -> None:
    gw = _gateway(gateway_factory, pacs)  # reconcile.unmatched = "forward": sent as received
    study_uid, files = make_ct_study(tmp_path / "s", 6, size=32, patient_id="WRONG7",
                                     patient_name="TRAN^THI", accession="NOPE7")  # fmt: skip
    assert storescu(gw.dicom_port, files).returncode == 0
    wait_until(lambda: _forwarded(gw, 6), 60, "uncorrected study forwarded")
    ko_uid, sr_uid = _store_pacs_objects(pacs, files)
    sops = set(_holdings(pacs, study_uid))
    assert len(sops) == 8 and {ko_uid, sr_uid} <= sops

    order = orm("L1", patient_id="BN700", name="TRẦN^THỊ MAI", placer="PL700",
                accession="ACC700", start=f"{TODAY}090000")  # fmt: skip
    assert ack_code(send_all(gw.hl7_port, [order])[0]) == "AA"
    ok = httpx.post(
        f"{gw.api}/api/studies/{study_uid}/link",
        json={"accession_number": "ACC700"},
        headers=gw.headers,
    )
    assert ok.status_code == 200, ok.text

    wait_until(lambda: _all_under(pacs, study_uid, sops, "BN700"), 90, "study corrected")
    wait_until(lambda: _forwarded(gw, 6), 60, "corrected copies sent and verified")
    with pacs.client() as c:
        stats = c.get("/statistics").json()
    assert (stats["CountPatients"], stats["CountStudies"], stats["CountInstances"]) == (1, 1, 8)
    for sop_uid in sops:
        tags = _tags(pacs, sop_uid)
        assert tags["PatientName"] == "TRẦN^THỊ MAI" and tags["AccessionNumber"] == "ACC700"
        originals = _corrected_from(tags, "WRONG7")
        assert originals["PatientName"] == "TRAN^THI"
    ko = _tags(pacs, ko_uid)
    assert ko["Modality"] == "KO" and len(ko["ContentSequence"]) == 2  # content untouched
    assert _valid_sr(pacs, ko_uid, tmp_path / "ko.dcm")
    assert _valid_sr(pacs, sr_uid, tmp_path / "sr.dcm")
    counts = gw.get("/api/queue")["counts"]
    assert set(counts["resend"]) == {"DONE"}


def test_merge_then_update_keep_pacs_objects(
    gateway_factory: type, pacs: LocalOrthanc, tmp_path: Path
) -> None:
    gw = _gateway(gateway_factory, pacs)
    order = orm("M1", patient_id="BN800", name="ĐỖ^MINH^TUẤN", placer="PL800",
                accession="ACC800", start=f"{TODAY}120000")  # fmt: skip
    assert ack_code(send_all(gw.hl7_port, [order])[0]) == "AA"
    study_uid, files = make_ct_study(tmp_path / "s", 5, size=32, patient_id="BN800",
                                     accession="ACC800")  # fmt: skip
    assert storescu(gw.dicom_port, files).returncode == 0
    wait_until(lambda: _forwarded(gw, 5), 60, "study forwarded")
    ko_uid, sr_uid = _store_pacs_objects(pacs, files)
    sops = set(_holdings(pacs, study_uid))
    assert len(sops) == 7

    merge = adt("M2", "A40", patient_id="BN801", name="ĐỖ^MINH^TUẤN", prior="BN800")
    assert ack_code(send_all(gw.hl7_port, [merge])[0]) == "AA"
    wait_until(lambda: _all_under(pacs, study_uid, sops, "BN801"), 90, "merged patient id")
    for sop_uid in (ko_uid, sr_uid):
        _corrected_from(_tags(pacs, sop_uid), "BN800")

    # Same Patient ID, new name: Orthanc keeps the instance ids, overwriting is off.
    update = adt("M3", "A08", patient_id="BN801", name="ĐỖ^MINH^TUẤN ANH")
    assert ack_code(send_all(gw.hl7_port, [update])[0]) == "AA"

    def renamed() -> bool:  # the gateway's instances are absent a moment: deleted, then sent
        if not _all_under(pacs, study_uid, sops, "BN801"):
            return False
        return {_tags(pacs, s).get("PatientName") for s in sops} == {"ĐỖ^MINH^TUẤN ANH"}

    wait_until(renamed, 90, "updated name on every instance")
    wait_until(lambda: _forwarded(gw, 5), 60, "corrected copies verified")
    for sop_uid in (ko_uid, sr_uid):
        originals = _tags(pacs, sop_uid)["OriginalAttributesSequence"][-1][
            "ModifiedAttributesSequence"
        ][0]
        assert originals["PatientName"] == "ĐỖ^MINH^TUẤN"
    assert _valid_sr(pacs, ko_uid, tmp_path / "ko.dcm")
    assert _valid_sr(pacs, sr_uid, tmp_path / "sr.dcm")
    with pacs.client() as c:
        assert c.get("/statistics").json()["CountInstances"] == 7


def _expire_leases(gw: GatewayProcess) -> None:
    """What the lease's end does (``jobs.claim``): RUNNING jobs of the killed run are due."""
    engine = create_engine(gw.db_url)
    with engine.begin() as conn:
        conn.execute(
            update(Job)
            .where(Job.state == JobState.RUNNING)
            .values(next_attempt_at=utcnow() - timedelta(seconds=1))
        )
    engine.dispose()


def test_kill_during_correction_loses_nothing(
    gateway_factory: type, pacs: LocalOrthanc, tmp_path: Path
) -> None:
    gw = _gateway(gateway_factory, pacs)
    study_uid, files = make_ct_study(tmp_path / "s", 40, size=32, patient_id="WRONG9",
                                     accession="NOPE9")  # fmt: skip
    assert storescu(gw.dicom_port, files).returncode == 0
    wait_until(lambda: _forwarded(gw, 40), 90, "uncorrected study forwarded")
    ko_uid, sr_uid = _store_pacs_objects(pacs, files)
    sops = set(_holdings(pacs, study_uid))
    order = orm("K1", patient_id="BN900", name="VŨ^THỊ^LAN", placer="PL900",
                accession="ACC900", start=f"{TODAY}090000")  # fmt: skip
    assert ack_code(send_all(gw.hl7_port, [order])[0]) == "AA"
    ok = httpx.post(
        f"{gw.api}/api/studies/{study_uid}/link",
        json={"accession_number": "ACC900"},
        headers=gw.headers,
    )
    assert ok.status_code == 200, ok.text

    # Kill the gateway as soon as the correction has deleted something in the PACS.
    deadline = time.monotonic() + 60
    while len(_holdings(pacs, study_uid)) == len(sops):
        assert time.monotonic() < deadline, "the correction did not start"
    gw.kill()
    assert {ko_uid, sr_uid} <= set(_holdings(pacs, study_uid))  # the PACS's objects stay
    _expire_leases(gw)
    gw.start()
    wait_until(lambda: _all_under(pacs, study_uid, sops, "BN900"), 120, "corrected after restart")
    wait_until(lambda: _forwarded(gw, 40), 60, "every corrected copy verified")
    for sop_uid in (ko_uid, sr_uid):
        _corrected_from(_tags(pacs, sop_uid), "WRONG9")
