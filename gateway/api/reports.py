"""Report routes: cost reports by period, streamed as JSON, CSV, XLSX, XML3 or XML2.

The writer runs in a worker thread and hands bytes over a bounded queue, so the response
streams while rows are read and memory stays flat; XLSX (a zip) is built in a temporary
file first, then streamed. XML3/XML2 claim files are written (and validated against the
schema, a chunk at a time) into a temporary file before the response starts: a file that
breaks the schema is a 500 with the first violation in the log (table, row, element and
rule; no value), never a wrong file. A claim file from illustrative figures is refused
(409) unless ``allow_illustrative=true``.
"""

from __future__ import annotations

import logging
import queue
import tempfile
import threading
from collections.abc import Iterator
from typing import IO, Annotated

from fastapi import APIRouter, Depends, HTTPException, Query
from fastapi.responses import StreamingResponse

from gateway.auth.deps import get_service
from gateway.core.context import ProcessContext
from gateway.core.database import Database
from gateway.costing.reports import (
    FORMATS,
    MEDIA_TYPES,
    ClaimOptions,
    IllustrativeRefused,
    ReportError,
    ReportQuery,
    check_claim,
    check_size,
    claim_options,
    parse_day,
    parse_group_by,
    write_report,
)
from pricing_norms.claims_schema import ClaimValidationError

log = logging.getLogger(__name__)

router = APIRouter(prefix="/api/reports", tags=["reports"])

GROUP_HELP = "comma-separated: day, month, department, modality, machine, service, norm_set"

CHUNK = 256 * 1024
_END = object()


class _Cancelled(Exception):
    pass


class _QueueSink:
    """A binary sink that sends chunks to a bounded queue (the HTTP response)."""

    def __init__(self, q: queue.Queue[object], cancel: threading.Event) -> None:
        self.q, self.cancel = q, cancel
        self.buffer = bytearray()

    def write(self, data: bytes, /) -> int:
        self.buffer += data
        if len(self.buffer) >= CHUNK:
            self.flush()
        return len(data)

    def flush(self) -> None:
        if self.buffer:
            self._put(bytes(self.buffer))
            self.buffer.clear()

    def _put(self, item: object) -> None:
        while True:
            if self.cancel.is_set():
                raise _Cancelled
            try:
                self.q.put(item, timeout=0.5)
                return
            except queue.Full:
                continue

    # io.TextIOWrapper needs these on the binary stream it wraps
    def writable(self) -> bool:
        return True

    def readable(self) -> bool:
        return False

    def seekable(self) -> bool:
        return False

    @property
    def closed(self) -> bool:
        return False


def _file_chunks(handle: IO[bytes]) -> Iterator[bytes]:
    try:
        while chunk := handle.read(CHUNK):
            yield chunk
    finally:
        handle.close()


def _claim_file(
    db: Database, query: ReportQuery, fmt: str, options: ClaimOptions
) -> Iterator[bytes]:
    """Write and validate the XML file before anything is sent; 500 if it is invalid."""
    tmp = tempfile.TemporaryFile(prefix="risgate-claim-")  # noqa: SIM115 (closed by _file_chunks)
    try:
        write_report(db, query, fmt, tmp, allow_illustrative=True, claims=options)
    except ClaimValidationError as exc:
        tmp.close()
        log.error("claim file refused by the XML schema: %s", exc)
        raise HTTPException(
            500, f"the {fmt.upper()} file does not pass the schema ({exc}); nothing was served"
        ) from None
    except BaseException:
        tmp.close()
        raise
    tmp.seek(0)
    return _file_chunks(tmp)


def _stream(db: Database, query: ReportQuery, fmt: str) -> Iterator[bytes]:
    q: queue.Queue[object] = queue.Queue(maxsize=8)
    cancel = threading.Event()
    sink = _QueueSink(q, cancel)

    def produce() -> None:
        try:
            if fmt == "xlsx":
                with tempfile.TemporaryFile(prefix="risgate-report-") as tmp:
                    write_report(db, query, fmt, tmp)
                    tmp.seek(0)
                    while chunk := tmp.read(CHUNK):
                        sink.write(chunk)
            else:
                write_report(db, query, fmt, sink)  # type: ignore[arg-type]
            sink.flush()
            sink._put(_END)
        except _Cancelled:
            return
        except Exception as exc:  # surfaced to the consumer, which ends the response
            try:
                sink._put(exc)
            except _Cancelled:
                return

    thread = threading.Thread(target=produce, name="report", daemon=True)
    thread.start()
    try:
        while True:
            item = q.get()
            if item is _END:
                return
            if isinstance(item, Exception):
                raise item
            assert isinstance(item, bytes)
            yield item
    finally:
        cancel.set()


@router.get("/costs")
def cost_report(
    service: Annotated[ProcessContext, Depends(get_service)],
    date_from: Annotated[str, Query(alias="from", description="first study date, YYYY-MM-DD")],
    date_to: Annotated[str, Query(alias="to", description="last study date, YYYY-MM-DD")],
    group_by: Annotated[str | None, Query(description=GROUP_HELP)] = None,
    fmt: Annotated[str, Query(alias="format")] = "json",
    department: Annotated[str | None, Query(max_length=64)] = None,
    modality: Annotated[str | None, Query(max_length=16)] = None,
    machine: Annotated[str | None, Query(max_length=64)] = None,
    service_code: Annotated[str | None, Query(alias="service", max_length=16)] = None,
    allow_illustrative: Annotated[
        bool, Query(description="XML3/XML2 only: serve a claim file from illustrative norms")
    ] = False,
) -> StreamingResponse:
    """Latest cost revision of each study in the period: one row per study, or grouped.

    XML3/XML2 from illustrative figures: 409 unless ``allow_illustrative=true``.
    """
    try:
        query = ReportQuery(
            parse_day(date_from, "from"),
            parse_day(date_to, "to"),
            parse_group_by(group_by),
            department,
            modality,
            machine,
            service_code,
        )
        query.check(fmt)
        check_size(service.db, query, fmt)
        check_claim(service.db, query, fmt, allow_illustrative)
    except IllustrativeRefused as exc:
        raise HTTPException(409, str(exc)) from None
    except ReportError as exc:
        raise HTTPException(422, str(exc)) from None
    extension = {"xml3": "XML3.xml", "xml2": "XML2.xml"}.get(fmt, fmt)
    name = f"costs_{query.date_from:%Y%m%d}_{query.date_to:%Y%m%d}.{extension}"
    body = (
        _claim_file(service.db, query, fmt, claim_options(service.settings.billing))
        if fmt in ("xml3", "xml2")
        else _stream(service.db, query, fmt)
    )
    return StreamingResponse(
        body,
        media_type=MEDIA_TYPES[fmt],
        headers={"Content-Disposition": f'attachment; filename="{name}"'},
    )


__all__ = ["FORMATS", "router"]
