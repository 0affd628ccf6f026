"""Worklist benchmark: C-FIND latency with 100,000 scheduled steps in the database, for a
typical modality query (Scheduled Station AE title + today's date), against a running
gateway (SQLite), asked by dcmtk ``findscu -W`` as a modality would: one association per
station, the query repeated on it, each latency from the request to the final response
(findscu's own millisecond log), every pending answer included.

Prints one JSON line with ``steps``, ``p50_ms``, ``p95_ms`` (and items per answer).
Usage: .venv/bin/python -m bench.mwl [--steps N] [--queries N]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
from datetime import date, datetime, timedelta
from pathlib import Path

from sqlalchemy import insert

from bench.common import STORESCU_ENV as FINDSCU_ENV
from bench.common import emit, scratch
from gateway.core.database import make_engine
from gateway.core.migrate import upgrade
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


LOG_CONFIG = """log4cplus.rootLogger = INFO, console
log4cplus.appender.console = log4cplus::ConsoleAppender
log4cplus.appender.console.layout = log4cplus::PatternLayout
log4cplus.appender.console.layout.ConversionPattern = %D{%H:%M:%S.%q} %m%n
"""


def _ms_of_day(stamp: str) -> float:
    hours, minutes, seconds = stamp.split(":")
    return (int(hours) * 3600 + int(minutes) * 60 + float(seconds)) * 1000


def _findscu(
    port: int, station: str, day: str, repeat: int, log_config: Path
) -> list[tuple[float, int]]:
    """``findscu -W --repeat`` on one association: (latency ms, items) per query.

    Latency is from "Sending Find Request" to "Received Final Find Response" in findscu's
    own log (millisecond timestamps), so process start and association set-up are not in it.
    """
    sps = "ScheduledProcedureStepSequence[0]."
    args = ["findscu", "-W", "--log-config", str(log_config), "--repeat", str(repeat)]
    args += ["-aet", "CT03", "-aec", "RISGATE"]
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
    proc = subprocess.run(
        [*args, "127.0.0.1", str(port)], capture_output=True, text=True, env=FINDSCU_ENV
    )
    if proc.returncode != 0:
        raise RuntimeError(f"findscu failed: {proc.stderr[-500:]}")
    out: list[tuple[float, int]] = []
    sent_at: float | None = None
    items = 0
    for line in (proc.stdout + proc.stderr).splitlines():
        stamp, _, text = line.partition(" ")
        if text.startswith("Sending Find Request"):
            sent_at, items = _ms_of_day(stamp), 0
        elif text.startswith("Find Response:") and "Pending" in text:
            items += 1
        elif text.startswith("Received Final Find Response") and sent_at is not None:
            elapsed = _ms_of_day(stamp) - sent_at
            out.append((elapsed + 86_400_000 if elapsed < 0 else elapsed, items))
            sent_at = None
    if len(out) != repeat:
        raise RuntimeError(f"expected {repeat} answers, parsed {len(out)}")
    return out


def _percentiles(values: list[float]) -> tuple[float, float]:
    values = sorted(values)
    return round(statistics.median(values), 1), round(values[int(len(values) * 0.95) - 1], 1)


def _run(args: argparse.Namespace, work: Path) -> tuple[list[float], list[int]]:
    """The database filled, a gateway on it, every station's queries: (latencies, items)."""
    url = f"sqlite:///{work / 'gateway' / 'risgate.db'}"
    (work / "gateway").mkdir()
    populate(url, args.steps)
    peers = [{"ae_title": s, "host": "127.0.0.1", "modality": "CT"} for s in STATIONS]
    gw = GatewayProcess(
        work / "gateway", url, {"log": {"level": "WARNING"}, "dicom": {"peers": peers}}
    )
    gw.start()
    today = date.today().strftime("%Y%m%d")
    log_config = work / "findscu-log.cfg"
    log_config.write_text(LOG_CONFIG)
    per_station = max(args.queries // len(STATIONS), 1)
    latencies: list[float] = []
    counts: list[int] = []
    try:
        for station in STATIONS:
            runs = _findscu(gw.dicom_port, station, today, per_station + 1, log_config)
            for elapsed, items in runs[1:]:  # the first query of each run warms up
                latencies.append(elapsed)
                counts.append(items)
    finally:
        gw.stop()
    return latencies, counts


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--steps", type=int, default=100_000)
    parser.add_argument("--queries", type=int, default=200)
    args = parser.parse_args()
    with scratch("risgate-bench-mwl-") as work:
        latencies, counts = _run(args, work)
    p50, p95 = _percentiles(latencies)
    emit(
        {
            "bench": "mwl",
            "steps": args.steps,
            "queries": len(latencies),
            "items_per_answer": round(statistics.mean(counts), 1),
            "p50_ms": p50,
            "p95_ms": p95,
            "client": "dcmtk findscu -W --repeat, request to final response",
        }
    )


if __name__ == "__main__":
    main()
