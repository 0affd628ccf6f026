"""Turn a parsed message into gateway data: orders or patient events, or an HL7Error."""

from __future__ import annotations

from dataclasses import replace

from hl7.adt import ADT_EVENTS, interpret_adt
from hl7.errors import UNSUPPORTED_EVENT_CODE, UNSUPPORTED_MESSAGE_TYPE, HL7Error
from hl7.message import Message
from hl7.model import IdentifierChange, Interpreted, OrderMessage, PatientMerge, PatientUpdate
from hl7.orders import interpret_order
from hl7.segments import visit_number

SUPPORTED_EVENTS: dict[str, frozenset[str]] = {
    "ORM": frozenset({"O01"}),
    "OMI": frozenset({"O23"}),
    "OMG": frozenset({"O19"}),
    "ADT": ADT_EVENTS,
}


def check_supported(msg: Message) -> None:
    """AR naming MSH-9 unless MSH-9 is one of :data:`SUPPORTED_EVENTS`."""
    events = SUPPORTED_EVENTS.get(msg.message_type.upper())
    if events is None:
        raise HL7Error(
            "AR", "unsupported message type", "MSH", 9, hl7_code=UNSUPPORTED_MESSAGE_TYPE
        )
    if msg.trigger_event.upper() not in events:
        raise HL7Error(
            "AR",
            "unsupported trigger event",
            "MSH",
            9,
            component=2,
            hl7_code=UNSUPPORTED_EVENT_CODE,
        )


def interpret(msg: Message) -> OrderMessage | PatientUpdate | PatientMerge | IdentifierChange:
    """Map ``msg``: AR for unsupported types/events, AE for missing or invalid data."""
    check_supported(msg)
    if msg.message_type.upper() == "ADT":
        return interpret_adt(msg)
    return interpret_order(msg)


def with_visit_number(result: Interpreted, msg: Message, field: str) -> Interpreted:
    """``result`` with its visit numbered from ``field`` (e.g. "PV1-50") instead of PV1-19.

    For a HIS that sends the episode number (the claim's MA_LK) somewhere else; results
    without a visit are returned as they are.
    """
    if not isinstance(result, OrderMessage | PatientUpdate) or result.visit is None:
        return result
    return replace(result, visit=replace(result.visit, visit_number=visit_number(msg, field)))
