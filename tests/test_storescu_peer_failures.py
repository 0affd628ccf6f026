"""The outbound SCU charges a failure to the instance the peer judged, and sees it at once.

A small pynetdicom storage SCP refuses, aborts on, or sits on chosen SOP Instance UIDs.
The SCU must report the peer's own words for that instance, store its neighbours, report
the instances it never sent as uncharged, see an A-ABORT without waiting for the DIMSE
timeout, and end a send stuck on a silent peer as soon as it is interrupted (shutdown).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pydicom
import pytest
from pydicom.dataset import Dataset
from pynetdicom import AE, evt
from pynetdicom.sop_class import CTImageStorage  # type: ignore[attr-defined]

from dicom_nodes.storescu import INTERRUPTED, NOT_SENT, Failure, StoreSCU
from tests.support.ctgen import make_ct_study
from tests.support.net import free_port

pytestmark = pytest.mark.integration

EXPLICIT_LE = "1.2.840.10008.1.2.1"
TIMEOUT_S = 20.0


@dataclass
class PickyPeer:
    """What the fake SCP does with chosen SOP Instance UIDs, and what it stored."""

    port: int = 0
    refuse: set[str] = field(default_factory=set)
    abort: set[str] = field(default_factory=set)
    hang: set[str] = field(default_factory=set)
    stored: list[str] = field(default_factory=list)
    hanging: threading.Event = field(default_factory=threading.Event)
    release: threading.Event = field(default_factory=threading.Event)

    def handle_store(self, event: evt.Event) -> int | Dataset:
        uid = str(event.request.AffectedSOPInstanceUID)
        if uid in self.refuse:
            status = Dataset()
            status.Status = 0xA700
            status.ErrorComment = "refused for the test"
            return status
        if uid in self.abort:
            event.assoc.abort()
            return 0xC000
        if uid in self.hang:
            self.hanging.set()
            self.release.wait(TIMEOUT_S * 2)
        self.stored.append(uid)
        return 0x0000


@pytest.fixture
def peer() -> Iterator[PickyPeer]:
    state = PickyPeer(port=free_port())
    ae = AE("PICKY")
    ae.add_supported_context(CTImageStorage, [EXPLICIT_LE, "1.2.840.10008.1.2"])
    server = ae.start_server(
        ("127.0.0.1", state.port),
        block=False,
        evt_handlers=[(evt.EVT_C_STORE, state.handle_store)],
    )
    yield state
    state.release.set()
    server.shutdown()


def _study(tmp_path: Path, count: int) -> tuple[list[tuple[Path, str, str]], list[str]]:
    _, files = make_ct_study(tmp_path / "s", count, size=16)
    uids = [str(pydicom.dcmread(f, stop_before_pixels=True).SOPInstanceUID) for f in files]
    return [(f, str(CTImageStorage), EXPLICIT_LE) for f in files], uids


def test_refused_instance_fails_alone_with_the_peers_words(peer: PickyPeer, tmp_path: Path) -> None:
    items, uids = _study(tmp_path, 6)
    peer.refuse.add(uids[2])
    scu = StoreSCU("RISGATE", "127.0.0.1", peer.port, "PICKY", timeout_s=TIMEOUT_S)
    results = scu.send(items)  # type: ignore[arg-type]
    scu.close()
    assert results[2] == Failure("C-STORE status 0xA700 refused for the test")
    assert [r for i, r in enumerate(results) if i != 2] == [None] * 5
    assert peer.stored == uids[:2] + uids[3:]


def test_abort_is_charged_to_the_instance_on_the_wire_at_once(
    peer: PickyPeer, tmp_path: Path
) -> None:
    items, uids = _study(tmp_path, 6)
    peer.abort.add(uids[2])
    scu = StoreSCU("RISGATE", "127.0.0.1", peer.port, "PICKY", timeout_s=TIMEOUT_S)
    started = time.monotonic()
    results = scu.send(items)  # type: ignore[arg-type]
    elapsed = time.monotonic() - started
    assert results[:2] == [None, None]
    assert results[2] == Failure("association aborted by the peer while sending this instance")
    assert results[3:] == [NOT_SENT] * 3  # never judged: sent again, uncharged
    assert elapsed < TIMEOUT_S / 2, f"the abort was seen after {elapsed:.1f} s"
    # The next batch (the rest) goes over a new association.
    assert scu.send(items[3:]) == [None] * 3  # type: ignore[arg-type]
    scu.close()
    assert peer.stored == uids[:2] + uids[3:]


def test_interrupt_ends_a_send_waiting_on_a_silent_peer(peer: PickyPeer, tmp_path: Path) -> None:
    items, uids = _study(tmp_path, 5)
    peer.hang.add(uids[1])
    scu = StoreSCU("RISGATE", "127.0.0.1", peer.port, "PICKY", timeout_s=TIMEOUT_S)
    results: list[Failure | None] = []
    sending = threading.Thread(target=lambda: results.extend(scu.send(items)))  # type: ignore[arg-type]
    sending.start()
    assert peer.hanging.wait(TIMEOUT_S), "the peer never got the instance it sits on"
    started = time.monotonic()
    scu.interrupt()
    sending.join(TIMEOUT_S)
    scu.close()
    elapsed = time.monotonic() - started
    assert not sending.is_alive()
    assert elapsed < TIMEOUT_S / 2, f"interrupt took {elapsed:.1f} s"
    assert results == [None] + [INTERRUPTED] * 4
    assert scu.send(items) == [INTERRUPTED] * 5  # type: ignore[arg-type]
