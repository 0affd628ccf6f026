"""Upgrade path: a database made at the oldest migration ("0001") with data written by
plain SQL is brought to the latest schema, keeps its data and serves a running gateway;
and the migrations produce exactly the models' schema (SQLite and PostgreSQL)."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine, text

from gateway.all_models import Base
from gateway.core.database import make_engine
from gateway.core.migrate import alembic_config, upgrade
from tests.support.ctgen import make_ct_study
from tests.support.dcmtk import storescu
from tests.support.gateway_proc import GatewayProcess

STUDY_UID = "1.2.826.0.1.3680043.8.498.1001"
SERIES_UID = "1.2.826.0.1.3680043.8.498.1001.1"
SOP_UID = "1.2.826.0.1.3680043.8.498.1001.1.1"
T0 = datetime(2026, 1, 5, 8, 30, 0)


def _seed_0001(url: str) -> None:
    """Rows as release 0001 wrote them: a patient, a study, its series and instance, a job."""
    engine = make_engine(url)
    upgrade(engine, "0001")
    with engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO patients (id, patient_id, issuer, name, birth_date, sex, updated_at)"
                " VALUES (1, 'BN0001', 'BV', 'NGUYỄN^VĂN AN', '19800101', 'M', :t)"
            ),
            {"t": T0},
        )
        conn.execute(
            text(
                "INSERT INTO studies (id, study_uid, patient_pk, accession_number, study_date,"
                " study_time, description, calling_ae, state, first_received_at,"
                " last_received_at, stable_at) VALUES (1, :uid, 1, 'ACC-OLD', '20260105',"
                " '083000', 'CT BỤNG', 'STORESCU', 'STABLE', :t, :t, :t)"
            ),
            {"uid": STUDY_UID, "t": T0},
        )
        conn.execute(
            text(
                "INSERT INTO series (id, series_uid, study_pk, modality, series_number,"
                " body_part, station_name, description) VALUES (1, :uid, 1, 'CT', '1',"
                " 'ABDOMEN', 'CT01', 'AXIAL')"
            ),
            {"uid": SERIES_UID},
        )
        conn.execute(
            text(
                "INSERT INTO instances (id, sop_instance_uid, series_pk, sop_class_uid,"
                " transfer_syntax, instance_number, path, size, calling_ae, received_at,"
                " duplicates, last_duplicate_at) VALUES (1, :uid, 1,"
                " '1.2.840.10008.5.1.4.1.1.2', '1.2.840.10008.1.2.1', '1', :path, 8192,"
                " 'STORESCU', :t, 0, NULL)"
            ),
            {"uid": SOP_UID, "path": f"{STUDY_UID}/{SERIES_UID}/{SOP_UID}.dcm", "t": T0},
        )
        conn.execute(
            text(
                "INSERT INTO jobs (id, kind, ref, destination, state, attempts, next_attempt_at,"
                " last_error, created_at, updated_at) VALUES (1, 'event', :uid, '', 'DONE', 1,"
                " :t, '', :t, :t)"
            ),
            {"uid": STUDY_UID, "t": T0},
        )
        if conn.dialect.name == "postgresql":  # explicit ids: move the sequences on
            for table in ("patients", "studies", "series", "instances", "jobs"):
                conn.execute(text(f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), 1)"))
    engine.dispose()


@pytest.mark.integration
def test_upgrade_from_0001_keeps_data_and_serves(db_url: str, tmp_path: Path) -> None:
    _seed_0001(db_url)
    engine = make_engine(db_url)
    upgrade(engine, "heads")
    with engine.connect() as conn:
        heads = {r[0] for r in conn.execute(text("SELECT version_num FROM alembic_version"))}
        row = conn.execute(
            text(
                "SELECT p.name, s.accession_number, s.description, s.state, se.modality,"
                " i.path FROM studies s JOIN patients p ON p.id = s.patient_pk"
                " JOIN series se ON se.study_pk = s.id JOIN instances i ON i.series_pk = se.id"
                " WHERE s.study_uid = :uid"
            ),
            {"uid": STUDY_UID},
        ).one()
        assert conn.execute(text("SELECT state FROM jobs WHERE id = 1")).scalar_one() == "DONE"
    engine.dispose()
    assert "0001" not in heads and heads
    assert tuple(row) == (
        "NGUYỄN^VĂN AN", "ACC-OLD", "CT BỤNG", "STABLE", "CT",
        f"{STUDY_UID}/{SERIES_UID}/{SOP_UID}.dcm",
    )  # fmt: skip

    gw = GatewayProcess(tmp_path / "gw", db_url)
    gw.start()
    try:
        old = gw.get(f"/api/studies/{STUDY_UID}")
        assert old["accession_number"] == "ACC-OLD" and len(old["series"]) == 1
        # New instances join the old study (a new series) on the upgraded schema.
        _, files = make_ct_study(tmp_path / "ct", 2, size=64, study_uid=STUDY_UID)
        assert storescu(gw.dicom_port, files).returncode == 0
        now = gw.get(f"/api/studies/{STUDY_UID}")
        assert len(now["series"]) == 2
    finally:
        gw.kill()


def test_migrations_match_models(db_url: str) -> None:
    engine = make_engine(db_url)
    upgrade(engine, "heads")
    with engine.connect() as conn:
        ctx = MigrationContext.configure(conn, opts={"compare_type": True})
        diff = compare_metadata(ctx, Base.metadata)
    engine.dispose()
    assert diff == []


def _revisions(engine: Engine) -> set[str]:
    with engine.connect() as conn:
        return set(MigrationContext.configure(conn).get_current_heads())


@pytest.mark.unit
@pytest.mark.parametrize("start", ["0001", "0002", "0003"])
def test_every_step_reaches_heads(tmp_path: Path, start: str) -> None:
    url = f"sqlite:///{tmp_path / 'steps.db'}"
    engine = make_engine(url)
    upgrade(engine, start)
    scripts = ScriptDirectory.from_config(alembic_config())
    assert _revisions(engine) == {scripts.get_revision(start).revision}
    upgrade(engine, "heads")
    heads = _revisions(engine)
    assert heads == set(scripts.get_heads())
    upgrade(engine, "heads")  # idempotent
    assert _revisions(engine) == heads
    with engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), Base.metadata)
    engine.dispose()
    assert diff == []
