"""Interpreted HL7 applied to the orders tables on SQLite and PostgreSQL: identifiers with
their type codes, OMI steps, station AE from peers, status controls, merges (chains,
repeats, cycles), identifier changes, message retention, and the worklist query."""

from __future__ import annotations

from datetime import date, timedelta
from pathlib import Path

import pytest
from pydicom import Dataset
from pydicom.sequence import Sequence
from sqlalchemy import select, update

from gateway.core.database import Database
from gateway.core.models import utcnow
from gateway.core.settings import Settings
from gateway.orders.hl7_listener import HL7Handler
from gateway.orders.models import (
    HL7MessageRow,
    Order,
    OrderPatient,
    PatientIdentifierRow,
    RequestedProcedure,
    ScheduledStep,
    StatusChange,
)
from gateway.orders.worklist import WorklistQuery, find
from tests.fixtures.orders.helpers import ack_code, adt, omi, orm

FIXTURES = Path(__file__).parent / "fixtures" / "hl7"
TODAY = date.today().strftime("%Y%m%d")


@pytest.fixture
def handler(database: Database, tmp_path: Path) -> HL7Handler:
    peers = [
        {"ae_title": "CT_A", "modality": "CT"},
        {"ae_title": "CT_B", "modality": "CT"},
        {"ae_title": "US_1", "modality": "US"},
    ]
    return HL7Handler(database, Settings(data_dir=tmp_path, dicom={"peers": peers}))


def _send(handler: HL7Handler, *messages: bytes) -> list[str]:
    return [ack_code(handler.handle(m, "127.0.0.1")) for m in messages]


def _steps(db: Database) -> dict[str, tuple[str, str, str, str]]:
    """accession -> (status, modality, station AE, start date) of each step (last wins)."""
    with db.session_factory() as s:
        rows = s.execute(
            select(RequestedProcedure.accession_number, ScheduledStep).join(
                ScheduledStep, ScheduledStep.rp_pk == RequestedProcedure.id
            )
        ).all()
    return {acc: (st.status, st.modality, st.station_ae, st.start_date) for acc, st in rows}


def _worklist(db: Database, **keys: str) -> list[Dataset]:
    ident = Dataset()
    ident.PatientName = ""
    ident.PatientID = keys.pop("PatientID", "")
    ident.AccessionNumber = ""
    sps = Dataset()
    for k, v in ({"ScheduledStationAETitle": "", "Modality": ""} | keys).items():
        setattr(sps, k, v)
    ident.ScheduledProcedureStepSequence = Sequence([sps])
    with db.session_factory() as s:
        return list(find(s, WorklistQuery(ident)))


def test_fixture_messages_identifiers_and_steps(handler: HL7Handler, database: Database) -> None:
    names = ["orm_o01_v23", "orm_o01_v25", "omi_o23_v251", "omg_o19_v251", "orm_o01_latin1"]
    codes = _send(handler, *[(FIXTURES / f"{n}.hl7").read_bytes() for n in names])
    assert codes == ["AA"] * 5
    with database.session_factory() as s:
        ids = {
            (r.identifier, r.type_code)
            for r in s.scalars(select(PatientIdentifierRow))
            if r.identifier.startswith(("BN000123", "0790850", "DN479"))
        }
        assert ids == {
            ("BN000123", "MR"),
            ("079085001234", "NI"),
            ("DN4790123456789", "HC"),
        }
        patient = s.scalar(select(OrderPatient).where(OrderPatient.patient_id == "BN000123"))
        assert patient is not None
        assert (patient.family_name, patient.given_name, patient.birth_date) == (
            "NGUYỄN",
            "VĂN AN",
            "19850704",
        )
        # OMI: one order, one requested procedure with the sent UID, two steps.
        rp = s.scalar(
            select(RequestedProcedure).where(RequestedProcedure.accession_number == "ACC0004")
        )
        assert rp is not None and rp.study_instance_uid == "1.2.840.113619.2.55.3.4.1"
        steps = list(s.scalars(select(ScheduledStep).where(ScheduledStep.rp_pk == rp.id)))
        assert sorted((st.step_id, st.station_ae) for st in steps) == [
            ("SPS0004A", "CT01\\CT01B"),
            ("SPS0004B", "CT01"),
        ]
    steps = _steps(database)
    # ORM without station AE: the peers of the modality; a start time with an offset kept.
    assert steps["ACC0001"] == ("SCHEDULED", "CT", "CT_A\\CT_B", "20240315")
    assert steps["ACC0003"][1:3] == ("US", "US_1")
    assert steps["ACC0002"][1:3] == ("DX", "")
    # MSH-18 8859/1 decoded: the Latin-1 name reaches the worklist unchanged.
    latin = [i for i in _worklist(database) if i.AccessionNumber == "ACC0100"]
    assert [str(i.PatientName) for i in latin] == ["MÜLLER^JOSÉ^FRANÇOIS"]


def test_status_controls(handler: HL7Handler, database: Database) -> None:
    common = {"patient_id": "S1", "name": "VÕ^THỊ^HỒNG", "start": f"{TODAY}090000"}
    assert (
        _send(
            handler,
            orm("S-1", placer="SP1", accession="SA1", **common),
            orm("S-2", placer="SP2", accession="SA2", **common),
            orm("S-3", placer="SP3", accession="SA3", **common),
        )
        == ["AA"] * 3
    )
    sc_ip = orm("S-4", placer="SP1", accession="SA1", control="SC", **common).replace(
        b"||SC\r", b"||IP\r"
    )
    assert (
        _send(
            handler,
            sc_ip,
            orm("S-5", placer="SP2", accession="SA2", control="DC", **common),
            orm("S-6", placer="SP3", accession="SA3", control="CA", **common),
        )
        == ["AA"] * 3
    )
    steps = _steps(database)
    assert [steps[a][0] for a in ("SA1", "SA2", "SA3")] == ["STARTED", "DISCONTINUED", "CANCELED"]
    assert [str(i.AccessionNumber) for i in _worklist(database)] == ["SA1"]
    with database.session_factory() as s:
        history = s.scalars(select(StatusChange.source).order_by(StatusChange.id)).all()
    assert history == ["HL7 NW"] * 3 + ["HL7 SC", "HL7 DC", "HL7 CA"]


def test_merge_chain_repeat_and_cycle(handler: HL7Handler, database: Database) -> None:
    def order(cid: str, pid: str) -> bytes:
        return orm(cid, patient_id=pid, name="ĐỖ^MINH^TUẤN", placer=f"M{pid}",
                   accession=f"MA{pid}", start=f"{TODAY}100000")  # fmt: skip

    assert _send(handler, order("M-1", "PA"), order("M-2", "PB"), order("M-3", "PC")) == ["AA"] * 3
    codes = _send(
        handler,
        adt("M-4", "A40", patient_id="PB", name="ĐỖ^MINH^TUẤN", prior="PA"),  # A -> B
        adt("M-5", "A40", patient_id="PC", name="ĐỖ^MINH^TUẤN", prior="PB"),  # B -> C
        adt("M-6", "A40", patient_id="PB", name="ĐỖ^MINH^TUẤN", prior="PA"),  # repeat
        adt("M-7", "A40", patient_id="PA", name="ĐỖ^MINH^TUẤN", prior="PC"),  # cycle
    )
    assert codes == ["AA", "AA", "AA", "AE"]
    items = _worklist(database, PatientID="PC")
    assert sorted(str(i.AccessionNumber) for i in items) == ["MAPA", "MAPB", "MAPC"]
    # A new order for the merged identifier lands on the surviving patient.
    assert _send(handler, order("M-8", "PA")) == ["AA"]
    assert {str(i.PatientID) for i in _worklist(database)} == {"PC"}
    with database.session_factory() as s:
        rows = s.scalars(select(HL7MessageRow).where(HL7MessageRow.control_id == "M-7")).all()
        assert [(r.status, r.ack_code) for r in rows] == [("ERROR", "AE")]
        assert b"MRG" in rows[0].ack


def test_identifier_change(handler: HL7Handler, database: Database) -> None:
    assert _send(
        handler,
        orm("I-1", patient_id="OLD1", name="PHẠM^THU^HÀ", placer="IP1", accession="IA1",
            start=f"{TODAY}100000"),
        adt("I-2", "A47", patient_id="NEW1", name="PHẠM^THU^HÀ", prior="OLD1"),
        adt("I-3", "A47", patient_id="NEW1", name="PHẠM^THU^HÀ", prior="OLD1"),
        adt("I-4", "A47", patient_id="NEW2", name="PHẠM^THU^HÀ", prior="NOBODY"),
    ) == ["AA", "AA", "AA", "AE"]  # fmt: skip
    assert [str(i.PatientID) for i in _worklist(database)] == ["NEW1"]
    assert _worklist(database, PatientID="OLD1") == []


def test_retention_purge(handler: HL7Handler, database: Database) -> None:
    assert _send(handler, adt("R-1", "A08", patient_id="R1", name="A^B")) == ["AA"]
    assert _send(handler, adt("R-2", "A08", patient_id="R1", name="A^C")) == ["AA"]
    with database.write_session() as s:
        s.execute(
            update(HL7MessageRow)
            .where(HL7MessageRow.control_id == "R-1")
            .values(received_at=utcnow() - timedelta(days=91))
        )
    assert handler.purge() == 1
    with database.session_factory() as s:
        assert s.scalars(select(HL7MessageRow.control_id)).all() == ["R-2"]
        assert s.scalar(select(OrderPatient.given_name)) == "C"


def test_omi_station_query(handler: HL7Handler, database: Database) -> None:
    assert _send(
        handler,
        omi("O-1", patient_id="O1", name="LÊ^HOÀNG^MINH", placer="OP1", accession="OA1",
            start=f"{TODAY}141500", station="CT09"),
    ) == ["AA"]  # fmt: skip
    items = _worklist(
        database, ScheduledStationAETitle="CT09", ScheduledProcedureStepStartDate=TODAY
    )
    assert [str(i.PatientName) for i in items] == ["LÊ^HOÀNG^MINH"]
    assert items[0].SpecificCharacterSet == "ISO_IR 192"
    assert _worklist(database, ScheduledStationAETitle="CT08") == []
    with database.session_factory() as s:
        assert s.scalar(select(Order.status)) == "SCHEDULED"


def test_response_holds_exactly_the_requested_keys(handler: HL7Handler, database: Database) -> None:
    assert _send(handler, (FIXTURES / "orm_o01_v23.hl7").read_bytes()) == ["AA"]
    ident = Dataset()
    ident.AccessionNumber = "ACC0001"
    ident.PatientWeight = ""  # not known to the worklist: returned empty
    code = Dataset()
    code.CodeValue = ""
    ident.RequestedProcedureCodeSequence = Sequence([code])
    with database.session_factory() as s:
        items = list(find(s, WorklistQuery(ident)))
    assert len(items) == 1
    item = items[0]
    assert {e.keyword for e in item} == {
        "SpecificCharacterSet",
        "AccessionNumber",
        "PatientWeight",
        "RequestedProcedureCodeSequence",
    }
    assert item.PatientWeight in (None, "")
    assert [e.keyword for e in item.RequestedProcedureCodeSequence[0]] == ["CodeValue"]
    assert item.RequestedProcedureCodeSequence[0].CodeValue == "18.0149.0040"
    # The same item asked for with the whole sequence (empty item): every code attribute.
    ident = Dataset()
    ident.AccessionNumber = "ACC0001"
    ident.RequestedProcedureCodeSequence = Sequence([])
    ident.PatientName = ""
    with database.session_factory() as s:
        (item,) = find(s, WorklistQuery(ident))
    assert str(item.PatientName) == "NGUYỄN^VĂN AN"
    code_item = item.RequestedProcedureCodeSequence[0]
    assert (code_item.CodeValue, code_item.CodingSchemeDesignator) == ("18.0149.0040", "BYT")
    assert code_item.CodeMeaning == "CT sọ não không tiêm thuốc cản quang"
