"""Regression (found by the fault proof test): a destination that goes away in the middle
of a batch fails the rest of the batch at once, instead of waiting the DIMSE timeout once
per remaining file (the SCU holds pynetdicom's reactor, so ``is_established`` never saw
the connection close, and a 64-file batch stalled forwarding for half an hour).
"""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from pynetdicom import AE, evt
from pynetdicom.sop_class import CTImageStorage  # type: ignore[attr-defined]

from dicom_nodes.storescu import StoreSCU
from tests.support.ctgen import make_ct_study
from tests.support.net import free_port

pytestmark = pytest.mark.integration

DROP_AT = 3


@pytest.fixture
def dropping_scp() -> Iterator[tuple[int, list[str]]]:
    """A storage SCP that stores two instances, then drops the connection on the third."""
    received: list[str] = []

    def handle_store(event: evt.Event) -> int:
        received.append(str(getattr(event.request, "AffectedSOPInstanceUID", "")))
        sock = getattr(event.assoc.dul.socket, "socket", None)
        if len(received) == DROP_AT and sock is not None:
            sock.shutdown(socket.SHUT_RDWR)
            sock.close()
        return 0x0000

    ae = AE("DROPPER")
    ae.add_supported_context(CTImageStorage, ["1.2.840.10008.1.2.1", "1.2.840.10008.1.2"])
    port = free_port()
    server = ae.start_server(
        ("127.0.0.1", port), block=False, evt_handlers=[(evt.EVT_C_STORE, handle_store)]
    )
    yield port, received
    if server is not None:
        server.shutdown()


def test_peer_gone_mid_batch_fails_the_rest_at_once(
    dropping_scp: tuple[int, list[str]], tmp_path: Path
) -> None:
    port, received = dropping_scp
    _, files = make_ct_study(tmp_path / "s", 10, size=16)
    items = [(f, str(CTImageStorage), "1.2.840.10008.1.2.1") for f in files]
    scu = StoreSCU("RISGATE", "127.0.0.1", port, "DROPPER", timeout_s=5)
    started = time.monotonic()
    results = scu.send(items)  # type: ignore[arg-type]
    elapsed = time.monotonic() - started
    scu.close()
    assert results[: DROP_AT - 1] == [None] * (DROP_AT - 1)
    assert all(r is not None for r in results[DROP_AT - 1 :]), results
    # Before the fix: one 5-second DIMSE timeout per remaining file (about 40 s).
    assert elapsed < 8, f"batch took {elapsed:.1f} s"
    assert len(received) == DROP_AT
