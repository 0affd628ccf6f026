"""Costing in the gateway (SQLite and PostgreSQL): studies left uncosted are costed by
jobs once they can be (a mapping change noticed at start-up, a manual link), dated site
maps from settings, how the delivery is decided (staff > MPPS > department > default),
and the MPPS Film Consumption Sequence through a real association to a gateway process.
"""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pytest
from click.testing import CliRunner
from pydicom import Dataset
from pydicom.sequence import Sequence
from pydicom.uid import generate_uid
from pynetdicom import AE
from pynetdicom.sop_class import ModalityPerformedProcedureStep  # type: ignore[attr-defined]
from sqlalchemy import select

from dicom_nodes.mpps import films_reported
from gateway.cli import main
from gateway.core.database import Database
from gateway.core.models import Job, Study, utcnow
from gateway.core.settings import CostingSettings
from gateway.costing import handlers as costing_jobs
from gateway.costing.models import (
    CostRecordRow,
    MappingVersion,
    StudyBillingInput,
    UncostedStudy,
)
from gateway.costing.recording import Mappers
from gateway.intake.stability import mark_stable
from gateway.process.worker import Worker
from pricing_norms.mapping import StudyFacts
from tests.fixtures.orders.helpers import ack_code, orm, send_all
from tests.support.costing import add_study, import_example, make_service
from tests.support.ctgen import make_ct_study
from tests.support.dcmtk import storescu
from tests.support.wait import wait_until

DAY = date(2026, 3, 10)
FILM_PACS = Path(__file__).parent / "fixtures" / "pricing" / "film_pacs"  # ILLUSTRATIVE


def _worker_pass(service) -> None:  # type: ignore[no-untyped-def]
    costing_jobs.install(service)
    with service.db.write_session() as session:
        mark_stable(session, 0.0)
    Worker(service).run_once()


def _open_uncosted(database: Database) -> dict[str, str]:
    with database.write_session() as session:
        rows = session.scalars(select(UncostedStudy).where(UncostedStudy.resolved_at.is_(None)))
        return {r.study_uid: r.kind for r in rows}


def test_mapping_change_costs_unmapped_studies_by_job(database: Database, tmp_path: Path) -> None:
    import_example(database)
    service = make_service(database, tmp_path, use_example_mapping=False, rules=[],
                           machine_by_station={"XA_ROOM": "CT01"})  # fmt: skip
    service.job_handlers.clear()
    uid = add_study(database, modality="XA", body_part="HEAD", station="XA_ROOM")
    _worker_pass(service)
    assert _open_uncosted(database) == {uid: "UNMAPPED_SERVICE"}
    with database.write_session() as session:
        assert len(list(session.scalars(select(MappingVersion)))) == 1

    # The site adds a rule and restarts: the worker notices the new mapping at its first
    # pass and queues the uncosted study; the next pass costs it. No manual recost.
    changed = make_service(database, tmp_path, use_example_mapping=False, rules=[
        {"rule_id": "xa-head", "service_code": "18.0149.0040", "modality": "XA"}
    ], machine_by_station={"XA_ROOM": "CT01"})  # fmt: skip
    changed.job_handlers.clear()
    _worker_pass(changed)
    with database.write_session() as session:
        [job] = session.scalars(select(Job).where(Job.kind == costing_jobs.RETRY_KIND))
        assert job.ref == uid
    _worker_pass(changed)
    assert _open_uncosted(database) == {}
    with database.write_session() as session:
        [rec] = session.scalars(select(CostRecordRow).where(CostRecordRow.study_uid == uid))
        assert len(list(session.scalars(select(MappingVersion)))) == 2
    assert (rec.service_code, rec.reason) == ("18.0149.0040", costing_jobs.RETRY_REASON)

    # The same mapping again (another restart) queues nothing.
    again = make_service(database, tmp_path, use_example_mapping=False, rules=[
        {"rule_id": "xa-head", "service_code": "18.0149.0040", "modality": "XA"}
    ], machine_by_station={"XA_ROOM": "CT01"})  # fmt: skip
    with database.write_session() as session:
        assert not costing_jobs.note_mapping(session, Mappers.from_settings(again.settings.costing))


@pytest.mark.unit
def test_dated_site_map_from_settings() -> None:
    settings = CostingSettings.model_validate(
        {"procedure_map": {
            "CT-SO-NAO": [
                {"service_code": "18.0149.0040", "effective_to": "2027-12-31"},
                {"service_code": "18.9149.0040", "effective_from": "2028-01-01"},
            ],
            "xq-nguc": "18.0119.0028",
        }}
    )  # fmt: skip
    mapper = Mappers.from_settings(settings).service
    codes = [
        mapper.map(StudyFacts(day, "CT", procedure_code=code)).service_code
        for day, code in [
            (date(2027, 12, 31), "ct-so-nao"),
            (date(2028, 1, 1), " CT-SO-NAO"),
            (date(2030, 1, 1), "XQ-NGUC"),
        ]
    ]
    assert codes == ["18.0149.0040", "18.9149.0040", "18.0119.0028"]
    # ambiguous or reversed periods stop the configuration from loading
    with pytest.raises(ValueError, match="overlaps"):
        CostingSettings.model_validate(
            {"procedure_map": {"K": [{"service_code": "18.0149.0040"},
                                     {"service_code": "18.0119.0028"}]}}
        )  # fmt: skip
    with pytest.raises(ValueError, match="overlaps"):  # one code, two spellings
        CostingSettings(procedure_map={"xq-nguc": "18.0119.0028", "XQ-NGUC ": "18.0126.0026"})
    with pytest.raises(ValueError, match="effective_to 2027-12-31 is before 2028-01-01"):
        CostingSettings.model_validate(
            {"rules": [{"rule_id": "r", "service_code": "18.0149.0040", "modality": "CT",
                        "effective_from": "2028-01-01", "effective_to": "2027-12-31"}]}
        )  # fmt: skip


@pytest.mark.unit
def test_site_map_overrides_example_entry_of_same_code() -> None:
    settings = CostingSettings(use_example_mapping=True, procedure_map={"xq-nguc": "18.0126.0026"})
    result = Mappers.from_settings(settings).service.map(
        StudyFacts(DAY, "DX", procedure_code="XQ-NGUC")
    )
    assert result.service_code == "18.0126.0026"


@pytest.mark.unit
@pytest.mark.parametrize(
    ("staff", "films", "department", "expected"),
    [
        (True, 2, "K-NGOAI", ("filmless", "staff", None)),  # staff override MPPS
        (False, 0, "K-PACS", ("film", "staff", None)),
        (None, 0, "K-NGOAI", ("filmless", "mpps", 0)),
        (None, 3, "K-PACS", ("film", "mpps", 3)),  # the modality printed: film
        (None, None, "K-PACS", ("filmless", "department", None)),
        (None, None, "K-NGOAI", ("film", "default", None)),
    ],
)
def test_delivery_precedence(
    staff: bool | None, films: int | None, department: str, expected: tuple
) -> None:
    mappers = Mappers.from_settings(CostingSettings(filmless_departments=["K-PACS"]))
    said = None
    if staff is not None:
        said = StudyBillingInput(filmless=staff, tyle_tt_dv=None, reason="x", updated_by="b",
                                 updated_at=utcnow())  # fmt: skip
    facts = mappers.adjust(StudyFacts(DAY, "DX", department=department, films_printed=films), said)
    assert (facts.delivery.value, facts.delivery_source, facts.films_printed) == expected
    assert facts.tyle_tt_dv == 100


@pytest.mark.unit
def test_films_reported_from_the_film_consumption_sequence() -> None:
    ds = Dataset()
    assert films_reported(ds) is None
    ds.FilmConsumptionSequence = Sequence([])
    assert films_reported(ds) == 0
    items = []
    for count in ("2", "1", None, "x"):
        item = Dataset()
        item.MediumType = "BLUE FILM"
        if count is not None:
            item.NumberOfFilms = count if count != "x" else "1"
        items.append(item)
    ds.FilmConsumptionSequence = Sequence(items)
    assert films_reported(ds) == 2 + 1 + 1 + 1


def _mpps_create(study_uid: str, accession: str) -> Dataset:
    ds = Dataset()
    item = Dataset()
    item.StudyInstanceUID = study_uid
    item.AccessionNumber = accession
    ds.ScheduledStepAttributesSequence = Sequence([item])
    ds.PatientID = "BN-MP"
    ds.PerformedStationAETitle = "MODALITY"
    ds.PerformedProcedureStepStatus = "IN PROGRESS"
    ds.PerformedProcedureStepID = "PPS-FILM"
    ds.Modality = "CT"
    ds.PerformedSeriesSequence = Sequence([])
    return ds


def _mpps_completed(films: int) -> Dataset:
    ds = Dataset()
    ds.PerformedProcedureStepStatus = "COMPLETED"
    film = Dataset()
    film.NumberOfFilms = str(films)
    film.MediumType = "BLUE FILM"
    film.FilmSizeID = "14INX17IN"
    ds.FilmConsumptionSequence = Sequence([film] if films else [])
    return ds


@pytest.mark.integration
def test_mpps_zero_films_prices_the_ct_with_its_pacs_price(
    gateway_factory: type, tmp_path: Path
) -> None:
    """CT head ordered with its service code; the CT reports by MPPS that it printed no
    film: the study is costed filmless, PACS price (illustrative, 313/QĐ-BYT)."""
    gw = gateway_factory.make(
        {
            "studies": {"stable_after_s": 3600},  # only MPPS COMPLETED makes it stable
            "costing": {"use_example_mapping": True},
        }
    )
    r = CliRunner().invoke(
        main, ["--config", str(gw.config_path), "norms", "import", str(FILM_PACS)]
    )
    assert r.exit_code == 0, r.output
    gw.start()
    study_uid = generate_uid()
    ack = send_all(gw.hl7_port, [
        orm("MPF1", patient_id="BN-MP", name="LÊ^VĂN^CƯỜNG", placer="PMF1", accession="MPF1",
            start="20260310090000", study_uid=study_uid,
            procedure="18.0149.0040^CT sọ não 1-32 dãy không tiêm thuốc cản quang^99BYT")
    ])  # fmt: skip
    assert ack_code(ack[0]) == "AA"
    _, files = make_ct_study(
        tmp_path / "ct", 2, size=32, patient_id="BN-MP", accession="MPF1", study_uid=study_uid,
        study_date="20260310", station="CT_32",
    )  # fmt: skip
    assert storescu(gw.dicom_port, files).returncode == 0

    ae = AE("MODALITY")
    ae.add_requested_context(ModalityPerformedProcedureStep)
    assoc = ae.associate("127.0.0.1", gw.dicom_port, ae_title="RISGATE")
    assert assoc.is_established
    try:
        mpps_uid = generate_uid()
        status, _ = assoc.send_n_create(
            _mpps_create(study_uid, "MPF1"), ModalityPerformedProcedureStep, mpps_uid
        )
        assert status.Status == 0x0000
        status, _ = assoc.send_n_set(_mpps_completed(0), ModalityPerformedProcedureStep, mpps_uid)
        assert status.Status == 0x0000
    finally:
        assoc.release()

    def latest() -> dict | None:
        revisions = gw.get(f"/api/costs/{study_uid}")["revisions"]
        return revisions[0] if revisions else None

    wait_until(lambda: latest() is not None, 60, "the cost record")
    rec = latest()
    assert rec is not None
    # CT head on CT01 without the film (147,296 with it, see tests/test_costing_e2e.py)
    assert (rec["service_code"], rec["machine_code"], rec["full_cost"]) == (
        "18.0149.0040", "CT01", 147_296 - 30_000,
    )  # fmt: skip
    assert (rec["delivery"], rec["price_variant"], rec["price_bv"]) == ("filmless", "PACS", 502_200)
    document = rec["record"]
    assert (document["delivery_source"], document["films_printed"]) == ("mpps", 0)
    assert document["price_decision_number"] == "313/QĐ-BYT"


def test_mpps_films_reach_the_facts_by_uid_or_accession(database: Database) -> None:
    from gateway.costing.facts import facts_for_study
    from gateway.orders import mpps

    by_uid = add_study(database, accession="ACC-F1")
    by_accession = add_study(database, accession="ACC-F2")
    silent = add_study(database, accession="ACC-F3")
    with database.write_session() as session:
        assert mpps.create(session, generate_uid(), _mpps_create(by_uid, ""), "CT",
                           films=2).outcome is mpps.Outcome.OK  # fmt: skip
        assert mpps.create(session, generate_uid(), _mpps_create("", "ACC-F2"), "CT",
                           films=0).outcome is mpps.Outcome.OK  # fmt: skip
        assert mpps.create(session, generate_uid(), _mpps_create(silent, "ACC-F3"), "CT",
                           films=None).outcome is mpps.Outcome.OK  # fmt: skip
    with database.write_session() as session:
        pks = {s.study_uid: s.id for s in session.scalars(select(Study))}
        films = [
            facts_for_study(session, pks[u]).films_printed for u in (by_uid, by_accession, silent)
        ]
        retry = {
            j.ref for j in session.scalars(select(Job).where(Job.kind == costing_jobs.RETRY_KIND))
        }
    assert films == [2, 0, None]
    assert retry == {by_uid, by_accession}  # each reported count costs its study again
