"""Catalogue import/export: a directory of CSV files or one XLSX workbook.

One CSV file per table (``<table>.csv`` or ``<table>_<LABEL>.csv``, e.g.
``norm_lines_ILLUSTRATIVE.csv``; exactly one per table), or one sheet per table
named after it (other sheets such as ``NOTE`` are ignored). The first row is the
header (lower-case column names = dataclass field names); blank rows are skipped.

The whole input is validated before anything is returned: every problem is collected
with table, row number (header = row 1, i.e. the spreadsheet row / CSV record number)
and column, and one :class:`~pricing_norms.catalogue.CatalogueError` is raised. Nothing
is half-imported. Cell formats: dates ``YYYY-MM-DD`` (or XLSX date cells), money as a
whole number of VND without separators, decimals with ``.``, booleans true/false
(also 1/0, yes/no, có/không).
"""

from __future__ import annotations

import csv
import zipfile
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any, BinaryIO

from pricing_norms.catalogue import (
    CapacityUnit,
    Catalogue,
    CatalogueError,
    CatalogueIssue,
    Component,
    Equipment,
    NormLine,
    NormSet,
    Override,
    Price,
    PriceVariant,
    Service,
    StaffCategory,
    StaffRate,
    capacity_unit_of,
    is_service_code,
    validate_catalogue,
)
from pricing_norms.money import decimal_text

__all__ = [
    "TABLES",
    "export_csv_dir",
    "export_xlsx",
    "load_catalogue",
    "load_csv_dir",
    "load_xlsx",
]

_MAX_NUMBER = Decimal(10) ** 12
_MAX_PLACES = 6


class _CellError(ValueError):
    """A cell value that cannot be parsed; the message names the problem."""


def _text(raw: str) -> str:
    return raw


def _code(raw: str) -> str:
    if any(ch.isspace() for ch in raw):
        raise _CellError("code must not contain spaces")
    return raw


def _service_code(raw: str) -> str:
    if not is_service_code(raw):
        raise _CellError("bad code format (expected XX.YYYY.ZZZZ, digits)")
    return raw


def _modality(raw: str) -> str:
    value = raw.upper()
    if not (2 <= len(value) <= 16 and value.isascii() and value.isalnum()):
        raise _CellError("bad modality (expected a DICOM modality such as CT, MR, DX)")
    return value


def _date(raw: str) -> date:
    try:
        return date.fromisoformat(raw)
    except ValueError:
        raise _CellError("bad date (expected YYYY-MM-DD)") from None


_TRUE = {"true", "1", "yes", "y", "có", "co", "x"}
_FALSE = {"false", "0", "no", "n", "không", "khong"}


def _bool(raw: str) -> bool:
    value = raw.lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise _CellError("bad boolean (expected true or false)")


def _decimal(raw: str) -> Decimal:
    try:
        value = Decimal(raw)
    except InvalidOperation:
        raise _CellError("bad number") from None
    if not value.is_finite():
        raise _CellError("bad number")
    if abs(value) >= _MAX_NUMBER:
        raise _CellError("number too large")
    exponent = value.as_tuple().exponent
    if isinstance(exponent, int) and exponent < -_MAX_PLACES:
        raise _CellError(f"more than {_MAX_PLACES} decimal places")
    return value


def _non_negative(raw: str) -> Decimal:
    value = _decimal(raw)
    if value < 0:
        raise _CellError("negative value")
    return value


def _positive(raw: str) -> Decimal:
    value = _decimal(raw)
    if value <= 0:
        raise _CellError("value must be positive")
    return value


def _money(raw: str) -> int:
    if not (raw.isascii() and raw.isdigit()):
        if raw.startswith("-") and raw[1:].isdigit():
            raise _CellError("negative value")
        raise _CellError("bad amount (expected whole VND, digits only, no separators)")
    value = int(raw)
    if value >= _MAX_NUMBER:
        raise _CellError("number too large")
    return value


def _positive_int(raw: str) -> int:
    value = _money(raw)
    if value <= 0:
        raise _CellError("value must be positive")
    return value


def _enum_parser(enum: type[Any], what: str) -> Callable[[str], Any]:
    allowed = ", ".join(member.value for member in enum)

    def parse(raw: str) -> Any:
        try:
            return enum(raw.upper())
        except ValueError:
            raise _CellError(f"unknown {what} (expected one of {allowed})") from None

    return parse


def _capacity_unit(raw: str) -> CapacityUnit:
    unit = capacity_unit_of(raw)
    if unit is None:
        raise _CellError("unknown capacity unit (expected USE or MINUTE)")
    return unit


_REQUIRED = object()


@dataclass(frozen=True)
class _Column:
    """One column: its parser, whether the column may be absent, the blank-cell value."""

    name: str
    parse: Callable[[str], Any]
    blank: Any = _REQUIRED
    optional_column: bool = False


@dataclass(frozen=True)
class _Table:
    name: str
    factory: Callable[..., Any]
    columns: tuple[_Column, ...]
    key: str | None = None


TABLES: tuple[_Table, ...] = (
    _Table(
        "norm_sets",
        NormSet,
        (
            _Column("code", _code),
            _Column("name", _text),
            _Column("legal_basis", _text, "", True),
            _Column("effective_from", _date),
            _Column("effective_to", _date, None),
            _Column("illustrative", _bool),
        ),
        key="code",
    ),
    _Table(
        "services",
        Service,
        (
            _Column("code", _service_code),
            _Column("name", _text),
            _Column("ma_nhom", _money),
            _Column("modality", _modality),
            _Column("contrast", _bool),
            _Column("unit", _text),
        ),
        key="code",
    ),
    _Table(
        "prices",
        Price,
        (
            _Column("service_code", _service_code),
            _Column("don_gia_bh", _money),
            _Column("don_gia_bv", _money),
            _Column("excludes", _text, "", True),
            _Column("effective_from", _date),
            _Column("effective_to", _date, None),
            _Column("legal_basis", _text, "", True),
            _Column("variant", _enum_parser(PriceVariant, "price variant"), PriceVariant.ANY, True),
            _Column("decision_number", _text, "", True),
            _Column("decision_date", _date, None, True),
        ),
    ),
    _Table(
        "norm_lines",
        NormLine,
        (
            _Column("norm_set_code", _code),
            _Column("service_code", _service_code),
            _Column("component", _enum_parser(Component, "component")),
            _Column("item_code", _text),
            _Column("item_name", _text),
            _Column("unit", _text),
            _Column("quantity", _non_negative),
            _Column("unit_cost", _non_negative, None),
            _Column("billed_separately", _bool, False, True),
            _Column("override", _enum_parser(Override, "override"), None, True),
        ),
    ),
    _Table(
        "staff_rates",
        StaffRate,
        (
            _Column("category", _enum_parser(StaffCategory, "staff category")),
            _Column("vnd_per_minute", _positive),
            _Column("effective_from", _date),
            _Column("effective_to", _date, None),
            _Column("basis", _text, "", True),
        ),
        key="category",
    ),
    _Table(
        "equipment",
        Equipment,
        (
            _Column("ma_may", _code),
            _Column("modality", _modality),
            _Column("name", _text),
            _Column("purchase_value", _money),
            _Column("life_years", _positive_int),
            _Column("yearly_capacity", _positive_int),
            _Column("capacity_unit", _capacity_unit),
        ),
    ),
)

_TABLE_BY_NAME = {t.name: t for t in TABLES}

#: A table as read from a file: header cells and numbered data rows, or an issue.
_RawTable = tuple[list[str], list[tuple[int, list[str]]]]


def _cell_text(value: object) -> str:
    """Normalise a CSV/XLSX cell to stripped text (dates ISO, integral floats as ints)."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, datetime):
        return value.date().isoformat()
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, float):
        return str(int(value)) if value.is_integer() else repr(value)
    return str(value).strip()


@dataclass
class _Parsed:
    items: dict[str, list[Any]]
    rows: dict[str, list[int]]
    failed_keys: dict[str, set[str]]
    unusable: set[str]


def _parse_tables(raw: Mapping[str, _RawTable], issues: list[CatalogueIssue]) -> _Parsed:
    parsed = _Parsed({}, {}, {}, set())
    for table in TABLES:
        parsed.items[table.name] = []
        parsed.rows[table.name] = []
        parsed.failed_keys[table.name] = set()
        if table.name not in raw:
            parsed.unusable.add(table.name)
            continue
        header, rows = raw[table.name]
        names = [h.strip().lower() for h in header]
        position: dict[str, int] = {}
        for index, name in enumerate(names):
            if not name:
                continue
            if name in position:
                issues.append(CatalogueIssue(table.name, 1, name, "duplicate column"))
            position.setdefault(name, index)
        missing = [
            c.name for c in table.columns if c.name not in position and not c.optional_column
        ]
        for name in missing:
            issues.append(CatalogueIssue(table.name, 1, name, "missing column"))
        if missing:
            parsed.unusable.add(table.name)
            continue
        for row_number, cells in rows:
            _parse_row(table, position, row_number, cells, parsed, issues)
    return parsed


def _parse_row(
    table: _Table,
    position: Mapping[str, int],
    row_number: int,
    cells: Sequence[str],
    parsed: _Parsed,
    issues: list[CatalogueIssue],
) -> None:
    values: dict[str, Any] = {}
    ok = True
    for column in table.columns:
        index = position.get(column.name)
        text = cells[index] if index is not None and index < len(cells) else ""
        if not text:
            if column.blank is _REQUIRED:
                issues.append(CatalogueIssue(table.name, row_number, column.name, "missing value"))
                ok = False
            else:
                values[column.name] = column.blank
            continue
        try:
            values[column.name] = column.parse(text)
        except _CellError as error:
            shown = text if len(text) <= 40 else text[:37] + "..."
            issues.append(
                CatalogueIssue(table.name, row_number, column.name, f"{error}: {shown!r}")
            )
            ok = False
    if ok:
        parsed.items[table.name].append(table.factory(**values))
        parsed.rows[table.name].append(row_number)
    elif table.key is not None and table.key in position:
        key_index = position[table.key]
        if key_index < len(cells) and cells[key_index]:
            parsed.failed_keys[table.name].add(cells[key_index])


def _build(raw: Mapping[str, _RawTable], issues: list[CatalogueIssue]) -> Catalogue:
    parsed = _parse_tables(raw, issues)
    items = parsed.items
    assume_known: dict[str, set[str]] = {
        "services": set(parsed.failed_keys["services"]),
        "norm_sets": set(parsed.failed_keys["norm_sets"]),
        "staff_rates": {k.upper() for k in parsed.failed_keys["staff_rates"]},
    }
    if "services" in parsed.unusable:
        assume_known["services"] |= {p.service_code for p in items["prices"]}
        assume_known["services"] |= {n.service_code for n in items["norm_lines"]}
    if "norm_sets" in parsed.unusable:
        assume_known["norm_sets"] |= {n.norm_set_code for n in items["norm_lines"]}
    issues.extend(
        validate_catalogue(
            norm_sets=items["norm_sets"],
            services=items["services"],
            prices=items["prices"],
            norm_lines=items["norm_lines"],
            staff_rates=items["staff_rates"],
            equipment=items["equipment"],
            rows=parsed.rows,
            assume_known=assume_known,
        )
    )
    if issues:
        order = {table.name: index for index, table in enumerate(TABLES)}
        issues.sort(key=lambda i: (order.get(i.table, -1), i.row or 0, i.column or ""))
        raise CatalogueError(issues)
    return Catalogue(
        norm_sets=items["norm_sets"],
        services=items["services"],
        prices=items["prices"],
        norm_lines=items["norm_lines"],
        staff_rates=items["staff_rates"],
        equipment=items["equipment"],
    )


def _numbered(rows: Iterable[Sequence[object]]) -> Iterator[tuple[int, list[str]]]:
    """Data rows with their row number (header = 1), blank rows skipped."""
    for number, row in enumerate(rows, start=2):
        cells = [_cell_text(value) for value in row]
        if any(cells):
            yield number, cells


# -- CSV ------------------------------------------------------------------------


def _table_files(directory: Path, issues: list[CatalogueIssue]) -> dict[str, Path]:
    found: dict[str, Path] = {}
    for table in TABLES:
        candidates = sorted(
            p
            for p in directory.iterdir()
            if p.is_file()
            and p.suffix.lower() == ".csv"
            and (p.stem == table.name or p.stem.startswith(table.name + "_"))
        )
        if not candidates:
            issues.append(CatalogueIssue(table.name, None, None, f"missing file {table.name}.csv"))
        elif len(candidates) > 1:
            names = ", ".join(p.name for p in candidates)
            issues.append(CatalogueIssue(table.name, None, None, f"several files: {names}"))
        else:
            found[table.name] = candidates[0]
    return found


def load_csv_dir(directory: str | Path) -> Catalogue:
    """Load and validate a catalogue from a directory of CSV files (UTF-8, BOM allowed)."""
    folder = Path(directory)
    if not folder.is_dir():
        issue = CatalogueIssue("catalogue", None, None, f"not a directory: {folder}")
        raise CatalogueError([issue])
    issues: list[CatalogueIssue] = []
    raw: dict[str, _RawTable] = {}
    for name, path in _table_files(folder, issues).items():
        try:
            with path.open(encoding="utf-8-sig", newline="") as handle:
                records = list(csv.reader(handle))
        except UnicodeDecodeError as error:
            issues.append(CatalogueIssue(name, None, None, f"{path.name} is not UTF-8: {error}"))
            continue
        except csv.Error as error:
            issues.append(CatalogueIssue(name, None, None, f"{path.name}: bad CSV: {error}"))
            continue
        if not records:
            issues.append(CatalogueIssue(name, 1, None, f"{path.name} has no header row"))
            continue
        raw[name] = ([_cell_text(h) for h in records[0]], list(_numbered(records[1:])))
    return _build(raw, issues)


# -- XLSX -----------------------------------------------------------------------


def load_xlsx(source: str | Path | BinaryIO) -> Catalogue:
    """Load and validate a catalogue from one workbook, one sheet per table."""
    from openpyxl import load_workbook  # imported when needed (memory of other processes)
    from openpyxl.utils.exceptions import InvalidFileException

    try:
        workbook = load_workbook(source, read_only=True, data_only=True)
    except (InvalidFileException, zipfile.BadZipFile, KeyError, OSError) as error:
        issue = CatalogueIssue("catalogue", None, None, f"cannot open workbook: {error}")
        raise CatalogueError([issue]) from None
    issues: list[CatalogueIssue] = []
    raw: dict[str, _RawTable] = {}
    try:
        for table in TABLES:
            if table.name not in workbook.sheetnames:
                issues.append(CatalogueIssue(table.name, None, None, f"missing sheet {table.name}"))
                continue
            rows = workbook[table.name].iter_rows(values_only=True)
            header = next(rows, None)
            if header is None:
                issues.append(CatalogueIssue(table.name, 1, None, "sheet has no header row"))
                continue
            raw[table.name] = ([_cell_text(h) for h in header], list(_numbered(rows)))
    finally:
        workbook.close()
    return _build(raw, issues)


def load_catalogue(path: str | Path) -> Catalogue:
    """Load a CSV directory or an ``.xlsx`` workbook, whichever ``path`` is."""
    target = Path(path)
    if target.is_dir():
        return load_csv_dir(target)
    return load_xlsx(target)


# -- export ---------------------------------------------------------------------


def _export_text(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, Decimal):
        return decimal_text(value)
    if isinstance(value, date):
        return value.isoformat()
    return str(value)


def _records(catalogue: Catalogue, table: _Table) -> Iterator[list[object]]:
    for item in catalogue.tables()[table.name]:
        yield [getattr(item, column.name) for column in table.columns]


#: Tables that hold official figures (codes, decided prices) even in an illustrative
#: catalogue; the others (norms, staff rates, equipment) are labelled with it.
_OFFICIAL_TABLES = frozenset({"services", "prices"})


def _file_name(catalogue: Catalogue, table: _Table) -> str:
    labelled = catalogue.has_illustrative and table.name not in _OFFICIAL_TABLES
    return f"{table.name}_ILLUSTRATIVE.csv" if labelled else f"{table.name}.csv"


def export_csv_dir(catalogue: Catalogue, directory: str | Path) -> list[Path]:
    """Write one CSV per table (UTF-8) and return the paths.

    When the catalogue holds illustrative norm sets, every file except services and
    prices is named ``<table>_ILLUSTRATIVE.csv`` (as in ``pricing_norms/data``).
    """
    folder = Path(directory)
    folder.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    for table in TABLES:
        path = folder / _file_name(catalogue, table)
        with path.open("w", encoding="utf-8", newline="") as handle:
            writer = csv.writer(handle, lineterminator="\n")
            writer.writerow([column.name for column in table.columns])
            for record in _records(catalogue, table):
                writer.writerow([_export_text(value) for value in record])
        written.append(path)
    return written


def _xlsx_value(value: object) -> object:
    """Cell value for XLSX: numbers stay numeric when a float holds them exactly."""
    if value is None:
        return None
    if isinstance(value, bool | int | date):
        return value
    if isinstance(value, Decimal):
        if value == value.to_integral_value():
            return int(value)
        as_float = float(value)
        return as_float if Decimal(repr(as_float)) == value else decimal_text(value)
    return str(value)


def export_xlsx(catalogue: Catalogue, target: str | Path | BinaryIO) -> None:
    """Write one sheet per table; a first ``NOTE`` sheet flags illustrative norms."""
    from openpyxl import Workbook

    workbook = Workbook(write_only=True)
    note = catalogue.illustrative_note
    if note is not None:
        workbook.create_sheet("NOTE").append([note])
    for table in TABLES:
        sheet = workbook.create_sheet(table.name)
        sheet.append([column.name for column in table.columns])
        for record in _records(catalogue, table):
            sheet.append([_xlsx_value(value) for value in record])
    workbook.save(target)
