"""Catalogue import/export: precise errors, nothing half-imported, CSV/XLSX round trips."""

from __future__ import annotations

import csv
import io
import shutil
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from openpyxl import load_workbook

from pricing_norms.catalogue import CatalogueError
from pricing_norms.catalogue_io import (
    export_csv_dir,
    export_xlsx,
    load_catalogue,
    load_csv_dir,
    load_xlsx,
)
from pricing_norms.example import EXAMPLE_DATA_DIR, load_example_catalogue

pytestmark = pytest.mark.unit

MALFORMED = Path(__file__).parent / "fixtures" / "pricing" / "malformed"


def issues_of(error: CatalogueError) -> set[tuple[str, int | None, str | None]]:
    return {(i.table, i.row, i.column) for i in error.issues}


def test_malformed_catalogue_reports_every_error_with_row_and_column() -> None:
    with pytest.raises(CatalogueError) as caught:
        load_csv_dir(MALFORMED)
    assert issues_of(caught.value) == {
        ("services", 3, "code"),  # 18.119.0028
        ("prices", 3, "effective_from"),  # overlaps row 2 for 18.0149.0040
        ("prices", 4, "service_code"),  # 18.0000.0001 not in services
        ("prices", 5, "don_gia_bh"),  # -5
        ("prices", 6, "effective_from"),  # 2024-31-12
        ("norm_sets", 3, "effective_from"),  # T-B overlaps T-A, both cover 18.0149.0040
        ("norm_lines", 3, "quantity"),  # -1
        ("norm_lines", 4, "component"),  # VATTU
        ("norm_lines", 5, "service_code"),  # 18.0001.9999
        ("norm_lines", 6, "unit_cost"),  # abc
        ("norm_lines", 7, "unit_cost"),  # NHAN_CONG with a typed unit cost
        ("staff_rates", 2, "effective_from"),  # 2024-13-01
        ("equipment", 1, "life_years"),  # column missing
    }
    text = str(caught.value)
    assert "equipment row 1 column life_years: missing column" in text
    assert "norm_lines row 3 column quantity: negative value: '-1'" in text
    assert "unknown component" in text and "'VATTU'" in text
    assert "unknown service 18.0001.9999" in text
    assert "overlapping effective dates for the price of service 18.0149.0040" in text
    assert "bad code format" in text


def test_missing_and_ambiguous_table_files(tmp_path: Path) -> None:
    shutil.copytree(EXAMPLE_DATA_DIR, tmp_path / "cat")
    (tmp_path / "cat" / "services.csv").unlink()
    shutil.copy(tmp_path / "cat" / "prices.csv", tmp_path / "cat" / "prices_copy.csv")
    with pytest.raises(CatalogueError) as caught:
        load_csv_dir(tmp_path / "cat")
    messages = [str(i) for i in caught.value.issues]
    assert any("missing file services.csv" in m for m in messages)
    assert any("several files: prices.csv, prices_copy.csv" in m for m in messages)
    # prices/norm lines referencing the unreadable services table are not reported again
    assert not any("unknown service" in m for m in messages)


def test_bad_row_in_valid_catalogue_is_rejected_whole(tmp_path: Path) -> None:
    folder = tmp_path / "cat"
    shutil.copytree(EXAMPLE_DATA_DIR, folder)
    lines_file = folder / "norm_lines_ILLUSTRATIVE.csv"
    rows = list(csv.reader(lines_file.open(encoding="utf-8")))
    rows[10][6] = "-3"  # row 11 (header = row 1), column quantity
    with lines_file.open("w", encoding="utf-8", newline="") as handle:
        csv.writer(handle).writerows(rows)
    with pytest.raises(CatalogueError) as caught:
        load_catalogue(folder)
    assert issues_of(caught.value) == {("norm_lines", 11, "quantity")}


def test_csv_round_trip(tmp_path: Path) -> None:
    catalogue = load_example_catalogue()
    written = export_csv_dir(catalogue, tmp_path / "out")
    names = {p.name for p in written}
    assert "norm_lines_ILLUSTRATIVE.csv" in names and "norm_sets_ILLUSTRATIVE.csv" in names
    again = load_csv_dir(tmp_path / "out")
    assert again == catalogue
    assert again.norm_lines == catalogue.norm_lines
    # exporting the re-imported catalogue gives identical files
    export_csv_dir(again, tmp_path / "out2")
    for path in written:
        assert (tmp_path / "out2" / path.name).read_bytes() == path.read_bytes()


def test_xlsx_round_trip_and_note(tmp_path: Path) -> None:
    catalogue = load_example_catalogue()
    target = tmp_path / "catalogue.xlsx"
    export_xlsx(catalogue, target)
    assert load_xlsx(target) == catalogue
    assert load_catalogue(target) == catalogue
    workbook = load_workbook(target, read_only=True)
    assert workbook.sheetnames[0] == "NOTE"
    note = next(workbook["NOTE"].iter_rows(values_only=True))[0]
    assert isinstance(note, str) and "ILLUSTRATIVE" in note and "minh hoạ" in note
    workbook.close()


def test_xlsx_from_stream_and_garbage() -> None:
    buffer = io.BytesIO()
    export_xlsx(load_example_catalogue(), buffer)
    buffer.seek(0)
    assert len(load_xlsx(buffer).services) == 7
    with pytest.raises(CatalogueError, match="cannot open workbook"):
        load_xlsx(io.BytesIO(b"not a workbook"))


def test_xlsx_errors_use_sheet_rows(tmp_path: Path) -> None:
    target = tmp_path / "catalogue.xlsx"
    export_xlsx(load_example_catalogue(), target)
    workbook = load_workbook(target)
    sheet = workbook["prices"]
    sheet.cell(row=4, column=2).value = -10  # don_gia_bh of the third price
    sheet.cell(row=5, column=5).value = "yesterday"  # effective_from of the fourth
    workbook.save(target)
    with pytest.raises(CatalogueError) as caught:
        load_xlsx(target)
    assert issues_of(caught.value) == {
        ("prices", 4, "don_gia_bh"),
        ("prices", 5, "effective_from"),
    }


_COLUMNS = {
    "quantity": 6,
    "unit_cost": 7,
    "component": 2,
    "service_code": 1,
    "billed_separately": 8,
}


@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(
    column=st.sampled_from(sorted(_COLUMNS)),
    value=st.text(
        alphabet=st.characters(codec="utf-8", exclude_characters="\x00"),
        max_size=30,
    ),
)
def test_importer_never_crashes_on_arbitrary_cells(
    tmp_path_factory: pytest.TempPathFactory, column: str, value: str
) -> None:
    folder = tmp_path_factory.mktemp("cat")
    for source in EXAMPLE_DATA_DIR.glob("*.csv"):
        shutil.copy(source, folder / source.name)
    lines_file = folder / "norm_lines_ILLUSTRATIVE.csv"
    rows = list(csv.reader(lines_file.open(encoding="utf-8")))
    rows[5][_COLUMNS[column]] = value
    with lines_file.open("w", encoding="utf-8", newline="") as handle:
        csv.writer(handle).writerows(rows)
    try:
        catalogue = load_csv_dir(folder)
    except CatalogueError as error:
        assert error.issues, "a CatalogueError always lists its issues"
        # only the edited row (or the norm set it may now overlap with) is blamed
        assert {i.table for i in error.issues} <= {"norm_lines", "norm_sets"}
        assert all(i.row == 6 for i in error.issues if i.table == "norm_lines")
    else:
        assert len(catalogue.norm_lines) == 73
