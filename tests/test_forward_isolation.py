"""One bad instance never holds up its study (issue: one bad instance, message or peer).

A real Orthanc 1.10.1 and a real gateway process. Two instances of an eight-instance study
are stored through the gateway's own service functions (the receive path will refuse such
files at the door), then their stored files are spoiled the way Orthanc refuses:

* Pixel Data of odd length (8,191 bytes): Orthanc logs ``DIMSE: Odd Fragment Length``,
  says nothing, and aborts the association after its ``DicomScpTimeout`` (lowered to
  2 s here; 30 s by default, as the gateway's DIMSE timeout);
* no Series Instance UID: Orthanc answers C-STORE status 0xA700.

The six others must reach Orthanc at once and be verified; each culprit goes DEAD on its
own after ``forward.max_attempts`` attempts (2 here: the count is checked, the number does not
matter) with Orthanc's words, shown in ``/api/studies/{uid}`` and ``/api/queue``; the
study-level retry (admin only, audited) sends them again once fixed.

SQLite only: what is proved is the sender's handling of a batch with bad instances in it;
the job bookkeeping it relies on (failure, attempts, DEAD, retry) runs on both databases in
tests/test_jobs.py and tests/test_forward.py.
"""

from __future__ import annotations

import struct
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pydicom
import pytest
from sqlalchemy import create_engine, select

from gateway.core.context import ProcessContext
from gateway.core.models import Job
from gateway.core.settings import load_settings
from gateway.intake.receive import Outcome
from gateway.operations.local_orthanc import LocalOrthanc, OrthancConfig
from gateway.process.startup import create_context
from gateway.process.wiring import install_pipeline
from tests.support.ctgen import make_ct_study
from tests.support.destination import destination_for, orthanc_sop_uids
from tests.support.gateway_proc import GatewayProcess
from tests.support.net import free_port
from tests.support.receive import receive_file
from tests.support.wait import wait_until

pytestmark = [
    pytest.mark.integration,
    pytest.mark.parametrize("db_url", ["sqlite"], indirect=True),
]

DIMSE_TIMEOUT_S = 30.0  # the destination's default
MAX_ATTEMPTS = 2
ODD = 8191


@pytest.fixture
def quick_orthanc(tmp_path: Path) -> Iterator[LocalOrthanc]:
    """A real Orthanc that aborts a stalled association after 2 s instead of 30 s (ended
    with SIGKILL, as the conftest's: its work dir is thrown away)."""
    server = LocalOrthanc(
        OrthancConfig(
            work_dir=tmp_path / "orthanc",
            http_port=free_port(),
            dicom_port=free_port(),
            extra={"DicomScpTimeout": 2},
        )
    )
    server.start()
    yield server
    server.kill()


def odd_length(good: bytes) -> bytes:
    """The same instance, its Pixel Data (the last element) 8,191 bytes long."""
    at = good.rindex(b"\xe0\x7f\x10\x00OW\x00\x00")
    return good[: at + 8] + struct.pack("<I", ODD) + b"\x01" * ODD


def without_series_uid(good: Path) -> bytes:
    ds = pydicom.dcmread(good)
    del ds.SeriesInstanceUID
    target = good.with_suffix(".noseries")
    ds.save_as(target, enforce_file_format=True)
    return target.read_bytes()


def store_through_service(gw: GatewayProcess, files: list[Path]) -> ProcessContext:
    """Store ``files`` as the gateway would (index, forward jobs), before it starts."""
    service = create_context(load_settings(gw.config_path))
    install_pipeline(service)
    for path in files:
        result = receive_file(service, path, "MODALITY")
        assert result.outcome is Outcome.STORED, result
    return service


def stored_path(service: ProcessContext, path: Path) -> Path:
    ds = pydicom.dcmread(path, stop_before_pixels=True)
    relative = service.store.relative_path(
        str(ds.StudyInstanceUID), str(ds.SeriesInstanceUID), str(ds.SOPInstanceUID)
    )
    return service.store.absolute(relative)


def orthanc_sops(orthanc: LocalOrthanc, study_uid: str) -> set[str]:
    """``orthanc_sop_uids``, or empty while Orthanc does not answer."""
    try:
        return orthanc_sop_uids(orthanc, study_uid)
    except httpx.HTTPError:
        return set()


def test_bad_instances_die_alone_and_neighbours_are_verified(
    quick_orthanc: LocalOrthanc, gateway_factory: type, tmp_path: Path, db_url: str
) -> None:
    orthanc = quick_orthanc
    cfg = {
        "forward": {
            "destinations": [destination_for(orthanc, timeout_s=DIMSE_TIMEOUT_S)],
            "max_attempts": MAX_ATTEMPTS,
        }
    }
    gw: GatewayProcess = gateway_factory.make(cfg)
    gw.headers  # noqa: B018 -- migrates the database, makes the admin's token
    study_uid, files = make_ct_study(tmp_path / "s", 8, size=64)
    sops = [str(pydicom.dcmread(f, stop_before_pixels=True).SOPInstanceUID) for f in files]
    odd_sop, refused_sop = sops[1], sops[4]
    good_odd = files[1].read_bytes()
    service = store_through_service(gw, files)
    try:
        stored_path(service, files[1]).write_bytes(odd_length(good_odd))
        stored_path(service, files[4]).write_bytes(without_series_uid(files[4]))
        neighbours = set(sops) - {odd_sop, refused_sop}

        gw.start()
        started = time.monotonic()
        wait_until(lambda: neighbours <= orthanc_sops(orthanc, study_uid), 60, "the neighbours")
        # All six in one batch with the culprits: they did not wait for a DIMSE timeout.
        assert time.monotonic() - started < DIMSE_TIMEOUT_S / 2

        def dead() -> dict[str, dict[str, Any]]:
            jobs = gw.get("/api/queue")["dead"]
            return {j["sop_instance_uid"]: j for j in jobs} if len(jobs) == 2 else {}

        by_sop = wait_until(dead, 90, "both culprits dead")
        assert set(by_sop) == {odd_sop, refused_sop}
        for job in by_sop.values():
            assert job["study_uid"] == study_uid
            assert job["attempts"] == MAX_ATTEMPTS
        assert by_sop[odd_sop]["last_error"] == (
            "pacs: association aborted by the peer while sending this instance"
        )
        assert by_sop[refused_sop]["last_error"] == "pacs: C-STORE status 0xA700"
        assert "Odd Fragment Length" in (orthanc.config.work_dir / "orthanc.log").read_text()
        page = httpx.get(f"{gw.api}/ui/queue", headers=gw.headers, timeout=30)
        assert page.status_code == 200
        for text in (odd_sop, refused_sop, "association aborted by the peer", "0xA700"):
            assert text in page.text
        assert f'data-url="/api/studies/{study_uid}/forward/retry"' in page.text

        # Nothing charged to the neighbours: each sent once, DONE.
        engine = create_engine(db_url)
        with engine.connect() as conn:
            rows = list(conn.execute(select(Job.state, Job.attempts).where(Job.kind == "forward")))
        engine.dispose()
        assert sorted(rows) == sorted([("DONE", 1)] * 6 + [("DEAD", MAX_ATTEMPTS)] * 2)

        def checked() -> dict[str, Any]:
            forwarding = gw.get(f"/api/studies/{study_uid}")["forwarding"]
            return forwarding[0] if forwarding and forwarding[0]["found"] == 6 else {}

        pacs = wait_until(checked, 60, "the study checked in Orthanc")
        assert pacs["state"] == "INCOMPLETE"
        assert pacs["expected"] == 8
        assert "2 dead" in pacs["detail"] and "6 of 8 verified" in pacs["detail"]
        assert {d["sop_instance_uid"]: d["last_error"] for d in pacs["dead"]} == {
            odd_sop: by_sop[odd_sop]["last_error"],
            refused_sop: by_sop[refused_sop]["last_error"],
        }
        assert orthanc_sops(orthanc, study_uid) == neighbours

        # The retry: refused to a radiologist; the admin's is audited and works once the
        # files are fixed.
        url = f"{gw.api}/api/studies/{study_uid}/forward/retry"
        radiologist = {"Authorization": "Bearer " + gw.user_token("rad", "radiologist")}
        assert httpx.post(url, json={}, headers=radiologist, timeout=30).status_code == 403
        stored_path(service, files[1]).write_bytes(good_odd)
        stored_path(service, files[4]).write_bytes(files[4].read_bytes())
        answer = httpx.post(url, json={"destination": "pacs"}, headers=gw.headers, timeout=30)
        assert answer.status_code == 200
        assert answer.json() == {"study_uid": study_uid, "retried": 2}
        wait_until(lambda: set(sops) <= orthanc_sops(orthanc, study_uid), 60, "the retried two")

        def verified() -> dict[str, Any]:
            forwarding = gw.get(f"/api/studies/{study_uid}")["forwarding"]
            return forwarding[0] if forwarding[0]["state"] == "VERIFIED" else {}

        pacs = wait_until(verified, 60, "the study verified")
        assert pacs["found"] == 8 and pacs["dead"] == []
        assert gw.get("/api/queue")["dead"] == []
        audit = gw.get("/api/audit", action="change.retry_study_forward")["items"]
        assert [(a["user"], a["object_id"], a["outcome"]) for a in audit] == [
            ("test-admin", study_uid, "ok")
        ]
    finally:
        service.close()
