"""A full run (HL7 orders, a rejected message, C-STOREs of a matched and an unmatched
study, previews, API and UI reads) must leave no patient name or id in the gateway's log."""

from __future__ import annotations

import json
import time
from pathlib import Path

import httpx
import pytest

from gateway.core.models import JobState
from tests.fixtures.orders.helpers import ack_code, orm, send_all
from tests.support.ctgen import make_ct_study
from tests.support.dcmtk import storescu
from tests.support.gateway_proc import GatewayProcess
from tests.support.wait import wait_until

pytestmark = pytest.mark.integration

ORDERED = {"id": "HIS73914", "family": "ĐẶNG", "given": "THỊ PHƯƠNG"}
STRAY = {"id": "DCM55821", "family": "VÕ", "given": "MINH TUẤN"}
TODAY = time.strftime("%Y%m%d")


def _needles() -> list[str]:
    out = []
    for p in (ORDERED, STRAY):
        for value in (p["id"], p["family"], p["given"], f"{p['family']}^{p['given']}"):
            out += [value, json.dumps(value)[1:-1]]  # as written and JSON-escaped
    return out


def _jobs_settled(gw: GatewayProcess) -> bool:
    """The jobs that follow a stable study have run: previews made, nothing queued or running."""
    counts: dict[str, dict[str, int]] = gw.get("/api/queue")["counts"]
    busy = {JobState.PENDING, JobState.RUNNING}
    return "thumbnail" in counts and not any(busy & set(states) for states in counts.values())


def test_full_run_logs_no_patient_data(gateway_factory: type, tmp_path: Path) -> None:
    gw = gateway_factory.make({"log": {"level": "DEBUG"}})
    gw.start()
    name = f"{ORDERED['family']}^{ORDERED['given']}"
    order = orm("PHI-1", patient_id=ORDERED["id"], name=name, placer="PLPHI", accession="PHI1",
                start=f"{TODAY}090000")  # fmt: skip
    broken = order.replace(b"ORM^O01^ORM_O01", b"ORM^Z99").replace(b"PHI-1", b"PHI-2")
    acks = send_all(gw.hl7_port, [order, broken])
    assert [ack_code(a) for a in acks] == ["AA", "AR"]
    ordered_uid, files = make_ct_study(
        tmp_path / "a", 3, size=32, patient_id=ORDERED["id"], patient_name=name, accession="PHI1"
    )
    stray_uid, stray = make_ct_study(
        tmp_path / "b", 2, size=32, patient_id=STRAY["id"],
        patient_name=f"{STRAY['family']}^{STRAY['given']}", accession="NOPE1",
    )  # fmt: skip
    assert storescu(gw.dicom_port, files + stray).returncode == 0

    def stable() -> bool:
        items = gw.get("/api/studies")["items"]
        return len(items) == 2 and all(i["state"] == "STABLE" for i in items)

    wait_until(stable, 40, "both studies stable")
    for uid in (ordered_uid, stray_uid):
        assert gw.get(f"/api/studies/{uid}")["patient_id"] in (ORDERED["id"], STRAY["id"])
    assert gw.get("/api/orders/PHI1")["patient_id"] == ORDERED["id"]
    messages = gw.get("/api/hl7/messages")["items"]
    assert len(messages) == 2 and ORDERED["id"] in messages[0]["raw"]
    page = httpx.get(f"{gw.api}/ui/studies", headers=gw.headers, timeout=30)
    assert page.status_code == 200 and ORDERED["family"] in page.text
    assert httpx.get(f"{gw.api}/api/studies/{ordered_uid}").status_code == 401
    wait_until(lambda: _jobs_settled(gw), 40, "previews and cost jobs (run after stable) ended")
    gw.stop()

    log = gw.log_path.read_text(encoding="utf-8")
    assert "became stable" in log and len(log.splitlines()) > 10
    found = sorted({n for n in _needles() if n in log})
    assert not found, f"patient data in the log: {found}"
