"""Regression (seen in bench/forward's logs): the forward sender kept its association open
while idle, and on stock pynetdicom the association's own network timeout then aborted it
with an ERROR log ("Network timeout reached") every time forwarding paused. The sender now
releases an association idle for ``idle_close_s`` (at most half the timeout) while it
waits for work. Runs on the fast path and, in the stock run of scripts/test.sh, on stock
pynetdicom.
"""

from __future__ import annotations

import logging
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


@pytest.fixture
def scp() -> Iterator[tuple[int, list[str]]]:
    """A storage SCP that records how each association ended."""
    ended: list[str] = []
    ae = AE("PEER")
    ae.add_supported_context(CTImageStorage, ["1.2.840.10008.1.2.1", "1.2.840.10008.1.2"])
    port = free_port()
    server = ae.start_server(
        ("127.0.0.1", port),
        block=False,
        evt_handlers=[
            (evt.EVT_C_STORE, lambda event: 0x0000),
            (evt.EVT_RELEASED, lambda event: ended.append("released")),
            (evt.EVT_ABORTED, lambda event: ended.append("aborted")),
        ],
    )
    yield port, ended
    server.shutdown()


def test_idle_association_is_released_before_its_timeout(
    scp: tuple[int, list[str]], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    port, ended = scp
    _, files = make_ct_study(tmp_path / "s", 2, size=16)
    scu = StoreSCU("RISGATE", "127.0.0.1", port, "PEER", timeout_s=2)
    assert scu.idle_close_s == 1  # half the timeout, below the 15 s default
    caplog.set_level(logging.WARNING, logger="pynetdicom")
    try:
        assert scu.send([(f, str(CTImageStorage), "1.2.840.10008.1.2.1") for f in files]) == [
            None,
            None,
        ]
        scu.close_if_idle()  # just used: kept
        assert ended == []
        # The sender's wait loop, past the 2 s network timeout.
        stop = time.monotonic() + 3
        while time.monotonic() < stop:
            scu.close_if_idle()
            time.sleep(0.1)
        assert ended == ["released"]
        assert not [r for r in caplog.records if "timeout" in r.getMessage().lower()]
        # The next batch opens a new association.
        assert scu.send([(files[0], str(CTImageStorage), "1.2.840.10008.1.2.1")]) == [None]
    finally:
        scu.close()
