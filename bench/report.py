"""Report benchmark: N cost records (default 1,000,000) in SQLite and in a throw-away
PostgreSQL, exported to CSV, XLSX and XML3 through ``gateway.costing.reports.write_report``
(the code path of ``GET /api/reports/costs`` and ``risgate report export``).

Each export runs in a fresh child process; its time is measured around ``write_report``
and its peak RSS is the child's VmHWM (read by the child itself when it is done). Prints
one JSON line per database: ``db``, ``rows``, ``csv_s``, ``xlsx_s``, ``rss_mb`` (peak
over both exports), plus the load time and output sizes. With ``--xlsx-rows M`` (< rows)
the XLSX export covers only the first M rows (a shorter period) and ``xlsx_s`` is
extrapolated linearly to all rows (``xlsx_measured_s``/``xlsx_rows`` say what was
measured). ``csv_cpu_s``/``xlsx_cpu_s`` are the export's CPU seconds and ``load_avg``
the machine's 1-minute load: on a shared 2-core machine wall times drift with the load.
``xml3_s`` is the XML3 claim file (47 elements per row, every row validated against the
schema) of the first ``--xml3-rows`` studies (default 100,000; those get a cost record
document, which the claim rows are built from), ``xml3_rss_mb`` its peak RSS.

Usage: .venv/bin/python -m bench.report [--rows N] [--xlsx-rows M] [--xml3-rows K]
[--db sqlite,postgresql]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

from bench.common import emit, scratch

SERVICES = [  # (service code, machine, modality, facts)
    ("18.0119.0028", "DX01", "DX"),
    ("18.0015.0001", "US01", "US"),
    ("18.0126.0026", "MG01", "MG"),
    ("18.0149.0040", "CT01", "CT"),
    ("18.0220.0041", "CT01", "CT"),
    ("18.0296.0066", "MR01", "MR"),
    ("18.0297.0065", "MR01", "MR"),
]
START = date(2025, 1, 1)
DAYS = 365
COST_COLUMNS = (
    "id", "study_pk", "study_uid", "accession_number", "revision", "study_date",
    "performed_at", "department", "modality", "machine_code", "service_code",
    "norm_set_code", "norm_illustrative", "vat_tu", "thuoc", "nhan_cong", "khau_hao",
    "duy_tu", "nang_luong", "quan_ly", "cntt", "full_cost", "separately_billed",
    "price_bh", "price_bv", "margin_bh", "margin_bv", "catalogue_import_pk", "mapping",
    "created_at", "created_by", "reason",
)  # fmt: skip
STUDY_COLUMNS = (
    "id", "study_uid", "patient_pk", "accession_number", "study_date", "study_time",
    "description", "calling_ae", "state", "first_received_at", "last_received_at",
)  # fmt: skip


DOCUMENT_COLUMNS = ("record_pk", "record_json")


def _templates() -> list[dict[str, Any]]:
    from pricing_norms.catalogue import Component
    from pricing_norms.costing import cost_study
    from pricing_norms.example import load_example_catalogue
    from pricing_norms.mapping import StudyFacts

    catalogue = load_example_catalogue()
    out = []
    for code, machine, modality in SERVICES:
        record = cost_study(catalogue, code, StudyFacts(date(2025, 3, 1), modality), machine)
        out.append(
            {
                "service_code": code,
                "machine_code": machine,
                "modality": modality,
                "norm_set_code": record.norm_set_code,
                "totals": [record.total(c) for c in Component],
                "full_cost": record.full_cost,
                "separately_billed": record.separately_billed,
                "price_bh": record.price_bh,
                "price_bv": record.price_bv,
                "margin_bh": record.margin_bh,
                "margin_bv": record.margin_bv,
                "document": record.to_json(),
            }
        )
    return out


def _documents(n: int, k: int) -> Iterator[tuple[int, str]]:
    """(cost record id, record JSON) of the first ``k`` of ``n`` cost records."""
    templates = _templates()
    for i in range(1, min(n, k) + 1):
        yield i, templates[i % len(templates)]["document"]


def _xml3_end(n: int, k: int) -> date:
    """The last study day of the first ``k`` of ``n`` records (see :func:`_rows`)."""
    return START + timedelta(days=(min(n, k) - 1) * DAYS // n)


def _rows(n: int) -> Iterator[tuple[tuple[Any, ...], tuple[Any, ...]]]:
    """(study row, cost record row) for i = 1..n, spread evenly over the year 2025."""
    templates = _templates()
    now = datetime(2026, 1, 1)
    for i in range(1, n + 1):
        t = templates[i % len(templates)]
        day = START + timedelta(days=(i - 1) * DAYS // n)
        uid = f"1.2.826.0.1.3680043.10.543.{i}"
        acc = f"A{i:09d}"
        performed = datetime(day.year, day.month, day.day, 9, 30)
        study = (i, uid, 1, acc, day.strftime("%Y%m%d"), "093000", "", "MOD", "STABLE", now, now)
        cost = (
            i, i, uid, acc, 1, day, performed, f"K{i % 5 + 1:02d}", t["modality"],
            t["machine_code"], t["service_code"], t["norm_set_code"], True, *t["totals"],
            t["full_cost"], t["separately_billed"], t["price_bh"], t["price_bv"],
            t["margin_bh"], t["margin_bv"], None, "bench", now, "bench", "bench load",
        )  # fmt: skip
        yield study, cost


def _sqlite_value(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat(sep=" ", timespec="microseconds")
    if isinstance(value, date):
        return value.isoformat()
    return value


def load_sqlite(path: Path, n: int, k: int) -> None:
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA synchronous=OFF")
    conn.execute("BEGIN")
    conn.execute(
        "INSERT INTO patients (id, patient_id, issuer, name, birth_date, sex, updated_at) "
        "VALUES (1, 'BENCH', '', '', '', '', '2026-01-01 00:00:00')"
    )
    study_sql = f"INSERT INTO studies ({', '.join(STUDY_COLUMNS)}) VALUES ({', '.join('?' * len(STUDY_COLUMNS))})"  # noqa: E501
    cost_sql = f"INSERT INTO cost_records ({', '.join(COST_COLUMNS)}) VALUES ({', '.join('?' * len(COST_COLUMNS))})"  # noqa: E501
    studies: list[tuple[Any, ...]] = []
    costs: list[tuple[Any, ...]] = []
    for study, cost in _rows(n):
        studies.append(tuple(_sqlite_value(v) for v in study))
        costs.append(tuple(_sqlite_value(v) for v in cost))
        if len(costs) == 50_000:
            conn.executemany(study_sql, studies)
            conn.executemany(cost_sql, costs)
            studies.clear()
            costs.clear()
    conn.executemany(study_sql, studies)
    conn.executemany(cost_sql, costs)
    conn.executemany(
        "INSERT INTO cost_record_documents (record_pk, record_json) VALUES (?, ?)",
        _documents(n, k),
    )
    conn.execute("COMMIT")
    conn.execute("ANALYZE")
    conn.close()


def load_postgres(url: str, n: int, k: int) -> None:
    import psycopg

    dsn = url.replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(dsn) as conn, conn.cursor() as cur:
        cur.execute(
            "INSERT INTO patients (id, patient_id, issuer, name, birth_date, sex, updated_at) "
            "VALUES (1, 'BENCH', '', '', '', '', '2026-01-01')"
        )
        with (
            cur.copy(f"COPY studies ({', '.join(STUDY_COLUMNS)}) FROM STDIN") as copy_s,
        ):
            for study, _ in _rows(n):
                copy_s.write_row(study)
        with cur.copy(f"COPY cost_records ({', '.join(COST_COLUMNS)}) FROM STDIN") as copy_c:
            for _, cost in _rows(n):
                copy_c.write_row(cost)
        columns = ", ".join(DOCUMENT_COLUMNS)
        with cur.copy(f"COPY cost_record_documents ({columns}) FROM STDIN") as copy_d:
            for document in _documents(n, k):
                copy_d.write_row(document)
        cur.execute("SELECT setval('studies_id_seq', %s)", (n,))
        cur.execute("SELECT setval('cost_records_id_seq', %s)", (n,))
        conn.commit()
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("VACUUM ANALYZE cost_records")


def _export_child(url: str, fmt: str, out: str, date_to: str) -> None:
    """Child process: one export through the API/CLI code path; prints its seconds."""
    from gateway.core.database import Database, make_engine
    from gateway.costing.reports import ReportQuery, parse_day, write_report

    db = Database(make_engine(url))
    query = ReportQuery(START, parse_day(date_to, "to"))
    start, cpu = time.perf_counter(), time.process_time()
    with open(out, "wb") as handle:  # the bench data is illustrative: allowed explicitly
        rows = write_report(db, query, fmt, handle, allow_illustrative=True)
    seconds, cpu = time.perf_counter() - start, time.process_time() - cpu
    print(json.dumps({"rows": rows, "s": seconds, "cpu_s": cpu, "hwm_mb": _peak_rss_mb()}))


def _peak_rss_mb() -> float:
    """This process's peak RSS (VmHWM), MB."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _run_export(url: str, fmt: str, out: Path, date_to: date) -> tuple[int, float, float, float]:
    """(rows, seconds, peak RSS MB, CPU seconds) of one export in a fresh process."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "bench.report", "--child", url, fmt, str(out), date_to.isoformat()],
        stdout=subprocess.PIPE,
    )
    assert proc.stdout is not None
    output = proc.stdout.read()
    if proc.wait() != 0:
        raise RuntimeError(f"export {fmt} failed with status {proc.returncode}")
    result = json.loads(output.decode().strip().splitlines()[-1])
    return int(result["rows"]), float(result["s"]), float(result["hwm_mb"]), float(result["cpu_s"])


def _bench(name: str, url: str, load: Any, args: argparse.Namespace, work: Path) -> None:
    from gateway.core.database import make_engine
    from gateway.core.migrate import upgrade

    engine = make_engine(url)
    upgrade(engine)
    engine.dispose()
    start = time.perf_counter()
    load()
    load_s = time.perf_counter() - start
    end = START + timedelta(days=DAYS - 1)
    rows, csv_s, csv_rss, csv_cpu = _run_export(url, "csv", work / f"{name}.csv", end)
    xlsx_rows_wanted = min(args.xlsx_rows or args.rows, args.rows)
    xlsx_end = START + timedelta(days=max(0, xlsx_rows_wanted * DAYS // args.rows - 1))
    if xlsx_rows_wanted >= args.rows:
        xlsx_end = end
    xrows, xlsx_s, xlsx_rss, xlsx_cpu = _run_export(url, "xlsx", work / f"{name}.xlsx", xlsx_end)
    xml3_end = _xml3_end(args.rows, args.xml3_rows)
    x3rows, xml3_s, xml3_rss, xml3_cpu = _run_export(url, "xml3", work / f"{name}.xml", xml3_end)
    result: dict[str, Any] = {
        "db": name,
        "rows": rows,
        "csv_s": round(csv_s, 1),
        "xlsx_s": round(xlsx_s * rows / max(xrows, 1), 1),
        "xml3_s": round(xml3_s, 1),
        "xml3_rows": x3rows,
        "rss_mb": round(max(csv_rss, xlsx_rss, xml3_rss), 1),
        "csv_cpu_s": round(csv_cpu, 1),
        "xlsx_cpu_s": round(xlsx_cpu * rows / max(xrows, 1), 1),
        "load_avg": round(os.getloadavg()[0], 1),
        "csv_rss_mb": round(csv_rss, 1),
        "xlsx_rss_mb": round(xlsx_rss, 1),
        "xml3_rss_mb": round(xml3_rss, 1),
        "xml3_cpu_s": round(xml3_cpu, 1),
        "xlsx_rows": xrows,
        "xlsx_measured_s": round(xlsx_s, 1),
        "xlsx_extrapolated": xrows != rows,
        "load_s": round(load_s, 1),
        "csv_mb": round((work / f"{name}.csv").stat().st_size / 1e6, 1),
        "xlsx_mb": round((work / f"{name}.xlsx").stat().st_size / 1e6, 1),
        "xml3_mb": round((work / f"{name}.xml").stat().st_size / 1e6, 1),
    }
    emit(result)


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        _export_child(*sys.argv[2:6])
        return
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument(
        "--xlsx-rows",
        type=int,
        default=200_000,
        help="measure XLSX on this many rows and extrapolate (>= --rows: all rows)",
    )
    parser.add_argument(
        "--xml3-rows", type=int, default=100_000, help="studies in the XML3 claim export"
    )
    parser.add_argument("--db", default="sqlite,postgresql")
    args = parser.parse_args()
    with scratch("risgate-bench-report-") as work:
        _run(args, work)


def _run(args: argparse.Namespace, work: Path) -> None:
    n, k = args.rows, args.xml3_rows
    for name in args.db.split(","):
        if name == "sqlite":
            path = work / "bench.db"
            _bench(name, f"sqlite:///{path}", lambda p=path: load_sqlite(p, n, k), args, work)
        elif name == "postgresql":
            from tests.support.postgres import PostgresCluster

            cluster = PostgresCluster()
            cluster.start()
            try:
                url = cluster.create_database()
                _bench(name, url, lambda u=url: load_postgres(u, n, k), args, work)
            finally:
                cluster.stop()
        else:
            raise SystemExit(f"unknown --db {name}")


if __name__ == "__main__":
    main()
