"""Matching rules on both databases: which order a study belongs to, and what is flagged.

A cancelled order, a second study for one accession and new images for a completed
order are FLAGGED (held for a person), never merged silently.
"""

from __future__ import annotations

from datetime import date

import pytest
from sqlalchemy.orm import Session

from gateway.core.database import Database
from gateway.core.models import Patient, Study, utcnow
from gateway.intake.instance_meta import InstanceMeta
from gateway.orders.persist import Context, apply
from gateway.reconciliation.models import MatchState
from gateway.reconciliation.reconcile import LinkError, find_order, link
from hl7.interpret import interpret
from hl7.parse import parse
from tests.fixtures.orders.helpers import orm

TODAY = date.today().strftime("%Y%m%d")


def _order(session: Session, n: int, *, control: str = "NW", accession: str = "") -> None:
    raw = orm(
        f"C{n}{control}", patient_id=f"BN{n}", name="NGUYỄN^VĂN AN", placer=f"PL{n}",
        accession=accession or f"ACC{n}", start=f"{TODAY}080000", control=control,
    )  # fmt: skip
    apply(session, interpret(parse(raw)), Context())


def _study(session: Session, uid: str) -> int:
    now = utcnow()
    patient = Patient(patient_id=uid, issuer="", name="", birth_date="", sex="", updated_at=now)
    session.add(patient)
    session.flush()
    study = Study(study_uid=uid, patient_pk=patient.id, first_received_at=now,
                  last_received_at=now)  # fmt: skip
    session.add(study)
    session.flush()
    return study.id


def _meta(uid: str, accession: str, patient_id: str = "TYPO") -> InstanceMeta:
    return InstanceMeta(
        sop_class_uid="1.2.840.10008.5.1.4.1.1.2", sop_instance_uid=uid + ".1", study_uid=uid,
        series_uid=uid + ".2", transfer_syntax="1.2.840.10008.1.2.1", patient_id=patient_id,
        accession_number=accession, modality="CT", study_date=TODAY,
    )  # fmt: skip


def test_match_by_accession_then_by_patient(database: Database) -> None:
    with database.write_session() as session:
        _order(session, 1)
        _order(session, 2)
        first = _study(session, "1.2.3.1")
        by_accession = find_order(session, _meta("1.2.3.1", "ACC1"), first, 1)
        assert (by_accession.state, by_accession.method) == (MatchState.MATCHED, "accession")
        other = _study(session, "1.2.3.2")
        by_patient = find_order(session, _meta("1.2.3.2", "", patient_id="BN2"), other, 1)
        assert (by_patient.state, by_patient.method) == (MatchState.MATCHED, "patient")
        nothing = find_order(session, _meta("1.2.3.3", "NOPE"), _study(session, "1.2.3.3"), 1)
        assert nothing.state == MatchState.UNMATCHED


def test_cancelled_order_is_flagged(database: Database) -> None:
    with database.write_session() as session:
        _order(session, 3)
        _order(session, 3, control="CA", accession="ACC3")
        pk = _study(session, "1.2.4.1")
        result = find_order(session, _meta("1.2.4.1", "ACC3"), pk, 1)
        assert result.state == MatchState.FLAGGED
        assert "cancelled" in result.reason


def test_second_study_for_one_accession_is_flagged(database: Database) -> None:
    with database.write_session() as session:
        _order(session, 4)
        first = _study(session, "1.2.5.1")
        assert link(session, "1.2.5.1", "ACC4", by="tester").state == MatchState.MATCHED
        second = _study(session, "1.2.5.2")
        result = find_order(session, _meta("1.2.5.2", "ACC4"), second, 1)
        assert result.state == MatchState.FLAGGED
        assert "another study" in result.reason
        with pytest.raises(LinkError, match="another study"):
            link(session, "1.2.5.2", "ACC4", by="tester")
        assert first != second


def test_link_refuses_unknown_study_and_accession(database: Database) -> None:
    with database.write_session() as session:
        _order(session, 5)
        _study(session, "1.2.6.1")
        with pytest.raises(LinkError, match="study not found"):
            link(session, "1.2.6.9", "ACC5", by="tester")
        with pytest.raises(LinkError, match="no order"):
            link(session, "1.2.6.1", "NOSUCH", by="tester")
