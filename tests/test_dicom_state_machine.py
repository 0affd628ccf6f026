"""The DICOM upper-layer state machine of the running gateway, driven by raw PDUs
(PS3.8 section 9): an A-ABORT in each state a requestor can reach, a P-DATA on a context
that was not accepted, a PDU over the negotiated maximum, a message reassembled from
fragments in several PDUs, a release. After each, the gateway still serves: one gateway
(SQLite; no database work is involved) takes every test of this module in turn, so each
case also meets a gateway that has already been through the ones before it.

It runs on whichever path ``RISGATE_DICOM__FAST_PATH`` selects (CI runs it on both, see
scripts/test.sh): the fast path replaces pynetdicom's DUL internals, so these are the
checks that it still behaves as the state machine it replaces.
"""

from __future__ import annotations

import os
import struct
from collections.abc import Iterator

import pydicom
import pydicom.filewriter
import pytest
from pydicom.data import get_testdata_file
from pydicom.filebase import DicomBytesIO

from dicom_nodes import fast_path
from tests.support import rawdicom as raw
from tests.support.dcmtk import echoscu
from tests.support.gateway_proc import GatewayProcess
from tests.support.wait import wait_until

pytestmark = pytest.mark.integration

FAST = fast_path.parse_mode(os.environ.get(fast_path.ENV, "true")) is not False
ABORT = struct.pack(">BBI", 0x07, 0, 4) + b"\0" * 4  # A-ABORT, service user
CT = [(1, raw.CT_STORAGE, [raw.EXPLICIT_LE])]
ECHO = [(1, raw.VERIFICATION, [raw.IMPLICIT_LE])]
MAX_PDU = 16384


@pytest.fixture(scope="module")
def gw(tmp_path_factory: pytest.TempPathFactory) -> Iterator[GatewayProcess]:
    work = tmp_path_factory.mktemp("state-machine")
    gateway = GatewayProcess(
        work / "gw",
        f"sqlite:///{work / 'test.db'}",
        {"dicom": {"processes": 1, "max_pdu": MAX_PDU, "acse_timeout_s": 3}},
    )
    gateway.start()
    yield gateway
    gateway.kill()


def _alive(gw: GatewayProcess) -> None:
    assert gw.process is not None and gw.process.poll() is None, "gateway died"
    assert echoscu(gw.dicom_port).returncode == 0, "gateway does not answer C-ECHO"


def _dataset(sop_uid: str) -> bytes:
    ds = pydicom.dcmread(str(get_testdata_file("CT_small.dcm")))
    ds.SOPInstanceUID = sop_uid
    buf = DicomBytesIO()
    buf.is_little_endian, buf.is_implicit_VR = True, False
    pydicom.filewriter.write_dataset(buf, ds)
    return buf.getvalue()


def test_abort_in_every_state_a_requestor_reaches(gw: GatewayProcess) -> None:
    """Sta2 (connection open, nothing said), Sta6 (associated, idle), Sta6 mid-message
    (a command without its dataset, a dataset cut between fragments): the gateway closes
    the connection and keeps serving."""
    cases: dict[str, list[bytes]] = {
        "before A-ASSOCIATE-RQ": [],
        "associated, idle": [],
        "after a C-STORE command": [
            raw.p_data(1, raw.command(0x0001, raw.CT_STORAGE, "1.2.3.4"), is_command=True)
        ],
        "mid-dataset": [
            raw.p_data(1, raw.command(0x0001, raw.CT_STORAGE, "1.2.3.5"), is_command=True),
            raw.p_data(1, _dataset("1.2.3.5")[:8000], is_command=False, last=False),
        ],
    }
    for name, before_abort in cases.items():
        peer = raw.RawAssociation(gw.dicom_port)
        try:
            if name != "before A-ASSOCIATE-RQ":
                assert peer.associate("STORESCU", contexts=CT).kind == 0x02, name
            for pdu in before_abort:
                peer.send(pdu)
            peer.send(ABORT)
            assert peer.closed_by_peer(), f"{name}: connection left open after A-ABORT"
        finally:
            peer.close()
        _alive(gw)
    peer = raw.RawAssociation(gw.dicom_port)
    try:
        assert peer.associate("STORESCU", contexts=CT).kind == 0x02
        assert peer.store(1, raw.CT_STORAGE, "1.2.3.5", _dataset("1.2.3.5")) == 0x0000
    finally:
        peer.close()


def test_p_data_on_a_context_not_accepted(gw: GatewayProcess) -> None:
    peer = raw.RawAssociation(gw.dicom_port)
    try:
        assert peer.associate("STORESCU", contexts=CT).kind == 0x02
        peer.send(raw.p_data(7, raw.command(0x0001, raw.CT_STORAGE, "1.2.3.6"), is_command=True))
        if FAST:  # PS3.8: an A-ABORT; stock pynetdicom drops the connection instead
            assert peer.receive().kind == 0x07
        assert peer.closed_by_peer()
    finally:
        peer.close()
    _alive(gw)


def test_pdu_over_the_negotiated_maximum(gw: GatewayProcess) -> None:
    """A P-DATA-TF four times the gateway's maximum PDU: the association ends or the
    instance is answered (pynetdicom does not enforce its own maximum on receipt);
    either way nothing is half-stored and the gateway keeps serving."""
    data = _dataset("1.2.3.7")
    peer = raw.RawAssociation(gw.dicom_port)
    try:
        assert peer.associate("STORESCU", contexts=CT).kind == 0x02
        peer.send(raw.p_data(1, raw.command(0x0001, raw.CT_STORAGE, "1.2.3.7"), is_command=True))
        peer.send(raw.p_data(1, data + b"\0" * (4 * MAX_PDU), is_command=False))
        try:
            answer: raw.Pdu | None = peer.receive()
        except (ConnectionError, OSError):
            answer = None
        assert answer is None or answer.kind in (0x04, 0x07)
        if answer is not None and answer.kind == 0x04:
            assert answer.status() is not None
    finally:
        peer.close()
    _alive(gw)


def test_message_reassembled_across_pdus(gw: GatewayProcess) -> None:
    """A C-ECHO command cut into three PDVs in three P-DATA-TF PDUs, and a C-STORE dataset
    in 1 KB fragments: both answered as if sent whole; then a clean release."""
    echo = raw.command(0x0030, raw.VERIFICATION, None)
    peer = raw.RawAssociation(gw.dicom_port)
    try:
        assert peer.associate("ECHOSCU", contexts=ECHO).kind == 0x02
        peer.send(raw.p_data(1, echo[:10], is_command=True, last=False))
        peer.send(raw.p_data(1, echo[10:20], is_command=True, last=False))
        peer.send(raw.p_data(1, echo[20:], is_command=True, last=True))
        answer = peer.receive()
        assert answer.kind == 0x04
        assert answer.status() == 0x0000
        peer.send(raw.RELEASE_RQ)
        assert peer.receive().kind == 0x06  # A-RELEASE-RP
        assert peer.closed_by_peer()
    finally:
        peer.close()
    data = _dataset("1.2.3.8")
    peer = raw.RawAssociation(gw.dicom_port)
    try:
        assert peer.associate("STORESCU", contexts=CT).kind == 0x02
        peer.send(raw.p_data(1, raw.command(0x0001, raw.CT_STORAGE, "1.2.3.8"), is_command=True))
        for pos in range(0, len(data), 1024):
            last = pos + 1024 >= len(data)
            peer.send(raw.p_data(1, data[pos : pos + 1024], is_command=False, last=last))
        answer = peer.receive()
        assert answer.kind == 0x04
        assert answer.status() == 0x0000
    finally:
        peer.close()
    wait_until(lambda: echoscu(gw.dicom_port).returncode == 0, 10, "gateway serving")
