"""Cost records on SQLite and PostgreSQL: study.stable -> cost job -> revision 1 matching
the hand-computed figure to the dong; idempotent re-run; recost -> revision 2 keeping 1;
a norm change inside the period; unmapped studies listed, not dropped.

Hand computation, CT abdomen-pelvis with contrast (18.0220.0041) on CT01 (6,000 VND per
machine-minute), ILLUSTRATIVE norm DM-MINHHOA-CT-2024 (until 2025-06-30):
  VAT_TU   2 films x 30,000 + kit 150,000 + cannula 10,000 + 2 x gloves 3,000 = 226,000
  NHAN_CONG KTV 20 x 591.65 = 11,833; DD 10 x 518.52 = 5,185.2 -> 5,185;
            BS 15 x 737.90 = 11,068.5 -> 11,069 (half-up)               =  28,087
  KHAU_HAO 15 min x 6,000 = 90,000; NANG_LUONG 3 kWh x 3,000 = 9,000; CNTT 15,000
  full cost 368,087; contrast 100 ml x 4,500 = 450,000 billed separately (not in cost);
  margin BH = 663,400 - 368,087 = 295,313.
DM-MINHHOA-CT-2025 (from 2025-07-01): 1 film (VAT_TU 196,000), BS 20 min (14,758), so
NHAN_CONG 31,776 and full cost 341,776.
"""

from __future__ import annotations

import json
from pathlib import Path

from sqlalchemy import func, select

from gateway.core.database import Database
from gateway.core.models import Job, Study
from gateway.costing import handlers as costing_jobs
from gateway.costing.models import CostRecordDocument, CostRecordRow, UncostedStudy
from gateway.costing.recording import Mappers, record_cost
from gateway.intake.stability import mark_stable
from gateway.process.worker import Worker
from pricing_norms.costing import CostRecord
from tests.support.costing import (
    CT_2024_FULL_COST,
    CT_2025_FULL_COST,
    add_study,
    import_example,
    make_service,
)


def _records(database: Database, uid: str) -> list[CostRecordRow]:
    with database.write_session() as session:
        return list(
            session.scalars(
                select(CostRecordRow)
                .where(CostRecordRow.study_uid == uid)
                .order_by(CostRecordRow.revision)
            )
        )


def _run_cost_jobs(service) -> None:
    costing_jobs.install(service)
    with service.db.write_session() as session:
        mark_stable(session, 0.0)
    Worker(service).run_once()


def test_stable_study_gets_hand_computed_cost(database: Database, tmp_path: Path) -> None:
    service = make_service(database, tmp_path)
    service.job_handlers.clear()
    import_example(database)
    uid = add_study(database, study_date="20250310")
    _run_cost_jobs(service)

    [rec] = _records(database, uid)
    assert rec.revision == 1
    assert (rec.service_code, rec.machine_code, rec.norm_set_code) == (
        "18.0220.0041", "CT01", "DM-MINHHOA-CT-2024",
    )  # fmt: skip
    assert (rec.vat_tu, rec.nhan_cong, rec.khau_hao, rec.nang_luong, rec.cntt) == (
        226_000, 28_087, 90_000, 9_000, 15_000,
    )  # fmt: skip
    assert rec.thuoc == 0 and rec.separately_billed == 450_000
    assert rec.full_cost == CT_2024_FULL_COST
    assert (rec.price_bh, rec.margin_bh) == (663_400, 295_313)
    assert rec.norm_illustrative is True
    assert rec.created_by == "system:worker" and rec.reason == "study stable"
    with database.write_session() as session:
        doc = session.get(CostRecordDocument, rec.id)
        job = session.scalar(select(Job).where(Job.kind == "cost", Job.ref == uid))
    assert doc is not None and job is not None and job.state == "DONE"
    record = CostRecord.from_dict(json.loads(doc.record_json))
    assert record.full_cost == CT_2024_FULL_COST
    assert record.to_json() == doc.record_json


def test_rerun_is_idempotent_and_recost_adds_revision(database: Database, tmp_path: Path) -> None:
    service = make_service(database, tmp_path)
    import_example(database)
    uid = add_study(database)
    mappers = Mappers.from_settings(service.settings.costing)
    for _ in range(2):  # the job seen twice adds nothing the second time
        with database.write_session() as session:
            study = session.scalar(select(Study).where(Study.study_uid == uid))
            outcome = record_cost(session, study, mappers, reason="study stable", created_by="w")
    assert not outcome.created
    assert [r.revision for r in _records(database, uid)] == [1]

    with database.write_session() as session:
        study = session.scalar(select(Study).where(Study.study_uid == uid))
        outcome = record_cost(
            session, study, mappers, reason="wrong machine", created_by="billing", force=True
        )
    assert outcome.created
    first, second = _records(database, uid)
    assert (first.revision, second.revision) == (1, 2)
    assert first.reason == "study stable" and second.reason == "wrong machine"
    assert second.created_by == "billing"
    assert first.full_cost == second.full_cost == CT_2024_FULL_COST


def test_norm_change_mid_period(database: Database, tmp_path: Path) -> None:
    service = make_service(database, tmp_path)
    import_example(database)
    before = add_study(database, study_date="20250630")
    after = add_study(database, study_date="20250701")
    _run_cost_jobs(service)
    [b] = _records(database, before)
    [a] = _records(database, after)
    assert (b.norm_set_code, b.full_cost) == ("DM-MINHHOA-CT-2024", CT_2024_FULL_COST)
    assert (a.norm_set_code, a.full_cost) == ("DM-MINHHOA-CT-2025", CT_2025_FULL_COST)
    assert (a.vat_tu, a.nhan_cong) == (196_000, 31_776)


def test_unmapped_listed_then_costed_after_fix(database: Database, tmp_path: Path) -> None:
    service = make_service(database, tmp_path, rules=[])
    uid_nocat = add_study(database, modality="CT", body_part="ABDOMEN")
    _run_cost_jobs(service)  # no catalogue yet
    with database.write_session() as session:
        row = session.scalar(select(UncostedStudy).where(UncostedStudy.study_uid == uid_nocat))
    assert row is not None and row.kind == "NO_CATALOGUE"

    import_example(database)
    uid = add_study(database, modality="XA", body_part="HEART")
    _run_cost_jobs(service)
    with database.write_session() as session:
        row = session.scalar(select(UncostedStudy).where(UncostedStudy.study_uid == uid))
        assert session.scalar(select(func.count(CostRecordRow.id))) == 0
    assert row is not None and row.kind == "UNMAPPED_SERVICE"
    assert "no procedure code" in row.detail and json.loads(row.facts_json)["modality"] == "XA"

    # billing staff add a mapping: the recost resolves the entry
    fixed = Mappers.from_settings(
        make_service(database, tmp_path, procedure_map={}, rules=[
            {"rule_id": "xa", "service_code": "18.0149.0040", "modality": "XA"}
        ], machine_by_station={"CT_32": "CT01"}).settings.costing
    )  # fmt: skip
    with database.write_session() as session:
        study = session.scalar(select(Study).where(Study.study_uid == uid))
        outcome = record_cost(session, study, fixed, reason="mapping added", created_by="b")
        row = session.scalar(select(UncostedStudy).where(UncostedStudy.study_uid == uid))
    assert outcome.created and outcome.record is not None
    assert outcome.record.service_code == "18.0149.0040"
    assert row is not None and row.resolved_at is not None


def test_norm_revision_recost_cli(db_url: str, database: Database, tmp_path: Path) -> None:
    """A revised norm (BS 20 -> 25 min from 2025-07-01) is imported; `risgate costs recost`
    adds revision 2 only where the figures change. BS 25 x 737.90 = 18,447.5 -> 18,448, so
    NHAN_CONG 11,833 + 5,185 + 18,448 = 35,466 and full cost 345,466."""
    import shutil

    from click.testing import CliRunner

    from gateway.cli import main
    from pricing_norms.example import EXAMPLE_DATA_DIR

    cfg = tmp_path / "c.toml"
    cfg.write_text(
        f'data_dir = "{tmp_path}/var"\n[database]\nurl = "{db_url}"\n[costing]\n'
        'use_example_mapping = true\n[[costing.rules]]\nrule_id = "ct-abd"\n'
        'service_code = "18.0220.0041"\nmodality = "CT"\npriority = 1\n'
        'body_parts = ["ABDOMEN"]\n'
    )
    service = make_service(database, tmp_path)
    import_example(database)
    june = add_study(database, study_date="20250615")
    july = add_study(database, study_date="20250710")
    _run_cost_jobs(service)
    assert _records(database, july)[0].full_cost == CT_2025_FULL_COST

    revised = tmp_path / "revised"
    shutil.copytree(EXAMPLE_DATA_DIR, revised, ignore=shutil.ignore_patterns("*.md"))
    lines = revised / "norm_lines_ILLUSTRATIVE.csv"
    old = "DM-MINHHOA-CT-2025,18.0220.0041,NHAN_CONG,BS,Bác sĩ chẩn đoán hình ảnh,phút,20,"
    text = lines.read_text(encoding="utf-8")
    assert old in text
    lines.write_text(text.replace(old, old.replace(",20,", ",25,")), encoding="utf-8")
    runner = CliRunner()
    r = runner.invoke(main, ["--config", str(cfg), "norms", "import", str(revised)])
    assert r.exit_code == 0, r.output
    args = ["--config", str(cfg), "costs", "recost", "--from", "2025-06-01", "--to", "2025-07-31"]
    r = runner.invoke(main, [*args, "--reason", "norm decision 2025/12", "--user", "admin"])
    assert r.exit_code == 0, r.output
    assert "2 studies checked, 1 new revisions" in r.output
    assert [x.revision for x in _records(database, june)] == [1]
    first, second = _records(database, july)
    assert (first.full_cost, second.full_cost) == (CT_2025_FULL_COST, 345_466)
    assert second.nhan_cong == 35_466 and second.reason == "norm decision 2025/12"
    assert second.created_by == "admin"
    assert second.catalogue_import_pk != first.catalogue_import_pk


def test_filmless_department(database: Database, tmp_path: Path) -> None:
    """K02 prints no film: the 2 films (60,000) leave the 2024 CT cost: 308,087."""
    service = make_service(
        database, tmp_path, default_department="K02", filmless_departments=["K02"]
    )
    import_example(database)
    uid = add_study(database, study_date="20250310")
    _run_cost_jobs(service)
    [rec] = _records(database, uid)
    assert rec.department == "K02"
    assert (rec.vat_tu, rec.full_cost) == (166_000, CT_2024_FULL_COST - 60_000)
    with database.write_session() as session:
        doc = session.get(CostRecordDocument, rec.id)
    assert doc is not None
    record = CostRecord.from_json(doc.record_json)
    assert "VT-PHIM-3543" not in {line.item_code for line in record.lines}
    assert any("filmless" in note for note in record.notes)
