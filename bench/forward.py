"""Forward benchmark: time until a 500-instance CT study is complete in Orthanc, sent
(a) by storescu straight to Orthanc, (b) by storescu to the gateway, which forwards it
corrected: an HL7 order (ORM^O01 over MLLP) with other demographics than the modality's
came first, so every instance leaves with the order's values and an Original Attributes
Sequence (the normal case in a hospital), (c) by storescu to the gateway for a study
without an order (``reconcile.unmatched = "forward"``: forwarded as received), (d) as (b)
through a second gateway on stock pynetdicom (``dicom.fast_path = false``; a corrected
instance leaves as its whole corrected data set) forwarding to its own Orthanc.

(a) to (d) take turns for ``--rounds`` rounds (3 by default; a new study each time), so a
drift of this shared machine's speed falls on all; single runs here drift by a third. A
20-instance study through each path first warms them up (not timed).
Prints one JSON line: ``direct_s``, ``gateway_s`` (matched), ``gateway_unmatched_s`` and
``gateway_s_stock`` (medians of the rounds), ``ratio`` (gateway_s / direct_s),
``ratio_unmatched``, ``ratio_stock`` and every round's figures.
Usage: .venv/bin/python -m bench.forward [--instances N] [--rounds R]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

from bench.common import (
    PRODUCTION_WORKER,
    emit,
    scratch,
    storescu_send,
    wait_instances,
    wait_quiet,
)
from gateway.operations.local_orthanc import LocalOrthanc, OrthancConfig
from tests.support.ctgen import make_ct_study
from tests.support.destination import destination_for
from tests.support.gateway_proc import GatewayProcess
from tests.support.net import free_port

WARM_UP = 20


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


def _order(port: int, accession: str, i: int) -> None:
    """An order for study ``accession`` whose patient differs from the modality's."""
    from datetime import date

    from tests.fixtures.orders.helpers import ack_code, orm, send_all

    today = date.today().strftime("%Y%m%d")
    message = orm(f"BF{i}", patient_id=f"BF{i:04d}", name="NGUYỄN^VĂN AN",
                  placer=f"PF{i}", accession=accession, start=f"{today}080000")  # fmt: skip
    acks = send_all(port, [message])
    if ack_code(acks[0]) != "AA":
        raise RuntimeError(f"order {accession} not accepted")


def _round(
    orthanc: LocalOrthanc, port: int, aec: str, files: list[Path], expected: int
) -> tuple[float, float]:
    """Send one study with storescu to ``port``; (seconds until ``orthanc`` holds
    ``expected`` instances, seconds storescu took)."""
    # Every round starts on a quiet machine: no dirty pages left by the rounds before or
    # by the study generation (their writeback would slow this round's fsyncs), and the
    # gateway done with the previous study (verification, thumbnails, costing).
    os.sync()
    wait_quiet()
    start = time.perf_counter()
    send_s = storescu_send(port, files, aec)
    wait_instances(orthanc, expected)
    return time.perf_counter() - start, send_s


def _settle(gw: GatewayProcess, study_uid: str, timeout: float = 300) -> None:
    """Wait until the gateway is done with a study it forwarded: verified in the PACS
    and no job of any kind (costing, thumbnails, results) left to run. A study becomes
    stable ``stable_after_s`` after its last instance; without this wait its
    verification, thumbnail and costing would run inside a later round, timed against
    whichever path that round measures."""
    deadline = time.monotonic() + timeout

    def done() -> bool:
        detail = gw.get(f"/api/studies/{study_uid}")
        forwarding = detail["forwarding"]
        if not forwarding or any(f["state"] != "VERIFIED" for f in forwarding):
            return False
        counts = gw.get("/api/queue", dead_limit=0)["counts"]
        return not any(
            by_state.get("PENDING", 0) or by_state.get("RUNNING", 0) for by_state in counts.values()
        )

    while not done():
        if time.monotonic() > deadline:
            raise TimeoutError(f"the gateway never finished study {study_uid}")
        time.sleep(0.2)


def _corrected_share(orthanc: LocalOrthanc, accessions: list[str]) -> str:
    """How many ("k/n") of the matched studies' instances in Orthanc carry the order's
    patient and an Original Attributes Sequence: the bench timed the right path."""
    ok = total = 0
    with orthanc.client() as c:
        for accession in accessions:
            found = c.post(
                "/tools/find",
                json={"Level": "Instance", "Query": {"AccessionNumber": accession}},
            ).json()
            for instance in found:
                total += 1
                tags = c.get(f"/instances/{instance}/tags?short").json()
                ok += tags.get("0010,0020", "").startswith("BF") and "0400,0561" in tags
    return f"{ok}/{total}"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--instances", type=int, default=500)
    parser.add_argument("--rounds", type=int, default=3, help="alternating rounds; medians")
    parser.add_argument("--processes", type=int, default=2)
    parser.add_argument("--protocol", choices=["dicom", "rest"], default="dicom")
    parser.add_argument(
        "--full-path", action="store_true", help="also time order -> study -> ORU (20 studies)"
    )
    parser.add_argument("--studies", type=int, default=20)
    parser.add_argument("--associations", type=int, default=1, help="sender associations")
    args = parser.parse_args()
    with scratch("risgate-bench-fwd-") as work:
        _run(args, work)


def _run(args: argparse.Namespace, work: Path) -> None:
    n = args.instances
    # A new study per round and path: the gateway forwards an instance once only.
    # The modality's demographics (patient "TYPO") differ from the orders' (BF...).
    studies = [
        (
            make_ct_study(work / f"direct{r}", n, accession=f"DIRECT{r}"),
            make_ct_study(work / f"gw{r}", n, accession=f"MATCH{r}", patient_id="TYPO"),
            make_ct_study(work / f"raw{r}", n, accession=f"NOORDER{r}"),
            make_ct_study(work / f"stock{r}", n, accession=f"STOCK{r}", patient_id="TYPO"),
        )
        for r in range(args.rounds)
    ]
    _, warm_direct = make_ct_study(work / "warm-direct", WARM_UP, accession="WARMD")
    warm_gw = make_ct_study(work / "warm-gw", WARM_UP, accession="WARMG", patient_id="TYPO")
    warm_raw = make_ct_study(work / "warm-raw", WARM_UP, accession="WARMR")
    warm_stock = make_ct_study(work / "warm-stock", WARM_UP, accession="WARMS", patient_id="TYPO")

    def orthanc(name: str) -> LocalOrthanc:
        server = LocalOrthanc(
            OrthancConfig(work_dir=work / name, http_port=free_port(), dicom_port=free_port())
        )
        server.start()
        return server

    direct = orthanc("orthanc-direct")
    pacs = orthanc("orthanc-gw")
    pacs_stock = orthanc("orthanc-gw-stock")

    def gateway(name: str, target: LocalOrthanc, fast: bool) -> GatewayProcess:
        return GatewayProcess(
            work / name,
            f"sqlite:///{work / name / 'risgate.db'}",
            {
                **PRODUCTION_WORKER,
                "dicom": {"processes": args.processes, "fast_path": fast},
                "log": {"level": "WARNING"},
                # (c) has no order: forward it rather than hold it for reconciliation.
                "reconcile": {"unmatched": "forward"},
                "forward": {
                    "destinations": [
                        destination_for(
                            target, protocol=args.protocol, associations=args.associations
                        )
                    ]
                },
            },
        )

    gw = gateway("gateway", pacs, True)
    gw_stock = gateway("gateway-stock", pacs_stock, False)
    direct_s: list[float] = []
    gateway_s: list[float] = []
    unmatched_s: list[float] = []
    receive_s: list[float] = []
    stock_s: list[float] = []
    stock_receive_s: list[float] = []
    try:
        gw.start()
        gw_stock.start()
        for r in range(args.rounds):
            _order(gw.hl7_port, f"MATCH{r}", r)
            _order(gw_stock.hl7_port, f"STOCK{r}", r)
        _order(gw.hl7_port, "WARMG", args.rounds)
        _order(gw_stock.hl7_port, "WARMS", args.rounds)
        # A small study through each path first (not timed): first associations, lazy
        # imports and cold caches on all sides.
        _round(direct, direct.config.dicom_port, "ORTHANC", warm_direct, WARM_UP)
        _round(pacs, gw.dicom_port, "RISGATE", warm_gw[1], WARM_UP)
        _round(pacs, gw.dicom_port, "RISGATE", warm_raw[1], 2 * WARM_UP)
        _round(pacs_stock, gw_stock.dicom_port, "RISGATE", warm_stock[1], WARM_UP)
        _settle(gw, warm_gw[0])
        _settle(gw, warm_raw[0])
        _settle(gw_stock, warm_stock[0])
        # Direct and through the gateways take turns, so drifts of the machine's speed
        # fall on all paths alike. After each gateway round, the gateway finishes that
        # study (verification, thumbnails, costing) before the next round starts.
        for r, (direct_study, gw_study, raw_study, stock_study) in enumerate(studies):
            direct_s.append(
                _round(
                    direct, direct.config.dicom_port, "ORTHANC", direct_study[1],
                    WARM_UP + n * (r + 1),
                )[0]
            )  # fmt: skip
            expected = 2 * WARM_UP + 2 * n * r + n
            total, send = _round(pacs, gw.dicom_port, "RISGATE", gw_study[1], expected)
            _settle(gw, gw_study[0])
            gateway_s.append(total)
            receive_s.append(send)
            unmatched_s.append(
                _round(pacs, gw.dicom_port, "RISGATE", raw_study[1], expected + n)[0]
            )
            _settle(gw, raw_study[0])
            total, send = _round(
                pacs_stock, gw_stock.dicom_port, "RISGATE", stock_study[1], WARM_UP + n * (r + 1)
            )
            _settle(gw_stock, stock_study[0])
            stock_s.append(total)
            stock_receive_s.append(send)
        corrected = _corrected_share(pacs, [f"MATCH{r}" for r in range(args.rounds)])
        corrected_stock = _corrected_share(pacs_stock, [f"STOCK{r}" for r in range(args.rounds)])
    finally:
        gw.stop()
        gw_stock.stop()
        pacs.stop()
        pacs_stock.stop()
        direct.stop()
    problems = [
        line
        for g in (gw, gw_stock)
        for line in g.log_path.read_text().splitlines()
        if '"ERROR"' in line
    ]
    for line in problems[:10]:
        print(line, file=sys.stderr)
    if args.full_path:
        emit(_full_path(work, args.studies, args.processes))
    direct_median = statistics.median(direct_s)
    gateway_median = statistics.median(gateway_s)
    unmatched_median = statistics.median(unmatched_s)
    stock_median = statistics.median(stock_s)
    emit(
        {
            "bench": "forward",
            "instances": n,
            "rounds": args.rounds,
            "direct_s": round(direct_median, 2),
            "gateway_s": round(gateway_median, 2),
            "gateway_unmatched_s": round(unmatched_median, 2),
            "gateway_receive_s": round(statistics.median(receive_s), 2),
            "ratio": round(gateway_median / direct_median, 2),
            "ratio_unmatched": round(unmatched_median / direct_median, 2),
            "gateway_s_stock": round(stock_median, 2),
            "gateway_receive_s_stock": round(statistics.median(stock_receive_s), 2),
            "ratio_stock": round(stock_median / direct_median, 2),
            "corrected_instances": corrected,
            "corrected_instances_stock": corrected_stock,
            "direct_rounds_s": [round(x, 2) for x in direct_s],
            "gateway_rounds_s": [round(x, 2) for x in gateway_s],
            "gateway_unmatched_rounds_s": [round(x, 2) for x in unmatched_s],
            "gateway_stock_rounds_s": [round(x, 2) for x in stock_s],
        }
    )


if __name__ == "__main__":
    main()
