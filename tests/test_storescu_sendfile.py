"""Forwarded datasets leave from their files (FileSlice + sendfile): a real dcmtk
``storescp`` must receive every instance byte for byte, with the dataset cut into the
PDU size it offers (16 KB by default, so dozens of P-DATA per 0.5 MB instance)."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import pydicom
import pytest
from pynetdicom.sop_class import CTImageStorage  # type: ignore[attr-defined]

from bench.common import wait_port
from dicom_nodes import fast_path
from dicom_nodes.dimse_shortcuts import FileSlice
from dicom_nodes.event_driven import WakeableDUL
from dicom_nodes.storescu import StoreSCU
from tests.support.ctgen import make_ct_study
from tests.support.net import free_port
from tests.support.tools import require
from tests.support.wait import wait_until

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(not fast_path.enabled(), reason="sendfile is the fast path's"),
]

EXPLICIT_LE = "1.2.840.10008.1.2.1"


@pytest.fixture
def storescp(tmp_path: Path) -> Iterator[tuple[int, Path]]:
    require("storescp")
    out = tmp_path / "received"
    out.mkdir()
    port = free_port()
    proc = subprocess.Popen(
        ["storescp", "-aet", "STORESCP", "-od", str(out), "+xe", "--max-pdu", "16384",
         str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env={"TCP_NODELAY": "1", "PATH": "/usr/bin:/bin"},
    )  # fmt: skip
    try:
        wait_port(port)
        yield port, out
    finally:
        proc.terminate()
        proc.wait(10)


def test_instances_arrive_byte_for_byte(
    storescp: tuple[int, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    port, out = storescp
    sent_slices: list[int] = []
    send_slice = WakeableDUL._send_slice

    def counting(self: WakeableDUL, context_id: int, piece: FileSlice) -> None:
        sent_slices.append(piece.length)
        send_slice(self, context_id, piece)

    monkeypatch.setattr(WakeableDUL, "_send_slice", counting)
    _, files = make_ct_study(tmp_path / "study", 5, size=256)  # 128 KB of pixels each
    scu = StoreSCU("RISGATE", "127.0.0.1", port, "STORESCP", timeout_s=10)
    try:
        results = scu.send([(f, str(CTImageStorage), EXPLICIT_LE) for f in files])
    finally:
        scu.close()
    assert results == [None] * len(files)
    assert max(sent_slices) == 16384 - 6  # the peer's PDU size, less the headers
    assert len(sent_slices) >= 8 * len(files)
    wait_until(lambda: len(list(out.iterdir())) == len(files), 10, "storescp writing every file")
    received = {ds.SOPInstanceUID: ds for ds in (pydicom.dcmread(p) for p in sorted(out.iterdir()))}
    assert len(received) == len(files)
    for path in files:
        sent = pydicom.dcmread(path)
        got = received[sent.SOPInstanceUID]
        assert got.PixelData == sent.PixelData
        assert got == sent  # every element of the dataset
