"""Plain frozen dataclasses that interpreted HL7 messages map to (no HL7 types inside)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from typing import NamedTuple


class PatientIdentifier(NamedTuple):
    """One PID-3 / MRG-1 repetition: CX.1 id, CX.4 assigning authority, CX.5 type code."""

    id: str
    authority: str = ""
    type_code: str = ""


@dataclass(frozen=True, slots=True)
class MessageHeader:
    """What MSH says about a message."""

    message_type: str
    trigger_event: str
    control_id: str
    version: str
    sending_application: str = ""
    sending_facility: str = ""
    receiving_application: str = ""
    receiving_facility: str = ""
    timestamp: datetime | None = None
    charset: str = "utf-8"


@dataclass(frozen=True, slots=True)
class PersonName:
    """XCN / CN person (doctor): id plus name parts."""

    id: str = ""
    family: str = ""
    given: str = ""
    middle: str = ""

    def __bool__(self) -> bool:
        return bool(self.id or self.family or self.given)


@dataclass(frozen=True, slots=True)
class PatientData:
    """PID: identifiers in PID-3 order, name, birth date, sex, address."""

    identifiers: tuple[PatientIdentifier, ...]
    family_name: str = ""
    given_name: str = ""
    middle_name: str = ""
    birth_date: date | None = None
    sex: str = ""
    address: str | None = None

    @property
    def patient_id(self) -> PatientIdentifier:
        """The main identifier: the first of type MR, else the first one."""
        for ident in self.identifiers:
            if ident.type_code == "MR":
                return ident
        return self.identifiers[0]

    def identifier(self, *type_codes: str) -> PatientIdentifier | None:
        """First identifier whose type code is one of ``type_codes`` (e.g. 'NI', 'CCCD')."""
        for ident in self.identifiers:
            if ident.type_code in type_codes:
                return ident
        return None


@dataclass(frozen=True, slots=True)
class VisitData:
    """PV1: patient class, location/department, attending doctor, visit number."""

    patient_class: str = ""
    location: str = ""
    department: str = ""
    attending_doctor: PersonName | None = None
    visit_number: str = ""


@dataclass(frozen=True, slots=True)
class OrderData:
    """One order / scheduled procedure step (an ORC group, or one IPC of it)."""

    order_control: str
    order_status: str = ""
    placer_order_number: str = ""
    filler_order_number: str = ""
    accession_number: str = ""
    requested_procedure_id: str = ""
    procedure_code: str = ""
    procedure_text: str = ""
    procedure_coding_system: str = ""
    modality: str = ""
    study_instance_uid: str = ""
    scheduled_start: datetime | None = None
    scheduled_station_ae: str = ""
    scheduled_station_name: str = ""
    scheduled_location: str = ""
    scheduled_step_id: str = ""
    protocol_code: str = ""
    protocol_text: str = ""
    protocol_coding_system: str = ""
    reason: str = ""
    priority: str = ""
    requesting_physician: PersonName | None = None

    @property
    def status_key(self) -> str:
        """``ORC-1_ORC-5`` (e.g. ``NW_SC``), as dcm4chee keys its step status table."""
        return f"{self.order_control}_{self.order_status}"

    @property
    def step_status(self) -> str:
        """A DICOM Scheduled Procedure Step Status suggested by ORC-1/ORC-5."""
        if self.order_control in ("CA", "OC"):
            return "CANCELED"
        if self.order_control in ("DC", "OD"):
            return "DISCONTINUED"
        return {
            "CM": "COMPLETED",
            "IP": "STARTED",
            "CA": "CANCELED",
            "DC": "DISCONTINUED",
            "HD": "SCHEDULED",
        }.get(self.order_status, "SCHEDULED")


@dataclass(frozen=True, slots=True)
class OrderMessage:
    """ORM^O01 / OMI^O23 / OMG^O19: one patient, its visit, one or more orders."""

    header: MessageHeader
    patient: PatientData
    visit: VisitData | None
    orders: tuple[OrderData, ...]


@dataclass(frozen=True, slots=True)
class PatientUpdate:
    """ADT^A01/A04/A08/A31: demographics to create or update."""

    header: MessageHeader
    patient: PatientData
    visit: VisitData | None = None


@dataclass(frozen=True, slots=True)
class PatientMerge:
    """ADT^A40: ``prior_identifiers`` (MRG-1) merge into ``patient`` (PID-3 survives)."""

    header: MessageHeader
    patient: PatientData
    prior_identifiers: tuple[PatientIdentifier, ...]


@dataclass(frozen=True, slots=True)
class IdentifierChange:
    """ADT^A47: identifier ``old_identifiers`` (MRG-1) becomes ``new_identifiers`` (PID-3)."""

    header: MessageHeader
    patient: PatientData
    old_identifiers: tuple[PatientIdentifier, ...]

    @property
    def new_identifiers(self) -> tuple[PatientIdentifier, ...]:
        """The identifiers after the change (PID-3)."""
        return self.patient.identifiers


Interpreted = OrderMessage | PatientUpdate | PatientMerge | IdentifierChange
