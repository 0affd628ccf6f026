"""Streaming report exporters: CSV, XLSX (openpyxl write-only) and XML3/XML2 (130/QD-BYT).

Every writer consumes its rows from an iterator one at a time and never keeps them:
memory stays flat whatever the number of rows (the XLSX writer streams to openpyxl's
temporary worksheet file; the XML writer emits escaped text per row). Columns are
described by :class:`Column`; ready-made sets exist for :class:`CostRow` and
:class:`AggregateRow`.

Illustrative norms are always labelled: cost rows carry a ``norm_illustrative``
column and aggregates an ``illustrative_studies`` count; CSV and XLSX take an optional
``note`` written on the line above the header (pass ``catalogue.illustrative_note``); the
XML files get the note as a leading comment, plus a trailing comment counting the studies
costed with illustrative norms. XML3 rows must arrive grouped by MA_LK (STT restarts at
1 for each MA_LK and is counted separately in XML3 and XML2); every XML row is validated
against ``data/claims_130.xsd`` before it is written (a chunk at a time).
"""

from __future__ import annotations

import csv
import operator
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import Any, BinaryIO, Generic, Protocol, TypeVar
from xml.sax.saxutils import escape

from pricing_norms.catalogue import Component
from pricing_norms.claims import XML2_COLUMNS, XML3_COLUMNS, ClaimContext, xml2_rows, xml3_rows
from pricing_norms.claims_schema import validate_rows
from pricing_norms.costing import CostRecord
from pricing_norms.money import decimal_text
from pricing_norms.reports import AggregateRow, CostRow

__all__ = [
    "COST_ROW_COLUMNS",
    "VND_FORMAT",
    "XML_CHUNK_ROWS",
    "ByteSink",
    "Column",
    "TextSink",
    "aggregate_columns",
    "write_csv",
    "write_xlsx",
    "write_xml130",
]

T = TypeVar("T")


class ByteSink(Protocol):
    """Anything with ``write(bytes)``: a file opened "wb", BytesIO, a socket writer..."""

    def write(self, data: bytes, /) -> object: ...


class TextSink(Protocol):
    """Anything with ``write(str)``: a file opened "w" (newline=""), StringIO..."""

    def write(self, text: str, /) -> object: ...


VND_FORMAT = "#,##0"
DATE_FORMAT = "yyyy-mm-dd"


@dataclass(frozen=True, slots=True)
class Column(Generic[T]):
    """A report column: header, value getter, and whether it is money (VND)."""

    header: str
    value: Callable[[T], object]
    money: bool = False


class _HasComponents(Protocol):
    def component(self, component: Component) -> int: ...


C = TypeVar("C", bound=_HasComponents)


def _money(header: str, get: Callable[[T], int]) -> Column[T]:
    return Column(header, get, money=True)


def _component_columns(row_type: type[C]) -> list[Column[C]]:
    def getter(component: Component) -> Callable[[C], int]:
        field = component.value.lower()
        if hasattr(row_type, field):  # a plain field (CostRow): no method call per cell
            return operator.attrgetter(field)
        return lambda row: row.component(component)

    return [_money(component.value, getter(component)) for component in Component]


def _key_getter(index: int) -> Callable[[AggregateRow], str]:
    return lambda row: row.key[index]


COST_ROW_COLUMNS: tuple[Column[CostRow], ...] = (
    Column("study_key", lambda r: r.study_key),
    Column("study_date", lambda r: r.study_date),
    Column("MA_KHOA", lambda r: r.department),
    Column("modality", lambda r: r.modality),
    Column("MA_MAY", lambda r: r.machine),
    Column("MA_DICH_VU", lambda r: r.service_code),
    Column("staff", lambda r: r.staff),
    Column("norm_set", lambda r: r.norm_set_code),
    Column("norm_illustrative", lambda r: r.norm_illustrative),
    *_component_columns(CostRow),
    _money("full_cost", lambda r: r.full_cost),
    _money("DON_GIA_BH", lambda r: r.price_bh),
    _money("DON_GIA_BV", lambda r: r.price_bv),
    _money("margin_BH", lambda r: r.margin_bh),
    _money("margin_BV", lambda r: r.margin_bv),
    _money("separately_billed", lambda r: r.separately_billed),
)


def aggregate_columns(by: Sequence[str]) -> tuple[Column[AggregateRow], ...]:
    """Columns for :func:`pricing_norms.reports.aggregate` output grouped by ``by``."""
    keys = [Column(name, _key_getter(index)) for index, name in enumerate(by)]
    return (
        *keys,
        Column("study_count", lambda r: r.study_count),
        *_component_columns(AggregateRow),
        _money("full_cost", lambda r: r.full_cost),
        _money("billed_BH", lambda r: r.billed_bh),
        _money("billed_BV", lambda r: r.billed_bv),
        _money("margin_BH", lambda r: r.margin_bh),
        _money("margin_BV", lambda r: r.margin_bv),
        _money("separately_billed", lambda r: r.separately_billed),
        Column("illustrative_studies", lambda r: r.illustrative_count),
    )


def _text(value: object) -> str:
    kind = type(value)
    if kind is str:  # fast path: most cells are codes or whole VND
        return value  # type: ignore[return-value]
    if kind is int:
        return str(value)
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, Decimal):
        return decimal_text(value)
    if isinstance(value, date):
        return value.isoformat()
    return str(value)


def write_csv(
    rows: Iterable[T], columns: Sequence[Column[T]], out: TextSink, *, note: str | None = None
) -> int:
    """Stream ``rows`` as CSV (header first) to a text stream; returns the row count.

    A ``note`` (the illustrative-norms warning) is written as a one-cell line above the
    header. Open files with ``newline=""``; use ``encoding="utf-8-sig"`` for Excel.
    """
    writer = csv.writer(out, lineterminator="\r\n")
    if note is not None:
        writer.writerow([note])
    writer.writerow([column.header for column in columns])
    getters = [column.value for column in columns]
    write = writer.writerow
    count = 0
    for row in rows:
        values = [get(row) for get in getters]
        # str and int cells go to the csv module as they are; others through _text
        write([v if type(v) is str or type(v) is int else _text(v) for v in values])
        count += 1
    return count


def _xlsx_cell(sheet: Any, value: Any, money: bool, cell_type: Any) -> object:
    if isinstance(value, Decimal):
        value = float(value) if value != value.to_integral_value() else int(value)
    if money or isinstance(value, date):
        cell = cell_type(sheet, value=value)
        cell.number_format = VND_FORMAT if money else DATE_FORMAT
        return cell
    return value


def write_xlsx(
    rows: Iterable[T],
    columns: Sequence[Column[T]],
    target: str | Path | BinaryIO,
    *,
    sheet_title: str = "report",
    note: str | None = None,
) -> int:
    """Stream ``rows`` to an XLSX workbook in openpyxl write-only mode.

    Money columns get the ``#,##0`` VND format, dates ``yyyy-mm-dd``. A ``note`` (e.g.
    the illustrative-norms warning) is written in bold on row 1, above the header.
    Returns the data row count.
    """
    # openpyxl is imported when a workbook is written, not by every process that
    # imports the exporters (about 10 MB of memory in the DICOM receivers).
    from openpyxl import Workbook
    from openpyxl.cell import WriteOnlyCell
    from openpyxl.styles import Font

    workbook = Workbook(write_only=True)
    sheet = workbook.create_sheet(sheet_title)
    if note is not None:
        cell = WriteOnlyCell(sheet, value=note)
        cell.font = Font(bold=True, color="C00000")
        sheet.append([cell])
    sheet.append([column.header for column in columns])
    count = 0
    for row in rows:
        sheet.append([_xlsx_cell(sheet, c.value(row), c.money, WriteOnlyCell) for c in columns])
        count += 1
    workbook.save(target)
    return count


#: Rows per validated chunk of an XML3/XML2 table.
XML_CHUNK_ROWS = 256

_XML_ILLEGAL = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")


_XML_SPECIAL = re.compile("[&<>\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")


def _xml_text(value: str) -> str:
    if _XML_SPECIAL.search(value) is None:  # fast path: nothing to escape or strip
        return value
    return escape(_XML_ILLEGAL.sub("", value))


def _comment(text: str) -> str:
    safe = _XML_ILLEGAL.sub("", text).replace("--", "- -").rstrip("-")
    return f"<!-- {safe} -->\n"


class _XmlTable:
    """Streams one 130/QĐ-BYT table: root / list / row elements, STT per MA_LK.

    Rows are serialised into a chunk of :data:`XML_CHUNK_ROWS`; each chunk is validated
    against the schema (:mod:`pricing_norms.claims_schema`) before it is written, so no
    row reaches ``out`` unvalidated and memory holds one chunk at most.
    """

    def __init__(
        self, out: ByteSink, root: str, list_tag: str, row_tag: str, columns: Sequence[str]
    ) -> None:
        self._out = out
        self._root, self._list_tag, self._row_tag = root, list_tag, row_tag
        self._columns = columns
        self._tags = [(f"<{c}>", f"</{c}>") for c in columns]
        self._row_open, self._row_close = f"<{row_tag}>", f"</{row_tag}>\n"
        self._stt_index = list(columns).index("STT")
        self._ma_lk: str | None = None
        self._stt = 0
        self._chunk: list[bytes] = []
        self.count = 0

    def start(self, note: str | None) -> None:
        self._out.write(b'<?xml version="1.0" encoding="UTF-8"?>\n')
        if note is not None:
            self._out.write(_comment(note).encode("utf-8"))
        self._out.write(f"<{self._root}>\n<{self._list_tag}>\n".encode())

    def row(self, values: dict[str, str]) -> None:
        ma_lk = values["MA_LK"]
        self._stt = self._stt + 1 if ma_lk == self._ma_lk else 1
        self._ma_lk = ma_lk
        cells = [values.get(c, "") for c in self._columns]
        cells[self._stt_index] = str(self._stt)
        if _XML_SPECIAL.search("".join(cells)) is not None:  # rare: escape cell by cell
            cells = [_xml_text(cell) for cell in cells]
        parts = [self._row_open]
        for (opening, closing), cell in zip(self._tags, cells, strict=True):
            parts += (opening, cell, closing)
        parts.append(self._row_close)
        self._chunk.append("".join(parts).encode("utf-8"))
        self.count += 1
        if len(self._chunk) >= XML_CHUNK_ROWS:
            self._flush()

    def _flush(self) -> None:
        if not self._chunk:
            return
        data = b"".join(self._chunk)
        validate_rows(self._root, self._list_tag, data, self.count - len(self._chunk) + 1)
        self._out.write(data)
        self._chunk.clear()

    def finish(self, trailer: str | None) -> None:
        self._flush()
        self._out.write(f"</{self._list_tag}>\n</{self._root}>\n".encode())
        if trailer is not None:
            self._out.write(_comment(trailer).encode("utf-8"))


def write_xml130(
    entries: Iterable[tuple[CostRecord, ClaimContext]],
    xml3_out: ByteSink,
    xml2_out: ByteSink,
    *,
    note: str | None = None,
) -> tuple[int, int]:
    """Stream XML3 (services) and XML2 (separately billed contrast) tables.

    ``entries`` must be grouped by MA_LK. Output is UTF-8 bytes: root
    ``CHITIEU_CHITIET_DVKT_VTYT/DSACH_CHI_TIET_DVKT/CHI_TIET_DVKT`` and
    ``CHITIEU_CHITIET_THUOC/DSACH_CHI_TIET_THUOC/CHI_TIET_THUOC`` (the inner tables of
    the GIAMDINHHS envelope, not base64-wrapped). Returns (XML3 rows, XML2 rows).
    Raises :class:`pricing_norms.claims_schema.ClaimValidationError` at the first row
    that breaks the schema (the rows before it may already be written: write to a
    temporary file and serve it only when this returns).
    """
    xml3 = _XmlTable(
        xml3_out, "CHITIEU_CHITIET_DVKT_VTYT", "DSACH_CHI_TIET_DVKT", "CHI_TIET_DVKT", XML3_COLUMNS
    )
    xml2 = _XmlTable(
        xml2_out, "CHITIEU_CHITIET_THUOC", "DSACH_CHI_TIET_THUOC", "CHI_TIET_THUOC", XML2_COLUMNS
    )
    xml3.start(note)
    xml2.start(note)
    illustrative = 0
    for record, context in entries:
        for values in xml3_rows(record, context):
            xml3.row(values)
        for values in xml2_rows(record, context):
            xml2.row(values)
        illustrative += 1 if record.norm_illustrative else 0
    trailer = (
        f"{illustrative} stud(y/ies) costed with ILLUSTRATIVE norms (định mức minh hoạ)"
        if illustrative
        else None
    )
    xml3.finish(trailer)
    xml2.finish(trailer)
    return xml3.count, xml2.count
