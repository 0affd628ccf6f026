"""Forward benchmark: time until a 500-instance CT study is complete in Orthanc, sent
(a) by storescu straight to Orthanc, (b) by storescu to the gateway, which forwards it.

Prints one JSON line: ``direct_s``, ``gateway_s`` and ``ratio`` (gateway_s / direct_s).
Usage: .venv/bin/python -m bench.forward [--instances N]
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path

from bench.common import emit, storescu_send
from gateway.local_orthanc import LocalOrthanc, OrthancConfig
from tests.support.ctgen import make_ct_study
from tests.support.destination import destination_for
from tests.support.gateway_proc import GatewayProcess
from tests.support.net import free_port


def _count(orthanc: LocalOrthanc) -> int:
    with orthanc.client() as c:
        return int(c.get("/statistics").json()["CountInstances"])


def _wait_complete(orthanc: LocalOrthanc, n: int, timeout: float = 600) -> None:
    deadline = time.monotonic() + timeout
    while _count(orthanc) < n:
        if time.monotonic() > deadline:
            raise TimeoutError("study never completed in Orthanc")
        time.sleep(0.05)


def _full_path(work: Path, studies: int, processes: int) -> dict[str, object]:
    """Order in, study matched and coerced, forwarded, verified, ORU out: per study, the
    time from the last C-STORE answered to the ORU^R01 received by the EMR peer."""
    from datetime import date

    from tests.fixtures.orders.helpers import orm, send_all
    from tests.support.emr import EmrPeer

    pacs = LocalOrthanc(
        OrthancConfig(work_dir=work / "orthanc-full", http_port=free_port(), dicom_port=free_port())
    )
    pacs.start()
    emr = EmrPeer().start()
    gw = GatewayProcess(
        work / "gateway-full",
        f"sqlite:///{work / 'gateway-full' / 'risgate.db'}",
        {
            "dicom": {"processes": processes},
            "log": {"level": "WARNING"},
            "studies": {"stable_after_s": 1},
            "forward": {"destinations": [destination_for(pacs)]},
            "notify": {"enabled": True, "port": emr.port},
        },
    )
    gw.start()
    today = date.today().strftime("%Y%m%d")
    latencies = []
    try:
        for i in range(studies):
            accession = f"FP{i:04d}"
            send_all(
                gw.hl7_port,
                [orm(f"B{i}", patient_id=f"BN{i:04d}", name="NGUYỄN^VĂN AN",
                     placer=f"PB{i}", accession=accession, start=f"{today}080000")],
            )  # fmt: skip
            _, files = make_ct_study(
                work / f"full{i}", 10, size=256, patient_id="TYPO", accession=accession
            )
            storescu_send(gw.dicom_port, files, "RISGATE")
            sent = time.perf_counter()
            deadline = sent + 120
            while not any(accession in m for m in emr.messages_of_type("ORU^R01")):
                if time.perf_counter() > deadline:
                    raise TimeoutError(f"no ORU for {accession}")
                time.sleep(0.01)
            latencies.append(time.perf_counter() - sent)
    finally:
        gw.stop()
        emr.stop()
        pacs.stop()
    latencies.sort()
    return {
        "bench": "full_path",
        "studies": studies,
        "instances_per_study": 10,
        "stable_after_s": 1,
        "p50_s": round(latencies[len(latencies) // 2], 2),
        "p95_s": round(latencies[min(len(latencies) - 1, int(len(latencies) * 0.95))], 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--instances", type=int, default=500)
    parser.add_argument("--processes", type=int, default=2)
    parser.add_argument("--protocol", choices=["dicom", "rest"], default="dicom")
    parser.add_argument(
        "--full-path", action="store_true", help="also time order -> study -> ORU (20 studies)"
    )
    parser.add_argument("--studies", type=int, default=20)
    parser.add_argument("--associations", type=int, default=1, help="sender associations")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="risgate-bench-fwd-"))
    n = args.instances
    _, direct_files = make_ct_study(work / "direct", n, accession="DIRECT")
    _, gw_files = make_ct_study(work / "gw", n, accession="VIAGW")

    def orthanc(name: str) -> LocalOrthanc:
        server = LocalOrthanc(
            OrthancConfig(work_dir=work / name, http_port=free_port(), dicom_port=free_port())
        )
        server.start()
        return server

    direct = orthanc("orthanc-direct")
    try:
        start = time.perf_counter()
        storescu_send(direct.config.dicom_port, direct_files, "ORTHANC")
        _wait_complete(direct, n)
        direct_s = time.perf_counter() - start
    finally:
        direct.stop()

    pacs = orthanc("orthanc-gw")
    gw = GatewayProcess(
        work / "gateway",
        f"sqlite:///{work / 'gateway' / 'risgate.db'}",
        {
            "dicom": {"processes": args.processes},
            "log": {"level": "WARNING"},
            # No order for this study: forward it rather than hold it for reconciliation.
            "reconcile": {"unmatched": "forward"},
            "forward": {
                "destinations": [
                    destination_for(pacs, protocol=args.protocol, associations=args.associations)
                ]
            },
        },
    )
    gw.start()
    try:
        start = time.perf_counter()
        send_s = storescu_send(gw.dicom_port, gw_files, "RISGATE")
        _wait_complete(pacs, n)
        gateway_s = time.perf_counter() - start
    finally:
        gw.stop()
        pacs.stop()
    problems = [line for line in gw.log_path.read_text().splitlines() if '"ERROR"' in line]
    for line in problems[:10]:
        print(line, file=sys.stderr)
    if args.full_path:
        emit(_full_path(work, args.studies, args.processes))
    emit(
        {
            "bench": "forward",
            "instances": n,
            "direct_s": round(direct_s, 2),
            "gateway_s": round(gateway_s, 2),
            "gateway_receive_s": round(send_s, 2),
            "ratio": round(gateway_s / direct_s, 2),
        }
    )
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
