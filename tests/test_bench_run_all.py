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
    {"bench": "forward", "instances": 500, "direct_s": 2.0, "gateway_s": 2.8, "ratio": 1.4,
     "gateway_unmatched_s": 4.0, "ratio_unmatched": 2.0, "gateway_s_stock": 5.0,
     "ratio_stock": 2.5},
    {"bench": "hl7", "gateway_msgs": 800, "echo_msgs": 10000, "ratio": 0.08},
    {"bench": "mwl", "steps": 100000, "p50_ms": 32, "p95_ms": 47},
    {"bench": "report", "db": "sqlite", "rows": 1000000, "csv_s": 13.8, "xlsx_s": 244.5,
     "xml3_s": 31.6, "xml3_rows": 100000, "rss_mb": 89},
]  # fmt: skip

NEW_RECORDS = [
    {"bench": "ingest", "gateway_ips": 150, "orthanc_ips": 194, "ratio_1": 0.77,
     "gateway_ips_4": 100, "orthanc_ips_4": 311, "ratio_4": 0.32, "gateway_ips_16": 130,
     "orthanc_ips_16": 200, "ratio_16": 0.65, "gateway_rss_mb": 230, "gateway_errors_logged": 1},
    {"bench": "bigstudy", "bytes": 3.2e9, "rss_mb_peak": 267,
     "rss_mb_at": {"25": 249, "50": 259, "75": 264, "100": 266}, "errors_logged": 0},
    {"bench": "scale", "db": "sqlite", "studies": 50000, "ingest_ratio_full_db": 0.95,
     "ingest_ratio_api_polling": 0.7, "api_p95_ms": 40, "mwl_p95_ms": 30, "match_p95_ms": 6,
     "empty": {"ingest_ips": 100, "api_p95_ms": {"first_page": 10}, "mwl_p95_ms": 10,
               "match_p95_ms": {"accession": 1}},
     "full": {"ingest_ips": 95, "ingest_polling_ips": 66}},
]  # fmt: skip


def test_targets_of_the_big_study_sixteen_associations_and_a_year_of_data() -> None:
    verdicts = {
        f"{c.bench}: {c.what}": c.ok for r in NEW_RECORDS for c in CHECKS[str(r["bench"])](r)
    }
    assert verdicts["ingest: 16 associations, inst/s"] is True  # 0.65 >= 0.6
    assert verdicts["ingest: ERROR lines logged"] is False
    big = "bigstudy: 3.2 GB study in and forwarded, peak RSS (all processes), MB"
    assert verdicts[big] is False  # 267 > 250
    assert verdicts["bigstudy: RSS growth 25 % -> 100 % of bytes, MB"] is True  # 17 MB
    assert verdicts["scale: sqlite 50k studies: ingest inst/s, full vs empty db"] is True
    assert verdicts["scale: sqlite 50k studies: ingest inst/s, API read 10/s"] is False
    assert verdicts["scale: sqlite 50k studies: GET /api/studies p95 (page, patient, dates), ms"]
    assert verdicts["scale: sqlite 50k studies: study-to-order matching p95, ms"] is False


def _verdicts() -> dict[str, bool | None]:
    return {f"{c.bench}: {c.what}": c.ok for r in RECORDS for c in CHECKS[str(r["bench"])](r)}


def test_targets_of_the_issues() -> None:
    verdicts = _verdicts()
    assert verdicts["ingest: 1 association, inst/s"] is True  # 0.77 >= 0.7
    assert verdicts["ingest: 4 associations, inst/s"] is False  # 0.32 < 0.5
    assert verdicts["ingest: peak RSS, MB"] is True
    assert verdicts["forward: 500 instances, matched (corrected), complete in Orthanc, s"] is True
    # The unmatched path is printed without a target, whatever its ratio.
    assert (
        verdicts["forward: 500 instances, unmatched (as received), complete in Orthanc, s"] is None
    )
    stock = "forward: 500 instances, matched, stock pynetdicom, complete in Orthanc, s"
    assert verdicts[stock] is None  # the stock path beside the fast one, no target
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
