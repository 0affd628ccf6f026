"""The big-study and year-of-data benchmarks, small: they run end to end against real dcmtk
storescu/findscu, a real Orthanc and the gateway, and print a record bench/run_all.py can
judge (figures are not asserted: this machine is shared).

Bounded form (CI): a 36 MB study (4 enhanced CT instances of 8 frames, 40 slices) and a
database of 500 studies, 5,000 instances and 1,000 orders, one ingest round of 20
instances: every stage of each benchmark runs and every figure is measured.
``RISGATE_PROOF=full``: the benchmarks' own ``--quick`` sizes (164 MB; 2,000 studies,
40,000 instances, two rounds of 60), as ``bench/run_all.py --quick`` runs them.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from bench.run_all import CHECKS

pytestmark = [pytest.mark.integration, pytest.mark.proof]

ROOT = Path(__file__).resolve().parent.parent
FULL = os.environ.get("RISGATE_PROOF") == "full"
BIGSTUDY = ["--quick"] if FULL else ["--frames", "8", "--ct", "40"]
SCALE = (
    ["--quick"]
    if FULL
    else ["--studies", "500", "--instances", "5000", "--orders", "1000", "--ingest", "20",
          "--rounds", "1"]
)  # fmt: skip


def _records(*args: str) -> list[dict[str, Any]]:
    out = subprocess.run(
        [sys.executable, "-m", *args], cwd=ROOT, capture_output=True, text=True, timeout=300
    )
    assert out.returncode == 0, out.stderr[-2000:]
    return [json.loads(line) for line in out.stdout.splitlines() if line.startswith("{")]


def test_bigstudy_receives_forwards_and_samples_memory() -> None:
    (record,) = _records("bench.bigstudy", *BIGSTUDY)
    if FULL:
        assert record["instances"] == 204 and record["bytes"] > 150_000_000
    else:
        assert record["instances"] == 44 and record["bytes"] > 35_000_000
    assert record["errors_logged"] == 0
    assert set(record["rss_mb_at"]) == {"25", "50", "75", "100"}
    assert len(CHECKS["bigstudy"](record)) == 3


def test_scale_on_sqlite_measures_empty_and_full() -> None:
    (record,) = _records("bench.scale", *SCALE, "--db", "sqlite")
    assert (record["studies"], record["instances"]) == ((2000, 40_000) if FULL else (500, 5000))
    assert record["empty"]["errors_logged"] == 0 and record["full"]["errors_logged"] == 0
    assert record["full"]["polling_reads"] > 0
    assert all(c.measured for c in CHECKS["scale"](record))
