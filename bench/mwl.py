"""Worklist benchmark: C-FIND latency with 100,000 scheduled steps in the database, for a
typical modality query (Scheduled Station AE title + today's date), against a running
gateway (SQLite), asked by dcmtk ``findscu -W`` as a modality would: each figure is a
whole findscu run (process start, association, query, every answer, release); the same
query for an unknown station AE (no match) is measured alongside as the floor.

Prints one JSON line with ``steps``, ``p50_ms``, ``p95_ms`` (and items per answer).
Usage: .venv/bin/python -m bench.mwl [--steps N] [--queries N]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import date, datetime, timedelta
from pathlib import Path

from sqlalchemy import insert

from bench.common import STORESCU_ENV as FINDSCU_ENV
from bench.common import emit
from gateway.db import make_engine
from gateway.migrate import upgrade
from gateway.orders.models import (
    Order,
    OrderPatient,
    PatientIdentifierRow,
    RequestedProcedure,
    ScheduledStep,
)
from tests.support.gateway_proc import GatewayProcess

STATIONS = [f"CT{i:02d}" for i in range(1, 11)]
DAYS = 365
PATIENTS = 20_000
CHUNK = 5000


def populate(url: str, steps: int) -> None:
    """``steps`` orders of one step each, spread over a year around today and 10 stations."""
    engine = make_engine(url, sqlite_synchronous="NORMAL")
    upgrade(engine)
    now = datetime.now().replace(microsecond=0)
    first_day = date.today() - timedelta(days=DAYS // 2)
    with engine.begin() as conn:
        conn.execute(
            insert(OrderPatient),
            [
                {
                    "id": p + 1,
                    "patient_id": f"BN{p:06d}",
                    "issuer": "BV",
                    "family_name": "NGUYỄN",
                    "given_name": f"VĂN {p}",
                    "middle_name": "",
                    "birth_date": "19800101",
                    "sex": "M",
                    "address": "",
                    "created_at": now,
                    "updated_at": now,
                }
                for p in range(PATIENTS)
            ],
        )
        conn.execute(
            insert(PatientIdentifierRow),
            [
                {
                    "patient_pk": p + 1,
                    "identifier": f"BN{p:06d}",
                    "authority": "BV",
                    "type_code": "MR",
                }
                for p in range(PATIENTS)
            ],
        )
    for start in range(0, steps, CHUNK):
        rows = range(start, min(start + CHUNK, steps))
        with engine.begin() as conn:
            conn.execute(
                insert(Order),
                [
                    {
                        "id": i + 1,
                        "patient_pk": i % PATIENTS + 1,
                        "placer_number": f"PL{i}",
                        "filler_number": f"FL{i}",
                        "sending_application": "HIS",
                        "status": "SCHEDULED",
                        "last_control": "NW",
                        "priority": "",
                        "requesting_physician": "",
                        "reason": "",
                        "created_at": now,
                        "updated_at": now,
                    }
                    for i in rows
                ],
            )
            conn.execute(
                insert(RequestedProcedure),
                [
                    {
                        "id": i + 1,
                        "order_pk": i + 1,
                        "requested_procedure_id": f"RP{i}",
                        "accession_number": f"ACC{i}",
                        "study_instance_uid": f"1.2.826.0.1.3680043.8.498.{i + 1}",
                        "procedure_code": "18.0149.0040",
                        "procedure_text": "CT sọ não",
                        "coding_system": "BYT",
                    }
                    for i in rows
                ],
            )
            conn.execute(
                insert(ScheduledStep),
                [
                    {
                        "id": i + 1,
                        "rp_pk": i + 1,
                        "step_id": f"SPS{i}",
                        "modality": "CT",
                        "station_ae": STATIONS[i % len(STATIONS)],
                        "station_name": "",
                        "location": "",
                        "start_date": (first_day + timedelta(days=(i // 10) % DAYS)).strftime(
                            "%Y%m%d"
                        ),
                        "start_time": f"{7 + i % 11:02d}{i % 60:02d}00",
                        "description": "CT sọ não",
                        "protocol_code": "",
                        "protocol_text": "",
                        "protocol_scheme": "",
                        "status": "SCHEDULED",
                        "updated_at": now,
                    }
                    for i in rows
                ],
            )
    engine.dispose()


def _findscu(port: int, station: str, day: str) -> tuple[float, int]:
    """One ``findscu -W`` run (process, association, query, answers): ms and items."""
    sps = "ScheduledProcedureStepSequence[0]."
    args = ["findscu", "-W", "-aet", "CT03", "-aec", "RISGATE"]
    for key in (
        "PatientName",
        "PatientID",
        "PatientBirthDate",
        "PatientSex",
        "AccessionNumber",
        "StudyInstanceUID",
        "RequestedProcedureID",
        "RequestedProcedureDescription",
        f"{sps}ScheduledStationAETitle={station}",
        f"{sps}ScheduledProcedureStepStartDate={day}",
        f"{sps}ScheduledProcedureStepStartTime",
        f"{sps}Modality",
        f"{sps}ScheduledProcedureStepID",
        f"{sps}ScheduledProcedureStepDescription",
    ):
        args += ["-k", key]
    start = time.perf_counter()
    proc = subprocess.run(
        [*args, "127.0.0.1", str(port)], capture_output=True, text=True, env=FINDSCU_ENV
    )
    elapsed = (time.perf_counter() - start) * 1000
    if proc.returncode != 0:
        raise RuntimeError(f"findscu failed: {proc.stderr[-500:]}")
    return elapsed, proc.stderr.count("Find Response:") - 1  # the last one is the final status


def _percentiles(values: list[float]) -> tuple[float, float]:
    values = sorted(values)
    return round(statistics.median(values), 1), round(values[int(len(values) * 0.95) - 1], 1)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--steps", type=int, default=100_000)
    parser.add_argument("--queries", type=int, default=200)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="risgate-bench-mwl-"))
    url = f"sqlite:///{work / 'gateway' / 'risgate.db'}"
    (work / "gateway").mkdir()
    populate(url, args.steps)
    peers = [{"ae_title": s, "host": "127.0.0.1", "modality": "CT"} for s in STATIONS]
    gw = GatewayProcess(
        work / "gateway", url, {"log": {"level": "WARNING"}, "dicom": {"peers": peers}}
    )
    gw.start()
    today = date.today().strftime("%Y%m%d")
    latencies: list[float] = []
    empty: list[float] = []
    counts: list[int] = []
    try:
        for n in range(args.queries + 10):
            station = STATIONS[n % len(STATIONS)]
            elapsed, items = _findscu(gw.dicom_port, station, today)
            none, _ = _findscu(gw.dicom_port, "NOSUCHAE", today)
            if n >= 10:  # the first ones warm up caches
                latencies.append(elapsed)
                empty.append(none)
                counts.append(items)
    finally:
        gw.stop()
        subprocess.run(["rm", "-rf", str(work)], check=False)
    p50, p95 = _percentiles(latencies)
    empty_p50, empty_p95 = _percentiles(empty)
    emit(
        {
            "bench": "mwl",
            "steps": args.steps,
            "queries": len(latencies),
            "items_per_answer": round(statistics.mean(counts), 1),
            "p50_ms": p50,
            "p95_ms": p95,
            "client": "dcmtk findscu -W, one process and association per query",
            "no_match_p50_ms": empty_p50,
            "no_match_p95_ms": empty_p95,
        }
    )


if __name__ == "__main__":
    sys.exit(main())
