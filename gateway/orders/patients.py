"""Patients from HL7: find by any identifier (following merges), create or update,
merge (ADT^A40) and change an identifier (ADT^A47).

Application errors raise :class:`hl7.HL7Error` (AE naming the field), so the caller
rolls the whole message back and answers AE. Statements go through
:class:`~gateway.core.fastsql.FastSQL` (the HL7 hot path).
"""

from __future__ import annotations

from gateway.core.fastsql import FastSQL
from hl7.errors import DUPLICATE_KEY_IDENTIFIER, HL7Error
from hl7.model import PatientData, PatientIdentifier

MAX_MERGE_DEPTH = 64
UNKNOWN_KEY = 204  # HL7 table 0357: unknown key identifier

Key = tuple[str, str]


def _owners(
    db: FastSQL, idents: tuple[PatientIdentifier, ...]
) -> dict[Key, tuple[int, int | None]]:
    """(identifier, authority) -> (patient pk, its merged_into pk), for known identifiers."""
    wanted = {(i.id, i.authority) for i in idents}
    if not wanted:
        return {}
    ids = sorted({i.id for i in idents})
    marks = ", ".join("?" * len(ids))
    rows = db.rows(
        "SELECT i.identifier, i.authority, i.patient_pk, p.merged_into_pk"
        " FROM order_patient_ids i JOIN order_patients p ON p.id = i.patient_pk"
        f" WHERE i.identifier IN ({marks})",
        ids,
    )
    return {(r[0], r[1]): (int(r[2]), r[3]) for r in rows if (r[0], r[1]) in wanted}


def _chain(db: FastSQL, pk: int, merged_into: int | None) -> list[int]:
    """Primary keys from ``pk`` to its surviving root, inclusive."""
    out = [pk]
    while merged_into is not None and merged_into not in out and len(out) <= MAX_MERGE_DEPTH:
        out.append(merged_into)
        row = db.one("SELECT merged_into_pk FROM order_patients WHERE id = ?", [merged_into])
        merged_into = row[0] if row is not None else None
    return out


def _owner_of(db: FastSQL, ident: PatientIdentifier) -> tuple[int, int | None] | None:
    return _owners(db, (ident,)).get((ident.id, ident.authority))


def _demographics(db: FastSQL, data: PatientData) -> dict[str, object]:
    values: dict[str, object] = {"updated_at": db.now()}
    if data.family_name or data.given_name:
        values.update(
            family_name=data.family_name[:128],
            given_name=data.given_name[:128],
            middle_name=data.middle_name[:128],
        )
    if data.birth_date is not None:
        values["birth_date"] = data.birth_date.strftime("%Y%m%d")
    if data.sex:
        values["sex"] = data.sex[:16]
    if data.address:
        values["address"] = data.address[:256]
    return values


def _add_identifiers(
    db: FastSQL, pk: int, data: PatientData, known: dict[Key, tuple[int, int | None]]
) -> None:
    new = []
    seen: set[Key] = set()
    for ident in data.identifiers:
        key = (ident.id, ident.authority)
        if key in known or key in seen:
            continue
        seen.add(key)
        new.append((pk, ident.id[:64], ident.authority[:64], ident.type_code[:16]))
    if new:
        db.many(
            "INSERT INTO order_patient_ids (patient_pk, identifier, authority, type_code)"
            " VALUES (?, ?, ?, ?)",
            new,
        )


def upsert_patient(db: FastSQL, data: PatientData) -> int:
    """Create the patient or update its demographics; returns the surviving patient's pk."""
    known = _owners(db, data.identifiers)
    for ident in data.identifiers:
        owner = known.get((ident.id, ident.authority))
        if owner is not None:
            pk = _chain(db, *owner)[-1]
            db.update("order_patients", pk, _demographics(db, data))
            _add_identifiers(db, pk, data, known)
            return pk
    main = data.patient_id
    values = {
        "patient_id": main.id[:64],
        "issuer": main.authority[:64],
        "family_name": "",
        "given_name": "",
        "middle_name": "",
        "birth_date": "",
        "sex": "",
        "address": "",
        "created_at": db.now(),
    }
    values.update(_demographics(db, data))
    pk = db.insert("order_patients", values)
    _add_identifiers(db, pk, data, known)
    return pk


def merge(db: FastSQL, surviving: PatientData, prior: tuple[PatientIdentifier, ...]) -> None:
    """ADT^A40: ``prior`` merges into ``surviving``; idempotent; AE on self-merge or cycle."""
    known = _owners(db, surviving.identifiers)
    target = next(
        (known[(i.id, i.authority)] for i in surviving.identifiers if (i.id, i.authority) in known),
        None,
    )
    if target is None:
        target = (upsert_patient(db, surviving), None)
    for ident in prior:
        old = _owner_of(db, ident)
        if old is None:
            continue  # never known here, or already renamed: nothing to move
        if old[0] == target[0]:
            raise HL7Error(
                "AE",
                "prior identifier belongs to the surviving patient",
                "MRG",
                1,
                hl7_code=DUPLICATE_KEY_IDENTIFIER,
            )
        target_chain = _chain(db, *target)
        if old[0] in target_chain:
            raise HL7Error(
                "AE",
                "merge cycle: the surviving patient was merged into the prior one",
                "MRG",
                1,
                hl7_code=DUPLICATE_KEY_IDENTIFIER,
            )
        root = target_chain[-1]
        old_root = _chain(db, *old)[-1]
        if old_root == root:
            continue  # merged before: a repeated A40 changes nothing
        now = db.now()
        db.update("order_patients", old_root, {"merged_into_pk": root, "updated_at": now})
        # The prior's orders, and patients merged into it before, now belong to the survivor.
        db.execute("UPDATE orders SET patient_pk = ? WHERE patient_pk = ?", [root, old_root])
        db.execute(
            "UPDATE order_patients SET merged_into_pk = ? WHERE merged_into_pk = ? AND id != ?",
            [root, old_root, root],
        )
    root = _chain(db, *target)[-1]
    db.update("order_patients", root, _demographics(db, surviving))


def change_identifier(db: FastSQL, data: PatientData, old: tuple[PatientIdentifier, ...]) -> None:
    """ADT^A47: identifier ``old`` becomes the PID-3 identifier of the same type."""
    for old_ident in old:
        new = next(
            (i for i in data.identifiers if i.type_code == old_ident.type_code),
            data.identifiers[0],
        )
        row = db.one(
            "SELECT id, patient_pk FROM order_patient_ids WHERE identifier = ? AND authority = ?",
            [old_ident.id, old_ident.authority],
        )
        clash = _owner_of(db, new)
        if row is None:
            if clash is not None:
                continue  # applied before: a repeated A47 changes nothing
            raise HL7Error("AE", "prior identifier unknown", "MRG", 1, hl7_code=UNKNOWN_KEY)
        if clash is not None:
            raise HL7Error(
                "AE", "new identifier already used", "PID", 3, hl7_code=DUPLICATE_KEY_IDENTIFIER
            )
        ident_pk, patient_pk = int(row[0]), int(row[1])
        values: dict[str, object] = {"identifier": new.id[:64], "authority": new.authority[:64]}
        if new.type_code:
            values["type_code"] = new.type_code[:16]
        db.update("order_patient_ids", ident_pk, values)
        db.execute(
            "UPDATE order_patients SET patient_id = ?, issuer = ?, updated_at = ?"
            " WHERE id = ? AND patient_id = ? AND issuer = ?",
            [
                new.id[:64],
                new.authority[:64],
                db.now(),
                patient_pk,
                old_ident.id,
                old_ident.authority,
            ],
        )
