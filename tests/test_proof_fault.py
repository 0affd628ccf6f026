"""Proof: PACS outages and SIGKILLs during an ingest lose nothing (issue 8, item 3).

A seeded schedule (the seed is printed; ``RISGATE_PROOF_SEED`` replays it) stops and
starts Orthanc and SIGKILLs the whole gateway at random points of a storescu ingest.
After each kill the gateway is started again and storescu sends what it had not seen
acknowledged. At the end every instance storescu saw acknowledged (``storescu -v``
"Received Store Response (Success)") is in Orthanc, Orthanc holds each exactly once
and nothing else, and the queue has no dead job. Bounded form: 3 kills and 3 PACS
stops in a 200-instance ingest; ``RISGATE_PROOF=full``: 10 kills, 10 PACS stops, 1,000.
"""

from __future__ import annotations

import os
import queue
import random
import re
import subprocess
import threading
import time
from pathlib import Path
from typing import Any

import pydicom
import pytest

from gateway.operations.local_orthanc import LocalOrthanc
from tests.support.ctgen import make_ct_study
from tests.support.destination import destination_for, orthanc_sop_uids
from tests.support.gateway_proc import GatewayProcess
from tests.support.tools import require
from tests.support.wait import wait_until

pytestmark = [
    pytest.mark.integration,
    pytest.mark.proof,
    pytest.mark.parametrize("db_url", ["sqlite"], indirect=True),
]

FULL = os.environ.get("RISGATE_PROOF") == "full"
INSTANCES = 1000 if FULL else 200
KILLS = 10 if FULL else 3
PACS_STOPS = KILLS
SIZE = 128 if FULL else 64


def _schedule(rng: random.Random) -> list[tuple[int, str]]:
    """(acknowledged count, action) pairs: "kill" the gateway or "pacs" stop/start."""
    points = rng.sample(range(5, INSTANCES - 5), KILLS + 2 * PACS_STOPS)
    actions = ["kill"] * KILLS + ["pacs"] * (2 * PACS_STOPS)
    rng.shuffle(actions)
    return sorted(zip(points, actions, strict=True))


def _storescu(gw: GatewayProcess, files: list[Path]) -> subprocess.Popen[str]:
    require("storescu")
    return subprocess.Popen(
        ["storescu", "-v", "-aet", "STORESCU", "-aec", "RISGATE", "127.0.0.1",
         str(gw.dicom_port), *map(str, files)],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        env={"TCP_NODELAY": "1", "PATH": "/usr/bin:/bin"},
    )  # fmt: skip


@pytest.mark.timeout(1200 if FULL else 300)
def test_kills_and_pacs_outages_every_acknowledged_instance_once(
    orthanc: LocalOrthanc, gateway_factory: Any, tmp_path: Path
) -> None:
    seed = int(os.environ.get("RISGATE_PROOF_SEED") or random.SystemRandom().randrange(1 << 31))
    rng = random.Random(seed)
    schedule = _schedule(rng)
    print(f"fault seed {seed} (RISGATE_PROOF_SEED={seed} replays it): {schedule}")
    gw: GatewayProcess = gateway_factory.make(
        {
            "forward": {
                "destinations": [destination_for(orthanc)],
                "max_attempts": 10_000,  # a PACS outage must not kill jobs
                "backoff_base_s": 0.2,
                "backoff_cap_s": 1.0,
                "lease_s": 5.0,  # jobs leased by a killed process come back soon
            },
            "reconcile": {"unmatched": "forward"},
            "log": {"level": "WARNING"},
        }
    )
    gw.start()
    study_uid, files = make_ct_study(tmp_path / "s", INSTANCES, size=SIZE)
    sop_by_file = {
        str(f): str(pydicom.dcmread(f, stop_before_pixels=True).SOPInstanceUID) for f in files
    }
    acknowledged: set[str] = set()
    pacs: queue.Queue[str] = queue.Queue()

    def pacs_worker() -> None:
        while (action := pacs.get()) != "done":
            if action == "stop":
                orthanc.stop()
            else:
                orthanc.start()

    pacs_thread = threading.Thread(target=pacs_worker, daemon=True)
    pacs_thread.start()
    pacs_down, kills, rounds = False, 0, 0  # pacs_down: as the schedule left it
    started = time.monotonic()
    while len(acknowledged) < INSTANCES:
        rounds += 1
        assert rounds <= KILLS + 5, "storescu keeps failing without a kill"
        pending = [f for f in files if sop_by_file[str(f)] not in acknowledged]
        proc = _storescu(gw, pending)
        current = None
        assert proc.stdout is not None
        for line in proc.stdout:
            m = re.search(r"Sending file: (.+)$", line)
            if m:
                current = m.group(1).strip()
            if "Received Store Response (Success)" in line and current:
                acknowledged.add(sop_by_file[current])
                while schedule and len(acknowledged) >= schedule[0][0]:
                    if schedule[0][1] == "kill":
                        if gw.process is None:
                            break  # acks still buffered from before the last kill
                        gw.kill()
                        kills += 1
                    else:  # stop/start Orthanc without holding up this reader
                        pacs.put("start" if pacs_down else "stop")
                        pacs_down = not pacs_down
                    schedule.pop(0)
        proc.wait(60)
        if gw.process is None:  # killed during this round: restart, send the rest
            gw.start()
        else:
            assert proc.returncode == 0 or len(acknowledged) == INSTANCES, "storescu failed"
    pacs.put("done")
    pacs_thread.join(120)
    # Orthanc dies with the thread that started it (PR_SET_PDEATHSIG): start it again here.
    orthanc.stop()
    orthanc.start()
    ingest_s = time.monotonic() - started
    assert kills == KILLS

    all_uids = set(sop_by_file.values())
    assert acknowledged == all_uids

    def in_orthanc() -> bool:
        try:
            return orthanc_sop_uids(orthanc, study_uid) >= acknowledged
        except Exception:  # Orthanc still starting
            return False

    wait_until(in_orthanc, 300 if FULL else 120, "every acknowledged instance in Orthanc")

    def queue_settled() -> bool:
        counts = gw.get("/api/queue")["counts"].get("forward", {})
        return set(counts) <= {"DONE"}

    wait_until(queue_settled, 120, "the forward queue to settle")
    # Exactly once: Orthanc holds each acknowledged instance once, and nothing else.
    assert orthanc_sop_uids(orthanc, study_uid) == acknowledged
    with orthanc.client() as c:
        stats = c.get("/statistics").json()
    assert stats["CountInstances"] == len(acknowledged)
    dead = gw.get("/api/queue")["dead"]
    assert dead == [], dead
    print(
        f"{INSTANCES} instances, {kills} kills, {PACS_STOPS} PACS stops: ingest "
        f"{ingest_s:.0f} s, all in Orthanc after {time.monotonic() - started:.0f} s"
    )
