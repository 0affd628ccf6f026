"""The visit number (the claim's MA_LK) read from the field the HIS uses: PV1-19 by
default, PV1-50 or PID-18 with ``hl7.visit_number_field``; pure interpretation, then the
real MLLP listener storing it on SQLite and PostgreSQL."""

from __future__ import annotations

import socket
from datetime import date
from pathlib import Path

import pytest
from sqlalchemy import select

from gateway.core.database import Database
from gateway.core.settings import Settings
from gateway.orders.hl7_listener import HL7Listener
from gateway.orders.models import Order, Visit
from hl7.inbound import receive
from hl7.interpret import with_visit_number
from hl7.mllp import FrameDecoder, encode_frame
from hl7.model import OrderMessage
from tests.fixtures.orders.helpers import ack_code, orm

TODAY = date.today().strftime("%Y%m%d")


def _message(cid: str) -> bytes:
    base = orm(cid, patient_id=f"BN-{cid}", name="TRẦN^VĂN BÌNH", placer=f"PL{cid}",
               accession=f"A{cid}", start=f"{TODAY}080000")  # fmt: skip
    pv1 = ["PV1", "1", "O", *[""] * 16, "V19-" + cid, *[""] * 30, "V50-" + cid]
    assert pv1[19] == "V19-" + cid and pv1[50] == "V50-" + cid
    text = base.decode("utf-8").replace("PV1|1|O", "|".join(pv1))
    text = text.replace("||19850704|M", "||19850704|M" + "|" * 10 + "ACCT-" + cid)
    return text.encode("utf-8")


@pytest.mark.unit
@pytest.mark.parametrize(
    ("field", "expected"), [("PV1-19", "V19-X"), ("PV1-50", "V50-X"), ("PID-18", "ACCT-X")]
)
def test_visit_number_from_the_configured_field(field: str, expected: str) -> None:
    inbound = receive(_message("X"))
    assert inbound.accepted and inbound.message is not None and inbound.result is not None
    result = with_visit_number(inbound.result, inbound.message, field)
    assert isinstance(result, OrderMessage) and result.visit is not None
    assert result.visit.visit_number == expected
    assert result.visit.patient_class == "O"  # the rest of the visit is kept


def _send(port: int, payload: bytes) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(encode_frame(payload))
        decoder = FrameDecoder()
        while True:
            data = sock.recv(65536)
            assert data, "connection closed before the ACK"
            frames = list(decoder.feed(data))
            if frames:
                return frames[0]


@pytest.mark.parametrize("field", ["PV1-19", "PV1-50"])
def test_listener_stores_the_configured_visit_number(
    database: Database, tmp_path: Path, field: str
) -> None:
    settings = Settings(data_dir=tmp_path, hl7={"port": 0, "visit_number_field": field},
                        log={"level": "WARNING"})  # fmt: skip
    listener = HL7Listener(database, settings)
    listener.start()
    try:
        assert ack_code(_send(listener.port, _message("L1"))) == "AA"
    finally:
        listener.stop()
    with database.write_session() as session:
        number = session.scalar(
            select(Visit.visit_number).join(Order, Order.visit_pk == Visit.id)
            .where(Order.placer_number == "PLL1")
        )  # fmt: skip
    assert number == ("V19-L1" if field == "PV1-19" else "V50-L1")


@pytest.mark.unit
def test_unknown_field_is_refused_at_start_up(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="visit_number_field"):
        Settings(data_dir=tmp_path, hl7={"visit_number_field": "PV1-3"})
