"""Outbound messages: ORU^R01 study result with viewer link, ORM^O01 status, DFT^P03 charges.

All are written with MSH-18 ``UNICODE UTF-8`` and encoded as UTF-8, so Vietnamese
names round-trip unchanged; every value is escaped (``&`` in a URL becomes ``\\T\\``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from hl7.charset import UTF8_LABEL
from hl7.datatypes import format_date, format_datetime
from hl7.delimiters import DEFAULT_DELIMITERS
from hl7.encode import (
    FieldValue,
    Repeat,
    encode_message,
    encode_msh,
    encode_segment,
    new_control_id,
    version_tuple,
)
from hl7.model import OrderData, PatientData, VisitData

STUDY_UID_CODE = ("113014", "Study Instance UID", "DCM")
VIEWER_LINK_CODE = ("VIEWER", "Image viewer link", "L")


@dataclass(frozen=True, slots=True)
class Endpoints:
    """MSH addressing and version of the messages the gateway sends."""

    sending_application: str = "RISGATE"
    sending_facility: str = ""
    receiving_application: str = ""
    receiving_facility: str = ""
    version: str = "2.5"
    processing_id: str = "P"


@dataclass(frozen=True, slots=True)
class ChargeLine:
    """One FT1 charge: service code (e.g. 18.0149.0040), quantity, unit price."""

    service_code: str
    quantity: Decimal | int = 1
    unit_price: Decimal | int | None = None
    service_text: str = ""
    coding_system: str = ""
    transaction_id: str = ""
    transaction_time: datetime | None = None
    department: str = ""
    currency: str = "VND"

    @property
    def amount(self) -> Decimal | None:
        """quantity x unit price (None without a price)."""
        if self.unit_price is None:
            return None
        return Decimal(self.quantity) * Decimal(self.unit_price)


def _msh(
    ep: Endpoints, message_type: str, event: str, control_id: str | None, now: datetime | None
) -> str:
    structure = f"{message_type}_{event}"
    msg_type: FieldValue = (
        [message_type, event, structure]
        if version_tuple(ep.version) >= (2, 3, 1)
        else [message_type, event]
    )
    return encode_msh(
        DEFAULT_DELIMITERS,
        sending=(ep.sending_application, ep.sending_facility),
        receiving=(ep.receiving_application, ep.receiving_facility),
        message_type=msg_type,
        control_id=control_id or new_control_id(),
        version=ep.version,
        processing_id=ep.processing_id,
        charset_label=UTF8_LABEL,
        timestamp=now,
    )


def _pid(patient: PatientData) -> str:
    ids = Repeat(
        tuple(
            [i.id, None, None, i.authority or None, i.type_code or None]
            for i in patient.identifiers
        )
    )
    fields: list[FieldValue] = [
        "1",
        None,
        ids,
        None,
        [patient.family_name, patient.given_name, patient.middle_name],
        None,
        format_date(patient.birth_date) if patient.birth_date else None,
        patient.sex or None,
    ]
    return encode_segment("PID", fields)


def _pv1(visit: VisitData) -> str:
    doctor = visit.attending_doctor
    fields: list[FieldValue] = [
        "1",
        visit.patient_class or "U",
        [visit.location] if visit.location else None,
        None,
        None,
        None,
        [doctor.id, doctor.family, doctor.given, doctor.middle] if doctor else None,
        None,
        None,
        visit.department or None,
    ]
    fields += [None] * 8 + [visit.visit_number or None]
    return encode_segment("PV1", fields)


def _orc(control: str, order: OrderData, status: str, when: datetime | None) -> str:
    fields: list[FieldValue] = [
        control,
        order.placer_order_number or None,
        order.filler_order_number or None,
        None,
        status,
        None,
        None,
        None,
        format_datetime(when) if when else None,
    ]
    return encode_segment("ORC", fields)


def _obr(order: OrderData, observed: datetime | None, result_status: str | None) -> str:
    fields: list[FieldValue] = [None] * 25
    fields[0] = "1"
    fields[1] = order.placer_order_number or None
    fields[2] = order.filler_order_number or None
    fields[3] = [order.procedure_code, order.procedure_text, order.procedure_coding_system]
    fields[6] = format_datetime(observed) if observed else None
    fields[17] = order.accession_number or None
    fields[18] = order.requested_procedure_id or None
    fields[19] = order.scheduled_step_id or None
    fields[21] = format_datetime(observed) if observed and result_status else None
    fields[23] = order.modality or None
    fields[24] = result_status
    return encode_segment("OBR", fields)


def _obx(
    set_id: int, value_type: str, code: tuple[str, str, str], value: FieldValue, status: str
) -> str:
    fields: list[FieldValue] = [str(set_id), value_type, list(code), None, value]
    fields += [None] * 5 + [status]
    return encode_segment("OBX", fields)


def build_oru_r01(
    endpoints: Endpoints,
    patient: PatientData,
    order: OrderData,
    *,
    study_instance_uid: str,
    viewer_url: str,
    visit: VisitData | None = None,
    observed: datetime | None = None,
    result_status: str = "F",
    control_id: str | None = None,
    now: datetime | None = None,
) -> bytes:
    """ORU^R01 telling the EMR a study is available: OBX 1 RP viewer URL, OBX 2 the UID."""
    now = now or datetime.now().astimezone()
    segments = [_msh(endpoints, "ORU", "R01", control_id, now), _pid(patient)]
    if visit is not None:
        segments.append(_pv1(visit))
    segments += [
        _orc("RE", order, "CM", now),
        _obr(order, observed or now, result_status),
        _obx(
            1,
            "RP",
            VIEWER_LINK_CODE,
            [viewer_url, endpoints.sending_application, "TEXT", "HTML"],
            result_status,
        ),
        _obx(2, "ST", STUDY_UID_CODE, study_instance_uid, result_status),
    ]
    return encode_message(segments, UTF8_LABEL)


def build_orm_status(
    endpoints: Endpoints,
    patient: PatientData,
    order: OrderData,
    *,
    order_status: str = "CM",
    study_instance_uid: str = "",
    visit: VisitData | None = None,
    control_id: str | None = None,
    now: datetime | None = None,
) -> bytes:
    """ORM^O01 status update: ORC-1 SC, ORC-5 ``order_status`` (CM = exam completed).

    A ZDS segment carries the Study Instance UID when one is known.
    """
    now = now or datetime.now().astimezone()
    segments = [_msh(endpoints, "ORM", "O01", control_id, now), _pid(patient)]
    if visit is not None:
        segments.append(_pv1(visit))
    segments += [_orc("SC", order, order_status, now), _obr(order, None, None)]
    uid = study_instance_uid or order.study_instance_uid
    if uid:
        segments.append(encode_segment("ZDS", [[uid, "100", "Application", "DICOM"]]))
    return encode_message(segments, UTF8_LABEL)


def _ft1(set_id: int, line: ChargeLine, order: OrderData | None, now: datetime) -> str:
    when = format_datetime(line.transaction_time or now)
    amount = line.amount
    fields: list[FieldValue] = [None] * 25
    fields[0] = str(set_id)
    fields[1] = line.transaction_id or None
    fields[3] = when
    fields[4] = format_datetime(now)
    fields[5] = "CG"
    fields[6] = [line.service_code, line.service_text, line.coding_system]
    fields[7] = line.service_text or None
    fields[9] = str(line.quantity)
    fields[10] = [[str(amount), line.currency]] if amount is not None else None
    fields[11] = [[str(line.unit_price), line.currency]] if line.unit_price is not None else None
    fields[12] = line.department or None
    if order is not None:
        fields[22] = order.filler_order_number or order.placer_order_number or None
        fields[24] = [order.procedure_code, order.procedure_text, order.procedure_coding_system]
    return encode_segment("FT1", fields)


def build_dft_p03(
    endpoints: Endpoints,
    patient: PatientData,
    charges: Sequence[ChargeLine],
    *,
    order: OrderData | None = None,
    visit: VisitData | None = None,
    control_id: str | None = None,
    now: datetime | None = None,
) -> bytes:
    """DFT^P03 posting charges: EVN, PID, [PV1], one FT1 per line (code, quantity, amount)."""
    now = now or datetime.now().astimezone()
    segments = [
        _msh(endpoints, "DFT", "P03", control_id, now),
        encode_segment("EVN", ["P03", format_datetime(now)]),
        _pid(patient),
    ]
    if visit is not None:
        segments.append(_pv1(visit))
    segments += [_ft1(i, line, order, now) for i, line in enumerate(charges, start=1)]
    return encode_message(segments, UTF8_LABEL)
