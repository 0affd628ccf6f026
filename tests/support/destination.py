"""A gateway forward destination (TOML table) pointing at a local Orthanc, and what it holds."""

from __future__ import annotations

from gateway.operations.local_orthanc import LocalOrthanc


def destination_for(orthanc: LocalOrthanc, **extra: object) -> dict[str, object]:
    """A gateway destination (TOML table) pointing at ``orthanc``."""
    cfg = orthanc.config
    dest: dict[str, object] = {
        "name": "pacs",
        "protocol": "dicom",
        "host": "127.0.0.1",
        "port": cfg.dicom_port,
        "ae_title": cfg.aet,
        "url": cfg.url,
        "username": cfg.username,
        "password": cfg.password,
    }
    dest.update(extra)
    return dest


def orthanc_sop_uids(orthanc: LocalOrthanc, study_uid: str) -> set[str]:
    """SOP Instance UIDs Orthanc holds for ``study_uid`` (empty if it has no such study)."""
    with orthanc.client() as c:
        found = c.post("/tools/lookup", content=study_uid).json()
        ids = [f["ID"] for f in found if f["Type"] == "Study"]
        if not ids:
            return set()
        return {
            i["MainDicomTags"]["SOPInstanceUID"]
            for i in c.get(f"/studies/{ids[0]}/instances").json()
        }


def orthanc_study(orthanc: LocalOrthanc, study_uid: str) -> dict | None:
    """Orthanc's record of ``study_uid``, or None (absent, or moving: a correction that
    changes the patient id gives the study a new Orthanc id, so the one just looked up
    may be gone by the time it is read)."""
    with orthanc.client() as c:
        found = [
            f for f in c.post("/tools/lookup", content=study_uid).json() if f["Type"] == "Study"
        ]
        if len(found) != 1:
            return None
        study = c.get(f"/studies/{found[0]['ID']}")
        return study.json() if study.status_code == 200 else None


def patient_id_in_orthanc(orthanc: LocalOrthanc, study_uid: str) -> str | None:
    study = orthanc_study(orthanc, study_uid)
    return study["PatientMainDicomTags"].get("PatientID") if study else None
