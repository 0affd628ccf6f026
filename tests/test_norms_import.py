"""Catalogue import into the database (SQLite and PostgreSQL), by API and CLI: a good
catalogue becomes the one in use with its history; a bad file is rejected with row- and
column-numbered messages and changes nothing."""

from __future__ import annotations

import io
import shutil
import zipfile
from pathlib import Path

import pytest
from click.testing import CliRunner
from fastapi.testclient import TestClient

from gateway.cli import main
from gateway.core.database import Database
from pricing_norms.catalogue_io import export_xlsx
from pricing_norms.example import EXAMPLE_DATA_DIR, load_example_catalogue
from tests.support.auth import authed_client
from tests.support.costing import make_service


@pytest.fixture
def client(database: Database, tmp_path: Path) -> TestClient:
    return authed_client(make_service(database, tmp_path), name="admin1")


def _csv_files(directory: Path) -> list[tuple[str, tuple[str, bytes, str]]]:
    return [
        ("files", (p.name, p.read_bytes(), "text/csv")) for p in sorted(directory.glob("*.csv"))
    ]


def _bad_copy(tmp_path: Path, edit: dict[str, tuple[str, str]]) -> Path:
    bad = tmp_path / "bad"
    shutil.copytree(EXAMPLE_DATA_DIR, bad, ignore=shutil.ignore_patterns("*.md"))
    for name, (old, new) in edit.items():
        path = bad / name
        text = path.read_text(encoding="utf-8")
        assert old in text
        path.write_text(text.replace(old, new, 1), encoding="utf-8")
    return bad


def test_good_csv_upload_then_catalogue_and_history(client: TestClient) -> None:
    assert client.get("/api/norms").status_code == 404
    r = client.post(
        "/api/norms/import",
        files=_csv_files(EXAMPLE_DATA_DIR),
        headers={"X-Risgate-User": "admin1"},
    )
    assert r.status_code == 201, r.text
    assert r.json()["counts"]["norm_lines"] == 73
    cat = client.get("/api/norms").json()
    assert cat["illustrative"] is True and "ILLUSTRATIVE" in cat["illustrative_note"]
    assert all(n["illustrative"] for n in cat["norm_sets"])
    ct01 = next(e for e in cat["equipment"] if e["ma_may"] == "CT01")
    assert ct01["depreciation_per_unit"] == "6000"
    price = next(p for p in cat["prices"] if p["service_code"] == "18.0220.0041")
    assert price["don_gia_bh"] == 663_400
    [hist] = client.get("/api/norms/imports").json()
    assert hist["imported_by"] == "admin1" and len(hist["checksum"]) == 64
    assert "prices.csv" in hist["file_name"]


def test_xlsx_and_zip_uploads(client: TestClient) -> None:
    buf = io.BytesIO()
    export_xlsx(load_example_catalogue(), buf)
    r = client.post("/api/norms/import", files={"files": ("norms.xlsx", buf.getvalue())})
    assert r.status_code == 201, r.text
    zbuf = io.BytesIO()
    with zipfile.ZipFile(zbuf, "w") as z:
        for p in EXAMPLE_DATA_DIR.glob("*.csv"):
            z.write(p, f"folder/{p.name}")
    r = client.post("/api/norms/import", files={"files": ("norms.zip", zbuf.getvalue())})
    assert r.status_code == 201, r.text
    history = client.get("/api/norms/imports").json()
    assert [h["file_name"] for h in history] == ["norms.zip", "norms.xlsx"]


BAD_CASES = {
    "missing column": (
        {"prices.csv": ("service_code,don_gia_bh,", "service_code,")},
        [("prices", 1, "don_gia_bh", "missing column")],
    ),
    "negative quantity": (
        {"norm_lines_ILLUSTRATIVE.csv": ("VT-KIT-BOM,Bộ kit bơm tiêm thuốc cản quang,bộ,1,",
                                         "VT-KIT-BOM,Bộ kit bơm tiêm thuốc cản quang,bộ,-1,")},
        [("norm_lines", 3, "quantity", "negative value")],
    ),
    "unknown component": (
        {"norm_lines_ILLUSTRATIVE.csv": ("18.0220.0041,CNTT,", "18.0220.0041,PHAN_MEM,")},
        [("norm_lines", 12, "component", "unknown component")],
    ),
    "overlapping dates": (
        {"norm_sets_ILLUSTRATIVE.csv": ("2025-07-01,,true", "2025-06-01,,true")},
        [("norm_sets", 4, "effective_from", "overlapping effective dates")],
    ),
}  # fmt: skip


@pytest.mark.parametrize("case", sorted(BAD_CASES))
def test_bad_upload_rejected_and_changes_nothing(
    client: TestClient, tmp_path: Path, case: str
) -> None:
    assert client.post("/api/norms/import", files=_csv_files(EXAMPLE_DATA_DIR)).status_code == 201
    before = client.get("/api/norms").json()
    edit, expected = BAD_CASES[case]
    r = client.post("/api/norms/import", files=_csv_files(_bad_copy(tmp_path, edit)))
    assert r.status_code == 422
    body = r.json()
    assert "nothing was imported" in body["detail"]
    got = [(e["table"], e["row"], e["column"], e["message"]) for e in body["errors"]]
    for table, row, column, message in expected:
        assert any((t, rw, c) == (table, row, column) and message in m for t, rw, c, m in got), got
    assert len(client.get("/api/norms/imports").json()) == 1
    assert client.get("/api/norms").json() == before


def test_upload_not_a_catalogue(client: TestClient) -> None:
    r = client.post("/api/norms/import", files={"files": ("x.pdf", b"%PDF-1.4")})
    assert r.status_code == 422
    assert "expected one .xlsx" in r.json()["errors"][0]["message"]
    r = client.post("/api/norms/import", files={"files": ("x.xlsx", b"not a zip")})
    assert r.status_code == 422 and "cannot open workbook" in r.text
    assert client.post("/api/norms/import").status_code == 422  # no file at all


def test_cli_import_export_roundtrip(db_url: str, tmp_path: Path) -> None:
    cfg = tmp_path / "c.toml"
    cfg.write_text(f'data_dir = "{tmp_path}/var"\n[database]\nurl = "{db_url}"\n')
    runner = CliRunner()
    r = runner.invoke(main, ["--config", str(cfg), "norms", "import", "--example", "--user", "u"])
    assert r.exit_code == 0, r.output
    assert "imported catalogue #1" in r.output and "ILLUSTRATIVE" in r.output
    r = runner.invoke(main, ["--config", str(cfg), "norms", "export", str(tmp_path / "n.xlsx")])
    assert r.exit_code == 0, r.output
    r = runner.invoke(main, ["--config", str(cfg), "norms", "export", str(tmp_path / "dir")])
    assert r.exit_code == 0, r.output
    exported = sorted(p.name for p in (tmp_path / "dir").iterdir())
    assert "equipment_ILLUSTRATIVE.csv" in exported and "prices.csv" in exported
    bad = tmp_path / "dir" / "prices.csv"
    bad.write_text(bad.read_text().replace("663400", "-663400"))
    r = runner.invoke(main, ["--config", str(cfg), "norms", "import", str(tmp_path / "dir")])
    assert r.exit_code == 1
    assert "prices row 6 column don_gia_bh: negative value" in r.output
    r = runner.invoke(main, ["--config", str(cfg), "norms", "import", str(tmp_path / "n.xlsx")])
    assert r.exit_code == 0 and "catalogue #2" in r.output
