"""The big-study and year-of-data benchmarks in their --quick form: they run end to end
against real dcmtk storescu/findscu, a real Orthanc and the gateway, and print a record
bench/run_all.py can judge (figures are not asserted: this machine is shared)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from bench.run_all import CHECKS

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parent.parent


def _records(*args: str) -> list[dict[str, Any]]:
    out = subprocess.run(
        [sys.executable, "-m", *args], cwd=ROOT, capture_output=True, text=True, timeout=300
    )
    assert out.returncode == 0, out.stderr[-2000:]
    return [json.loads(line) for line in out.stdout.splitlines() if line.startswith("{")]


def test_bigstudy_quick_receives_forwards_and_samples_memory() -> None:
    (record,) = _records("bench.bigstudy", "--quick")
    assert record["instances"] == 204 and record["bytes"] > 150_000_000
    assert record["errors_logged"] == 0
    assert set(record["rss_mb_at"]) == {"25", "50", "75", "100"}
    assert len(CHECKS["bigstudy"](record)) == 3


def test_scale_quick_on_sqlite_measures_empty_and_full() -> None:
    (record,) = _records("bench.scale", "--quick", "--db", "sqlite")
    assert record["studies"] == 2000 and record["instances"] == 40_000
    assert record["empty"]["errors_logged"] == 0 and record["full"]["errors_logged"] == 0
    assert record["full"]["polling_reads"] > 0
    assert all(c.measured for c in CHECKS["scale"](record))
