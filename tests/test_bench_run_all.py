"""``bench/run_all.py``: each benchmark's JSON line becomes table rows against its target."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bench.run_all import CHECKS, main, table

pytestmark = pytest.mark.unit

RECORDS = [
    {"bench": "ingest", "gateway_ips": 150, "orthanc_ips": 194, "ratio_1": 0.77,
     "gateway_ips_4": 100, "orthanc_ips_4": 311, "ratio_4": 0.32, "gateway_rss_mb": 230},
    {"bench": "forward", "instances": 500, "direct_s": 2.0, "gateway_s": 2.8, "ratio": 1.4},
    {"bench": "hl7", "gateway_msgs": 800, "echo_msgs": 10000, "ratio": 0.08},
    {"bench": "mwl", "steps": 100000, "p50_ms": 32, "p95_ms": 47},
    {"bench": "report", "db": "sqlite", "rows": 1000000, "csv_s": 13.8, "xlsx_s": 244.5,
     "xml3_s": 31.6, "xml3_rows": 100000, "rss_mb": 89},
]  # fmt: skip


def _verdicts() -> dict[str, bool | None]:
    return {f"{c.bench}: {c.what}": c.ok for r in RECORDS for c in CHECKS[str(r["bench"])](r)}


def test_targets_of_the_issues() -> None:
    verdicts = _verdicts()
    assert verdicts["ingest: 1 association, inst/s"] is True  # 0.77 >= 0.7
    assert verdicts["ingest: 4 associations, inst/s"] is False  # 0.32 < 0.5
    assert verdicts["ingest: peak RSS, MB"] is True
    assert verdicts["forward: 500 instances complete in Orthanc, s"] is True
    assert verdicts["hl7: ORM^O01 msg/s, one connection"] is False
    assert verdicts["mwl: C-FIND p95, 100000 steps, ms"] is True
    assert verdicts["report: sqlite CSV 1000000 rows, s"] is True
    assert verdicts["report: sqlite XLSX 1000000 rows, s"] is None  # no target
    assert verdicts["report: sqlite XML3 100000 rows, s"] is None  # printed, no target


def test_table_from_a_file_and_failed_benchmarks(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = table([c for r in RECORDS for c in CHECKS[str(r["bench"])](r)], {"mwl": "exit 1"})
    assert "| mwl | did not run | exit 1 |" in out
    assert out.count("| PASS |") == 6 and out.count("| MISS |") == 3
    saved = tmp_path / "run.jsonl"
    saved.write_text("\n".join(json.dumps(r) for r in RECORDS) + "\n")
    assert main(["--table", str(saved)]) == 0
    printed = capsys.readouterr().out
    assert (
        "| ingest | 1 association, inst/s | 150 | Orthanc 194 | 0.77x | >= 0.7x | PASS |" in printed
    )
    with pytest.raises(SystemExit):
        main(["--only", "nope"])
