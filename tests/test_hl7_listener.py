"""The MLLP role over real sockets, on SQLite and PostgreSQL: store-then-ACK, AE/AR for
broken messages with nothing half-stored, repeated MSH-10, a store failure answered AE,
random mutations (hypothesis), an order surviving a SIGKILL right after its ACK, and
frames over the size limit, garbage and frames that never end, each with a defined answer
while the connection serves the next message.
"""

from __future__ import annotations

import logging
import socket
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from datetime import date
from pathlib import Path

import pytest
from hl7apy.core import Message as HL7apyMessage
from hl7apy.parser import parse_message
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select, text

from gateway.core.database import Database
from gateway.core.settings import Settings
from gateway.orders.hl7_listener import HL7Handler, HL7Listener
from gateway.orders.models import HL7MessageRow, Order, OrderPatient, ScheduledStep
from hl7.mllp import FrameDecoder, encode_frame
from tests.fixtures.orders.helpers import ack_code, findscu, orm, send_all

FIXTURES = Path(__file__).parent / "fixtures" / "hl7"
TODAY = date.today().strftime("%Y%m%d")
VALID = orm(
    "V1", patient_id="PV1", name="NGUYỄN^VĂN AN", placer="PLV1", accession="AV1",
    start=f"{TODAY}080000",
)  # fmt: skip


def _settings(tmp_path: Path) -> Settings:
    return Settings(data_dir=tmp_path, hl7={"port": 0}, log={"level": "WARNING"})


@pytest.fixture
def listener(database: Database, tmp_path: Path) -> Iterator[HL7Listener]:
    lst = HL7Listener(database, _settings(tmp_path))
    lst.start()
    yield lst
    lst.stop()


class Client:
    """A blocking MLLP client on one connection."""

    def __init__(self, port: int) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=10)
        self.decoder = FrameDecoder()
        self.pending: list[bytes] = []

    def send(self, payload: bytes) -> bytes:
        self.sock.sendall(encode_frame(payload))
        return self.next()

    def next(self) -> bytes:
        """The next frame received."""
        while not self.pending:
            data = self.sock.recv(65536)
            if not data:
                raise ConnectionError("closed")
            self.pending.extend(self.decoder.feed(data))
        return self.pending.pop(0)

    def close(self) -> None:
        self.sock.close()


def _counts(db: Database) -> tuple[int, int, int]:
    with db.session_factory() as s:
        return (
            s.scalar(select(func.count(OrderPatient.id))) or 0,
            s.scalar(select(func.count(Order.id))) or 0,
            s.scalar(select(func.count(ScheduledStep.id))) or 0,
        )


def _messages(db: Database) -> list[HL7MessageRow]:
    with db.session_factory() as s:
        return list(s.scalars(select(HL7MessageRow).order_by(HL7MessageRow.id)))


def _broken() -> dict[str, tuple[bytes, str]]:
    ok = VALID.decode()
    procedure = "|18.0149.0040^CT sọ não không tiêm thuốc cản quang^BYT|"
    start = f"TQ1|1||||||{TODAY}080000"
    return {
        "no MSH": (ok.split("\r", 1)[1].encode(), "AR"),
        "MSH then a terminator": (ok.replace("MSH|", "MSH\r", 1).encode(), "AR"),
        "wrong field separator": (ok.replace("MSH|", "MSH\x01", 1).encode(), "AR"),
        "truncated message": (VALID[: VALID.index(b"ORC|") + 6], "AE"),
        "unknown event": (ok.replace("ORM^O01^ORM_O01", "ORM^O99").encode(), "AR"),
        "unknown type": (ok.replace("ORM^O01^ORM_O01", "ZZZ^Z01").encode(), "AR"),
        "unsupported version": (ok.replace("|P|2.5|", "|P|9.9|").encode(), "AR"),
        "missing OBR-4": (ok.replace(procedure, "||").encode(), "AE"),
        "invalid date": (ok.replace(start, "TQ1|1||||||2026-13-45").encode(), "AE"),
        "invalid birth date": (ok.replace("19850704", "19851304").encode(), "AE"),
        "unknown order cancelled": (
            orm("B9", patient_id="PX", name="A^B", placer="NOPE", accession="X", start=TODAY,
                control="CA"),
            "AE",
        ),
    }  # fmt: skip


@pytest.mark.integration
def test_broken_messages_refused_nothing_half_stored(
    database: Database, listener: HL7Listener
) -> None:
    client = Client(listener.port)
    try:
        for name, (payload, expected) in _broken().items():
            payload = payload.replace(b"|V1|", f"|{name[:10]}|".encode())
            ack = client.send(payload)
            assert ack_code(ack) == expected, name
            assert _counts(database) == (0, 0, 0), name
        rows = _messages(database)
        assert len(rows) == len(_broken())
        assert {r.status for r in rows} == {"ERROR", "REJECTED"}
        assert all(r.ack_code in ("AE", "AR") and r.raw for r in rows)
        # ERR names the faulty field, e.g. OBR-4 for the missing procedure.
        missing_obr4 = next(r for r in rows if r.control_id.startswith("missing OB"))
        assert b"ERR|" in missing_obr4.ack and b"OBR^1^4" in missing_obr4.ack
        # The listener is still up, on the same connection: a valid order is accepted.
        assert ack_code(client.send(VALID)) == "AA"
        assert _counts(database) == (1, 1, 1)
    finally:
        client.close()


@pytest.mark.integration
def test_truncated_frame_and_repeated_control_id(database: Database, listener: HL7Listener) -> None:
    with socket.create_connection(("127.0.0.1", listener.port), timeout=5) as sock:
        sock.sendall(b"\x0b" + VALID[:80])  # no end block, then the peer goes away
    client = Client(listener.port)
    try:
        first = client.send(VALID)
        again = client.send(VALID)
        assert ack_code(first) == "AA" and again == first
    finally:
        client.close()
    rows = _messages(database)
    assert len(rows) == 1 and rows[0].repeats == 1 and rows[0].raw == VALID
    assert _counts(database) == (1, 1, 1)


@pytest.mark.integration
def test_store_failure_is_ae_and_nothing_stored(database: Database, tmp_path: Path) -> None:
    handler = HL7Handler(database, _settings(tmp_path))
    with database.write_session() as s:
        s.execute(text("DROP TABLE order_status_history"))
        s.execute(text("DROP TABLE hl7_messages"))
    ack = handler.handle(VALID, "127.0.0.1")
    assert ack_code(ack) == "AE"
    assert b"could not be stored" in ack
    assert _counts(database) == (0, 0, 0)


@pytest.mark.integration
def test_oversize_store_failure_still_answers_ar(database: Database, tmp_path: Path) -> None:
    handler = HL7Handler(database, _settings(tmp_path))
    with database.write_session() as s:
        s.execute(text("DROP TABLE order_status_history"))
        s.execute(text("DROP TABLE hl7_messages"))
    ack = handler.handle_oversize(VALID[:1024], 5_000_000, "127.0.0.1")
    assert ack_code(ack) == "AR" and b"5000000 bytes" in ack
    handler.close()


@pytest.mark.integration
def test_pinned_session_commits_rolls_back_and_recovers(database: Database) -> None:
    pinned = database.pinned()
    with pinned.write_session() as s:
        s.execute(text("CREATE TABLE pin_t (v INTEGER)"))
        s.execute(text("INSERT INTO pin_t VALUES (1)"))
    with pytest.raises(RuntimeError), pinned.write_session() as s:
        s.execute(text("INSERT INTO pin_t VALUES (2)"))
        raise RuntimeError("rolled back")
    with pytest.raises(Exception), pinned.write_session() as s:  # noqa: B017 -- driver error
        s.execute(text("INSERT INTO no_such_table VALUES (3)"))
    with pinned.write_session() as s:
        s.execute(text("INSERT INTO pin_t VALUES (4)"))
    pinned.close()
    with database.write_session() as s:
        assert s.execute(text("SELECT v FROM pin_t ORDER BY v")).scalars().all() == [1, 4]


_BASES = [
    VALID,
    (FIXTURES / "omi_o23_v251.hl7").read_bytes(),
    (FIXTURES / "adt_a40.hl7").read_bytes(),
    (FIXTURES / "orm_o01_custom_delims.hl7").read_bytes(),
]


@st.composite
def _mutated(draw: st.DrawFn) -> bytes:
    data = bytearray(draw(st.sampled_from(_BASES)))
    for _ in range(draw(st.integers(1, 4))):
        pos = draw(st.integers(0, max(len(data) - 1, 0)))
        kind = draw(st.sampled_from(["replace", "delete", "insert", "cut"]))
        byte = draw(st.sampled_from(b"|^~\\&\r\nMSH0123456789AZ \xc3\xa9\xff"))
        if kind == "replace" and data:
            data[pos] = byte
        elif kind == "delete" and data:
            del data[pos]
        elif kind == "insert":
            data.insert(pos, byte)
        else:
            del data[pos:]
    return bytes(data).replace(b"\x0b", b"").replace(b"\x1c", b"")


@pytest.mark.integration
@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(payload=_mutated())
def test_random_mutations_ack_and_atomicity(
    database: Database, listener: HL7Listener, payload: bytes
) -> None:
    payload = payload.replace(b"MSG0", uuid.uuid4().hex[:6].encode(), 1)
    before = _counts(database)
    n_before = len(_messages(database))
    client = Client(listener.port)
    try:
        ack = client.send(payload)
        code = ack_code(ack)
        assert code in ("AA", "AE", "AR")
        if code != "AA":
            assert _counts(database) == before
        rows = _messages(database)
        assert len(rows) in (n_before, n_before + 1)  # stored once (or a repeat)
        # Still up: a valid message is answered on the same connection.
        probe = VALID.replace(b"|V1|", f"|{uuid.uuid4().hex[:10]}|".encode())
        assert ack_code(client.send(probe)) == "AA"
    finally:
        client.close()


@pytest.mark.integration
def test_order_survives_sigkill_after_ack(gateway_factory: type, tmp_path: Path) -> None:
    gw = gateway_factory.make()
    gw.start()
    acks = send_all(gw.hl7_port, [VALID])
    assert ack_code(acks[0]) == "AA"
    gw.kill()  # SIGKILL right after the ACK
    gw.start()
    items = findscu(gw.dicom_port, tmp_path / "rsp", {"AccessionNumber": "AV1"})
    assert [str(i.PatientName) for i in items] == ["NGUYỄN^VĂN AN"]


@pytest.mark.integration
def test_concurrent_connections_same_new_patients(
    database: Database, listener: HL7Listener
) -> None:
    """Four connections create orders for the same new patients at once: all AA, no twin."""

    def sender(n: int) -> list[str]:
        client = Client(listener.port)
        try:
            return [
                ack_code(
                    client.send(
                        orm(
                            f"C{n}-{i}",
                            patient_id=f"CP{i}",
                            name="BÙI^THỊ^LAN",
                            placer=f"CPL{n}-{i}",
                            accession=f"CA{n}-{i}",
                            start=f"{TODAY}090000",
                        )
                    )
                )
                for i in range(8)
            ]
        finally:
            client.close()

    with ThreadPoolExecutor(4) as pool:
        results = list(pool.map(sender, range(4)))
    assert results == [["AA"] * 8] * 4
    assert _counts(database) == (8, 32, 32)


@pytest.mark.integration
def test_listener_refuses_other_sources(database: Database, tmp_path: Path) -> None:
    """Peers outside hl7.allowed_sources get no ACK."""
    settings = Settings(data_dir=tmp_path, hl7={"port": 0, "allowed_sources": ["10.0.0.0/8"]})
    lst = HL7Listener(database, settings)
    lst.start()
    try:
        client = Client(lst.port)
        with pytest.raises(ConnectionError):
            client.send(VALID)
        client.close()
    finally:
        lst.stop()
    assert _messages(database) == []


@contextmanager
def _running(database: Database, tmp_path: Path, **hl7_cfg: object) -> Iterator[HL7Listener]:
    settings = Settings(data_dir=tmp_path, hl7={"port": 0, **hl7_cfg}, log={"level": "WARNING"})
    lst = HL7Listener(database, settings)
    lst.start()
    try:
        yield lst
    finally:
        lst.stop()


def _independent(ack: bytes) -> HL7apyMessage:
    """The ACK as hl7apy (an independent parser) reads it."""
    return parse_message(ack.decode("utf-8"), find_groups=False)


@pytest.mark.integration
def test_oversize_message_refused_ar_then_next_one_served_on_the_same_connection(
    database: Database, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """2 MB against hl7.max_message_bytes = 1 MB: AR with ERR, stored cut to the limit,
    the connection kept for the next message; the decoder never held more than the limit
    (the server reads READ_CHUNK bytes at a time on top of it)."""
    limit = 1_048_576
    big = orm("BIG2MB", patient_id="PBIG", name="TRẦN^THỊ BÍCH", placer="PLBIG",
              accession="ABIG", start=f"{TODAY}080000")  # fmt: skip
    big += b"NTE|1||" + b"x" * (2 * limit) + b"\r"
    with caplog.at_level(logging.DEBUG), _running(database, tmp_path) as lst:
        assert lst.settings.hl7.max_message_bytes == limit
        client = Client(lst.port)
        try:
            first = client.send(big)
            second = client.send(VALID)
        finally:
            client.close()
        assert lst.server is not None
        peak = lst.server.peak_frame_bytes
    ack = _independent(first)
    assert ack.msa.msa_1.value == "AR"
    assert ack.msa.msa_2.value == "BIG2MB"
    assert (ack.msh.msh_5.value, ack.msh.msh_3.value, ack.msh.msh_12.value) == (
        "HIS",
        "RISGATE",
        "2.5",
    )
    assert ack.err.err_3.err_3_1.value == "207"
    assert f"message of {len(big)} bytes exceeds" in ack.err.err_8.value
    assert ack_code(second) == "AA"
    rows = _messages(database)
    assert [(r.control_id, r.status, r.ack_code) for r in rows] == [
        ("BIG2MB", "REJECTED", "AR"),
        ("V1", "PROCESSED", "AA"),
    ]
    assert rows[0].raw == big[:limit] and str(len(big)) in rows[0].error
    assert rows[0].dedup_key is None and rows[0].ack == first
    assert _counts(database) == (1, 1, 1)
    assert limit // 2 < peak <= limit
    assert "TRẦN" not in caplog.text and "PBIG" not in caplog.text


@pytest.mark.integration
def test_oversize_without_a_whole_msh_gets_a_bare_ar(database: Database, tmp_path: Path) -> None:
    """No MSH, or an MSH cut by the limit: AR without MSA-2 (nothing cut is echoed)."""
    no_msh = b"PID|1||X\r" + b"x" * 3000
    long_msh = b"MSH|^~\\&|HIS|" + b"F" * 2000 + b"|RIS|R|||ORM^O01|CUT1|P|2.5\r"
    with _running(database, tmp_path, max_message_bytes=1024) as lst:
        client = Client(lst.port)
        try:
            acks = [client.send(no_msh), client.send(long_msh), client.send(VALID)]
        finally:
            client.close()
    for ack in acks[:2]:
        parsed = _independent(ack)
        assert parsed.msa.msa_1.value == "AR" and parsed.msa.msa_2.value == ""
        assert parsed.err.err_3.err_3_1.value == "207"
    assert ack_code(acks[2]) == "AA"
    rows = _messages(database)
    assert [(r.status, r.control_id, len(r.raw)) for r in rows] == [
        ("REJECTED", "", 1024),
        ("REJECTED", "", 1024),
        ("PROCESSED", "V1", len(VALID)),
    ]


@pytest.mark.integration
def test_garbage_on_the_wire_connection_survives(database: Database, tmp_path: Path) -> None:
    """Junk before a start block, a frame abandoned by a new start block, a frame with no
    MSH followed by bytes that are not CR: AR for the frame that ended, the rest dropped."""
    no_msh = b"PID|1||GARBAGE"
    with _running(database, tmp_path) as lst:
        client = Client(lst.port)
        try:
            client.sock.sendall(
                b"\x00\xff binary junk \r\n" + b"\x0b" + VALID[:50] + b"\x0b" + no_msh
                + b"\x1c\x00junk after FS" + encode_frame(VALID)
            )  # fmt: skip
            first, second = client.next(), client.next()
        finally:
            client.close()
    assert ack_code(first) == "AR"
    assert _independent(first).msa.msa_1.value == "AR"
    assert ack_code(second) == "AA"
    rows = _messages(database)
    assert [(r.status, bytes(r.raw)) for r in rows] == [("REJECTED", no_msh), ("PROCESSED", VALID)]


@pytest.mark.integration
def test_frame_without_end_closed_at_idle_timeout(database: Database, tmp_path: Path) -> None:
    with _running(database, tmp_path, idle_timeout_s=0.5) as lst:
        with socket.create_connection(("127.0.0.1", lst.port), timeout=10) as sock:
            sock.sendall(b"\x0b" + VALID[:100])
            assert sock.recv(100) == b""  # closed by the listener, no answer
        client = Client(lst.port)
        try:
            assert ack_code(client.send(VALID)) == "AA"
        finally:
            client.close()
    assert [r.control_id for r in _messages(database)] == ["V1"]
