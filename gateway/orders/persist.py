"""Apply an interpreted HL7 message to the orders tables, inside the caller's transaction.

Orders: NW/XO/SN/XX create or change the order, its requested procedures and scheduled
steps; CA/OC cancel, DC/OD discontinue, SC sets the status from ORC-5. A Study Instance
UID is generated when the order carries none; a step without station AE gets the AE
titles of the configured peers of its modality. Application errors raise HL7Error (AE).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime

from pydicom.uid import generate_uid
from sqlalchemy.orm import Session

from gateway.core import events
from gateway.core.fastsql import FastSQL
from gateway.orders.patients import _chain, _owners, change_identifier, merge, upsert_patient
from hl7.errors import HL7Error
from hl7.model import (
    IdentifierChange,
    Interpreted,
    OrderData,
    OrderMessage,
    PatientData,
    PatientMerge,
    PatientUpdate,
    PersonName,
    VisitData,
)

CREATE_CONTROLS = frozenset({"NW", "XO", "SN", "XX", "RO"})
UNKNOWN_ORDER = 204  # HL7 table 0357: unknown key identifier


@dataclass
class Context:
    """What applying a message needs besides the data: configuration and the message row."""

    stations_by_modality: Mapping[str, str] = field(default_factory=dict)
    message_pk: int | None = None


def apply(session: Session, data: Interpreted, ctx: Context) -> None:
    """Apply one interpreted message; raises HL7Error (AE) on an application error."""
    db = FastSQL(session)
    if isinstance(data, OrderMessage):
        apply_orders(db, data, ctx)
    elif isinstance(data, PatientUpdate):
        patient = upsert_patient(db, data.patient)
        if data.visit is not None:
            _upsert_visit(db, patient, data.visit)
        events.emit(session, events.PATIENT_CHANGED, str(patient))
    elif isinstance(data, PatientMerge):
        merge(db, data.patient, data.prior_identifiers)
        _patient_changed(session, db, data.patient)
    elif isinstance(data, IdentifierChange):
        change_identifier(db, data.patient, data.old_identifiers)
        _patient_changed(session, db, data.patient)


def _patient_changed(session: Session, db: FastSQL, data: PatientData) -> None:
    """Tell the pipeline (studies already sent may need correcting in the PACS)."""
    known = _owners(db, data.identifiers)
    for ident in data.identifiers:
        owner = known.get((ident.id, ident.authority))
        if owner is not None:
            events.emit(session, events.PATIENT_CHANGED, str(_chain(db, *owner)[-1]))
            return


def _person(p: PersonName | None) -> str:
    """An XCN as a DICOM PN (family^given^middle), or ''."""
    if p is None:
        return ""
    return "^".join([p.family, p.given, p.middle]).rstrip("^")


def _upsert_visit(db: FastSQL, patient_pk: int, data: VisitData) -> int:
    row = db.one(
        "INSERT INTO visits (patient_pk, visit_number, patient_class, location, department,"
        " attending_doctor, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?)"
        " ON CONFLICT (patient_pk, visit_number) DO UPDATE SET"
        " patient_class = excluded.patient_class, location = excluded.location,"
        " department = excluded.department, attending_doctor = excluded.attending_doctor,"
        " updated_at = excluded.updated_at RETURNING id",
        [
            patient_pk,
            data.visit_number[:64],
            data.patient_class[:8],
            data.location[:64],
            data.department[:64],
            _person(data.attending_doctor)[:200],
            db.now(),
        ],
    )
    assert row is not None
    return int(row[0])


def _find_order(db: FastSQL, data: OrderData) -> int | None:
    """The order with this placer number, else filler number, else accession number."""
    placer, filler = data.placer_order_number, data.filler_order_number
    if placer and filler:
        rows = db.rows(
            "SELECT id, placer_number FROM orders WHERE placer_number = ? OR filler_number = ?"
            " ORDER BY id LIMIT 4",
            [placer, filler],
        )
        if rows:
            by_placer = [r for r in rows if r[1] == placer]
            return int((by_placer or rows)[0][0])
    elif placer or filler:
        column = "placer_number" if placer else "filler_number"
        row = db.one(
            f"SELECT id FROM orders WHERE {column} = ? ORDER BY id LIMIT 1", [placer or filler]
        )
        if row is not None:
            return int(row[0])
    if data.accession_number:
        row = db.one(
            "SELECT order_pk FROM requested_procedures WHERE accession_number = ?"
            " ORDER BY id LIMIT 1",
            [data.accession_number],
        )
        return int(row[0]) if row is not None else None
    return None


def accession_of(data: OrderData) -> str:
    """OBR-18 / IPC-1, else the filler or placer order number (SH: 16 characters)."""
    return (data.accession_number or data.filler_order_number or data.placer_order_number)[:16]


def _rp_id(data: OrderData) -> str:
    return (data.requested_procedure_id or accession_of(data))[:16]


def _history(
    db: FastSQL, order_pk: int, step_pk: int | None, status: str, source: str, ctx: Context
) -> None:
    db.execute(
        "INSERT INTO order_status_history (order_pk, step_pk, status, source, message_pk, at)"
        " VALUES (?, ?, ?, ?, ?, ?)",
        [order_pk, step_pk, status, source[:32], ctx.message_pk, db.now()],
    )


def apply_orders(db: FastSQL, msg: OrderMessage, ctx: Context) -> None:
    patient = upsert_patient(db, msg.patient)
    visit = _upsert_visit(db, patient, msg.visit) if msg.visit is not None else None
    sender = msg.header.sending_application[:64]
    seen: dict[tuple[str, str], int] = {}
    for data in msg.orders:
        key = (data.placer_order_number, data.filler_order_number)
        order = seen.get(key) or _find_order(db, data)
        control = data.order_control
        creates = order is None and control == "SC" and bool(data.procedure_code)
        if control in CREATE_CONTROLS or creates:
            seen[key] = _upsert_order(db, order, patient, visit, sender, data, ctx)
            continue
        if order is None:
            raise HL7Error("AE", "unknown order", "ORC", 2, hl7_code=UNKNOWN_ORDER)
        seen[key] = order
        _set_status(db, order, data.step_status, control, ctx)


def _set_status(db: FastSQL, order_pk: int, status: str, control: str, ctx: Context) -> None:
    """Order-level status change: every step of the order follows."""
    now = db.now()
    db.update("orders", order_pk, {"status": status, "last_control": control, "updated_at": now})
    db.execute(
        "UPDATE scheduled_steps SET status = ?, updated_at = ? WHERE rp_pk IN"
        " (SELECT id FROM requested_procedures WHERE order_pk = ?)",
        [status, now, order_pk],
    )
    _history(db, order_pk, None, status, f"HL7 {control}", ctx)


def _upsert_order(
    db: FastSQL,
    order_pk: int | None,
    patient_pk: int,
    visit_pk: int | None,
    sender: str,
    data: OrderData,
    ctx: Context,
) -> int:
    now = db.now()
    status = data.step_status
    values: dict[str, object] = {
        "patient_pk": patient_pk,
        "status": status,
        "last_control": data.order_control,
        "priority": data.priority,
        "requesting_physician": _person(data.requesting_physician)[:200],
        "reason": data.reason[:256],
        "updated_at": now,
    }
    if visit_pk is not None:
        values["visit_pk"] = visit_pk
    if order_pk is None:
        values.update(
            placer_number=data.placer_order_number[:64],
            filler_number=data.filler_order_number[:64],
            sending_application=sender,
            created_at=now,
        )
        order_pk = db.insert("orders", values)
        rp_pk = _insert_rp(db, order_pk, data)
        step_pk = _insert_step(db, rp_pk, data, status, ctx)
    else:
        db.update("orders", order_pk, values)
        rp_pk = _upsert_rp(db, order_pk, data)
        step_pk = _upsert_step(db, rp_pk, data, status, ctx)
    _history(db, order_pk, step_pk, status, f"HL7 {data.order_control}", ctx)
    return order_pk


def _rp_values(data: OrderData) -> dict[str, object]:
    values: dict[str, object] = {"accession_number": accession_of(data)}
    if data.procedure_code or data.procedure_text:
        values.update(
            procedure_code=data.procedure_code[:64],
            procedure_text=data.procedure_text[:256],
            coding_system=data.procedure_coding_system[:64],
        )
    if data.study_instance_uid:
        values["study_instance_uid"] = data.study_instance_uid[:64]
    return values


def _insert_rp(db: FastSQL, order_pk: int, data: OrderData) -> int:
    values: dict[str, object] = {
        "order_pk": order_pk,
        "requested_procedure_id": _rp_id(data),
        "study_instance_uid": generate_uid(),
        "procedure_code": "",
        "procedure_text": "",
        "coding_system": "",
    }
    values.update(_rp_values(data))
    return db.insert("requested_procedures", values)


def _upsert_rp(db: FastSQL, order_pk: int, data: OrderData) -> int:
    row = db.one(
        "SELECT id FROM requested_procedures WHERE order_pk = ? AND requested_procedure_id = ?",
        [order_pk, _rp_id(data)],
    )
    if row is None:
        return _insert_rp(db, order_pk, data)
    db.update("requested_procedures", int(row[0]), _rp_values(data))
    return int(row[0])


def _split_start(start: datetime | None) -> tuple[str, str]:
    """Scheduled start as DICOM DA and TM, wall-clock time as the HIS sent it."""
    when = start or datetime.now()
    return when.strftime("%Y%m%d"), when.strftime("%H%M%S")


def _step_values(data: OrderData, status: str, ctx: Context, db: FastSQL) -> dict[str, object]:
    """Step columns the message sets (empty message values keep the stored ones)."""
    values: dict[str, object] = {
        "protocol_code": data.protocol_code[:64],
        "protocol_text": data.protocol_text[:256],
        "protocol_scheme": data.protocol_coding_system[:64],
        "status": status,
        "updated_at": db.now(),
    }
    if data.scheduled_start is not None:
        values["start_date"], values["start_time"] = _split_start(data.scheduled_start)
    if data.modality:
        values["modality"] = data.modality[:16]
    station = data.scheduled_station_ae or ctx.stations_by_modality.get(data.modality, "")
    if station:
        values["station_ae"] = station[:170]
    for column, value in (
        ("station_name", data.scheduled_station_name[:170]),
        ("location", data.scheduled_location[:64]),
        ("description", (data.protocol_text or data.procedure_text)[:256]),
    ):
        if value:
            values[column] = value
    return values


def _step_id(data: OrderData, rp_id: str) -> str:
    return (data.scheduled_step_id or rp_id)[:16]


def _insert_step(db: FastSQL, rp_pk: int, data: OrderData, status: str, ctx: Context) -> int:
    start_date, start_time = _split_start(data.scheduled_start)
    values: dict[str, object] = {
        "rp_pk": rp_pk,
        "step_id": _step_id(data, _rp_id(data)),
        "modality": "",
        "station_ae": "",
        "station_name": "",
        "location": "",
        "start_date": start_date,
        "start_time": start_time,
        "description": "",
    }
    values.update(_step_values(data, status, ctx, db))
    return db.insert("scheduled_steps", values)


def _upsert_step(db: FastSQL, rp_pk: int, data: OrderData, status: str, ctx: Context) -> int:
    row = db.one(
        "SELECT id FROM scheduled_steps WHERE rp_pk = ? AND step_id = ?",
        [rp_pk, _step_id(data, _rp_id(data))],
    )
    if row is None:
        return _insert_step(db, rp_pk, data, status, ctx)
    db.update("scheduled_steps", int(row[0]), _step_values(data, status, ctx, db))
    return int(row[0])


def stations_by_modality(peers: list[tuple[str, str | None]]) -> dict[str, str]:
    """Modality -> backslash-joined AE titles of the peers configured with it."""
    out: dict[str, list[str]] = {}
    for ae_title, modality in peers:
        if modality:
            out.setdefault(modality.upper(), []).append(ae_title)
    return {m: "\\".join(titles) for m, titles in out.items()}


__all__ = ["Context", "accession_of", "apply", "stations_by_modality"]
