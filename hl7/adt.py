"""ADT^A01/A04/A08/A31 -> PatientUpdate, ADT^A40 -> PatientMerge, ADT^A47 -> IdentifierChange."""

from __future__ import annotations

from hl7.errors import DUPLICATE_KEY_IDENTIFIER, REQUIRED_FIELD_MISSING, HL7Error
from hl7.message import Message
from hl7.model import IdentifierChange, PatientIdentifier, PatientMerge, PatientUpdate
from hl7.segments import header, identifiers, patient, require_segment, visit

UPDATE_EVENTS = frozenset({"A01", "A04", "A08", "A31"})
MERGE_EVENT = "A40"
IDENTIFIER_CHANGE_EVENT = "A47"
ADT_EVENTS = UPDATE_EVENTS | {MERGE_EVENT, IDENTIFIER_CHANGE_EVENT}


def _prior_identifiers(msg: Message) -> tuple[PatientIdentifier, ...]:
    """MRG-1 identifiers; AE naming MRG-1 when empty or pointing to PID-3 itself."""
    mrg = require_segment(msg, "MRG")
    prior = identifiers(mrg, 1)
    if not prior:
        raise HL7Error(
            "AE", "prior patient identifier missing", "MRG", 1, hl7_code=REQUIRED_FIELD_MISSING
        )
    current = {(i.id, i.authority) for i in identifiers(msg.segment("PID"), 3)}
    if any((i.id, i.authority) in current for i in prior):
        raise HL7Error(
            "AE",
            "prior identifier equals the current one",
            "MRG",
            1,
            hl7_code=DUPLICATE_KEY_IDENTIFIER,
        )
    return prior


def interpret_patient_update(msg: Message) -> PatientUpdate:
    """A01/A04/A08/A31: PID (+ PV1) demographics."""
    return PatientUpdate(header=header(msg), patient=patient(msg), visit=visit(msg))


def interpret_merge(msg: Message) -> PatientMerge:
    """A40: PID-3 survives, MRG-1 is merged into it (first PID/MRG group only)."""
    head = header(msg)
    pat = patient(msg, require_name=False)
    return PatientMerge(header=head, patient=pat, prior_identifiers=_prior_identifiers(msg))


def interpret_identifier_change(msg: Message) -> IdentifierChange:
    """A47: MRG-1 is the old identifier, PID-3 the new one."""
    head = header(msg)
    pat = patient(msg, require_name=False)
    return IdentifierChange(header=head, patient=pat, old_identifiers=_prior_identifiers(msg))


def interpret_adt(msg: Message) -> PatientUpdate | PatientMerge | IdentifierChange:
    """Dispatch an ADT message on its trigger event (the caller checked it is supported)."""
    event = msg.trigger_event.upper()
    if event == MERGE_EVENT:
        return interpret_merge(msg)
    if event == IDENTIFIER_CHANGE_EVENT:
        return interpret_identifier_change(msg)
    return interpret_patient_update(msg)
