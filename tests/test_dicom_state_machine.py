"""The DICOM upper-layer state machine of the running gateway, driven by raw PDUs
(PS3.8 section 9): an A-ABORT in each state a requestor can reach, a P-DATA on a context
that was not accepted, a PDU over the negotiated maximum, a message reassembled from
fragments in several PDUs, a release, a peer that stops reading. After each, the gateway
still serves: one gateway (SQLite; no database work is involved) takes the cases in turn, so
each also meets a gateway that has already been through the ones before it. The gateway never
starts a release as an acceptor, so the A-RELEASE collision (PS3.8 9.2.7) is checked on its
own requestor, the forward sender (:class:`~dicom_nodes.storescu.StoreSCU`), against a raw
fake peer.

It runs on whichever path ``RISGATE_DICOM__FAST_PATH`` selects (CI runs it on both, see
scripts/test.sh): the fast path replaces pynetdicom's DUL internals, so these are the
checks that it still behaves as the state machine it replaces.
"""

from __future__ import annotations

import itertools
import logging
import os
import socket
import struct
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pydicom
import pydicom.filewriter
import pytest
from pydicom.data import get_testdata_file
from pydicom.dataset import Dataset
from pydicom.filebase import DicomBytesIO

from bench.mwl import populate
from dicom_nodes import fast_path
from dicom_nodes.storescu import StoreSCU
from tests.support import rawdicom as raw
from tests.support.ctgen import make_ct_study
from tests.support.dcmtk import echoscu
from tests.support.gateway_proc import GatewayProcess
from tests.support.net import TCP_ESTABLISHED, TcpEnd, tcp_end
from tests.support.wait import wait_until

FAST = fast_path.parse_mode(os.environ.get(fast_path.ENV, "true")) is not False
ABORT = struct.pack(">BBI", 0x07, 0, 4) + b"\0" * 4  # A-ABORT, service user
CT = [(1, raw.CT_STORAGE, [raw.EXPLICIT_LE])]
ECHO = [(1, raw.VERIFICATION, [raw.IMPLICIT_LE])]
MAX_PDU = 16384


@pytest.fixture
def db_url(tmp_path: Path) -> str:
    """The gateway's database: SQLite only (the state machine is the same on PostgreSQL)."""
    return f"sqlite:///{tmp_path / 'test.db'}"


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


@pytest.mark.integration
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


@pytest.mark.integration
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


@pytest.mark.integration
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


@pytest.mark.integration
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


def _stored_dataset(gw: GatewayProcess, sop_uid: str) -> bytes | None:
    """The data set of the stored instance ``sop_uid`` as written (what follows its File
    Meta Information), or None if it was not stored."""
    path = gw.stored_file(sop_uid)
    if path is None:
        return None
    data = path.read_bytes()
    assert data[128:132] == b"DICM"
    (meta_length,) = struct.unpack_from("<I", data, 132 + 8)  # (0002,0000) UL
    return data[132 + 12 + meta_length :]


@pytest.mark.integration
def test_dataset_fragments_of_every_shape_are_stored_byte_for_byte(gw: GatewayProcess) -> None:
    """A C-STORE data set in PDUs of several middle fragments each, of one, and a last PDU
    mixing middle fragments with the last: what is stored is the data set sent, byte for
    byte (on the fast path the middle PDUs are written straight from the read buffer)."""
    data = _dataset("1.2.3.10")
    cuts = [0, 700, 1400, 2100, 5000, 9000, len(data) - 300, len(data) - 100, len(data)]
    pieces = [data[a:b] for a, b in itertools.pairwise(cuts)]
    peer = raw.RawAssociation(gw.dicom_port)
    try:
        assert peer.associate("STORESCU", contexts=CT).kind == 0x02
        peer.send(raw.p_data(1, raw.command(0x0001, raw.CT_STORAGE, "1.2.3.10"), is_command=True))
        peer.send(raw.p_data_pdvs([(1, piece, False, False) for piece in pieces[:3]]))
        peer.send(raw.p_data(1, pieces[3], is_command=False, last=False))
        peer.send(raw.p_data(1, pieces[4], is_command=False, last=False))
        peer.send(
            raw.p_data_pdvs([(1, pieces[5], False, False), (1, pieces[6], False, False),
                             (1, pieces[7], False, True)])
        )  # fmt: skip
        answer = peer.receive()
        assert answer.kind == 0x04 and answer.status() == 0x0000
    finally:
        peer.close()
    assert _stored_dataset(gw, "1.2.3.10") == data
    _alive(gw)


@pytest.mark.integration
@pytest.mark.parametrize("damage", ["cut", "item_overruns_pdu"])
def test_a_broken_middle_pdu_stores_nothing(gw: GatewayProcess, damage: str) -> None:
    """A middle PDU of a data set cut short by the peer's close, or whose PDV item claims
    more bytes than its PDU holds: the association ends (A-ABORT or closed), nothing is
    stored, and the gateway keeps serving."""
    uid = "1.2.3.11" if damage == "cut" else "1.2.3.12"
    data = _dataset(uid)
    peer = raw.RawAssociation(gw.dicom_port)
    try:
        assert peer.associate("STORESCU", contexts=CT).kind == 0x02
        peer.send(raw.p_data(1, raw.command(0x0001, raw.CT_STORAGE, uid), is_command=True))
        peer.send(raw.p_data(1, data[:4000], is_command=False, last=False))
        middle = raw.p_data(1, data[4000:8000], is_command=False, last=False)
        if damage == "cut":
            peer.send(middle[:1000])
            peer.sock.shutdown(socket.SHUT_WR)
        else:
            pdv_length = struct.unpack_from(">I", middle, 6)[0]
            peer.send(middle[:6] + struct.pack(">I", pdv_length + 50) + middle[10:])
            peer.send(raw.p_data(1, data[8000:], is_command=False, last=True))
        assert peer.closed_by_peer()
    finally:
        peer.close()
    assert _stored_dataset(gw, uid) is None
    _alive(gw)


@pytest.mark.integration
def test_c_store_on_the_verification_context_is_refused(gw: GatewayProcess) -> None:
    """A C-STORE whose Affected SOP Class is not its context's abstract syntax (PS3.7
    9.3.1.1), here sent on the only accepted context, Verification: 0x0122, nothing
    stored, and the association goes on (an echo on it is answered)."""
    from sqlalchemy import create_engine, select

    from gateway.core.models import Instance

    peer = raw.RawAssociation(gw.dicom_port)
    try:
        assert peer.associate("STORESCU", contexts=ECHO).kind == 0x02
        status = peer.store(1, raw.CT_STORAGE, "1.2.3.9", _dataset("1.2.3.9"))
        assert status == 0x0122
        peer.send(raw.p_data(1, raw.command(0x0030, raw.VERIFICATION, None), is_command=True))
        answer = peer.receive()
        assert answer.kind == 0x04 and answer.status() == 0x0000
    finally:
        peer.close()
    engine = create_engine(gw.config["database"]["url"])
    with engine.connect() as conn:
        stored = conn.execute(
            select(Instance.id).where(Instance.sop_instance_uid == "1.2.3.9")
        ).all()
    engine.dispose()
    assert stored == []
    _alive(gw)


TIMEOUT_S = 10.0
WORKLIST = [(1, raw.WORKLIST_FIND, [raw.IMPLICIT_LE])]


class CollidingPeer(threading.Thread):
    """A fake storage SCP on a raw socket, for one association: it answers each C-STORE
    with Success and the requestor's A-RELEASE-RQ with an A-RELEASE-RQ of its own (a
    release collision, PS3.8 9.2.7); once the requestor's A-RELEASE-RP has come (the
    acceptor's Sta10 -> Sta12), it sends its own A-RELEASE-RP and waits for the requestor
    to close the connection. It records the PDU types on the wire both ways."""

    def __init__(self) -> None:
        super().__init__(name="colliding-peer", daemon=True)
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port: int = self.listener.getsockname()[1]
        self.received: list[int] = []  # from the requestor, in order
        self.sent: list[int] = []
        self.closed_by_requestor = False
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            conn, _ = self.listener.accept()
            peer = raw.RawAssociation.accepted(conn, timeout=TIMEOUT_S)
            try:
                self._serve(peer)
                self.closed_by_requestor = peer.closed_by_peer(TIMEOUT_S)
            finally:
                peer.close()
        except BaseException as exc:  # reported by the test
            self.error = exc
        finally:
            self.listener.close()

    def _send(self, peer: raw.RawAssociation, pdu: bytes) -> None:
        self.sent.append(pdu[0])
        peer.send(pdu)

    def _serve(self, peer: raw.RawAssociation) -> None:
        request = peer.receive()
        self.received.append(request.kind)
        self._send(peer, raw.associate_ac(request))
        command = b""
        while True:
            pdu = peer.receive()
            self.received.append(pdu.kind)
            if pdu.kind == 0x04:
                for ctx_id, control, fragment in pdu.pdvs():
                    if control & 0x01:
                        command += fragment
                    elif control & 0x02:  # the last fragment of a data set: answer it
                        fields = raw.elements(command)
                        answer = raw.response(
                            0x8001,
                            fields[(0x0000, 0x0002)].rstrip(b"\0").decode(),
                            fields[(0x0000, 0x1000)].rstrip(b"\0").decode(),
                            struct.unpack("<H", fields[(0x0000, 0x0110)])[0],
                        )
                        self._send(peer, raw.p_data(ctx_id, answer, is_command=True))
                        command = b""
            elif pdu.kind == 0x05:  # A-RELEASE-RQ: collide
                self._send(peer, raw.RELEASE_RQ)
            elif pdu.kind == 0x06:  # the requestor's A-RELEASE-RP: now ours
                self._send(peer, raw.RELEASE_RP)
                return
            else:
                return


@pytest.mark.unit
def test_release_collision_on_the_forward_sender(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """The forward sender releases its association and the peer answers with an
    A-RELEASE-RQ of its own. As the requestor (Sta7 -> Sta9 -> Sta11 -> Sta1) the sender
    answers A-RELEASE-RP, waits for the peer's, then closes the connection: no A-ABORT,
    no hang, nothing raised in any thread."""
    _, files = make_ct_study(tmp_path / "s", 1, size=16)
    syntax = str(pydicom.dcmread(files[0], stop_before_pixels=True).file_meta.TransferSyntaxUID)
    leaked: list[threading.ExceptHookArgs] = []
    monkeypatch.setattr(threading, "excepthook", leaked.append)
    peer = CollidingPeer()
    peer.start()
    scu = StoreSCU("RISGATE", "127.0.0.1", peer.port, "COLLIDE", timeout_s=TIMEOUT_S)
    assert scu.send([(files[0], raw.CT_STORAGE, syntax)]) == [None]
    closing = threading.Thread(target=scu.close, name="release", daemon=True)
    closing.start()
    closing.join(3 * TIMEOUT_S)
    assert not closing.is_alive(), "the sender hangs in its release"
    peer.join(3 * TIMEOUT_S)
    assert not peer.is_alive() and peer.error is None, peer.error
    # A-ASSOCIATE-RQ, the C-STORE's P-DATA-TF PDUs, A-RELEASE-RQ, A-RELEASE-RP; then closed.
    assert peer.received[0] == 0x01 and peer.received[-2:] == [0x05, 0x06], peer.received
    assert set(peer.received[1:-2]) == {0x04}, peer.received
    assert peer.sent == [0x02, 0x04, 0x05, 0x06]
    assert peer.closed_by_requestor, "the sender left the connection open after the release"
    assert leaked == []
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING], caplog.text


STUCK_ITEMS = 1500  # worklist answers: more than a narrow peer's connection buffers hold
STUCK_TIMEOUT_S = 4.0


def _worklist_identifier() -> bytes:
    """A C-FIND identifier asking for every usual return key (implicit VR LE)."""
    ds = Dataset()
    for keyword in (
        "AccessionNumber", "ReferringPhysicianName", "PatientName", "PatientID",
        "PatientBirthDate", "PatientSex", "StudyInstanceUID", "RequestedProcedureID",
        "RequestedProcedureDescription",
    ):  # fmt: skip
        setattr(ds, keyword, "")
    step = Dataset()
    for keyword in (
        "Modality", "ScheduledStationAETitle", "ScheduledProcedureStepStartDate",
        "ScheduledProcedureStepStartTime", "ScheduledProcedureStepDescription",
        "ScheduledProcedureStepID", "ScheduledPerformingPhysicianName",
    ):  # fmt: skip
        setattr(step, keyword, "")
    ds.ScheduledProcedureStepSequence = [step]
    buf = DicomBytesIO()
    buf.is_little_endian, buf.is_implicit_VR = True, True
    pydicom.filewriter.write_dataset(buf, ds)
    return buf.getvalue()


@pytest.mark.integration
def test_peer_that_stops_reading(gateway_factory: Any, db_url: str) -> None:
    """A peer asks for a worklist of 1,500 items and never reads the answers (its narrow
    window fills at once), so the gateway's send blocks: another association is served
    meanwhile, and the stuck one is dropped once a send has been blocked for
    ``dicom.network_timeout_s``, its answer cut short."""
    populate(db_url, STUCK_ITEMS)
    gw: GatewayProcess = gateway_factory.make(
        {
            "dicom": {
                "processes": 1,
                "max_pdu": MAX_PDU,
                "network_timeout_s": STUCK_TIMEOUT_S,
                "dimse_timeout_s": STUCK_TIMEOUT_S,
                "acse_timeout_s": 3,
            },
            "worklist": {"max_results": STUCK_ITEMS},
        }
    )
    gw.start()
    stuck = raw.RawAssociation(gw.dicom_port, narrow=True)
    try:
        assert stuck.associate("FINDSCU", contexts=WORKLIST).kind == 0x02
        stuck.send(raw.p_data(1, raw.command(0x0020, raw.WORKLIST_FIND, None), is_command=True))
        stuck.send(raw.p_data(1, _worklist_identifier(), is_command=False))
        port = stuck.sock.getsockname()[1]

        def gateway_end() -> TcpEnd | None:
            return tcp_end(gw.dicom_port, port)

        # More answered than the peer's whole window: the rest waits in the gateway.
        wait_until(
            lambda: (end := gateway_end()) is not None and end.send_queue >= 4096,
            60,
            "answers the gateway cannot deliver",
        )
        assert echoscu(gw.dicom_port).returncode == 0, "another association is not served"
        end = gateway_end()
        assert end is not None and end.state == TCP_ESTABLISHED, "dropped before it was stuck"
        wait_until(
            lambda: (end := gateway_end()) is None or end.state != TCP_ESTABLISHED,
            STUCK_TIMEOUT_S + 20,
            "the gateway to drop the stuck association",
        )
        statuses: list[int | None] = []
        try:
            while True:
                pdu = stuck.receive()
                if pdu.kind == 0x04 and pdu.pdvs()[0][1] & 0x01:
                    statuses.append(pdu.status())
        except OSError:  # closed (or reset) by the gateway, after what it still had queued
            pass
        assert 0x0000 not in statuses and len(statuses) < STUCK_ITEMS, "the answer was not cut"
    finally:
        stuck.close()
    _alive(gw)
