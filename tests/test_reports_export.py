"""Cost reports from the database (SQLite and PostgreSQL): CSV, XLSX (read back with
openpyxl), XML3/XML2 (parsed back with ElementTree) and JSON carry equal values; only the
latest revision of each study counts; the API answers 4xx on bad input."""

from __future__ import annotations

import csv
import io
import xml.etree.ElementTree as ET
from datetime import date
from pathlib import Path

import pytest
from click.testing import CliRunner
from openpyxl import load_workbook
from sqlalchemy import select

from gateway.cli import main
from gateway.core.database import Database
from gateway.core.models import Study
from gateway.costing.recording import Mappers, record_cost
from gateway.costing.reports import ClaimOptions, ReportQuery, parse_day, write_report
from pricing_norms.catalogue import ILLUSTRATIVE_NOTE
from pricing_norms.machines import MachineCode, MachineCodes
from tests.support.auth import authed_client
from tests.support.costing import (
    CT_2024_FULL_COST,
    CT_2025_FULL_COST,
    add_study,
    import_example,
    make_service,
)


@pytest.fixture
def costed(database: Database, tmp_path: Path) -> dict[str, str]:
    """Four costed studies: CT before/after the norm change, a US, one outside the period."""
    service = make_service(database, tmp_path, default_department="K01")
    import_example(database)
    uids = {
        "ct_jun": add_study(database, study_date="20250630", accession="ACC1"),
        "ct_jul": add_study(database, study_date="20250701", accession="ACC2"),
        "us": add_study(database, study_date="20250702", modality="US", station="US_ROOM2"),
        "outside": add_study(database, study_date="20250801"),
    }
    mappers = Mappers.from_settings(service.settings.costing)
    with database.write_session() as session:
        for uid in uids.values():
            study = session.scalar(select(Study).where(Study.study_uid == uid))
            assert record_cost(session, study, mappers, reason="t", created_by="t").created
        # a correction of the July CT: revision 2 must be the only one reported
        study = session.scalar(select(Study).where(Study.study_uid == uids["ct_jul"]))
        record_cost(session, study, mappers, reason="correction", created_by="t", force=True)
    return uids


QUERY = ReportQuery(parse_day("2025-06-01", "from"), parse_day("2025-07-31", "to"))


def _write(database: Database, fmt: str, **kw: object) -> bytes:
    out = io.BytesIO()
    write_report(database, QUERY, fmt, out, **kw)  # type: ignore[arg-type]
    return out.getvalue()


def _csv_body(data: bytes) -> str:
    """The CSV without its first line, the illustrative note (checked here)."""
    note, _, body = data.decode("utf-8-sig").partition("\r\n")
    assert next(csv.reader([note])) == [ILLUSTRATIVE_NOTE]
    return body


def test_csv_latest_revision_only(database: Database, costed: dict[str, str]) -> None:
    rows = list(csv.DictReader(io.StringIO(_csv_body(_write(database, "csv")))))
    assert [r["study_key"] for r in rows] == [costed["ct_jun"], costed["ct_jul"], costed["us"]]
    by = {r["study_key"]: r for r in rows}
    assert int(by[costed["ct_jun"]]["full_cost"]) == CT_2024_FULL_COST
    assert by[costed["ct_jun"]]["norm_set"] == "DM-MINHHOA-CT-2024"
    assert int(by[costed["ct_jul"]]["full_cost"]) == CT_2025_FULL_COST
    assert by[costed["ct_jul"]]["MA_MAY"] == "CT01" and by[costed["us"]]["MA_MAY"] == "US01"
    assert int(by[costed["ct_jun"]]["margin_BH"]) == 663_400 - CT_2024_FULL_COST
    assert all(r["MA_KHOA"] == "K01" and r["norm_illustrative"] == "true" for r in rows)


def test_xlsx_equals_csv(database: Database, costed: dict[str, str]) -> None:
    csv_rows = list(csv.reader(io.StringIO(_csv_body(_write(database, "csv")))))
    wb = load_workbook(io.BytesIO(_write(database, "xlsx")), read_only=True)
    sheet = wb["costs"]
    values = list(sheet.iter_rows(values_only=True))
    assert "ILLUSTRATIVE" in str(values[0][0])  # the note above the header
    assert list(values[1]) == csv_rows[0]
    header = csv_rows[0]
    money = header.index("full_cost")
    for xrow, crow in zip(values[2:], csv_rows[1:], strict=True):
        assert xrow[0] == crow[0]
        assert xrow[money] == int(crow[money])
        assert all(xrow[i] == int(crow[i]) for i in range(header.index("VAT_TU"), len(header)))
    wb.close()
    cells = next(load_workbook(io.BytesIO(_write(database, "xlsx")))["costs"].iter_rows(
        min_row=3, max_row=3))  # fmt: skip
    assert cells[money].number_format == "#,##0"


def test_xml3_and_xml2_parse_back(database: Database, costed: dict[str, str]) -> None:
    xml2 = io.BytesIO()
    machines = MachineCodes([MachineCode("CT01", "CL.1.01001.1", date(2025, 1, 1))])
    xml3 = ET.fromstring(_write(database, "xml3", xml2_out=xml2, allow_illustrative=True,
                                claims=ClaimOptions(machine_codes=machines)))  # fmt: skip
    rows = xml3.findall("./DSACH_CHI_TIET_DVKT/CHI_TIET_DVKT")
    by = {r.findtext("MA_LK"): r for r in rows}
    assert set(by) == {"ACC1", "ACC2", costed["us"]}
    ct = by["ACC1"]
    assert ct.findtext("MA_DICH_VU") == "18.0220.0041"
    assert ct.findtext("THANH_TIEN_BV") == ct.findtext("DON_GIA_BV") == "663400"
    assert ct.findtext("MA_MAY") == "CL.1.01001.1" and ct.findtext("MA_KHOA") == "K01"
    assert by[costed["us"]].findtext("MA_MAY") == ""  # US01 has no MA_MAY in force
    assert ct.findtext("NGAY_YL") == "202506300930" and ct.findtext("STT") == "1"
    assert by[costed["us"]].findtext("DON_GIA_BH") == "58600"
    drugs = ET.fromstring(xml2.getvalue()).findall("./DSACH_CHI_TIET_THUOC/CHI_TIET_THUOC")
    assert sorted(d.findtext("MA_LK") or "" for d in drugs) == ["ACC1", "ACC2"]
    assert {d.findtext("THANH_TIEN_BV") for d in drugs} == {"450000"}
    assert all(d.findtext("MA_DICH_VU") == "18.0220.0041" for d in drugs)


def test_api_streams_formats_and_groups(
    database: Database, tmp_path: Path, costed: dict[str, str]
) -> None:
    client = authed_client(make_service(database, tmp_path))
    base = "/api/reports/costs?from=2025-06-01&to=2025-07-31"
    r = client.get(base + "&format=csv")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/csv")
    assert r.content == _write(database, "csv")
    r = client.get(base + "&format=xlsx")
    assert r.status_code == 200
    assert len(list(load_workbook(io.BytesIO(r.content))["costs"].iter_rows())) == 5
    data = client.get(base + "&group_by=month,service").json()
    groups = {tuple(row[k] for k in ("month", "service")): row for row in data["rows"]}
    ct = groups[("2025-06", "18.0220.0041")]
    assert ct["study_count"] == 1 and ct["full_cost"] == CT_2024_FULL_COST
    assert groups[("2025-07", "18.0220.0041")]["full_cost"] == CT_2025_FULL_COST
    assert groups[("2025-07", "18.0015.0001")]["billed_BH"] == 58_600
    assert "ILLUSTRATIVE" in data["illustrative_note"]
    per_study = client.get(base + "&format=json").json()["rows"]
    assert sum(r["full_cost"] for r in per_study) == sum(g["full_cost"] for g in data["rows"])
    refused = client.get(base + "&format=xml3")
    assert refused.status_code == 409 and "allow_illustrative" in refused.json()["detail"]
    xml = client.get(base + "&format=xml3&allow_illustrative=true")
    assert xml.status_code == 200 and len(ET.fromstring(xml.content)[0]) == 3


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ("from=2025-13-01&to=2025-07-31", "from must be a date"),
        ("from=2025-06-01&to=2025-05-31", "before"),
        ("from=2025-06-01&to=2025-07-31&format=pdf", "format must be one of"),
        ("from=2025-06-01&to=2025-07-31&group_by=patient", "unknown group_by"),
        ("from=2025-06-01&to=2025-07-31&group_by=month&format=xml3", "does not apply"),
        ("to=2025-07-31", "from"),
    ],
)
def test_api_report_bad_input(database: Database, tmp_path: Path, query: str, message: str) -> None:
    client = authed_client(make_service(database, tmp_path))
    r = client.get("/api/reports/costs?" + query)
    assert r.status_code == 422
    assert message in r.text


def test_api_recost_and_unmapped(
    database: Database, tmp_path: Path, costed: dict[str, str]
) -> None:
    client = authed_client(make_service(database, tmp_path), "billing1", "billing")
    uid = costed["ct_jun"]
    assert client.post(f"/api/costs/{uid}/recost", json={}).status_code == 422
    assert client.post(f"/api/costs/{uid}/recost", json={"reason": " "}).status_code == 422
    assert client.post("/api/costs/1.02.3/recost", json={"reason": "abc"}).status_code == 422
    assert client.post("/api/costs/1.2.3.4/recost", json={"reason": "abc"}).status_code == 404
    assert client.get("/api/costs/not-a-uid").status_code == 422
    r = client.post(
        f"/api/costs/{uid}/recost", json={"reason": "film count corrected"},
        headers={"X-Risgate-User": "billing1"},
    )  # fmt: skip
    assert r.status_code == 201, r.text
    assert r.json()["revision"] == 2 and r.json()["created_by"] == "billing1"
    revisions = client.get(f"/api/costs/{uid}").json()["revisions"]
    assert [x["revision"] for x in revisions] == [2, 1]
    assert revisions[1]["record"]["full_cost"] == CT_2024_FULL_COST
    assert revisions[0]["reason"] == "film count corrected"

    odd = add_study(database, modality="XA", body_part="HEART", station="NOWHERE")
    r = client.post(f"/api/costs/{odd}/recost", json={"reason": "try"})
    assert r.status_code == 409 and "UNMAPPED_SERVICE" in r.text
    items = client.get("/api/costs/unmapped").json()["items"]
    assert [i["study_uid"] for i in items] == [odd]
    assert items[0]["facts"]["modality"] == "XA"


def test_cli_report_export(db_url: str, database: Database, tmp_path: Path,
                           costed: dict[str, str]) -> None:  # fmt: skip
    cfg = tmp_path / "c.toml"
    cfg.write_text(f'data_dir = "{tmp_path}/var"\n[database]\nurl = "{db_url}"\n')
    out = tmp_path / "r.xml"
    args = ["--config", str(cfg), "report", "export", "--from", "2025-06-01", "--to", "20250731"]
    r = CliRunner().invoke(main, [*args, "--format", "xml3", "--out", str(out)])
    assert r.exit_code == 3 and "ILLUSTRATIVE" in r.output and not out.exists()
    xml3 = [*args, "--format", "xml3", "--out", str(out), "--allow-illustrative"]
    r = CliRunner().invoke(main, xml3)
    assert r.exit_code == 0, r.output
    assert "3 rows written" in r.output
    assert len(ET.parse(out).getroot()[0]) == 3
    assert len(ET.parse(tmp_path / "r_XML2.xml").getroot()[0]) == 2
    r = CliRunner().invoke(main, [*args, "--format", "csv", "--out", str(tmp_path / "r.csv")])
    assert r.exit_code == 0 and (tmp_path / "r.csv").read_bytes() == _write(database, "csv")
    r = CliRunner().invoke(main, [*args[:-1], "2025-05-01", "--out", str(tmp_path / "x")])
    assert r.exit_code == 2 and "before" in r.output
