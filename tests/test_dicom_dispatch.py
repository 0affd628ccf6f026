"""Several receiver processes: connections go to the least busy one; a receiver that dies
leaves the main process serving everything (issue: foundation, dicom.processes)."""

from __future__ import annotations

import os
import signal
import socket
import threading
from pathlib import Path

import pydicom
import pytest
from pynetdicom import AE
from pynetdicom.association import Association
from pynetdicom.sop_class import CTImageStorage  # type: ignore[attr-defined]

from dicom_nodes.dispatch import DONE, STORED, Dispatcher, channel_pair, receive_handed
from tests.support.ctgen import make_ct_study
from tests.support.dcmtk import storescu
from tests.support.gateway_proc import GatewayProcess
from tests.support.wait import wait_until


@pytest.mark.unit
def test_dispatcher_balances_counts_ends_and_passes_wake_ups() -> None:
    main_end, child_end = channel_pair()
    stored: list[bool] = []
    dispatcher = Dispatcher([main_end], lambda: stored.append(True))
    handed: list[tuple[socket.socket, tuple[str, int]]] = []
    threading.Thread(
        target=receive_handed, args=(child_end, lambda c, a: handed.append((c, a))), daemon=True
    ).start()
    a, b = socket.socketpair()
    try:
        # A tie goes to the receiver process; then this process takes the next one.
        assert dispatcher.hand_off(a, ("10.0.0.7", 4242), local_load=0)
        assert not dispatcher.hand_off(a, ("10.0.0.8", 4243), local_load=0)
        assert dispatcher.hand_off(a, ("10.0.0.9", 4244), local_load=1)
        wait_until(lambda: len(handed) == 2, 5, "two connections handed")
        assert [addr for _, addr in handed] == [("10.0.0.7", 4242), ("10.0.0.9", 4244)]
        # The handed descriptor is the same connection.
        handed[0][0].sendall(b"ping")
        assert b.recv(4) == b"ping"
        # Two associations end in the receiver: it is the least busy again.
        child_end.send(DONE)
        child_end.send(DONE)
        wait_until(
            lambda: dispatcher.hand_off(a, ("10.0.0.10", 1), local_load=1), 5, "a hand-off accepted"
        )
        # An instance stored there wakes this process's senders.
        child_end.send(STORED)
        wait_until(lambda: stored == [True], 5, "the STORED message")
        # The receiver is gone: nothing more is handed to it.
        child_end.close()
        wait_until(
            lambda: not dispatcher.hand_off(a, ("10.0.0.11", 1), local_load=99),
            5,
            "hand-offs refused once the receiver is gone",
        )
    finally:
        for conn, _ in handed:
            conn.close()
        a.close()
        b.close()
        dispatcher.close()


def _children(pid: int) -> list[int]:
    with open(f"/proc/{pid}/task/{pid}/children") as f:
        return [int(p) for p in f.read().split()]


def _associate(port: int) -> Association:
    ae = AE(ae_title="STORESCU")
    ae.add_requested_context(CTImageStorage)
    assoc = ae.associate("127.0.0.1", port, ae_title="RISGATE")
    assert assoc.is_established
    return assoc


@pytest.mark.integration
def test_four_associations_split_two_and_two_then_a_receiver_dies(
    gateway_factory: type, tmp_path: Path
) -> None:
    gw: GatewayProcess = gateway_factory.make(
        {"dicom": {"processes": 2}, "log": {"level": "DEBUG"}}
    )
    gw.start()
    study_uid, files = make_ct_study(tmp_path / "ct", 8, size=32)
    held = [_associate(gw.dicom_port) for _ in range(4)]
    try:
        for assoc, path in zip(held, files[:4], strict=True):
            status = assoc.send_c_store(pydicom.dcmread(path))
            assert status.Status == 0x0000
    finally:
        for assoc in held:
            assoc.release()
    log = gw.log_path.read_text()
    assert log.count("connection handed to receiver process 1") == 2

    assert gw.process is not None
    (child,) = _children(gw.process.pid)
    # numpy is hidden from the receiver (gateway.process.dicom_child), not from the main one.
    assert "numpy" not in Path(f"/proc/{child}/maps").read_text()
    assert "numpy" in Path(f"/proc/{gw.process.pid}/maps").read_text()
    os.kill(child, signal.SIGKILL)
    wait_until(
        lambda: "DICOM receiver process 1 is gone" in gw.log_path.read_text(),
        10,
        "the main process noticing its receiver is gone",
    )
    assert storescu(gw.dicom_port, files[4:]).returncode == 0  # served by the main process
    assert gw.get(f"/api/studies/{study_uid}")["instances"] == 8
