"""SIGTERM is prompt whatever a sender is doing, and loses nothing acknowledged.

A real gateway forwards a CT study to a real Orthanc; Orthanc is paused (SIGSTOP) in the
middle of the send, so the sender sits in a C-STORE (or a send the paused peer no longer
reads). SIGTERM must end the gateway long before the DIMSE timeout, with every job not yet
acknowledged by Orthanc back in the queue uncharged; restarted (Orthanc resumed), the
gateway delivers and verifies everything it acknowledged. SQLite and PostgreSQL.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import httpx
import pydicom
import pytest
from sqlalchemy import create_engine, select

from gateway.core.models import Job
from gateway.operations.local_orthanc import LocalOrthanc
from tests.support.ctgen import make_ct_study
from tests.support.destination import destination_for
from tests.support.gateway_proc import GatewayProcess
from tests.support.wait import wait_until

pytestmark = pytest.mark.integration

DIMSE_TIMEOUT_S = 30.0
COUNT = 150


def orthanc_count(orthanc: LocalOrthanc) -> int:
    try:
        with orthanc.client() as c:
            return int(c.get("/statistics").json()["CountInstances"])
    except httpx.HTTPError:
        return 0


def forward_jobs(db_url: str) -> list[tuple[str, int]]:
    engine = create_engine(db_url)
    with engine.connect() as conn:
        rows = conn.execute(select(Job.state, Job.attempts).where(Job.kind == "forward"))
        result = [(str(state), int(attempts)) for state, attempts in rows]
    engine.dispose()
    return result


def test_sigterm_with_orthanc_paused_mid_send(
    orthanc: LocalOrthanc, gateway_factory: type, tmp_path: Path, db_url: str
) -> None:
    dest = destination_for(orthanc, timeout_s=DIMSE_TIMEOUT_S)
    gw: GatewayProcess = gateway_factory.make({"forward": {"destinations": [dest]}})
    gw.start()
    study_uid, files = make_ct_study(tmp_path / "s", COUNT)  # 0.5 MB each
    sops = {str(pydicom.dcmread(f, stop_before_pixels=True).SOPInstanceUID) for f in files}
    modality = subprocess.Popen(
        ["storescu", "-aet", "STORESCU", "-aec", "RISGATE", "127.0.0.1", str(gw.dicom_port),
         *map(str, files)],
        env={"TCP_NODELAY": "1", "PATH": "/usr/bin:/bin"},
    )  # fmt: skip
    assert orthanc.process is not None
    pacs_pid = orthanc.process.pid
    try:
        wait_until(lambda: orthanc_count(orthanc) >= 10, 60, "forwarding under way")
        os.kill(pacs_pid, signal.SIGSTOP)
        assert modality.wait(120) == 0  # the gateway acknowledged every instance
        # The sender is now stuck on the paused Orthanc, well within its DIMSE timeout.
        assert gw.process is not None
        started = time.monotonic()
        gw.process.send_signal(signal.SIGTERM)
        gw.process.wait(DIMSE_TIMEOUT_S * 2)
        elapsed = time.monotonic() - started
        assert elapsed < DIMSE_TIMEOUT_S / 2, f"SIGTERM took {elapsed:.1f} s"
        gw.process = None
        jobs = forward_jobs(gw.db_url)
        assert len(jobs) == COUNT
        unsent = [job for job in jobs if job[0] != "DONE"]
        assert unsent, "nothing was left to send: Orthanc was paused too late"
        # Back in the queue, uncharged (not waiting for a lease to end).
        assert set(unsent) == {("PENDING", 0)}
    finally:
        os.kill(pacs_pid, signal.SIGCONT)
        if modality.poll() is None:
            modality.kill()

    gw.start()

    def delivered() -> bool:
        try:
            with orthanc.client() as c:
                found = c.post("/tools/lookup", content=study_uid).json()
                ids = [f["ID"] for f in found if f["Type"] == "Study"]
                if not ids:
                    return False
                instances = c.get(f"/studies/{ids[0]}/instances").json()
        except httpx.HTTPError:
            return False
        return {i["MainDicomTags"]["SOPInstanceUID"] for i in instances} == sops

    wait_until(delivered, 120, "every acknowledged instance in Orthanc")

    def verified() -> bool:
        forwarding = gw.get(f"/api/studies/{study_uid}")["forwarding"]
        return [f["state"] for f in forwarding] == ["VERIFIED"]

    wait_until(verified, 90, "the study verified")
    assert gw.get("/api/queue")["dead"] == []
    assert {state for state, _ in forward_jobs(gw.db_url)} == {"DONE"}
