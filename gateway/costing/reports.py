"""Cost reports from the database, streamed: latest revision per study, by study date.

One code path for the API, the CLI and the benchmark: :func:`write_report` reads rows
with a streaming cursor (PostgreSQL server-side cursor; SQLite stepping its cursor) and
hands them one at a time to the :mod:`pricing_norms.exporters` writers, so memory does
not grow with the number of rows. On SQLite reads use a separate autocommit connection:
the gateway's sessions start with ``BEGIN IMMEDIATE`` (the write lock), which a long
export must not hold.
"""

from __future__ import annotations

import io
import json
import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any, BinaryIO

from sqlalchemy import Engine, and_, create_engine, event, exists, func, null, select
from sqlalchemy.orm import aliased
from sqlalchemy.pool import NullPool

from gateway.core.database import Database, is_sqlite
from gateway.core.settings import BillingSettings
from gateway.costing.models import CostRecordDocument, CostRecordRow, NormImport
from gateway.orders.models import Order, RequestedProcedure, Visit
from gateway.reconciliation.models import MatchState, StudyMatch
from pricing_norms.catalogue import ILLUSTRATIVE_NOTE
from pricing_norms.claims import ClaimContext
from pricing_norms.costing import CostRecord
from pricing_norms.exporters import (
    COST_ROW_COLUMNS,
    Column,
    aggregate_columns,
    write_csv,
    write_xlsx,
    write_xml130,
)
from pricing_norms.machines import MachineCodes
from pricing_norms.reports import GROUP_KEYS, CostRow, aggregate

FORMATS = ("json", "csv", "xlsx", "xml3", "xml2")
MEDIA_TYPES = {
    "json": "application/json",
    "csv": "text/csv; charset=utf-8",
    "xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
    "xml3": "application/xml",
    "xml2": "application/xml",
}
XLSX_MAX_ROWS = 1_048_576 - 2  # Excel's sheet limit, less the note and the header
BATCH = 2000


class ReportError(ValueError):
    """A bad report request (unknown format or group key, bad period)."""


class IllustrativeRefused(ReportError):
    """An XML3/XML2 claim file from illustrative figures, not explicitly asked for."""


@dataclass(frozen=True)
class ClaimOptions:
    """Claim-file inputs from ``[billing]``: MA_LK source and the dated MA_MAY codes."""

    ma_lk_source: str = "visit_number"
    machine_codes: MachineCodes = field(default_factory=MachineCodes)


@dataclass(frozen=True)
class ReportQuery:
    """Study dates ``date_from``..``date_to`` inclusive, optional filters and grouping."""

    date_from: date
    date_to: date
    group_by: tuple[str, ...] = ()
    department: str | None = None
    modality: str | None = None
    machine: str | None = None
    service: str | None = None

    def check(self, fmt: str) -> None:
        if fmt not in FORMATS:
            raise ReportError(f"format must be one of {', '.join(FORMATS)}")
        if self.date_to < self.date_from:
            raise ReportError("'to' is before 'from'")
        unknown = [k for k in self.group_by if k not in GROUP_KEYS]
        if unknown:
            raise ReportError(f"unknown group_by {unknown}; use {', '.join(sorted(GROUP_KEYS))}")
        if self.group_by and fmt in ("xml3", "xml2"):
            raise ReportError("group_by does not apply to XML3/XML2 claim files")


def parse_day(text: str, name: str) -> date:
    """``YYYY-MM-DD`` or ``YYYYMMDD``."""
    for fmt in ("%Y-%m-%d", "%Y%m%d"):
        try:
            return datetime.strptime(text.strip(), fmt).date()
        except ValueError:
            continue
    raise ReportError(f"{name} must be a date YYYY-MM-DD")


def parse_group_by(text: str | None) -> tuple[str, ...]:
    return tuple(k.strip() for k in (text or "").split(",") if k.strip())


# -- reading -------------------------------------------------------------------

_readers: dict[str, Engine] = {}
_readers_lock = threading.Lock()


def reader_engine(db: Database) -> Engine:
    """An engine for long reads: on SQLite autocommit (no write lock), else the main one."""
    if not is_sqlite(db.engine):
        return db.engine
    url = db.engine.url.render_as_string(hide_password=False)
    with _readers_lock:
        engine = _readers.get(url)
        if engine is None:
            engine = create_engine(
                url, poolclass=NullPool, connect_args={"check_same_thread": False, "timeout": 60}
            )

            @event.listens_for(engine, "connect")
            def _on_connect(dbapi_conn: Any, _record: Any) -> None:
                dbapi_conn.isolation_level = None  # autocommit: each SELECT its own snapshot
                dbapi_conn.execute("PRAGMA query_only=ON")

            _readers[url] = engine
    return engine


_COMPONENT_COLS = ("vat_tu", "thuoc", "nhan_cong", "khau_hao", "duy_tu", "nang_luong", "quan_ly")


def _latest(query: ReportQuery) -> Any:
    newer = aliased(CostRecordRow)
    conditions = [
        CostRecordRow.study_date >= query.date_from,
        CostRecordRow.study_date <= query.date_to,
        ~exists().where(
            and_(newer.study_pk == CostRecordRow.study_pk, newer.revision > CostRecordRow.revision)
        ),
    ]
    if query.department is not None:
        conditions.append(CostRecordRow.department == query.department)
    if query.modality is not None:
        conditions.append(CostRecordRow.modality == query.modality.upper())
    if query.machine is not None:
        conditions.append(CostRecordRow.machine_code == query.machine)
    if query.service is not None:
        conditions.append(CostRecordRow.service_code == query.service)
    return and_(*conditions)


def _row_select(query: ReportQuery) -> Any:
    c = CostRecordRow
    return (
        select(
            c.study_uid,
            c.study_date,
            c.department,
            c.modality,
            c.machine_code,
            c.service_code,
            c.norm_set_code,
            c.norm_illustrative,
            c.vat_tu,
            c.thuoc,
            c.nhan_cong,
            c.khau_hao,
            c.duy_tu,
            c.nang_luong,
            c.quan_ly,
            c.cntt,
            c.full_cost,
            c.price_bh,
            c.price_bv,
            c.separately_billed,
        )
        .where(_latest(query))
        .order_by(c.study_date, c.id)
    )


def claim_options(billing: BillingSettings) -> ClaimOptions:
    """Claim-file inputs from the ``[billing]`` settings."""
    return ClaimOptions(billing.ma_lk_source, billing.machine_codes())


def count_rows(db: Database, query: ReportQuery) -> int:
    """How many studies the report covers."""
    with reader_engine(db).connect() as conn:
        return int(conn.scalar(select(func.count()).where(_latest(query))) or 0)


def check_size(db: Database, query: ReportQuery, fmt: str) -> None:
    """Refuse an XLSX report longer than one Excel sheet (1,048,576 rows)."""
    if fmt == "xlsx" and not query.group_by:
        rows = count_rows(db, query)
        if rows > XLSX_MAX_ROWS:
            raise ReportError(
                f"{rows} rows do not fit one Excel sheet ({XLSX_MAX_ROWS}): "
                "use csv, a shorter period or group_by"
            )


def has_illustrative(db: Database, query: ReportQuery) -> bool:
    """True if any study of the report was costed with illustrative norms."""
    with reader_engine(db).connect() as conn:
        found = conn.scalar(
            select(CostRecordRow.id)
            .where(_latest(query), CostRecordRow.norm_illustrative.is_(True))
            .limit(1)
        )
    return found is not None


def catalogue_is_illustrative(db: Database) -> bool:
    """True if the catalogue in use (the latest import) has illustrative norms."""
    with reader_engine(db).connect() as conn:
        flag = conn.scalar(select(NormImport.illustrative).order_by(NormImport.id.desc()).limit(1))
    return bool(flag)


def illustrative_note(db: Database, query: ReportQuery) -> str | None:
    """The illustrative warning if the catalogue in use or any study of the report is
    illustrative (an empty report from an illustrative catalogue still says so)."""
    if catalogue_is_illustrative(db) or has_illustrative(db, query):
        return ILLUSTRATIVE_NOTE
    return None


def check_claim(db: Database, query: ReportQuery, fmt: str, allow_illustrative: bool) -> None:
    """Refuse an XML3/XML2 file from illustrative figures unless explicitly allowed."""
    if fmt in ("xml3", "xml2") and not allow_illustrative and illustrative_note(db, query):
        raise IllustrativeRefused(
            "the catalogue in use or a study of this period is costed with ILLUSTRATIVE "
            "norms: a claim file from it is not an official one (ask with "
            "allow_illustrative=true to get it anyway, labelled)"
        )


def iter_cost_rows(db: Database, query: ReportQuery) -> Iterator[CostRow]:
    """The report's rows, streamed (never all in memory)."""
    with reader_engine(db).connect() as conn:
        result = conn.execution_options(yield_per=BATCH).execute(_row_select(query))
        for (
            uid,
            day,
            department,
            modality,
            machine,
            service,
            norm_set,
            illustrative,
            *money,
        ) in result:
            yield CostRow(uid, day, department, modality, machine, service, "", norm_set,
                          bool(illustrative), *money)  # fmt: skip


def iter_claims(
    db: Database, query: ReportQuery, options: ClaimOptions | None = None
) -> Iterator[tuple[CostRecord, ClaimContext]]:
    """(record, claim context) per study for XML3/XML2, streamed, grouped by MA_LK.

    MA_LK is the visit number (PV1-19) of the order reconciliation matched the study to
    (``ma_lk_source = "visit_number"``), else the accession number, else the Study
    Instance UID; with ``ma_lk_source = "accession_number"`` the visit is not used.
    MA_MAY is the machine's code in force on the study date (``options.machine_codes``).
    """
    options = options or ClaimOptions()
    c = CostRecordRow
    visit_number = (
        func.nullif(Visit.visit_number, "") if options.ma_lk_source == "visit_number" else null()
    )
    ma_lk = func.coalesce(visit_number, func.nullif(c.accession_number, ""), c.study_uid)
    stmt = (
        select(ma_lk, c.performed_at, c.study_date, c.machine_code)
        .add_columns(CostRecordDocument.record_json)
        .join(CostRecordDocument, CostRecordDocument.record_pk == c.id)
        .outerjoin(
            StudyMatch,
            and_(StudyMatch.study_pk == c.study_pk, StudyMatch.state == MatchState.MATCHED),
        )
        .outerjoin(RequestedProcedure, RequestedProcedure.id == StudyMatch.rp_pk)
        .outerjoin(Order, Order.id == RequestedProcedure.order_pk)
        .outerjoin(Visit, Visit.id == Order.visit_pk)
        .where(_latest(query))
        .order_by(ma_lk, c.study_date, c.id)
    )
    codes = options.machine_codes
    with reader_engine(db).connect() as conn:
        result = conn.execution_options(yield_per=BATCH).execute(stmt)
        for key, performed, day, machine, document in result:
            when = performed or datetime(day.year, day.month, day.day)
            record = CostRecord.from_dict(json.loads(document))
            yield (
                record,
                ClaimContext(
                    ma_lk=key, ngay_yl=when, ngay_th_yl=when, ma_may=codes.on(machine, day)
                ),
            )


# -- writing -------------------------------------------------------------------


def _counted(rows: Iterator[Any], progress: Callable[[int], None] | None) -> Iterator[Any]:
    if progress is None:
        yield from rows
        return
    pending = 0
    for row in rows:
        yield row
        pending += 1
        if pending == 1000:
            progress(pending)
            pending = 0
    if pending:
        progress(pending)


def _json_value(value: object) -> object:
    if isinstance(value, date):
        return value.isoformat()
    return value


def _write_json(
    rows: Iterator[Any], columns: Sequence[Column[Any]], out: BinaryIO, note: str | None
) -> int:
    head: dict[str, Any] = {"illustrative_note": note, "rows": []}
    prefix = json.dumps(head, ensure_ascii=False)[:-2]  # drop "]}": ends in "rows": [
    out.write(prefix.encode())
    count = 0
    for row in rows:
        item = {col.header: _json_value(col.value(row)) for col in columns}
        out.write((b",\n" if count else b"\n") + json.dumps(item, ensure_ascii=False).encode())
        count += 1
    out.write(b"\n]}\n")
    return count


class _Discard:
    def write(self, data: bytes, /) -> int:
        return len(data)


def write_report(
    db: Database,
    query: ReportQuery,
    fmt: str,
    out: BinaryIO,
    *,
    xml2_out: BinaryIO | None = None,
    progress: Callable[[int], None] | None = None,
    allow_illustrative: bool = False,
    claims: ClaimOptions | None = None,
) -> int:
    """Write the report in ``fmt`` to ``out`` (binary); returns the number of rows.

    ``xml3`` writes the XML3 table to ``out`` and the XML2 (contrast) table to ``xml2_out``
    when given; ``xml2`` writes only the XML2 table. ``progress(n)`` is called as rows go.
    Every format carries the illustrative note when it applies (:func:`illustrative_note`);
    an XML file from illustrative figures raises :class:`IllustrativeRefused` unless
    ``allow_illustrative``. XML rows are validated against the schema as they are written
    (:class:`pricing_norms.claims_schema.ClaimValidationError` on the first bad row).
    """
    query.check(fmt)
    check_size(db, query, fmt)
    check_claim(db, query, fmt, allow_illustrative)
    note = illustrative_note(db, query)
    if fmt in ("xml3", "xml2"):
        entries = _counted(iter_claims(db, query, claims), progress)
        if fmt == "xml3":
            n3, _ = write_xml130(entries, out, xml2_out or _Discard(), note=note)
            return n3
        _, n2 = write_xml130(entries, _Discard(), out, note=note)
        return n2
    rows: Iterator[Any] = _counted(iter_cost_rows(db, query), progress)
    columns: Sequence[Column[Any]] = COST_ROW_COLUMNS
    if query.group_by:
        rows = iter(aggregate(rows, query.group_by))
        columns = aggregate_columns(query.group_by)
    if fmt == "json":
        return _write_json(rows, columns, out, note)
    if fmt == "csv":
        text = io.TextIOWrapper(out, encoding="utf-8-sig", newline="", write_through=False)
        try:
            return write_csv(rows, columns, text, note=note)
        finally:
            text.flush()
            text.detach()
    return write_xlsx(rows, columns, out, sheet_title="costs", note=note)
