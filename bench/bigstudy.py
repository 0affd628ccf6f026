"""Big-study benchmark: a study of more than 2 GB (4 x 512 MB enhanced multi-frame CT
instances and 2,000 x 0.5 MB CT slices) sent by storescu to the gateway, which forwards
it to a real Orthanc; the gateway's memory must not grow with the size of an instance.

The study is written to the bench's temp dir once per run, streaming (the multi-frame
pixel data is appended frame by frame, never held in memory), and deleted at the end.
It is sent in four parts of about a quarter of the bytes each (each part one multi-frame
instance and a quarter of the slices); the RSS of the gateway and every child process
(receivers, workers), sampled from /proc, is kept per part and until Orthanc holds the
whole study (forward and verification included).

Prints one JSON line: ``bytes``, ``instances``, ``rss_mb_peak`` and ``rss_mb_at``
(peaks up to 25/50/75/100 % of the bytes received), ``rss_mb_forward`` (peak while
forwarding after the last byte), each process's own peak, seconds to receive and to
complete in Orthanc, and ``errors_logged``.
Usage: .venv/bin/python -m bench.bigstudy [--quick] [--multiframe N] [--frames F] [--ct N]
"""

from __future__ import annotations

import argparse
import struct
import sys
import time
from pathlib import Path

import numpy as np
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence
from pydicom.uid import UID, generate_uid

from bench.common import RssSampler, emit, scratch, storescu_send, wait_instances
from gateway.operations.local_orthanc import LocalOrthanc, OrthancConfig
from tests.support.ctgen import ct_header, make_ct_study, set_monochrome_16
from tests.support.destination import destination_for
from tests.support.gateway_proc import GatewayProcess
from tests.support.net import free_port

ENHANCED_CT = UID("1.2.840.10008.5.1.4.1.1.2.1")
SIZE = 512  # rows and columns; 16-bit: 0.5 MB a frame


def write_multiframe(path: Path, frames: int, study_uid: str, accession: str, number: int) -> int:
    """Write one enhanced CT instance of ``frames`` 512x512 frames; returns its size.

    The header goes through pydicom; the pixel data element is appended after it, one
    frame at a time, so memory stays at one frame whatever the instance's size.
    """
    ds = ct_header(
        ENHANCED_CT,
        study_uid,
        generate_uid(),
        patient_id="BIG001",
        patient_name="BIG^STUDY",
        accession=accession,
        study_date="20261125",
        patient_sex="F",
    )
    ds.ContentDate = "20261125"
    ds.ContentTime = "101010"
    ds.AcquisitionDateTime = "20261125101010"
    ds.Modality = "CT"
    ds.SeriesNumber = str(100 + number)
    ds.InstanceNumber = "1"
    ds.ImageType = ["ORIGINAL", "PRIMARY", "VOLUME", "NONE"]
    ds.NumberOfFrames = frames
    set_monochrome_16(ds, SIZE)
    measures = Dataset()
    measures.PixelSpacing = ["0.5", "0.5"]
    measures.SliceThickness = "0.5"
    voi = Dataset()
    voi.WindowCenter = "40"
    voi.WindowWidth = "400"
    shared = Dataset()
    shared.PixelMeasuresSequence = Sequence([measures])
    shared.FrameVOILUTSequence = Sequence([voi])
    ds.SharedFunctionalGroupsSequence = Sequence([shared])
    ds.save_as(path, enforce_file_format=True)
    frame = np.random.default_rng(number).integers(0, 2000, (SIZE, SIZE), dtype=np.uint16)
    data = frame.tobytes()
    with open(path, "ab") as out:
        # (7FE0,0010) OW, explicit VR little endian: 2 reserved bytes, 4-byte length.
        out.write(struct.pack("<HH2s2xI", 0x7FE0, 0x0010, b"OW", len(data) * frames))
        for _ in range(frames):
            out.write(data)
    return path.stat().st_size


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--multiframe", type=int, default=4, help="enhanced CT instances")
    parser.add_argument("--frames", type=int, default=1024, help="frames each (0.5 MB each)")
    parser.add_argument("--ct", type=int, default=2000, help="single-frame 0.5 MB slices")
    parser.add_argument("--processes", type=int, default=2, help="gateway receiver processes")
    parser.add_argument("--quick", action="store_true", help="4 x 16 MB + 200 slices")
    args = parser.parse_args()
    if args.quick:
        args.frames, args.ct = 32, 200
    with scratch("risgate-bench-big-") as work:
        _run(args, work)


def _run(args: argparse.Namespace, work: Path) -> None:
    study_uid, accession = generate_uid(), "BIG0001"
    gen_start = time.perf_counter()
    multi = [work / "study" / f"mf_{i}.dcm" for i in range(args.multiframe)]
    (work / "study").mkdir(parents=True)
    total = sum(
        write_multiframe(p, args.frames, study_uid, accession, i) for i, p in enumerate(multi)
    )
    _, slices = make_ct_study(
        work / "study" / "ct",
        args.ct,
        study_uid=study_uid,
        patient_id="BIG001",
        patient_name="BIG^STUDY",
        accession=accession,
    )
    total += sum(p.stat().st_size for p in slices)
    generate_s = time.perf_counter() - gen_start
    batches = [multi[i::4] + slices[i::4] for i in range(4)]  # quarters of the bytes

    pacs = LocalOrthanc(
        OrthancConfig(work_dir=work / "orthanc", http_port=free_port(), dicom_port=free_port())
    )
    pacs.start()
    gw = GatewayProcess(
        work / "gateway",
        f"sqlite:///{work / 'gateway' / 'risgate.db'}",
        {
            "dicom": {"processes": args.processes},
            "log": {"level": "WARNING"},
            "studies": {"stable_after_s": 2},
            "reconcile": {"unmatched": "forward"},  # no order: forward, do not hold
            "forward": {"destinations": [destination_for(pacs)]},
        },
    )
    result: dict[str, object] = {
        "bench": "bigstudy",
        "bytes": total,
        "instances": len(multi) + len(slices),
        "multiframe": f"{len(multi)} x {args.frames} frames",
        "ct_slices": len(slices),
        "generate_s": round(generate_s, 1),
        "gateway_processes": args.processes,
    }
    try:
        gw.start()
        assert gw.process is not None
        at: list[float] = []
        sent = 0
        start = time.perf_counter()
        with RssSampler(gw.process.pid) as whole:
            for batch in batches:
                with RssSampler(gw.process.pid) as part:
                    storescu_send(gw.dicom_port, batch, "RISGATE")
                sent += sum(p.stat().st_size for p in batch)
                at.append(round(max(part.peak, at[-1] if at else 0.0), 1))
            receive_s = time.perf_counter() - start
            with RssSampler(gw.process.pid) as forward:
                wait_instances(pacs, len(multi) + len(slices), every_s=0.5, timeout=1800)
            complete_s = time.perf_counter() - start
        result.update(
            {
                "receive_s": round(receive_s, 1),
                "complete_in_orthanc_s": round(complete_s, 1),
                "mb_per_s_receive": round(total / 1e6 / receive_s, 1),
                "rss_mb_peak": round(whole.peak, 1),
                "rss_mb_at": dict(zip(("25", "50", "75", "100"), at, strict=True)),
                "rss_mb_forward": round(forward.peak, 1),
                # Each process's own peak: the main one first, then its children.
                "rss_mb_peak_by_process": [round(v, 1) for _, v in sorted(whole.peaks.items())],
            }
        )
    finally:
        gw.stop()
        pacs.stop()
    errors = [line for line in gw.log_path.read_text().splitlines() if '"ERROR"' in line]
    for line in errors[:10]:
        print(line, file=sys.stderr)
    result["errors_logged"] = len(errors)
    emit(result)


if __name__ == "__main__":
    main()
