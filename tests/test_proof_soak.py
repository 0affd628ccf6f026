"""Proof: a steady mixed load with flat memory and no errors (issue 8, item 3).

For ``SOAK_S`` seconds (60 in the bounded form, 600 with ``RISGATE_PROOF=full``): one
thread sends an ORM^O01 over MLLP and then its 10-instance study with storescu (the
study matches its order, is coerced and forwarded to a real Orthanc), plus an unrelated
order, every ``PACE_S`` seconds; another reads the API (studies, one study, orders,
queue, health). The gateway's process tree RSS is sampled every second
(``bench.common.tree_rss_mb``). After a warm-up (the first fifth), the median of the last
third must stay within 15% or 30 MB (whichever is larger) of the median of the first
third. At the end: every call succeeded, every instance is in Orthanc, no dead job, no
traceback in the log.
"""

from __future__ import annotations

import os
import statistics
import threading
import time
from datetime import date
from pathlib import Path
from typing import Any

import httpx
import pytest

from bench.common import tree_rss_mb
from gateway.operations.local_orthanc import LocalOrthanc
from tests.fixtures.orders.helpers import ack_code, orm, send_all
from tests.support.ctgen import make_ct_study
from tests.support.dcmtk import storescu
from tests.support.destination import destination_for
from tests.support.gateway_proc import GatewayProcess
from tests.support.wait import wait_until

pytestmark = [
    pytest.mark.integration,
    pytest.mark.proof,
    pytest.mark.parametrize("db_url", ["sqlite"], indirect=True),
]

FULL = os.environ.get("RISGATE_PROOF") == "full"
SOAK_S = 600 if FULL else 60
PACE_S = 1.5
INSTANCES = 10


@pytest.mark.timeout(SOAK_S + 300)
def test_soak_mixed_load_flat_memory_no_errors(
    orthanc: LocalOrthanc, gateway_factory: Any, tmp_path: Path
) -> None:
    gw: GatewayProcess = gateway_factory.make(
        {
            "forward": {"destinations": [destination_for(orthanc)]},
            "reconcile": {"unmatched": "forward"},
            "log": {"level": "WARNING"},
        }
    )
    gw.start()
    assert gw.process is not None
    pid = gw.process.pid
    today = date.today().strftime("%Y%m%d")
    stop = threading.Event()
    errors: list[str] = []
    sent = {"studies": 0, "instances": 0, "orders": 0, "reads": 0}

    def studies() -> None:
        i = 0
        while not stop.is_set():
            started = time.monotonic()
            i += 1
            try:
                acks = send_all(
                    gw.hl7_port,
                    [
                        orm(f"S{i}", patient_id=f"SOAK{i % 25}", name="NGUYỄN^VĂN AN",
                            placer=f"SP{i}", accession=f"SA{i}", start=f"{today}080000"),
                        orm(f"X{i}", patient_id=f"SOAKX{i % 40}", name="TRẦN^THỊ BÍCH",
                            placer=f"XP{i}", accession=f"XA{i}", start=f"{today}100000"),
                    ],
                )  # fmt: skip
                codes = [ack_code(a) for a in acks]
                if codes != ["AA", "AA"]:
                    errors.append(f"orders {i}: {codes}")
                sent["orders"] += 2
                _, files = make_ct_study(
                    tmp_path / f"s{i}", INSTANCES, size=64, patient_id=f"SOAK{i % 25}",
                    accession=f"SA{i}",
                )  # fmt: skip
                result = storescu(gw.dicom_port, files, timeout=60)
                if result.returncode != 0 or "Store Failed" in result.stderr:
                    errors.append(f"study {i}: storescu {result.returncode}")
                else:
                    sent["studies"] += 1
                    sent["instances"] += INSTANCES
                for f in files:
                    f.unlink()
            except Exception as exc:
                errors.append(f"study {i}: {exc!r}")
            stop.wait(max(0.0, PACE_S - (time.monotonic() - started)))

    def reads() -> None:
        client = httpx.Client(base_url=gw.api, headers=getattr(gw, "headers", {}), timeout=30)
        with client:
            while not stop.is_set():
                try:
                    page = client.get("/api/studies", params={"limit": 20})
                    paths = ["/api/orders?limit=20", "/api/queue", "/healthz"]
                    items = page.json().get("items", []) if page.status_code == 200 else []
                    if items:
                        paths.append(f"/api/studies/{items[0]['study_uid']}")
                    for r in [page, *(client.get(p) for p in paths)]:
                        if r.status_code != 200:
                            errors.append(f"GET {r.url.path}: {r.status_code}")
                    sent["reads"] += 1 + len(paths)
                except Exception as exc:
                    errors.append(f"reads: {exc!r}")
                stop.wait(0.5)

    threads = [threading.Thread(target=f, daemon=True) for f in (studies, reads)]
    for t in threads:
        t.start()
    samples: list[float] = []
    deadline = time.monotonic() + SOAK_S
    while time.monotonic() < deadline:
        samples.append(tree_rss_mb(pid))
        time.sleep(1.0)  # the RSS sampling interval of a soak of fixed length, not a wait
    stop.set()
    for t in threads:
        t.join(90)
    assert not errors, errors[:20]

    steady = samples[len(samples) // 5 :]
    third = len(steady) // 3
    first, last = statistics.median(steady[:third]), statistics.median(steady[-third:])
    print(
        f"soak {SOAK_S} s: {sent}; RSS MB first third {first:.0f}, last third {last:.0f}, "
        f"min {min(samples):.0f}, max {max(samples):.0f}"
    )
    assert sent["studies"] >= SOAK_S / PACE_S / 3, sent
    assert last <= first + max(0.15 * first, 30.0), (first, last, samples)

    def all_in_orthanc() -> bool:
        try:
            with orthanc.client() as c:
                return int(c.get("/statistics").json()["CountInstances"]) >= sent["instances"]
        except httpx.HTTPError:
            return False

    wait_until(all_in_orthanc, 120, "every instance in Orthanc")
    with orthanc.client() as c:
        assert int(c.get("/statistics").json()["CountInstances"]) == sent["instances"]
    assert gw.get("/api/queue")["dead"] == []
    assert gw.process is not None and gw.process.poll() is None
    assert "Traceback" not in gw.log_path.read_text(errors="replace")
