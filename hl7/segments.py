"""Readers for segments shared by orders and ADT: PID, PV1, MRG, person names, dates."""

from __future__ import annotations

from datetime import date, datetime

from hl7.datatypes import parse_datetime
from hl7.errors import DATA_TYPE_ERROR, REQUIRED_FIELD_MISSING, SEGMENT_SEQUENCE_ERROR, HL7Error
from hl7.message import HL7_NULL, Message, Segment
from hl7.model import MessageHeader, PatientData, PatientIdentifier, PersonName, VisitData


def value(seg: Segment | None, field: int, component: int = 1, subcomponent: int = 1) -> str:
    """Stripped leaf value, with the HL7 null ``""`` read as empty."""
    if seg is None:
        return ""
    text = seg.get(field, component, subcomponent).strip()
    return "" if text == HL7_NULL else text


def datetime_value(
    seg: Segment | None, field: int, component: int = 1, seq: int = 1
) -> datetime | None:
    """DTM/TS at ``field``.``component`` (None when empty); AE naming the field if invalid."""
    text = value(seg, field, component)
    if not text:
        return None
    try:
        return parse_datetime(text)
    except ValueError:
        assert seg is not None
        raise HL7Error(
            "AE",
            "invalid date/time",
            seg.name,
            field,
            segment_seq=seq,
            component=component if component != 1 else None,
            hl7_code=DATA_TYPE_ERROR,
        ) from None


def date_value(seg: Segment | None, field: int, seq: int = 1) -> date | None:
    """DT (or the date of a TS) at ``field``; AE naming the field if invalid."""
    stamp = datetime_value(seg, field, 1, seq)
    return stamp.date() if stamp is not None else None


def require_segment(msg: Message, name: str) -> Segment:
    """The first ``name`` segment; AE (segment sequence error) when absent."""
    seg = msg.segment(name)
    if seg is None:
        raise HL7Error(
            "AE", f"required segment {name} missing", name, hl7_code=SEGMENT_SEQUENCE_ERROR
        )
    return seg


def header(msg: Message) -> MessageHeader:
    """MSH facts; AE naming MSH-7 if its timestamp is invalid."""
    msh = msg.msh
    return MessageHeader(
        message_type=msg.message_type,
        trigger_event=msg.trigger_event,
        control_id=msg.control_id,
        version=msg.version,
        sending_application=value(msh, 3),
        sending_facility=value(msh, 4),
        receiving_application=value(msh, 5),
        receiving_facility=value(msh, 6),
        timestamp=datetime_value(msh, 7),
        charset=msg.charset,
    )


def identifiers(seg: Segment | None, field: int) -> tuple[PatientIdentifier, ...]:
    """Every CX repetition with a non-empty id: (CX.1, CX.4 authority, CX.5 type)."""
    if seg is None:
        return ()
    out = []
    for rep in seg.repetitions(field):
        ident = rep.component(1).strip()
        if not ident or ident == HL7_NULL:
            continue
        authority = rep.component(4, 1).strip() or rep.component(4, 2).strip()
        out.append(PatientIdentifier(ident, authority, rep.component(5).strip()))
    return tuple(out)


def person(seg: Segment | None, field: int) -> PersonName | None:
    """XCN (id^family^given^middle) of the first repetition, or None when empty."""
    name = PersonName(
        id=value(seg, field, 1),
        family=value(seg, field, 2),
        given=value(seg, field, 3),
        middle=value(seg, field, 4),
    )
    return name if name else None


def _address(seg: Segment) -> str | None:
    parts = [value(seg, 11, i) for i in (1, 2, 8, 9, 3, 4, 5, 6)]
    text = ", ".join(p for p in parts if p)
    return text or None


def patient(msg: Message, *, require_name: bool = True) -> PatientData:
    """PID -> PatientData; AE naming PID-3 / PID-5 / PID-7 when missing or invalid."""
    pid = require_segment(msg, "PID")
    ids = identifiers(pid, 3)
    if not ids:
        raise HL7Error(
            "AE", "patient identifier missing", "PID", 3, hl7_code=REQUIRED_FIELD_MISSING
        )
    family, given = value(pid, 5, 1), value(pid, 5, 2)
    if require_name and not (family or given):
        raise HL7Error("AE", "patient name missing", "PID", 5, hl7_code=REQUIRED_FIELD_MISSING)
    return PatientData(
        identifiers=ids,
        family_name=family,
        given_name=given,
        middle_name=value(pid, 5, 3),
        birth_date=date_value(pid, 7),
        sex=value(pid, 8).upper(),
        address=_address(pid),
    )


#: Where a HIS may put the number of the visit (episode) an order belongs to.
VISIT_NUMBER_FIELDS: dict[str, tuple[str, int]] = {
    "PV1-19": ("PV1", 19),  # Visit Number (the standard place)
    "PV1-50": ("PV1", 50),  # Alternate Visit ID
    "PID-18": ("PID", 18),  # Patient Account Number
}


def visit_number(msg: Message, field: str = "PV1-19") -> str:
    """The visit number from ``field`` (a key of :data:`VISIT_NUMBER_FIELDS`), first component."""
    segment_id, index = VISIT_NUMBER_FIELDS[field]
    return value(msg.segment(segment_id), index)


def visit(msg: Message) -> VisitData | None:
    """PV1 -> VisitData (None without PV1)."""
    pv1 = msg.segment("PV1")
    if pv1 is None:
        return None
    location = value(pv1, 3, 1)
    return VisitData(
        patient_class=value(pv1, 2),
        location=location,
        department=value(pv1, 10) or location,
        attending_doctor=person(pv1, 7),
        visit_number=value(pv1, 19),
    )
