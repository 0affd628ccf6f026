"""Correct one instance inside the PACS, keeping its UIDs: for what the gateway cannot
send again (a report, key-object selection or presentation state made in the PACS, or a
gateway instance whose local copy is purged).

The file is read from Orthanc, the order's values applied as on the forward path
(``gateway.reconciliation.coerce.apply_plan``: the replaced values go into the Original Attributes
Sequence), the result written durably to a staging file, then stored in Orthanc and the
old copy deleted. Orthanc's instance id hashes Patient ID and the UIDs: with a new
Patient ID the corrected copy is a new instance (stored first, the old one deleted
after); with the same Patient ID it is the same instance, which Orthanc replaces only
when ``OverwriteInstances`` is on, so an ``AlreadyStored`` answer means: delete, then
store again. Either way the staging file exists until the corrected copy is stored, so
a crash at any point loses nothing: the next attempt stores what is staged first.
"""

from __future__ import annotations

import os
from io import BytesIO
from pathlib import Path

from pydicom import dcmread

from dicom_nodes.identifiers import validate_uid
from gateway.forwarding.pacs_client import OrthancClient, PacsError
from gateway.reconciliation.coerce import CoercionPlan, apply_plan


def staging_dir(root: Path, destination: str, study_uid: str) -> Path:
    """Where the corrected copies of one study wait for one destination."""
    return root / "corrections" / destination / validate_uid(study_uid, "Study Instance UID")


def correct(client: OrthancClient, orthanc_id: str, plan: CoercionPlan, staging: Path) -> bool:
    """Correct one instance in Orthanc; False if it already carries the plan's values."""
    ds = dcmread(BytesIO(client.download(orthanc_id)))
    sop_uid = validate_uid(str(ds.SOPInstanceUID), "SOP Instance UID")
    if not apply_plan(ds, plan):
        return False
    buffer = BytesIO()
    ds.save_as(buffer, enforce_file_format=True)
    staged = staging / f"{sop_uid}.dcm"
    _write_durably(staged, buffer.getvalue())
    store_staged(client, staged, replaces=orthanc_id)
    return True


def store_staged(client: OrthancClient, staged: Path, replaces: str | None = None) -> None:
    """Store a staged corrected copy, remove the copy it replaces, drop the staging file."""
    data = staged.read_bytes()
    new_id, status = client.store(data)
    if status == "AlreadyStored":  # same Orthanc id, overwriting off: replace it
        client.delete_instance(new_id)
        new_id, status = client.store(data)
    if status != "Success":
        raise PacsError(f"the corrected copy was not stored ({status or 'no status'})")
    if replaces and replaces != new_id:
        client.delete_instance(replaces)
    staged.unlink()


def leftovers(staging: Path) -> list[Path]:
    """Corrected copies staged by an attempt that did not finish."""
    return sorted(staging.glob("*.dcm")) if staging.is_dir() else []


def _write_durably(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
