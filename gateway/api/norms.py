"""Norm catalogue routes: the current catalogue (with illustrative flags), import history,
and catalogue import by multipart upload (all-or-nothing, 422 with row/column errors)."""

from __future__ import annotations

from dataclasses import asdict
from typing import Annotated, Any

from fastapi import APIRouter, Depends, File, Header, HTTPException, Request, UploadFile
from fastapi.responses import JSONResponse
from sqlalchemy import select
from sqlalchemy.orm import Session

from gateway.api.costs import actor
from gateway.auth.deps import get_read_session, get_service
from gateway.core.context import ProcessContext
from gateway.costing.catalogue_store import (
    MAX_UPLOAD_BYTES,
    UploadedFile,
    checksum,
    load_current,
    parse_files,
    store_catalogue,
)
from gateway.costing.handlers import requeue_uncosted
from gateway.costing.models import NormImport
from pricing_norms.catalogue import CatalogueError
from pricing_norms.money import decimal_text, to_decimal

router = APIRouter(prefix="/api/norms", tags=["norms"])


def import_info(imp: NormImport) -> dict[str, Any]:
    return {
        "id": imp.id,
        "imported_at": imp.imported_at.isoformat(),
        "imported_by": imp.imported_by,
        "file_name": imp.file_name,
        "checksum": imp.checksum,
        "illustrative": imp.illustrative,
    }


def _plain(item: object) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in asdict(item).items():  # type: ignore[call-overload]
        if value is None or isinstance(value, bool | int | str):
            out[key] = value
        elif hasattr(value, "isoformat"):
            out[key] = value.isoformat()
        elif hasattr(value, "as_tuple"):
            out[key] = decimal_text(value)
        else:
            out[key] = str(value)
    return out


@router.get("")
def get_catalogue(session: Annotated[Session, Depends(get_read_session)]) -> dict[str, Any]:
    """The catalogue in use; ``illustrative`` marks demo norms (never official figures)."""
    current = load_current(session)
    if current is None:
        raise HTTPException(404, "no catalogue imported yet (risgate norms import)")
    imp, catalogue = current
    equipment = []
    for machine in catalogue.equipment:
        item = _plain(machine)
        item["depreciation_per_unit"] = decimal_text(to_decimal(machine.depreciation_per_unit))
        equipment.append(item)
    return {
        "import": import_info(imp),
        "illustrative": catalogue.has_illustrative,
        "illustrative_note": catalogue.illustrative_note,
        "norm_sets": [_plain(n) for n in catalogue.norm_sets],
        "services": [_plain(s) for s in catalogue.services],
        "prices": [_plain(p) for p in catalogue.prices],
        "norm_lines": [_plain(x) for x in catalogue.norm_lines],
        "staff_rates": [_plain(r) for r in catalogue.staff_rates],
        "equipment": equipment,
    }


@router.get("/imports")
def list_imports(session: Annotated[Session, Depends(get_read_session)]) -> list[dict[str, Any]]:
    """Import history, newest first."""
    rows = session.scalars(select(NormImport).order_by(NormImport.id.desc()).limit(200))
    return [import_info(imp) for imp in rows]


def error_body(exc: CatalogueError) -> dict[str, Any]:
    return {
        "detail": "catalogue rejected; nothing was imported",
        "errors": [
            {"table": i.table, "row": i.row, "column": i.column, "message": i.message}
            for i in exc.issues
        ],
    }


@router.post("/import", status_code=201, response_model=None)
async def import_catalogue(
    request: Request,
    service: Annotated[ProcessContext, Depends(get_service)],
    files: Annotated[list[UploadFile], File(description="one .xlsx, one .zip, or the .csv files")],
    x_risgate_user: Annotated[str | None, Header(max_length=64)] = None,
) -> dict[str, Any] | JSONResponse:
    """Import a catalogue; it replaces the one in use, or nothing changes (422)."""
    received: list[UploadedFile] = []
    total = 0
    for upload in files:
        data = await upload.read(MAX_UPLOAD_BYTES + 1)
        total += len(data)
        if total > MAX_UPLOAD_BYTES:
            raise HTTPException(413, "upload too large")
        received.append(UploadedFile(upload.filename or "upload", data))
    try:
        catalogue = parse_files(received)
    except CatalogueError as exc:
        return JSONResponse(error_body(exc), status_code=422)
    name = ", ".join(f.name for f in received)
    with service.db.write_session() as session:
        imp = store_catalogue(
            session,
            catalogue,
            file_name=name,
            digest=checksum(received),
            imported_by=actor(request, x_risgate_user),
        )
        requeued = requeue_uncosted(session)
        info = import_info(imp)
    return {
        **info,
        "counts": {k: len(v) for k, v in catalogue.tables().items()},
        "requeued": requeued,
    }
