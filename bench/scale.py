"""Scale benchmark, a year of data: the gateway on an empty database beside one filled in
bulk with 50,000 studies, 1,000,000 instances and 100,000 orders, in one run: a gateway
per database, their ingest rounds taking turns.

Measured on each database state (SQLite and PostgreSQL):

- ingest: a CT study sent by storescu on one association, instances/s (median of
  ``--rounds`` runs);
- the API: ``GET /api/studies`` first page, by patient and by a week's date range, p95 ms;
- the worklist: ``findscu -W`` C-FIND for one station and today, p95 ms (request to final
  response, as in bench/mwl.py);
- matching: ``gateway.reconciliation.reconcile.find_order`` per study (by accession, by
  study UID, by patient + modality + date), p95 ms, timed inside an open transaction as the receiver
  calls it (the connection's checkout and ``BEGIN`` are not matching);
- ingest while a client reads ``/api/studies`` ten times a second (full database only;
  its runs alternate with the plain ones).

The fill goes straight to the tables (executemany on SQLite, COPY on PostgreSQL, big
transactions), not through the API. Prints one JSON line per database with the figures
for both states and ``ingest_ratio_full_db``, ``ingest_ratio_api_polling``,
``api_p95_ms``, ``mwl_p95_ms``, ``match_p95_ms`` (full database).
Usage: .venv/bin/python -m bench.scale [--quick] [--db sqlite,postgresql]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import threading
import time
from collections.abc import Iterable, Iterator
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import Engine, text

from bench import mwl
from bench.common import PRODUCTION_WORKER, emit, scratch, storescu_send, wait_quiet
from gateway.core.database import Database, make_engine
from gateway.core.migrate import upgrade
from gateway.intake.instance_meta import InstanceMeta
from gateway.reconciliation.reconcile import find_order
from tests.support.ctgen import make_ct_study
from tests.support.gateway_proc import DEFAULT_PEERS, GatewayProcess

MODALITIES = ("CT", "MR", "CR", "US", "DX", "MG")
CHUNK = 20_000
TIMES = 60  # API requests and matches per kind


def _p95(values: list[float]) -> float:
    ordered = sorted(values)
    return round(ordered[max(int(len(ordered) * 0.95) - 1, 0)], 1)


# -- the fill ---------------------------------------------------------------------------


def _bulk(engine: Engine, table: str, columns: tuple[str, ...], rows: Iterable[tuple]) -> None:
    """Insert ``rows`` into ``table``: executemany in one transaction (SQLite) or COPY."""
    raw = engine.raw_connection()
    try:
        driver: Any = raw.driver_connection
        if engine.dialect.name == "sqlite":
            marks = ", ".join("?" * len(columns))
            sql = f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({marks})"
            driver.execute("BEGIN")
            chunk: list[tuple] = []
            for row in rows:
                chunk.append(row)
                if len(chunk) == CHUNK:
                    driver.executemany(sql, chunk)
                    chunk = []
            driver.executemany(sql, chunk)
            driver.execute("COMMIT")
        else:
            with (
                driver.cursor() as cur,
                cur.copy(f"COPY {table} ({', '.join(columns)}) FROM STDIN") as copy,
            ):
                for row in rows:
                    copy.write_row(row)
            driver.commit()
    finally:
        raw.close()


def fill(url: str, studies: int, instances: int, orders: int) -> float:
    """Add a year of data (ids above the rows already there); returns seconds."""
    start = time.perf_counter()
    mwl.populate(url, orders)  # order patients, orders, procedures, steps (ACC<i>)
    engine = make_engine(url, sqlite_synchronous="OFF")
    with engine.connect() as conn:
        base = {
            t: int(conn.scalar(text(f"SELECT coalesce(max(id), 0) FROM {t}")) or 0)
            for t in ("patients", "studies", "series", "instances", "study_matches")
        }
        conn.rollback()
    sqlite = engine.dialect.name == "sqlite"

    def stamp(value: datetime) -> Any:
        return value.strftime("%Y-%m-%d %H:%M:%S.%f") if sqlite else value

    today = date.today()
    patients = max(studies // 2, 1)
    per_study = max(instances // studies, 1)
    series_per_study = 2
    now = stamp(datetime.now())
    _bulk(
        engine,
        "patients",
        ("id", "patient_id", "issuer", "name", "birth_date", "sex", "updated_at"),
        (
            (base["patients"] + p + 1, f"BN{p:06d}", "", f"NGUYEN^VAN {p}", "19800101", "M", now)
            for p in range(patients)
        ),
    )

    def study_day(s: int) -> date:
        return today - timedelta(days=s * 365 // studies)

    def received(s: int) -> Any:
        return stamp(datetime.combine(study_day(s), datetime.min.time()) + timedelta(hours=8))

    def purged(s: int) -> Any:
        """Local copies go after verification: all but the last week's are purged."""
        if study_day(s) > today - timedelta(days=7):
            return None
        return stamp(datetime.combine(study_day(s), datetime.min.time()) + timedelta(days=2))

    _bulk(
        engine,
        "studies",
        ("id", "study_uid", "patient_pk", "accession_number", "study_date", "study_time",
         "description", "calling_ae", "state", "first_received_at", "last_received_at",
         "stable_at", "purged_at"),
        (
            (base["studies"] + s + 1, f"1.2.826.0.1.3680043.8.498.9{s}",
             base["patients"] + s % patients + 1, f"ACC{s}" if s < orders else f"X{s}",
             study_day(s).strftime("%Y%m%d"), "080000", "CT", "MODALITY", "STABLE",
             received(s), received(s), received(s), purged(s))
            for s in range(studies)
        ),
    )  # fmt: skip
    _bulk(
        engine,
        "series",
        ("id", "series_uid", "study_pk", "modality", "series_number", "body_part",
         "station_name", "description"),
        (
            (base["series"] + s * series_per_study + k + 1,
             f"1.2.826.0.1.3680043.8.498.8{s}.{k}", base["studies"] + s + 1,
             MODALITIES[s % len(MODALITIES)], str(k + 1), "", "ST1", "")
            for s in range(studies)
            for k in range(series_per_study)
        ),
    )  # fmt: skip

    def instance_rows() -> Iterator[tuple]:
        for s in range(studies):
            at = received(s)
            for i in range(per_study):
                n = s * per_study + i
                yield (
                    base["instances"] + n + 1, f"1.2.826.0.1.3680043.8.498.7{n}",
                    base["series"] + s * series_per_study + i % series_per_study + 1,
                    "1.2.840.10008.5.1.4.1.1.2", "1.2.840.10008.1.2.1", str(i + 1),
                    f"store/{s}/{i}.dcm", 525_000, "MODALITY", at, 0,
                )  # fmt: skip

    _bulk(
        engine,
        "instances",
        ("id", "sop_instance_uid", "series_pk", "sop_class_uid", "transfer_syntax",
         "instance_number", "path", "size", "calling_ae", "received_at", "duplicates"),
        instance_rows(),
    )  # fmt: skip
    _bulk(
        engine,
        "study_matches",
        ("id", "study_pk", "state", "method", "rp_pk", "reason", "linked_by", "created_at",
         "updated_at"),
        (
            (base["study_matches"] + s + 1, base["studies"] + s + 1,
             "MATCHED" if s < orders else "UNMATCHED", "accession" if s < orders else "",
             s + 1 if s < orders else None, "" if s < orders else "no order found", "",
             received(s), received(s))
            for s in range(studies)
        ),
    )  # fmt: skip
    with engine.connect() as conn:
        if not sqlite:
            for table in ("order_patients", "orders", "requested_procedures", "scheduled_steps",
                          "order_patient_ids", *base):  # fmt: skip
                conn.execute(
                    text(
                        f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), "
                        f"(SELECT max(id) FROM {table}))"
                    )
                )
        conn.commit()
    if not sqlite:
        # What autovacuum would have done over the year (and not during the measurements).
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.execute(text("VACUUM ANALYZE"))
    # SQLite: no ANALYZE, as the gateway never runs it (its planner's defaults are tested).
    engine.dispose()
    return time.perf_counter() - start


# -- the measurements -------------------------------------------------------------------


def _api_p95(gw: GatewayProcess, patients: int) -> dict[str, float]:
    week_to = date.today() - timedelta(days=30)
    week = {"date_from": (week_to - timedelta(days=7)).strftime("%Y%m%d"),
            "date_to": week_to.strftime("%Y%m%d")}  # fmt: skip
    kinds: dict[str, Any] = {
        "first_page": lambda i: {},
        "by_patient": lambda i: {"patient_id": f"BN{(i * 7919) % max(patients, 1):06d}"},
        "by_date": lambda i: week,
    }
    out: dict[str, float] = {}
    with httpx.Client(base_url=gw.api, headers=gw.headers, timeout=30) as client:
        for kind, params in kinds.items():
            client.get("/api/studies", params=params(0)).raise_for_status()  # warm-up
            times = []
            for i in range(TIMES):
                t = time.perf_counter()
                client.get("/api/studies", params=params(i)).raise_for_status()
                times.append((time.perf_counter() - t) * 1000)
            out[kind] = _p95(times)
    return out


def _mwl_p95(gw: GatewayProcess, work: Path) -> float:
    log_config = work / "findscu-log.cfg"
    log_config.write_text(mwl.LOG_CONFIG)
    today = date.today().strftime("%Y%m%d")
    latencies: list[float] = []
    for station in mwl.STATIONS[:4]:
        runs = mwl._findscu(gw.dicom_port, station, today, TIMES // 4 + 1, log_config)
        latencies += [elapsed for elapsed, _ in runs[1:]]
    return _p95(latencies)


def _match_p95(url: str, studies: int, orders: int) -> dict[str, float]:
    """``find_order`` per study as the reconciler calls it, by each of its three keys."""
    db = Database(make_engine(url))
    today = date.today()
    out: dict[str, float] = {}
    try:
        for kind in ("accession", "study_uid", "patient"):
            times = []
            for i in range(TIMES):
                n = (i * 7919) % max(orders, 1)
                meta = InstanceMeta(
                    sop_class_uid="1.2.840.10008.5.1.4.1.1.2",
                    sop_instance_uid=f"1.2.3.{i}",
                    study_uid=f"1.2.826.0.1.3680043.8.498.{n + 1}" if kind != "patient" else "9",
                    series_uid="1.2.3",
                    transfer_syntax="1.2.840.10008.1.2.1",
                    patient_id=f"BN{n % max(studies // 2, 1):06d}",
                    accession_number=f"ACC{n}" if kind == "accession" else "",
                    study_date=today.strftime("%Y%m%d"),
                    modality="CT",
                )
                with db.write_session() as session:
                    # The reconciler matches inside the receive transaction, already open.
                    session.connection()
                    t = time.perf_counter()
                    find_order(session, meta, 0, 1)
                    times.append((time.perf_counter() - t) * 1000)
            out[kind] = _p95(times)
    finally:
        db.dispose()
    return out


def _ingest(gw: GatewayProcess, files: list[Path], poll: bool = False) -> dict[str, float]:
    """storescu on one association; with ``poll`` a client reads the first page of
    ``/api/studies`` every 0.1 s meanwhile (its p95 is returned too). Starts on a quiet
    machine: dirty pages written (the fill leaves hundreds of MB), CPUs idle (the
    previous round's background work done), as bench/forward's rounds do."""
    os.sync()
    wait_quiet()
    stop = threading.Event()
    reads: list[float] = []

    def poller() -> None:
        with httpx.Client(base_url=gw.api, headers=gw.headers, timeout=30) as client:
            while not stop.is_set():
                t = time.perf_counter()
                client.get("/api/studies").raise_for_status()
                reads.append((time.perf_counter() - t) * 1000)
                stop.wait(max(0.0, 0.1 - (time.perf_counter() - t)))

    thread = threading.Thread(target=poller, daemon=True)
    if poll:
        thread.start()
    try:
        seconds = storescu_send(gw.dicom_port, files, "RISGATE")
    finally:
        stop.set()
        if poll:
            thread.join()
    out = {"ips": round(len(files) / seconds, 1)}
    if poll:
        out["reads"] = len(reads)
        out["read_p95_ms"] = _p95(reads)
    return out


def _measure(
    gws: dict[str, GatewayProcess],
    urls: dict[str, str],
    work: Path,
    studies: dict[str, dict[str, list[list[Path]]]],
    size: dict[str, int],
) -> dict[str, dict[str, Any]]:
    """Every figure on each database ("empty", "full"), each served by its own gateway;
    ``studies``: per database, the warm-up study, and per round a study for plain ingest
    and one (or none) for ingest under API polling. The rounds of both databases take
    turns (empty, full, full polled), so the machine's drifts fall on all: measured one
    database after the other, minutes apart, the ratio swung from 0.62 to 1.16."""
    for gw in gws.values():
        gw.start()
    results: dict[str, dict[str, Any]] = {}
    try:
        for state, gw in gws.items():  # first association of each
            storescu_send(gw.dicom_port, studies[state]["warm"][0], "RISGATE")
        plain: dict[str, list[float]] = {state: [] for state in gws}
        polled: dict[str, list[dict[str, float]]] = {state: [] for state in gws}
        for r in range(size["rounds"]):
            for state, gw in gws.items():
                plain[state].append(_ingest(gw, studies[state]["ingest"][r])["ips"])
                if studies[state]["polling"][r]:
                    polled[state].append(_ingest(gw, studies[state]["polling"][r], poll=True))
        for state, gw in gws.items():
            out: dict[str, Any] = {
                "ingest_ips": statistics.median(plain[state]),
                "ingest_rounds": plain[state],
            }
            if polled[state]:
                out["ingest_polling_ips"] = statistics.median(p["ips"] for p in polled[state])
                out["ingest_polling_rounds"] = [p["ips"] for p in polled[state]]
                out["polling_reads"] = sum(p["reads"] for p in polled[state])
                out["polling_read_p95_ms"] = max(p["read_p95_ms"] for p in polled[state])
            out["api_p95_ms"] = _api_p95(gw, size["studies"] // 2)
            out["mwl_p95_ms"] = _mwl_p95(gw, work)
            results[state] = out
    finally:
        for gw in gws.values():
            gw.stop()
    for state, gw in gws.items():
        results[state]["match_p95_ms"] = _match_p95(urls[state], size["studies"], size["orders"])
        errors = [line for line in gw.log_path.read_text().splitlines() if '"ERROR"' in line]
        for line in errors[:10]:
            print(line, file=sys.stderr)
        results[state]["errors_logged"] = len(errors)
    return results


def bench(
    name: str, url_empty: str, url_full: str, work: Path, size: dict[str, int]
) -> dict[str, Any]:
    n = size["ingest"]
    load_at_start = os.getloadavg()[0]

    def study(tag: str, count: int) -> list[Path]:
        return make_ct_study(work / f"{name}-{tag}", count, accession=f"S{tag}")[1]

    rounds = range(size["rounds"])
    studies: dict[str, dict[str, list[list[Path]]]] = {
        "empty": {
            "warm": [study("w0", 5)],
            "ingest": [study(f"i0{r}", n) for r in rounds],
            "polling": [[] for _ in rounds],
        },
        "full": {
            "warm": [study("w1", 5)],
            "ingest": [study(f"i1{r}", n) for r in rounds],
            "polling": [study(f"p1{r}", n) for r in rounds],
        },
    }
    urls = {"empty": url_empty, "full": url_full}
    for url in urls.values():
        engine = make_engine(url)
        upgrade(engine)
        engine.dispose()
    fill_s = fill(url_full, size["studies"], size["instances"], size["orders"])
    peers = DEFAULT_PEERS + [{"ae_title": s, "host": "127.0.0.1", "modality": "CT"}
                             for s in mwl.STATIONS]  # fmt: skip
    gws = {
        state: GatewayProcess(
            work / f"gateway-{name}-{state}",
            url,
            {
                **PRODUCTION_WORKER,
                "log": {"level": "WARNING"},
                "dicom": {"peers": peers, "processes": 2},
            },
        )
        for state, url in urls.items()
    }
    measured = _measure(gws, urls, work, studies, size)
    empty, full = measured["empty"], measured["full"]
    api = full["api_p95_ms"]
    return {
        "bench": "scale",
        "db": name,
        **size,
        "fill_s": round(fill_s, 1),
        "load_avg": [round(load_at_start, 1), round(os.getloadavg()[0], 1)],  # 1 min, start/end
        "ingest_ratio_full_db": round(full["ingest_ips"] / empty["ingest_ips"], 2),
        "ingest_ratio_api_polling": round(full["ingest_polling_ips"] / full["ingest_ips"], 2),
        "api_p95_ms": max(api.values()),
        "mwl_p95_ms": full["mwl_p95_ms"],
        "match_p95_ms": max(full["match_p95_ms"].values()),
        "empty": empty,
        "full": full,
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--studies", type=int, default=50_000)
    parser.add_argument("--instances", type=int, default=1_000_000)
    parser.add_argument("--orders", type=int, default=100_000)
    parser.add_argument("--ingest", type=int, default=300, help="instances per ingest run")
    parser.add_argument("--rounds", type=int, default=3, help="ingest runs per case; medians")
    parser.add_argument("--db", default="sqlite,postgresql")
    parser.add_argument("--quick", action="store_true", help="2,000 studies, 40,000 instances")
    args = parser.parse_args()
    if args.quick:
        args.studies, args.instances, args.orders, args.ingest = 2000, 40_000, 4000, 60
        args.rounds = 2
    size = {"studies": args.studies, "instances": args.instances, "orders": args.orders,
            "ingest": args.ingest, "rounds": args.rounds}  # fmt: skip
    with scratch("risgate-bench-scale-") as work:
        for name in args.db.split(","):
            if name == "sqlite":
                urls = (f"sqlite:///{work / 'empty.db'}", f"sqlite:///{work / 'full.db'}")
                emit(bench(name, *urls, work, size))
            elif name == "postgresql":
                from tests.support.postgres import PostgresCluster

                cluster = PostgresCluster()
                cluster.start()
                try:
                    urls = (cluster.create_database(), cluster.create_database())
                    emit(bench(name, *urls, work, size))
                finally:
                    cluster.stop()
            else:
                raise SystemExit(f"unknown --db {name}")


if __name__ == "__main__":
    main()
