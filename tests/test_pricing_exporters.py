"""Exporters: CSV and XLSX read back, XML3/XML2 parsed back, streaming memory bound."""

from __future__ import annotations

import csv
import io
import tracemalloc
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from datetime import date, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from openpyxl import load_workbook

from pricing_norms.catalogue import ILLUSTRATIVE_NOTE, Component
from pricing_norms.claims import XML2_COLUMNS, XML3_COLUMNS, ClaimContext
from pricing_norms.costing import CostRecord, cost_study
from pricing_norms.example import load_example_catalogue
from pricing_norms.exporters import (
    COST_ROW_COLUMNS,
    VND_FORMAT,
    aggregate_columns,
    write_csv,
    write_xlsx,
    write_xml130,
)
from pricing_norms.mapping import StudyFacts
from pricing_norms.reports import CostRow, aggregate, cost_row

pytestmark = pytest.mark.unit

CT = "18.0220.0041"


def record(service: str, day: date, machine: str, **kw: object) -> CostRecord:
    facts = StudyFacts(day, "CT", department="K02", **kw)  # type: ignore[arg-type]
    return cost_study(load_example_catalogue(), service, facts, machine)


@pytest.fixture(scope="module")
def rows() -> list[CostRow]:
    return [
        cost_row(record(CT, date(2025, 6, 2), "CT01"), study_key="LK1", staff="BS01"),
        cost_row(record(CT, date(2025, 7, 2), "CT01"), study_key="LK2", staff="BS01"),
        cost_row(
            record("18.0119.0028", date(2025, 7, 3), "DX01", filmless=True),
            study_key="LK3",
            staff="BS02",
        ),
    ]


def test_csv_cost_rows_read_back(rows: list[CostRow]) -> None:
    out = io.StringIO()
    assert write_csv(iter(rows), COST_ROW_COLUMNS, out) == 3
    back = list(csv.DictReader(io.StringIO(out.getvalue())))
    assert [r["study_key"] for r in back] == ["LK1", "LK2", "LK3"]
    assert back[0]["full_cost"] == "368087" and back[1]["full_cost"] == "341776"
    assert back[0]["margin_BH"] == "295313"
    assert back[0]["norm_illustrative"] == "true"
    assert back[2]["VAT_TU"] == "3000" and back[2]["study_date"] == "2025-07-03"


def test_xlsx_aggregate_read_back_with_formats(rows: list[CostRow], tmp_path: Path) -> None:
    by = ["month", "service"]
    groups = aggregate(rows, by)
    target = tmp_path / "report.xlsx"
    count = write_xlsx(
        iter(groups), aggregate_columns(by), target, sheet_title="by month", note=ILLUSTRATIVE_NOTE
    )
    assert count == len(groups) == 3
    sheet = load_workbook(target)["by month"]
    values = list(sheet.iter_rows(values_only=True))
    assert values[0][0] == ILLUSTRATIVE_NOTE
    header = list(values[1])
    assert header[:3] == ["month", "service", "study_count"]
    table = [dict(zip(header, row, strict=True)) for row in values[2:]]
    assert [(r["month"], r["service"], r["study_count"]) for r in table] == [
        ("2025-06", CT, 1),
        ("2025-07", "18.0119.0028", 1),
        ("2025-07", CT, 1),
    ]
    for expected, got in zip(groups, table, strict=True):
        assert got["full_cost"] == expected.full_cost
        assert got["margin_BH"] == expected.margin_bh
        assert got["NHAN_CONG"] == expected.component(Component.NHAN_CONG)
        assert got["illustrative_studies"] == expected.illustrative_count
    money_cell = sheet.cell(row=3, column=header.index("full_cost") + 1)
    assert money_cell.number_format == VND_FORMAT and money_cell.value == 368_087


def test_xlsx_cost_rows_dates_and_no_note(rows: list[CostRow], tmp_path: Path) -> None:
    target = tmp_path / "rows.xlsx"
    write_xlsx(rows, COST_ROW_COLUMNS, target)
    sheet = load_workbook(target).active
    assert sheet is not None
    assert sheet.cell(row=1, column=1).value == "study_key"
    assert sheet.cell(row=2, column=2).value == datetime(2025, 6, 2)
    assert sheet.cell(row=2, column=9).value is True  # norm_illustrative


def _contexts() -> list[tuple[CostRecord, ClaimContext]]:
    ct = record(CT, date(2025, 6, 2), "CT01", contrast_volume_ml=Decimal("85.5"))
    head = record("18.0149.0040", date(2025, 6, 2), "CT02")
    mri = record("18.0297.0065", date(2025, 6, 3), "MR01", contrast_volume_ml=Decimal(12))
    order = datetime(2025, 6, 2, 7, 45)
    return [
        (ct, ClaimContext("LK-A", order, datetime(2025, 6, 2, 8, 5), datetime(2025, 6, 2, 9, 30),
                          ma_bac_si="BS001", nguoi_thuc_hien="KTV007", ma_benh="K80.2",
                          ma_may="CL.1.01001.1")),
        (head, ClaimContext("LK-A", order, datetime(2025, 6, 2, 8, 40), tyle_tt_bh=80,
                            nguoi_thuc_hien="KTV007")),
        (mri, ClaimContext("LK-B", order, datetime(2025, 6, 3, 14, 0), ma_khoa="K09",
                           ma_benh="G40 & <R56>")),
    ]  # fmt: skip


def test_xml3_xml2_parse_back() -> None:
    xml3, xml2 = io.BytesIO(), io.BytesIO()
    counts = write_xml130(iter(_contexts()), xml3, xml2, note=ILLUSTRATIVE_NOTE)
    assert counts == (3, 2)
    raw3 = xml3.getvalue().decode("utf-8")
    assert raw3.startswith('<?xml version="1.0" encoding="UTF-8"?>\n<!-- ILLUSTRATIVE')
    assert "3 stud(y/ies) costed with ILLUSTRATIVE norms" in raw3
    root = ET.fromstring(xml3.getvalue())
    assert root.tag == "CHITIEU_CHITIET_DVKT_VTYT"
    items = root.findall("./DSACH_CHI_TIET_DVKT/CHI_TIET_DVKT")
    assert [child.tag for child in items[0]] == list(XML3_COLUMNS)
    got = [{child.tag: child.text or "" for child in item} for item in items]
    assert [(r["MA_LK"], r["STT"]) for r in got] == [("LK-A", "1"), ("LK-A", "2"), ("LK-B", "1")]
    first = got[0]
    assert first["MA_DICH_VU"] == CT and first["MA_NHOM"] == "2"
    assert (first["SO_LUONG"], first["DON_GIA_BV"], first["THANH_TIEN_BV"]) == (
        "1",
        "663400",
        "663400",
    )
    assert first["NGAY_YL"] == "202506020745" and first["NGAY_TH_YL"] == "202506020805"
    assert first["NGAY_KQ"] == "202506020930" and first["MA_MAY"] == "CL.1.01001.1"
    assert (first["MA_KHOA"], first["MA_BAC_SI"], first["NGUOI_THUC_HIEN"]) == (
        "K02",
        "BS001",
        "KTV007",
    )
    # CT head with TYLE_TT_BH 80: THANH_TIEN_BH = 550,100 * 0.8 = 440,080
    assert (got[1]["THANH_TIEN_BV"], got[1]["THANH_TIEN_BH"]) == ("550100", "440080")
    assert got[1]["NGAY_KQ"] == ""
    assert (got[2]["MA_KHOA"], got[2]["MA_BENH"]) == ("K09", "G40 & <R56>")

    drugs = ET.fromstring(xml2.getvalue()).findall("./DSACH_CHI_TIET_THUOC/CHI_TIET_THUOC")
    assert [child.tag for child in drugs[0]] == list(XML2_COLUMNS)
    d = [{child.tag: child.text or "" for child in item} for item in drugs]
    # contrast of the CT: 85.5 ml * 4,500 = 384,750, carrying the CT service code
    assert (d[0]["MA_LK"], d[0]["STT"], d[0]["MA_DICH_VU"]) == ("LK-A", "1", CT)
    assert (d[0]["SO_LUONG"], d[0]["DON_GIA"], d[0]["THANH_TIEN_BV"]) == ("85.5", "4500", "384750")
    # gadolinium of the MRI: 12 ml * 25,000 = 300,000
    assert (d[1]["MA_LK"], d[1]["STT"], d[1]["MA_DICH_VU"]) == ("LK-B", "1", "18.0297.0065")
    assert d[1]["THANH_TIEN_BH"] == "300000"


def test_xml_without_illustrative_has_no_comments() -> None:
    official = record("18.0149.0040", date(2025, 6, 2), "CT02")
    official = CostRecord.from_dict({**official.to_dict(), "norm_illustrative": False})
    xml3, xml2 = io.BytesIO(), io.BytesIO()
    context = ClaimContext("LK", datetime(2025, 6, 2, 8), datetime(2025, 6, 2, 9))
    assert write_xml130([(official, context)], xml3, xml2) == (1, 0)
    assert b"<!--" not in xml3.getvalue()
    assert ET.fromstring(xml2.getvalue()).find("./DSACH_CHI_TIET_THUOC") is not None


def _xml_allowed(ch: str) -> bool:
    if ch in "\t\n\r":
        return True
    return ch >= " " and not ("\ud800" <= ch <= "\udfff") and ch not in "\ufffe\uffff"


@settings(max_examples=50, deadline=None)
@given(st.text(max_size=40))
def test_xml_escapes_any_text(text: str) -> None:
    base = record("18.0149.0040", date(2025, 6, 2), "CT02")
    context = ClaimContext(
        "LK" + text, datetime(2025, 6, 2, 8), datetime(2025, 6, 2, 9), ma_benh=text
    )
    xml3, xml2 = io.BytesIO(), io.BytesIO()
    write_xml130([(base, context)], xml3, xml2, note=text)
    item = ET.fromstring(xml3.getvalue()).find("./DSACH_CHI_TIET_DVKT/CHI_TIET_DVKT")
    assert item is not None
    kept = "".join(ch for ch in text if _xml_allowed(ch))
    # XML parsers normalise \r and \r\n to \n in text content
    expected = kept.replace("\r\n", "\n").replace("\r", "\n")
    assert (item.findtext("MA_BENH") or "") == expected


def _many_rows(n: int) -> Iterator[CostRow]:
    start = date(2025, 1, 1)
    for i in range(n):
        yield CostRow(
            f"LK{i:08d}", start + timedelta(days=i % 90), "K02", "CT", "CT01", CT, "BS01",
            "DM", True, 226_000, 0, 28_087, 90_000, 0, 9_000, 0, 15_000, 368_087,
            663_400, 663_400, 450_000,
        )  # fmt: skip


class _Sink:
    """Discards bytes or text, counting them."""

    def __init__(self) -> None:
        self.size = 0

    def write(self, data: bytes | str) -> int:
        self.size += len(data)
        return len(data)


def _peak(func) -> int:
    tracemalloc.start()
    try:
        func()
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


@pytest.mark.parametrize("kind", ["csv", "xlsx", "xml"])
def test_exporters_stream_in_constant_memory(kind: str, tmp_path: Path) -> None:
    ct = record(CT, date(2025, 6, 2), "CT01")

    def run(n: int) -> None:
        if kind == "csv":
            assert write_csv(_many_rows(n), COST_ROW_COLUMNS, _Sink()) == n
        elif kind == "xlsx":
            assert write_xlsx(_many_rows(n), COST_ROW_COLUMNS, tmp_path / f"{n}.xlsx") == n
        else:
            context = ClaimContext("LK", datetime(2025, 6, 2, 8), datetime(2025, 6, 2, 9))
            entries = ((ct, context) for _ in range(n))
            assert write_xml130(entries, _Sink(), _Sink()) == (n, n)

    small, large = (100, 1_000) if kind == "xlsx" else (500, 5_000)
    peak_small, peak_large = _peak(lambda: run(small)), _peak(lambda: run(large))
    # ten times the rows must not need (anywhere near) ten times the memory
    assert peak_large < peak_small * 1.5 + 256 * 1024, (peak_small, peak_large)
