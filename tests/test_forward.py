"""Forwarding to a real Orthanc through the durable queue (issue: forward every study)."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import pydicom
import pytest
from sqlalchemy import create_engine, select

from gateway.core.models import Job
from gateway.operations.local_orthanc import LocalOrthanc
from tests.support.ctgen import make_ct_study
from tests.support.dcmtk import storescu, storescu_acknowledged
from tests.support.destination import destination_for, orthanc_sop_uids
from tests.support.gateway_proc import GatewayProcess
from tests.support.tools import require
from tests.support.wait import wait_until

pytestmark = pytest.mark.integration


def _orthanc_has(orthanc: LocalOrthanc, study_uid: str, uids: set[str]) -> Callable[[], bool]:
    def check() -> bool:
        try:
            return uids <= orthanc_sop_uids(orthanc, study_uid)
        except httpx.HTTPError:
            return False

    return check


def _jobs(db_url: str) -> list[Job]:
    engine = create_engine(db_url)
    with engine.connect() as conn:
        rows = list(conn.execute(select(Job.kind, Job.state, Job.attempts, Job.last_error)))
    engine.dispose()
    return rows  # type: ignore[return-value]


def _received(gw: GatewayProcess) -> int:
    """Forward jobs queued so far: one per instance the gateway has stored."""
    return sum(gw.get("/api/queue")["counts"].get("forward", {}).values())


def _all_dealt_with(db_url: str, n: int) -> bool:
    """All ``n`` forward jobs are DONE or carry the error of an attempt (Orthanc down)."""
    forward = [j for j in _jobs(db_url) if j[0] == "forward"]
    return len(forward) == n and all(state == "DONE" or error for _, state, _, error in forward)


def test_study_complete_and_verified_in_orthanc(
    orthanc: LocalOrthanc, gateway_factory: type, tmp_path: Path
) -> None:
    # Two receiver processes, three sender associations: every instance once, verified.
    dest = {**destination_for(orthanc), "associations": 3}
    gw = gateway_factory.make({"dicom": {"processes": 2}, "forward": {"destinations": [dest]}})
    gw.start()
    study_uid, files = make_ct_study(tmp_path / "s", 300, size=64)
    assert storescu(gw.dicom_port, files).returncode == 0
    sops = {pydicom.dcmread(f, stop_before_pixels=True).SOPInstanceUID for f in files}
    wait_until(_orthanc_has(orthanc, study_uid, sops), 90, "300 instances in Orthanc")
    assert orthanc_sop_uids(orthanc, study_uid) == sops

    def verified() -> bool:
        fwd = gw.get(f"/api/studies/{study_uid}")["forwarding"]
        return bool(fwd) and fwd[0]["state"] == "VERIFIED"

    wait_until(verified, 60, "verification")
    detail = gw.get(f"/api/studies/{study_uid}")
    assert detail["forwarding"][0] == {
        **detail["forwarding"][0],
        "destination": "pacs",
        "expected": 300,
        "found": 300,
    }
    queue = gw.get("/api/queue")
    assert queue["counts"]["forward"] == {"DONE": 300}
    assert queue["dead"] == []


def test_orthanc_down_before_and_during_send(
    orthanc: LocalOrthanc, gateway_factory: type, tmp_path: Path, db_url: str
) -> None:
    gw = gateway_factory.make({"forward": {"destinations": [destination_for(orthanc)]}})
    orthanc.stop()
    gw.start()
    study_uid, files = make_ct_study(tmp_path / "s", 200, size=64)
    assert storescu(gw.dicom_port, files[:80]).returncode == 0  # PACS down: kept and queued
    orthanc.start()
    require("storescu")
    proc = subprocess.Popen(
        [
            "storescu",
            "-aet",
            "STORESCU",
            "-aec",
            "RISGATE",
            "127.0.0.1",
            str(gw.dicom_port),
            *map(str, files[80:]),
        ],
        env={"TCP_NODELAY": "1", "PATH": "/usr/bin:/bin"},
    )
    wait_until(lambda: _received(gw) > 80, 60, "the second send under way")
    orthanc.stop()  # down again during the send
    assert proc.wait(120) == 0
    wait_until(lambda: _all_dealt_with(db_url, 200), 60, "each instance sent or tried and refused")
    orthanc.start()
    back = time.monotonic()
    sops = {pydicom.dcmread(f, stop_before_pixels=True).SOPInstanceUID for f in files}
    wait_until(_orthanc_has(orthanc, study_uid, sops), 60, "all instances after Orthanc is back")
    assert time.monotonic() - back < 60

    def verified() -> bool:
        forwarding = gw.get(f"/api/studies/{study_uid}")["forwarding"]
        return [f["state"] for f in forwarding] == ["VERIFIED"]

    wait_until(verified, 60, "the study verified once Orthanc answers again")
    assert gw.get("/api/queue")["dead"] == []


def test_gateway_killed_mid_forward(
    orthanc: LocalOrthanc, gateway_factory: type, tmp_path: Path
) -> None:
    gw = gateway_factory.make({"forward": {"destinations": [destination_for(orthanc)]}})
    gw.start()
    study_uid, files = make_ct_study(tmp_path / "s", 300, size=128)
    sop_by_file = {
        str(f): pydicom.dcmread(f, stop_before_pixels=True).SOPInstanceUID for f in files
    }
    acknowledged: list[str] = []
    for path in storescu_acknowledged(gw.dicom_port, files):
        acknowledged.append(sop_by_file[str(path)])
        if len(acknowledged) == 200:
            gw.kill()
    assert len(acknowledged) >= 200
    gw.start()
    wait_until(_orthanc_has(orthanc, study_uid, set(acknowledged)), 60, "acknowledged instances")
    # Exactly once: Orthanc holds each SOP instance once, nothing else.
    assert orthanc_sop_uids(orthanc, study_uid) <= set(sop_by_file.values())
    with orthanc.client() as c:
        stats = c.get("/statistics").json()
    assert stats["CountInstances"] == len(orthanc_sop_uids(orthanc, study_uid))


def test_errors_retry_then_dead_then_fixed(
    orthanc: LocalOrthanc, gateway_factory: type, tmp_path: Path
) -> None:
    wrong = destination_for(orthanc, name="rest", protocol="rest", password="wrong")
    closed = destination_for(orthanc, name="closed", port=1)
    cfg = {"forward": {"destinations": [wrong, closed], "max_attempts": 2}}
    gw = gateway_factory.make(cfg)
    gw.start()
    study_uid, files = make_ct_study(tmp_path / "s", 5, size=32)
    assert storescu(gw.dicom_port, files).returncode == 0

    def all_dead() -> bool:
        return len(gw.get("/api/queue")["dead"]) == 10

    wait_until(all_dead, 60, "dead jobs")
    dead = gw.get("/api/queue")["dead"]
    reasons = {d["destination"]: d["last_error"] for d in dead}
    assert "401" in reasons["rest"]
    assert "closed" in reasons["closed"] and "association" in reasons["closed"]
    assert all(d["attempts"] == 2 for d in dead)
    # Fix the password (config change + restart), then retry through the CLI.
    gw.stop()
    gw.config["forward"]["destinations"] = [destination_for(orthanc, name="rest", protocol="rest")]
    from tests.support.gateway_proc import to_toml

    gw.config_path.write_text(to_toml(gw.config))
    out = subprocess.run(
        [sys.executable, "-m", "gateway", "--config", str(gw.config_path), "forward", "retry"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert "10 jobs put back" in out.stdout
    gw.start()
    sops = {pydicom.dcmread(f, stop_before_pixels=True).SOPInstanceUID for f in files}
    wait_until(_orthanc_has(orthanc, study_uid, sops), 60, "retried instances in Orthanc")


def test_two_workers_on_postgresql_send_each_job_once(
    orthanc: LocalOrthanc, gateway_factory: type, tmp_path: Path, db_url: str
) -> None:
    if not db_url.startswith("postgresql"):
        pytest.skip("several workers share a queue on PostgreSQL only")
    cfg = {
        "forward": {"destinations": [destination_for(orthanc)], "batch_size": 8},
        "store": {"path": str(tmp_path / "shared-store")},  # processes share the store
    }
    first = gateway_factory.make(cfg, name="gw1")
    second = gateway_factory.make(cfg, name="gw2")
    first.start()
    second.start()
    study_uid, files = make_ct_study(tmp_path / "s", 300, size=32)
    assert storescu(first.dicom_port, files[:150]).returncode == 0
    assert storescu(second.dicom_port, files[150:]).returncode == 0
    sops = {pydicom.dcmread(f, stop_before_pixels=True).SOPInstanceUID for f in files}
    wait_until(_orthanc_has(orthanc, study_uid, sops), 90, "all instances")

    def forward_jobs_settled() -> list[Job]:
        jobs = [j for j in _jobs(db_url) if j[0] == "forward"]
        return jobs if len(jobs) == 300 and all(j[1] == "DONE" for j in jobs) else []

    forward_jobs = wait_until(forward_jobs_settled, 30, "300 forward jobs DONE")
    assert len(forward_jobs) == 300
    assert all(state == "DONE" and attempts == 1 for _, state, attempts, _ in forward_jobs)
