"""Helpers for the costing tests (no tests here): a ProcessContext on the test database, studies."""

from __future__ import annotations

from itertools import count
from pathlib import Path
from typing import Any

from gateway.core.context import ProcessContext
from gateway.core.database import Database
from gateway.core.instance_store import InstanceStore
from gateway.core.models import Instance, Patient, Series, Study, utcnow
from gateway.core.settings import Settings
from gateway.costing.catalogue_store import UploadedFile, checksum, read_path, store_catalogue
from pricing_norms.example import EXAMPLE_DATA_DIR, load_example_catalogue

_uids = count(1)

# Hand-computed (see tests/test_costing_records.py) for CT abdomen with contrast on CT01.
CT_2024_FULL_COST = 368_087
CT_2025_FULL_COST = 341_776


def make_service(database: Database, tmp_path: Path, **costing: Any) -> ProcessContext:
    costing.setdefault("use_example_mapping", True)
    costing.setdefault(
        "rules",
        [{"rule_id": "ct-abd", "service_code": "18.0220.0041", "modality": "CT",
          "priority": 1, "body_parts": ["ABDOMEN"]}],
    )  # fmt: skip
    settings = Settings(data_dir=tmp_path / "var", costing=costing)
    store = InstanceStore(tmp_path / "store", fsync=False)
    return ProcessContext(settings, database, store, receiver=None)  # type: ignore[arg-type]


def import_example(database: Database, user: str = "tester") -> int:
    files: list[UploadedFile] = read_path(EXAMPLE_DATA_DIR)
    with database.write_session() as session:
        imp = store_catalogue(
            session,
            load_example_catalogue(),
            file_name="example",
            digest=checksum(files),
            imported_by=user,
        )
        return imp.id


def add_study(
    database: Database,
    *,
    study_date: str = "20250310",
    modality: str = "CT",
    body_part: str = "ABDOMEN",
    station: str = "CT_32",
    accession: str = "",
    instances: int = 3,
) -> str:
    n = next(_uids)
    uid = f"1.2.826.0.1.3680043.10.999.{n}"
    now = utcnow()
    with database.write_session() as session:
        patient = Patient(patient_id=f"P{n}", issuer="", name="", updated_at=now)
        session.add(patient)
        session.flush()
        study = Study(
            study_uid=uid,
            patient_pk=patient.id,
            accession_number=accession,
            study_date=study_date,
            study_time="093000",
            state="RECEIVING",
            first_received_at=now,
            last_received_at=now,
        )
        session.add(study)
        session.flush()
        series = Series(
            series_uid=f"{uid}.1", study_pk=study.id, modality=modality, body_part=body_part,
            station_name=station,
        )  # fmt: skip
        session.add(series)
        session.flush()
        for i in range(instances):
            session.add(
                Instance(
                    sop_instance_uid=f"{uid}.1.{i + 1}",
                    series_pk=series.id,
                    sop_class_uid="1.2.840.10008.5.1.4.1.1.2",
                    transfer_syntax="1.2.840.10008.1.2.1",
                    path=f"missing/{n}/{i}.dcm",
                    size=1,
                    received_at=now,
                )
            )
    return uid
