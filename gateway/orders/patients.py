"""Patients from HL7: find by any identifier (following merges), create or update,
merge (ADT^A40) and change an identifier (ADT^A47).

Application errors raise :class:`hl7.HL7Error` (AE naming the field), so the caller
rolls the whole message back and answers AE.
"""

from __future__ import annotations

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from gateway.models import utcnow
from gateway.orders.models import Order, OrderPatient, PatientIdentifierRow
from hl7.errors import DUPLICATE_KEY_IDENTIFIER, HL7Error
from hl7.model import PatientData, PatientIdentifier

MAX_MERGE_DEPTH = 64


def _owner(session: Session, ident: PatientIdentifier) -> OrderPatient | None:
    """The patient row holding ``ident`` directly (not following merges)."""
    return session.scalar(
        select(OrderPatient)
        .join(PatientIdentifierRow, PatientIdentifierRow.patient_pk == OrderPatient.id)
        .where(
            PatientIdentifierRow.identifier == ident.id,
            PatientIdentifierRow.authority == ident.authority,
        )
    )


def root_of(session: Session, patient: OrderPatient) -> OrderPatient:
    """Follow ``merged_into_pk`` to the surviving patient."""
    seen = {patient.id}
    while patient.merged_into_pk is not None:
        nxt = session.get(OrderPatient, patient.merged_into_pk)
        if nxt is None or nxt.id in seen or len(seen) > MAX_MERGE_DEPTH:
            break
        seen.add(nxt.id)
        patient = nxt
    return patient


def _chain(session: Session, patient: OrderPatient) -> list[int]:
    """Primary keys from ``patient`` to its surviving root, inclusive."""
    out = [patient.id]
    while patient.merged_into_pk is not None and len(out) <= MAX_MERGE_DEPTH:
        nxt = session.get(OrderPatient, patient.merged_into_pk)
        if nxt is None or nxt.id in out:
            break
        out.append(nxt.id)
        patient = nxt
    return out


def find_patient(
    session: Session, identifiers: tuple[PatientIdentifier, ...]
) -> OrderPatient | None:
    """The surviving patient for the first known identifier, or None."""
    for ident in identifiers:
        owner = _owner(session, ident)
        if owner is not None:
            return root_of(session, owner)
    return None


def _apply_demographics(row: OrderPatient, data: PatientData) -> None:
    main = data.patient_id
    if data.family_name or data.given_name:
        row.family_name = data.family_name
        row.given_name = data.given_name
        row.middle_name = data.middle_name
    if data.birth_date is not None:
        row.birth_date = data.birth_date.strftime("%Y%m%d")
    if data.sex:
        row.sex = data.sex
    if data.address:
        row.address = data.address[:256]
    if not row.patient_id:
        row.patient_id, row.issuer = main.id, main.authority


def _add_identifiers(session: Session, row: OrderPatient, data: PatientData) -> None:
    for ident in data.identifiers:
        owner = _owner(session, ident)
        if owner is None:
            session.add(
                PatientIdentifierRow(
                    patient_pk=row.id,
                    identifier=ident.id,
                    authority=ident.authority,
                    type_code=ident.type_code,
                )
            )


def upsert_patient(session: Session, data: PatientData) -> OrderPatient:
    """Create the patient or update its demographics; new identifiers are added."""
    now = utcnow()
    row = find_patient(session, data.identifiers)
    if row is None:
        main = data.patient_id
        row = OrderPatient(
            patient_id=main.id, issuer=main.authority, created_at=now, updated_at=now
        )
        session.add(row)
    _apply_demographics(row, data)
    row.updated_at = now
    session.flush()
    _add_identifiers(session, row, data)
    return row


def merge(session: Session, surviving: PatientData, prior: tuple[PatientIdentifier, ...]) -> None:
    """ADT^A40: ``prior`` merges into ``surviving``; idempotent; AE on self-merge or cycle."""
    target = None
    for ident in surviving.identifiers:
        target = _owner(session, ident)
        if target is not None:
            break
    if target is None:
        target = upsert_patient(session, surviving)
    for ident in prior:
        old = _owner(session, ident)
        if old is None:
            continue  # never known here, or already renamed: nothing to move
        if old.id == target.id:
            raise HL7Error(
                "AE",
                "prior identifier belongs to the surviving patient",
                "MRG",
                1,
                hl7_code=DUPLICATE_KEY_IDENTIFIER,
            )
        target_chain = _chain(session, target)
        if old.id in target_chain:
            raise HL7Error(
                "AE",
                "merge cycle: the surviving patient was merged into the prior one",
                "MRG",
                1,
                hl7_code=DUPLICATE_KEY_IDENTIFIER,
            )
        root = session.get(OrderPatient, target_chain[-1])
        assert root is not None
        old_root = root_of(session, old)
        if old_root.id == root.id:
            continue  # merged before: a repeated A40 changes nothing
        old_root.merged_into_pk = root.id
        old_root.updated_at = utcnow()
        # Every patient row in the prior's tree hands its orders to the survivor.
        session.execute(
            update(Order).where(Order.patient_pk == old_root.id).values(patient_pk=root.id)
        )
        session.execute(
            update(OrderPatient)
            .where(OrderPatient.merged_into_pk == old_root.id, OrderPatient.id != root.id)
            .values(merged_into_pk=root.id)
        )
    _apply_demographics(root_of(session, target), surviving)


def change_identifier(
    session: Session, data: PatientData, old: tuple[PatientIdentifier, ...]
) -> None:
    """ADT^A47: identifier ``old`` becomes the PID-3 identifier of the same type."""
    for old_ident in old:
        new = next(
            (i for i in data.identifiers if i.type_code == old_ident.type_code),
            data.identifiers[0],
        )
        row = session.scalar(
            select(PatientIdentifierRow).where(
                PatientIdentifierRow.identifier == old_ident.id,
                PatientIdentifierRow.authority == old_ident.authority,
            )
        )
        clash = _owner(session, new)
        if row is None:
            if clash is not None:
                continue  # applied before: a repeated A47 changes nothing
            raise HL7Error("AE", "prior identifier unknown", "MRG", 1, hl7_code=204)
        if clash is not None:
            raise HL7Error(
                "AE",
                "new identifier already used",
                "PID",
                3,
                hl7_code=DUPLICATE_KEY_IDENTIFIER,
            )
        row.identifier, row.authority = new.id, new.authority
        row.type_code = new.type_code or row.type_code
        patient = session.get(OrderPatient, row.patient_pk)
        assert patient is not None
        if (patient.patient_id, patient.issuer) == (old_ident.id, old_ident.authority):
            patient.patient_id, patient.issuer = new.id, new.authority
        patient.updated_at = utcnow()
        session.flush()
