"""Ingest benchmark: a 500-instance 512x512 CT study sent by storescu to dcmtk storescp,
to Orthanc and to the gateway (durable path on), with one, four and sixteen associations
(16 storescu processes at once: a department's modalities sending together).

Prints one JSON line: instances/s and MB/s for each receiver, the gateway's peak RSS (the
gateway twice in the same run: its fast DICOM path, then stock pynetdicom with
``dicom.fast_path = false``, keys ending ``_stock``, e.g. ``gateway_ips_stock``), the
ERROR lines in the gateway's log (an association refused fails the run) and
the per-instance CPU cost of the receive path's structure check
(:mod:`dicom_nodes.structure_check`), timed in this process on the same files
(``validate_us``) and on pydicom's header-rich ``CT_small.dcm`` (``validate_us_ct_small``,
271 element headers).
Usage: .venv/bin/python -m bench.ingest [--instances N]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from pydicom.data import get_testdata_file

from bench.common import RssSampler, emit, scratch, storescu_send, wait_port
from dicom_nodes.structure_check import check_file
from gateway.operations.local_orthanc import LocalOrthanc, OrthancConfig
from tests.support.ctgen import make_ct_study
from tests.support.gateway_proc import GatewayProcess
from tests.support.net import free_port


def _measure(
    port: int, aec: str, one: list[Path], four: list[Path], sixteen: list[Path]
) -> dict[str, float]:
    mb1 = sum(p.stat().st_size for p in one) / 1e6
    mb4 = sum(p.stat().st_size for p in four) / 1e6
    mb16 = sum(p.stat().st_size for p in sixteen) / 1e6
    t1 = storescu_send(port, one, aec, 1)
    t4 = storescu_send(port, four, aec, 4)
    t16 = storescu_send(port, sixteen, aec, 16)
    return {
        "ips": len(one) / t1,
        "mbs": mb1 / t1,
        "ips_4": len(four) / t4,
        "mbs_4": mb4 / t4,
        "ips_16": len(sixteen) / t16,
        "mbs_16": mb16 / t16,
    }


def _validate_us(files: Sequence[Path], rounds: int = 3) -> float:
    """Mean CPU microseconds of the structure check of one file (the files are in the
    page cache, as the receive path's temp file is)."""
    start = time.process_time()
    for _ in range(rounds):
        for path in files:
            if check_file(path) is not None:
                raise RuntimeError(f"structure check refused {path.name}")
    return (time.process_time() - start) / (rounds * len(files)) * 1e6


def _gateway(
    args: argparse.Namespace,
    work: Path,
    studies: dict[str, tuple[list[Path], list[Path], list[Path]]],
    result: dict[str, object],
    *,
    fast: bool,
) -> None:
    name = "gateway" if fast else "gateway_stock"
    suffix = "" if fast else "_stock"
    extra: dict[str, object] = {
        "dicom": {"processes": args.processes, "fast_path": fast},
        "log": {"level": "WARNING"},
        "worker": {"poll_interval_s": float(os.environ.get("BENCH_POLL", "1.0"))},
    }
    if args.no_fsync:
        extra["store"] = {"fsync": False}
        extra["database"] = {"sqlite_synchronous": "NORMAL"}
    gw = GatewayProcess(work / name, f"sqlite:///{work / name / 'risgate.db'}", extra)
    gw.start()
    try:
        assert gw.process is not None
        with RssSampler(gw.process.pid) as rss:
            r = _measure(gw.dicom_port, "RISGATE", *studies[name])
        result.update({f"gateway_{k}{suffix}": round(v, 1) for k, v in r.items()})
        result[f"gateway_rss_mb{suffix}"] = round(rss.peak, 1)
        result["gateway_processes"] = args.processes
    finally:
        gw.stop()
    if not fast:
        return
    one, four, _sixteen = studies["gateway"]
    result["validate_us"] = round(_validate_us([*one, *four]), 1)
    ct_small = Path(str(get_testdata_file("CT_small.dcm")))
    result["validate_us_ct_small"] = round(_validate_us([ct_small] * 200), 1)
    errors = [line for line in gw.log_path.read_text().splitlines() if '"ERROR"' in line]
    for line in errors[:10]:
        print(line, file=sys.stderr)
    result["gateway_errors_logged"] = len(errors)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--instances", type=int, default=500)
    parser.add_argument("--processes", type=int, default=2, help="gateway receiver processes")
    parser.add_argument(
        "--only-gateway", action="store_true", help="skip the references (profiling only)"
    )
    parser.add_argument("--no-fsync", action="store_true", help="durability off (profiling only)")
    args = parser.parse_args()
    with scratch("risgate-bench-ingest-") as work:
        _run(args, work)


def _run(args: argparse.Namespace, work: Path) -> None:
    result: dict[str, object] = {"bench": "ingest", "instances": args.instances}

    # A distinct study per receiver and run, so nobody is sent duplicates.
    studies = {
        name: (
            make_ct_study(work / f"{name}1", args.instances, accession=f"{name}1")[1],
            make_ct_study(work / f"{name}4", args.instances, accession=f"{name}4")[1],
            make_ct_study(work / f"{name}16", args.instances, accession=f"{name}16")[1],
        )
        for name in (
            ("gateway", "gateway_stock")
            if args.only_gateway
            else ("storescp", "orthanc", "gateway", "gateway_stock")
        )
    }

    if args.only_gateway:
        _gateway(args, work, studies, result, fast=True)
        _gateway(args, work, studies, result, fast=False)
        emit(result)
        return
    port = free_port()
    (work / "scp").mkdir()
    scp = subprocess.Popen(
        [
            "storescp",
            "--fork",
            "-aet",
            "STORESCP",
            "--max-pdu",
            "131072",
            "-od",
            str(work / "scp"),
            str(port),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env={"TCP_NODELAY": "1", "PATH": "/usr/bin:/bin"},
    )
    try:
        wait_port(port)
        r = _measure(port, "STORESCP", *studies["storescp"])
        result.update({f"storescp_{k}": round(v, 1) for k, v in r.items()})
    finally:
        scp.terminate()
        scp.wait()

    orthanc = LocalOrthanc(
        OrthancConfig(work_dir=work / "orthanc", http_port=free_port(), dicom_port=free_port())
    )
    orthanc.start()
    try:
        r = _measure(orthanc.config.dicom_port, "ORTHANC", *studies["orthanc"])
        result.update({f"orthanc_{k}": round(v, 1) for k, v in r.items()})
    finally:
        orthanc.stop()

    _gateway(args, work, studies, result, fast=True)
    _gateway(args, work, studies, result, fast=False)
    result["ratio_1"] = round(float(result["gateway_ips"]) / float(result["orthanc_ips"]), 2)  # type: ignore[arg-type]
    result["ratio_4"] = round(float(result["gateway_ips_4"]) / float(result["orthanc_ips_4"]), 2)  # type: ignore[arg-type]
    result["ratio_16"] = round(float(result["gateway_ips_16"]) / float(result["orthanc_ips_16"]), 2)  # type: ignore[arg-type]
    emit(result)


if __name__ == "__main__":
    main()
