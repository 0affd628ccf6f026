"""ORM^O01, OMI^O23 and OMG^O19 -> :class:`~hl7.model.OrderMessage`.

Field mapping follows dcm4chee-arc-light's public ``hl7-order2dcm.xsl``: ORC-2/3
placer/filler, ORC-1 + ORC-5 step status, OBR-4 procedure, OBR-18/19 (or IPC-1/2)
accession and requested procedure id, IPC-3 or ZDS-1 study UID, IPC-4..9 scheduled
step, TQ1-7 / ORC-7.4 / OBR-27.4 (then OBR-36) start time.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import datetime

from hl7.errors import (
    REQUIRED_FIELD_MISSING,
    SEGMENT_SEQUENCE_ERROR,
    TABLE_VALUE_NOT_FOUND,
    HL7Error,
)
from hl7.message import Message, Segment
from hl7.modality import guess_modality, normalize_modality
from hl7.model import OrderData, OrderMessage
from hl7.segments import datetime_value, header, patient, person, value, visit

# HL7 table 0119 (order control codes).
ORDER_CONTROL_CODES = frozenset(
    [
        "AF",
        "CA",
        "CH",
        "CN",
        "CR",
        "DC",
        "DE",
        "DF",
        "DR",
        "FU",
        "HD",
        "HR",
        "LI",
        "NA",
        "NW",
        "OC",
        "OD",
        "OE",
        "OF",
        "OH",
        "OK",
        "OP",
        "OR",
        "PA",
        "PR",
        "PY",
        "RE",
        "RF",
        "RL",
        "RO",
        "RP",
        "RQ",
        "RR",
        "RU",
        "SC",
        "SN",
        "SR",
        "SS",
        "UA",
        "UC",
        "UD",
        "UF",
        "UH",
        "UM",
        "UN",
        "UR",
        "UX",
        "XO",
        "XR",
        "XX",
    ]
)
# Controls that create or change an order: they need the procedure (OBR-4).
NEEDS_PROCEDURE = frozenset({"NW", "XO", "SN", "XX"})

# dcm4chee's procedurePriority template.
_PRIORITY = {"S": "STAT", "A": "HIGH", "P": "HIGH", "C": "HIGH", "R": "ROUTINE", "T": "MEDIUM"}


@dataclass
class _Seg:
    """A segment together with its occurrence number (for error locations)."""

    seg: Segment
    seq: int


@dataclass
class _Group:
    orc: _Seg
    obr: _Seg | None = None
    tq1: _Seg | None = None
    ipcs: list[_Seg] = field(default_factory=list)
    zds: _Seg | None = None


def _groups(msg: Message) -> tuple[list[_Group], _Seg | None]:
    """Split the order part into ORC groups; also return a message-level ZDS."""
    counts: dict[str, int] = {}
    groups: list[_Group] = []
    zds: _Seg | None = None
    for seg in msg.segment_list:
        name = seg.name
        if name not in ("ORC", "OBR", "TQ1", "IPC", "ZDS"):
            continue
        counts[name] = counts.get(name, 0) + 1
        item = _Seg(seg, counts[name])
        current = groups[-1] if groups else None
        if name == "ORC":
            groups.append(_Group(item))
        elif current is None:
            if name == "ZDS":
                zds = item
                continue
            raise HL7Error("AE", f"{name} before any ORC", "ORC", hl7_code=SEGMENT_SEQUENCE_ERROR)
        elif name == "OBR":
            if current.obr is not None:  # a second OBR for the same ORC: its own step
                current = _Group(current.orc, tq1=current.tq1)
                groups.append(current)
            current.obr = item
        elif name == "TQ1":
            current.tq1 = current.tq1 or item
        elif name == "IPC":
            current.ipcs.append(item)
        else:
            current.zds = item
            zds = zds or item
    if not groups:
        raise HL7Error("AE", "no ORC segment", "ORC", hl7_code=SEGMENT_SEQUENCE_ERROR)
    return groups, zds


def _scheduled_start(group: _Group) -> datetime | None:
    orc = group.orc
    candidates: list[tuple[_Seg | None, int, int]] = [
        (group.tq1, 7, 1),
        (orc, 7, 4),
        (group.obr, 27, 4),
        (group.obr, 36, 1),
    ]
    for item, fld, comp in candidates:
        if item is not None and value(item.seg, fld, comp):
            return datetime_value(item.seg, fld, comp, item.seq)
    return None


def _priority(group: _Group) -> str:
    tq1 = group.tq1.seg if group.tq1 else None
    obr = group.obr.seg if group.obr else None
    code = value(tq1, 9) or value(group.orc.seg, 7, 6) or value(obr, 27, 6) or value(obr, 5)
    return _PRIORITY.get(code.upper(), "")


def _multi(seg: Segment, fld: int) -> str:
    """All repetitions of a field joined with a backslash (DICOM multi-value)."""
    return "\\".join(r.component(1).strip() for r in seg.repetitions(fld) if r.component(1).strip())


def _order_control(group: _Group) -> str:
    orc = group.orc
    control = value(orc.seg, 1).upper()
    if not control:
        raise HL7Error(
            "AE",
            "order control missing",
            "ORC",
            1,
            segment_seq=orc.seq,
            hl7_code=REQUIRED_FIELD_MISSING,
        )
    if control not in ORDER_CONTROL_CODES:
        raise HL7Error(
            "AE",
            "unknown order control code",
            "ORC",
            1,
            segment_seq=orc.seq,
            hl7_code=TABLE_VALUE_NOT_FOUND,
        )
    return control


def _orders_of(group: _Group, msg_zds: _Seg | None) -> list[OrderData]:
    control = _order_control(group)
    orc = group.orc.seg
    obr = group.obr.seg if group.obr else None
    code, text, system = value(obr, 4, 1), value(obr, 4, 2), value(obr, 4, 3)
    if not (code or text):  # only the alternate identifier (OBR-4.4..6) is filled
        code, text, system = value(obr, 4, 4), value(obr, 4, 5), value(obr, 4, 6)
    zds = group.zds or msg_zds
    if control in NEEDS_PROCEDURE:
        if group.obr is None:
            raise HL7Error(
                "AE",
                "OBR missing for a new or changed order",
                "OBR",
                hl7_code=SEGMENT_SEQUENCE_ERROR,
            )
        if not (code or text):
            raise HL7Error(
                "AE",
                "procedure code missing",
                "OBR",
                4,
                segment_seq=group.obr.seq,
                hl7_code=REQUIRED_FIELD_MISSING,
            )
    placer = value(orc, 2) or value(obr, 2)
    filler = value(orc, 3) or value(obr, 3)
    base = OrderData(
        order_control=control,
        order_status=value(orc, 5).upper(),
        placer_order_number=placer,
        filler_order_number=filler,
        accession_number=value(obr, 18),
        requested_procedure_id=value(obr, 19),
        procedure_code=code,
        procedure_text=text,
        procedure_coding_system=system,
        modality=normalize_modality(value(obr, 24)) or guess_modality(text, code),
        study_instance_uid=value(zds.seg, 1) if zds else "",
        scheduled_start=_scheduled_start(group),
        scheduled_step_id=value(obr, 20),
        protocol_code=value(obr, 4, 4),
        protocol_text=value(obr, 4, 5),
        protocol_coding_system=value(obr, 4, 6),
        reason=value(obr, 31, 2) or value(obr, 31, 1),
        priority=_priority(group),
        requesting_physician=person(obr, 16) or person(orc, 12),
    )
    if not (placer or filler or base.accession_number or group.ipcs):
        raise HL7Error(
            "AE",
            "no placer or filler order number",
            "ORC",
            2,
            segment_seq=group.orc.seq,
            hl7_code=REQUIRED_FIELD_MISSING,
        )
    if not group.ipcs:
        return [base]
    return [_with_ipc(base, item.seg) for item in group.ipcs]


def _with_ipc(base: OrderData, ipc: Segment) -> OrderData:
    """One scheduled step per IPC (OMI^O23): IPC-1..9 override the OBR values."""
    protocol_code = value(ipc, 6, 1)
    return replace(
        base,
        accession_number=value(ipc, 1) or base.accession_number,
        requested_procedure_id=value(ipc, 2) or base.requested_procedure_id,
        study_instance_uid=value(ipc, 3) or base.study_instance_uid,
        scheduled_step_id=value(ipc, 4) or base.scheduled_step_id,
        modality=normalize_modality(value(ipc, 5)) or base.modality,
        protocol_code=protocol_code or base.protocol_code,
        protocol_text=value(ipc, 6, 2) if protocol_code else base.protocol_text,
        protocol_coding_system=value(ipc, 6, 3) if protocol_code else base.protocol_coding_system,
        scheduled_station_name=_multi(ipc, 7),
        scheduled_location=value(ipc, 8),
        scheduled_station_ae=_multi(ipc, 9),
    )


def interpret_order(msg: Message) -> OrderMessage:
    """Map an order message; AE (naming the field) for missing or invalid data."""
    head = header(msg)
    pat = patient(msg)
    groups, msg_zds = _groups(msg)
    orders: list[OrderData] = []
    for group in groups:
        orders.extend(_orders_of(group, msg_zds))
    return OrderMessage(header=head, patient=pat, visit=visit(msg), orders=tuple(orders))
