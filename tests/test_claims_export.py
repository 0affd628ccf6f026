"""Claim files and illustrative labels through the real API on SQLite and PostgreSQL: MA_LK
from the matched order's visit (PV1-19), dated MA_MAY, the 409 / allow_illustrative path,
the note on an empty period, and a file breaking the schema served as a 500 (logged
without the value)."""

from __future__ import annotations

import csv
import io
import logging
import re
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner
from lxml import etree
from sqlalchemy import select

from gateway.cli import main
from gateway.core.context import ProcessContext
from gateway.core.database import Database
from gateway.core.models import Study, utcnow
from gateway.core.settings import BillingSettings
from gateway.costing.catalogue_store import store_catalogue
from gateway.costing.recording import Mappers, record_cost
from gateway.orders.models import Order, OrderPatient, RequestedProcedure, Visit
from gateway.reconciliation.models import MatchState, StudyMatch
from pricing_norms.catalogue import ILLUSTRATIVE_NOTE
from pricing_norms.catalogue_io import load_csv_dir
from pricing_norms.claims_schema import validate_document
from pricing_norms.example import EXAMPLE_DATA_DIR
from tests.support.auth import authed_client
from tests.support.costing import (
    CT_2024_FULL_COST,
    add_study,
    import_example,
    make_service,
)

BASE = "/api/reports/costs?from=2025-06-01&to=2025-06-30"


def link_visit(database: Database, study_uid: str, visit_number: str) -> None:
    """The study matched (MATCHED) to an order of a visit with ``visit_number`` (PV1-19)."""
    now = utcnow()
    with database.write_session() as session:
        study = session.scalar(select(Study).where(Study.study_uid == study_uid))
        assert study is not None
        patient = OrderPatient(patient_id=f"HIS-{study.id}", created_at=now, updated_at=now)
        session.add(patient)
        session.flush()
        visit = Visit(patient_pk=patient.id, visit_number=visit_number, updated_at=now)
        session.add(visit)
        session.flush()
        order = Order(patient_pk=patient.id, visit_pk=visit.id, created_at=now, updated_at=now)
        session.add(order)
        session.flush()
        rp = RequestedProcedure(order_pk=order.id, requested_procedure_id=f"RP{study.id}",
                                study_instance_uid=study_uid)  # fmt: skip
        session.add(rp)
        session.flush()
        session.add(StudyMatch(study_pk=study.id, state=MatchState.MATCHED, method="accession",
                               rp_pk=rp.id, created_at=now, updated_at=now))  # fmt: skip


def cost(service: ProcessContext, database: Database, *uids: str) -> None:
    mappers = Mappers.from_settings(service.settings.costing)
    with database.write_session() as session:
        for uid in uids:
            study = session.scalar(select(Study).where(Study.study_uid == uid))
            assert record_cost(session, study, mappers, reason="t", created_by="t").created


def import_official(database: Database, tmp_path: Path) -> None:
    """The example catalogue with its norm sets flagged official (a test stand-in)."""
    folder = tmp_path / "official"
    shutil.copytree(EXAMPLE_DATA_DIR, folder)
    sets = folder / "norm_sets_ILLUSTRATIVE.csv"
    sets.write_text(sets.read_text(encoding="utf-8").replace(",true\n", ",false\n"), "utf-8")
    catalogue = load_csv_dir(folder)
    assert not catalogue.has_illustrative
    with database.write_session() as session:
        store_catalogue(session, catalogue, file_name="official", digest="0" * 64,
                        imported_by="t")  # fmt: skip


@pytest.fixture
def service(database: Database, tmp_path: Path) -> ProcessContext:
    service = make_service(database, tmp_path, default_department="K01")
    service.settings.billing = BillingSettings.model_validate(
        {"machines": [
            {"machine": "CT01", "ma_may": "CL.1.01001.1", "valid_from": "2024-07-01",
             "valid_to": "2025-06-14"},
            {"machine": "CT01", "ma_may": "CL.2.01001.1", "valid_from": "2025-06-15"},
        ]}
    )  # fmt: skip
    import_example(database)
    return service


def test_empty_period_from_illustrative_catalogue_says_so(service: ProcessContext) -> None:
    client = authed_client(service, "billing1", "billing")
    data = client.get(BASE + "&format=json").json()
    assert data == {"illustrative_note": ILLUSTRATIVE_NOTE, "rows": []}
    text = client.get(BASE + "&format=csv").content.decode("utf-8-sig")
    note, header, *rows = csv.reader(io.StringIO(text))
    assert note == [ILLUSTRATIVE_NOTE] and header[0] == "study_key" and rows == []
    refused = client.get(BASE + "&format=xml2")
    assert refused.status_code == 409 and "ILLUSTRATIVE" in refused.json()["detail"]


def test_ma_lk_from_visit_and_dated_ma_may(database: Database, service: ProcessContext) -> None:
    first = add_study(database, study_date="20250610", accession="ACC1")
    second = add_study(database, study_date="20250620", accession="ACC2")
    alone = add_study(database, study_date="20250621", accession="ACC3")
    cost(service, database, first, second, alone)
    link_visit(database, first, "VV-2025-0001")
    link_visit(database, second, "VV-2025-0001")
    client = authed_client(service, "billing1", "billing")

    assert client.get(BASE + "&format=xml3").status_code == 409
    r = client.get(BASE + "&format=xml3&allow_illustrative=true")
    assert r.status_code == 200, r.text
    assert r.content.startswith(b'<?xml version="1.0" encoding="UTF-8"?>\n<!-- ILLUSTRATIVE')
    validate_document(r.content, "XML3")
    rows = etree.fromstring(r.content).findall("./DSACH_CHI_TIET_DVKT/CHI_TIET_DVKT")
    got = [(x.findtext("MA_LK"), x.findtext("STT"), x.findtext("MA_MAY")) for x in rows]
    # one episode (visit) with two studies: STT 1, 2; the study without a visit keeps
    # its accession number; MA_MAY changes on 2025-06-15
    assert got == [
        ("ACC3", "1", "CL.2.01001.1"),
        ("VV-2025-0001", "1", "CL.1.01001.1"),
        ("VV-2025-0001", "2", "CL.2.01001.1"),
    ]

    service.settings.billing.ma_lk_source = "accession_number"
    r = client.get(BASE + "&format=xml3&allow_illustrative=true")
    lk = [x.findtext("MA_LK") for x in etree.fromstring(r.content)[0]]
    assert lk == ["ACC1", "ACC2", "ACC3"]


def test_official_catalogue_needs_no_flag(
    database: Database, service: ProcessContext, tmp_path: Path
) -> None:
    import_official(database, tmp_path)
    uid = add_study(database, study_date="20250610", accession="ACC1")
    cost(service, database, uid)
    client = authed_client(service, "billing1", "billing")
    assert client.get(BASE + "&format=json").json()["illustrative_note"] is None
    r = client.get(BASE + "&format=xml3")
    assert r.status_code == 200 and b"<!--" not in r.content
    validate_document(r.content, "XML3")
    r = client.get(BASE + "&format=xml2")
    assert r.status_code == 200
    validate_document(r.content, "XML2")
    assert len(etree.fromstring(r.content)[0]) == 1  # the contrast agent


def test_file_breaking_the_schema_is_a_500_logged_without_value(
    database: Database, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    department = "KHOA-CHAN-DOAN-HINH-ANH-TANG-2-TOA-NHA-B-BENH-VIEN-1"  # 52 > 50 characters
    service = make_service(database, tmp_path, default_department=department)
    import_example(database)
    uid = add_study(database, study_date="20250610", accession="ACC1")
    cost(service, database, uid)
    client = authed_client(service, "billing1", "billing")
    with caplog.at_level(logging.ERROR, logger="gateway.api.reports"):
        r = client.get(BASE + "&format=xml3&allow_illustrative=true")
    assert r.status_code == 500
    assert "MA_KHOA" in r.json()["detail"] and "row 1" in r.json()["detail"]
    logged = [rec.getMessage() for rec in caplog.records if rec.name == "gateway.api.reports"]
    assert len(logged) == 1 and "MA_KHOA" in logged[0]
    assert department not in logged[0] and department not in r.text


def test_billing_totals_by_service_are_the_sums_of_rows(
    database: Database, service: ProcessContext
) -> None:
    uids = [
        add_study(database, study_date=f"202506{d:02d}", accession=f"ACC{d}") for d in (3, 4, 5)
    ]
    uids.append(add_study(database, study_date="20250606", modality="US", station="US_ROOM2"))
    cost(service, database, *uids)
    client = authed_client(service, "billing1", "billing")
    page = client.get("/ui/billing?from=2025-06-01&to=2025-06-30").text
    body = page.split('id="billing-rows"')[1]
    rows = re.findall(r'<tr data-service="([^"]+)">(.*?)</tr>', body, re.S)
    by_row: dict[str, list[int]] = {}
    for code, cells in rows:
        money = [int(v) for v in re.findall(r'data-vnd="(-?\d+)"', cells)]
        by_row[code] = [a + b for a, b in zip(by_row.get(code, [0, 0, 0]), money, strict=True)]
    table = page.split('id="billing-by-service"')[1].split("</table>")[0]
    shown = {
        code: [int(v) for v in re.findall(r'data-vnd="(-?\d+)"', cells)]
        for code, cells in re.findall(r'<tr data-service="([^"]+)">(.*?)</tr>', table, re.S)
    }
    assert shown == by_row
    # each CT's full cost rounds its lines to the dong (e.g. DD 10 min x 518.52 = 5,185.2,
    # BS 15 min x 737.90 = 11,068.5 -> 11,069): the total is the sum of the rounded rows
    assert shown["18.0220.0041"] == [3 * CT_2024_FULL_COST, 3 * 663_400, 3 * 663_400]
    grand = re.search(r'id="billing-grand">(.*?)</tr>', table, re.S)
    assert grand is not None
    totals = [int(v) for v in re.findall(r'data-vnd="(-?\d+)"', grand.group(1))]
    assert totals == [sum(v[i] for v in by_row.values()) for i in range(3)]
    # and the XML3 rows of the period sum to the same billed amounts per service
    xml = etree.fromstring(client.get(BASE + "&format=xml3&allow_illustrative=true").content)
    billed: dict[str, int] = {}
    for row in xml[0]:
        code = row.findtext("MA_DICH_VU") or ""
        billed[code] = billed.get(code, 0) + int(row.findtext("THANH_TIEN_BV") or 0)
    assert billed == {code: v[2] for code, v in shown.items()}


def test_cli_claim_file_breaking_the_schema_leaves_no_file(
    db_url: str, database: Database, tmp_path: Path
) -> None:
    service = make_service(database, tmp_path, default_department="K" * 51)
    import_example(database)
    cost(service, database, add_study(database, study_date="20250610", accession="ACC1"))
    cfg = tmp_path / "c.toml"
    cfg.write_text(f'data_dir = "{tmp_path}/var"\n[database]\nurl = "{db_url}"\n')
    out = tmp_path / "claims.xml"
    period = ["--from", "2025-06-01", "--to", "2025-06-30"]
    args = ["--config", str(cfg), "report", "export", *period, "--format", "xml3",
            "--out", str(out), "--allow-illustrative"]  # fmt: skip
    r = CliRunner().invoke(main, args)
    assert r.exit_code == 1 and "MA_KHOA" in r.output and "K" * 51 not in r.output
    assert not out.exists() and not (tmp_path / "claims_XML2.xml").exists()
