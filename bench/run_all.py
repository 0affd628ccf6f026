"""Run every benchmark under ``bench/`` in turn and compare each with its target.

Each benchmark runs in its own process (``python -m bench.<name>``) and prints JSON lines;
this collects them, writes them to a file (``--out``, default
``var/bench/run_all-<UTC time>.jsonl``) and prints a table: the gateway's figure, the
reference measured in the same run, their ratio, the target from the issues and PASS or
MISS. ``--quick`` uses smaller sizes (a smoke run; the targets are meant for full sizes).
Exit status: 1 if a benchmark failed to run, 0 otherwise (a MISS is reported, not fatal).

Usage: .venv/bin/python -m bench.run_all [--quick] [--only ingest,hl7] [--out FILE]
(also ``risgate bench`` from a source checkout); ``--table FILE`` prints the table of an
earlier run again.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent

# name -> (arguments for the full run, arguments for --quick)
BENCHES: dict[str, tuple[list[str], list[str]]] = {
    "ingest": ([], ["--instances", "100"]),
    "forward": ([], ["--instances", "100"]),
    "hl7": ([], ["--messages", "500"]),
    "mwl": ([], ["--steps", "10000", "--queries", "50"]),
    "report": ([], ["--rows", "50000", "--xlsx-rows", "50000", "--db", "sqlite"]),
    "bigstudy": ([], ["--quick"]),
    "scale": ([], ["--quick"]),
}


@dataclass
class Check:
    """One line of the table: a measured figure against its target."""

    bench: str
    what: str
    measured: str
    reference: str
    ratio: str
    target: str
    ok: bool | None  # None: not measured


def _num(record: dict[str, Any], key: str) -> float:
    return float(record[key])


def _checks_ingest(r: dict[str, Any]) -> list[Check]:
    out = []
    for n, key, ref, ratio, floor in (
        (1, "gateway_ips", "orthanc_ips", "ratio_1", 0.7),
        (4, "gateway_ips_4", "orthanc_ips_4", "ratio_4", 0.5),
        (16, "gateway_ips_16", "orthanc_ips_16", "ratio_16", 0.6),
    ):
        if key not in r:  # records of runs before the 16-association case
            continue
        out.append(
            Check(
                "ingest",
                f"{n} association{'s' if n > 1 else ''}, inst/s",
                f"{_num(r, key):.0f}",
                f"Orthanc {_num(r, ref):.0f}",
                f"{_num(r, ratio):.2f}x",
                f">= {floor}x",
                _num(r, ratio) >= floor,
            )
        )
    rss = _num(r, "gateway_rss_mb")
    out.append(Check("ingest", "peak RSS, MB", f"{rss:.0f}", "", "", "< 250", rss < 250))
    if "gateway_errors_logged" in r:
        errors = int(r["gateway_errors_logged"])
        out.append(Check("ingest", "ERROR lines logged", str(errors), "", "", "0", errors == 0))
    return out


def _checks_bigstudy(r: dict[str, Any]) -> list[Check]:
    gb, peak, at = _num(r, "bytes") / 1e9, _num(r, "rss_mb_peak"), r["rss_mb_at"]
    growth = float(at["100"]) - float(at["25"])
    steps = "/".join(f"{float(at[k]):.0f}" for k in ("25", "50", "75", "100"))
    errors = int(r["errors_logged"])
    return [
        Check(
            "bigstudy",
            f"{gb:.1f} GB study in and forwarded, peak RSS (all processes), MB",
            f"{peak:.0f}",
            f"at 25/50/75/100 %: {steps}",
            "",
            "<= 250",
            peak <= 250,
        ),
        Check("bigstudy", "RSS growth 25 % -> 100 % of bytes, MB", f"{growth:.0f}", "", "",
              "<= 25 (flat)", growth <= 25),
        Check("bigstudy", "ERROR lines logged", str(errors), "", "", "0", errors == 0),
    ]  # fmt: skip


def _checks_scale(r: dict[str, Any]) -> list[Check]:
    db = r["db"]
    size = f"{db} {int(r['studies']) // 1000}k studies"
    full_ips, empty_ips = _num(r["full"], "ingest_ips"), _num(r["empty"], "ingest_ips")
    polled = _num(r["full"], "ingest_polling_ips")
    out = [
        Check("scale", f"{size}: ingest inst/s, full vs empty db", f"{full_ips:.0f}",
              f"empty {empty_ips:.0f}", f"{_num(r, 'ingest_ratio_full_db'):.2f}x", ">= 0.9x",
              _num(r, "ingest_ratio_full_db") >= 0.9),
        Check("scale", f"{size}: ingest inst/s, API read 10/s", f"{polled:.0f}",
              f"no reads {full_ips:.0f}", f"{_num(r, 'ingest_ratio_api_polling'):.2f}x",
              ">= 0.9x", _num(r, "ingest_ratio_api_polling") >= 0.9),
    ]  # fmt: skip
    for key, what, limit in (
        ("api_p95_ms", "GET /api/studies p95 (page, patient, dates), ms", 100.0),
        ("mwl_p95_ms", "worklist C-FIND p95, ms", 100.0),
        ("match_p95_ms", "study-to-order matching p95, ms", 5.0),
    ):
        value = _num(r, key)
        empty = r["empty"][key]
        reference = f"empty {max(empty.values()) if isinstance(empty, dict) else empty:.0f}"
        out.append(Check("scale", f"{size}: {what}", f"{value:.1f}", reference, "",
                         f"<= {limit:g}", value <= limit))  # fmt: skip
    return out


def _checks_forward(r: dict[str, Any]) -> list[Check]:
    if r.get("bench") != "forward":
        return []
    ratio = _num(r, "ratio")
    checks = [
        Check(
            "forward",
            f"{r['instances']} instances, matched (corrected), complete in Orthanc, s",
            f"{_num(r, 'gateway_s'):.1f}",
            f"direct {_num(r, 'direct_s'):.1f}",
            f"{ratio:.2f}x",
            "<= 1.5x",
            ratio <= 1.5,
        )
    ]
    if "ratio_unmatched" in r:  # printed, no target: the path a hospital rarely takes
        checks.append(
            Check(
                "forward",
                f"{r['instances']} instances, unmatched (as received), complete in Orthanc, s",
                f"{_num(r, 'gateway_unmatched_s'):.1f}",
                f"direct {_num(r, 'direct_s'):.1f}",
                f"{_num(r, 'ratio_unmatched'):.2f}x",
                "",
                None,
            )
        )
    if "ratio_stock" in r:  # printed, no target: the fallback when fast_path is off
        checks.append(
            Check(
                "forward",
                f"{r['instances']} instances, matched, stock pynetdicom, complete in Orthanc, s",
                f"{_num(r, 'gateway_s_stock'):.1f}",
                f"direct {_num(r, 'direct_s'):.1f}",
                f"{_num(r, 'ratio_stock'):.2f}x",
                "",
                None,
            )
        )
    return checks


def _checks_hl7(r: dict[str, Any]) -> list[Check]:
    ratio = _num(r, "ratio")
    return [
        Check(
            "hl7",
            "ORM^O01 msg/s, one connection",
            f"{_num(r, 'gateway_msgs'):.0f}",
            f"echo {_num(r, 'echo_msgs'):.0f}",
            f"{ratio:.3f}x",
            ">= 0.1x",
            ratio >= 0.1,
        )
    ]


def _checks_mwl(r: dict[str, Any]) -> list[Check]:
    p95 = _num(r, "p95_ms")
    return [
        Check(
            "mwl",
            f"C-FIND p95, {r['steps']} steps, ms",
            f"{p95:.0f}",
            f"p50 {_num(r, 'p50_ms'):.0f}",
            "",
            "<= 100",
            p95 <= 100,
        )
    ]


def _checks_report(r: dict[str, Any]) -> list[Check]:
    db, rows = r.get("db", "?"), r.get("rows", "?")
    csv_s, rss = _num(r, "csv_s"), _num(r, "rss_mb")
    return [
        Check("report", f"{db} CSV {rows} rows, s", f"{csv_s:.1f}", "", "", "<= 20", csv_s <= 20),
        Check(
            "report",
            f"{db} XLSX {rows} rows, s",
            f"{_num(r, 'xlsx_s'):.1f}",
            "",
            "",
            "",
            None,
        ),
        *(
            [
                Check(
                    "report",
                    f"{db} XML3 {r.get('xml3_rows', '?')} rows, s",
                    f"{_num(r, 'xml3_s'):.1f}",
                    "",
                    "",
                    "",
                    None,
                )
            ]
            if "xml3_s" in r  # records of runs before the XML3 bench have none
            else []
        ),
        Check("report", f"{db} peak RSS, MB", f"{rss:.0f}", "", "", "<= 400", rss <= 400),
    ]


CHECKS: dict[str, Callable[[dict[str, Any]], list[Check]]] = {
    "ingest": _checks_ingest,
    "forward": _checks_forward,
    "hl7": _checks_hl7,
    "mwl": _checks_mwl,
    "report": _checks_report,
    "bigstudy": _checks_bigstudy,
    "scale": _checks_scale,
}


def run_bench(name: str, args: list[str]) -> tuple[list[dict[str, Any]], str | None, float]:
    """Run one benchmark; (its JSON records, an error or None, seconds)."""
    start = time.monotonic()
    print(f"== bench.{name} {' '.join(args)}", file=sys.stderr, flush=True)
    proc = subprocess.Popen(
        [sys.executable, "-m", f"bench.{name}", *args],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    records: list[dict[str, Any]] = []
    for line in proc.stdout:
        line = line.strip()
        if not line.startswith("{"):
            print(line, file=sys.stderr)
            continue
        record = json.loads(line)
        record.setdefault("bench", name)  # bench.report names only the database
        records.append(record)
        print(line, file=sys.stderr, flush=True)
    status = proc.wait()
    error = None if status == 0 and records else f"exit status {status}, {len(records)} records"
    return records, error, time.monotonic() - start


def table(checks: list[Check], errors: dict[str, str]) -> str:
    """A Markdown table of the checks (and a MISS line for each benchmark that failed)."""
    head = ("bench", "measure", "risgate", "reference (same run)", "ratio", "target", "")
    rows = [
        (
            c.bench,
            c.what,
            c.measured,
            c.reference,
            c.ratio,
            c.target,
            "" if c.ok is None else ("PASS" if c.ok else "MISS"),
        )
        for c in checks
    ]
    rows += [(name, "did not run", error, "", "", "", "MISS") for name, error in errors.items()]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="smaller sizes (smoke run)")
    parser.add_argument("--only", default=",".join(BENCHES), help="comma-separated subset")
    parser.add_argument("--out", type=Path, help="JSON lines file to write")
    parser.add_argument("--table", type=Path, help="print the table of an earlier run's file")
    args = parser.parse_args(argv)
    if args.table:
        records = [json.loads(line) for line in args.table.read_text().splitlines() if line]
        print(table([c for r in records for c in CHECKS[r["bench"]](r)], {}))
        return 0
    names = [n.strip() for n in args.only.split(",") if n.strip()]
    unknown = [n for n in names if n not in BENCHES]
    if unknown:
        parser.error(f"unknown benchmark(s) {unknown}; known: {', '.join(BENCHES)}")
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    out = args.out or ROOT / "var" / "bench" / f"run_all-{stamp}.jsonl"
    out.parent.mkdir(parents=True, exist_ok=True)

    checks: list[Check] = []
    errors: dict[str, str] = {}
    loads: list[float] = []
    started = time.monotonic()
    with open(out, "w") as handle:
        for name in names:
            full, quick = BENCHES[name]
            load_before = os.getloadavg()[0]
            records, error, seconds = run_bench(name, quick if args.quick else full)
            loads.append(round(max(load_before, os.getloadavg()[0]), 1))
            for record in records:
                record["run_all"] = {
                    "at": stamp,
                    "quick": args.quick,
                    "seconds": round(seconds),
                    "load_avg_1m": loads[-1],  # others' work on the machine skews figures
                }
                handle.write(json.dumps(record) + "\n")
                try:
                    checks += CHECKS[name](record)
                except (KeyError, ValueError, TypeError) as exc:
                    error = error or f"unexpected record: {exc!r}"
            handle.flush()
            if error:
                errors[name] = error
    minutes = (time.monotonic() - started) / 60
    mode = "quick sizes" if args.quick else "full sizes"
    print(
        f"\n{mode}, {datetime.now(UTC):%Y-%m-%d}, {minutes:.1f} min, {os.cpu_count()} CPUs, "
        f"1-min load average up to {max(loads, default=0):.1f}, records in {out}\n"
    )
    print(table(checks, errors))
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
