"""Study facts for costing (SQLite and PostgreSQL): from the DICOM index, from a stored
instance (contrast volume, device serial) and from the order linked by accession number
(procedure code, department), then the cost that follows from them."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian
from sqlalchemy import insert, select

import gateway.all_models  # noqa: F401  (the order tables, when the module exists)
from gateway.core.database import Database
from gateway.core.models import Base, Instance, Series, Study, utcnow
from gateway.costing.facts import facts_for_study
from gateway.costing.recording import Mappers, record_cost
from tests.support.costing import CT_2024_FULL_COST, add_study, import_example, make_service


def _study(database: Database, uid: str) -> tuple[int, str]:
    with database.write_session() as session:
        study = session.scalar(select(Study).where(Study.study_uid == uid))
        assert study is not None
        path = session.scalar(
            select(Instance.path)
            .join(Series, Instance.series_pk == Series.id)
            .where(Series.study_pk == study.id)
        )
        return study.id, str(path)


def test_facts_from_index_and_file(database: Database, tmp_path: Path) -> None:
    service = make_service(database, tmp_path, rules=[], machine_by_serial={"SN-9": "CT02"})
    uid = add_study(database, study_date="", body_part="ABDOMEN", station="", instances=4)
    study_pk, rel = _study(database, uid)
    with database.write_session() as session:
        facts = facts_for_study(session, study_pk)
    assert (facts.modality, facts.body_part, facts.number_of_instances) == ("CT", "ABDOMEN", 4)
    assert facts.study_date == utcnow().date()  # no Study Date: the day it was received
    assert facts.station_ae is None and facts.contrast_volume_ml is None

    # the stored instance says 80 ml of contrast and the device serial
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = CTImageStorage
    meta.MediaStorageSOPInstanceUID = "1.2.3.4"
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.ContrastBolusAgent = "IOPAMIDOL"
    ds.ContrastBolusVolume = "80"
    ds.DeviceSerialNumber = "SN-9"
    target = service.store.absolute(rel)
    target.parent.mkdir(parents=True, exist_ok=True)
    ds.save_as(target, enforce_file_format=True)
    with database.write_session() as session:
        facts = facts_for_study(session, study_pk, store=service.store)
    assert facts.contrast_volume_ml == Decimal(80) and facts.has_contrast
    assert facts.device_serial == "SN-9"

    # the example rule "CT abdomen with contrast" now maps; 80 ml are billed separately
    import_example(database)
    mappers = Mappers.from_settings(service.settings.costing)
    with database.write_session() as session:
        study = session.get(Study, study_pk)
        outcome = record_cost(
            session, study, mappers, reason="t", created_by="t", store=service.store
        )
    assert outcome.record is not None
    assert outcome.record.service_code == "18.0220.0041"
    assert outcome.record.machine_code == "CT02"  # serial wins over station
    assert outcome.record.separately_billed == 80 * 4_500


@pytest.mark.skipif(
    "requested_procedures" not in Base.metadata.tables, reason="order tables not installed"
)
def test_facts_from_order_by_accession(database: Database, tmp_path: Path) -> None:
    tables = Base.metadata.tables
    now = utcnow()
    with database.write_session() as session:
        patient = session.execute(
            insert(tables["order_patients"]).values(
                patient_id="HIS1", created_at=now, updated_at=now
            )
        ).inserted_primary_key[0]
        visit = session.execute(
            insert(tables["visits"]).values(
                patient_pk=patient, visit_number="V1", department="K19", updated_at=now
            )
        ).inserted_primary_key[0]
        order = session.execute(
            insert(tables["orders"]).values(
                patient_pk=patient, visit_pk=visit, created_at=now, updated_at=now
            )
        ).inserted_primary_key[0]
        rp = session.execute(
            insert(tables["requested_procedures"]).values(
                order_pk=order,
                requested_procedure_id="RP1",
                accession_number="ACC-77",
                study_instance_uid="1.2.3.999",
                procedure_code="CT-BUNG-CQ",
            )
        ).inserted_primary_key[0]
    # a CT head by its DICOM (the rules would say 18.0149.0040): the order decides
    uid = add_study(database, accession="ACC-77", body_part="HEAD", study_date="20250310")
    service = make_service(database, tmp_path, rules=[])
    study_pk, _ = _study(database, uid)
    with database.write_session() as session:
        facts = facts_for_study(session, study_pk)
    assert (facts.procedure_code, facts.department) == ("CT-BUNG-CQ", "K19")
    import_example(database)
    with database.write_session() as session:
        outcome = record_cost(
            session,
            session.get(Study, study_pk),
            Mappers.from_settings(service.settings.costing),
            reason="t",
            created_by="t",
        )
    assert outcome.record is not None
    assert (outcome.record.service_code, outcome.record.department) == ("18.0220.0041", "K19")
    assert outcome.record.full_cost == CT_2024_FULL_COST

    if "study_matches" not in tables:
        return
    # a study the modality sent without accession, linked to the order by a person
    linked = add_study(database, accession="", body_part="HEAD")
    linked_pk, _ = _study(database, linked)
    with database.write_session() as session:
        assert facts_for_study(session, linked_pk).procedure_code is None
        session.execute(
            insert(tables["study_matches"]).values(
                study_pk=linked_pk, state="MATCHED", method="manual", rp_pk=rp,
                reason="", linked_by="billing1", created_at=now, updated_at=now,
            )
        )  # fmt: skip
    with database.write_session() as session:
        facts = facts_for_study(session, linked_pk)
    assert (facts.procedure_code, facts.department) == ("CT-BUNG-CQ", "K19")
