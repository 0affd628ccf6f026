"""Series thumbnails and the PACS viewer link (audited), as API routes."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException
from fastapi.responses import FileResponse, RedirectResponse
from sqlalchemy import select
from sqlalchemy.orm import Session

from dicom_nodes.identifiers import is_valid_uid
from gateway.auth.deps import get_read_session, get_service
from gateway.core.context import ProcessContext
from gateway.core.models import Study
from gateway.intake.thumbnails import Thumbnail, ThumbState, thumbnail_dir

router = APIRouter(tags=["previews"])


@router.get(
    "/api/series/{series_uid}/thumbnail",
    responses={200: {"content": {"image/png": {}, "image/jpeg": {}}}, 404: {}, 409: {}},
)
def series_thumbnail(
    series_uid: str,
    service: Annotated[ProcessContext, Depends(get_service)],
    session: Annotated[Session, Depends(get_read_session)],
) -> FileResponse:
    """The series preview; 404 until rendered, 409 with the reason if it cannot be."""
    if not is_valid_uid(series_uid):
        raise HTTPException(422, "series_uid is not a valid DICOM UID")
    row = session.scalar(select(Thumbnail).where(Thumbnail.series_uid == series_uid))
    if row is None:
        raise HTTPException(404, "no preview yet (rendered when the study becomes stable)")
    if row.state != ThumbState.OK:
        raise HTTPException(409, f"no preview: {row.reason}")
    base = thumbnail_dir(service)
    path = (base / row.path).resolve()
    if base not in path.parents or not path.is_file():
        raise HTTPException(404, "preview file missing")
    return FileResponse(
        path, media_type=row.media_type, headers={"Cache-Control": "private, max-age=3600"}
    )


@router.get("/api/studies/{study_uid}/viewer", status_code=303, response_class=RedirectResponse)
def open_viewer(
    study_uid: str,
    service: Annotated[ProcessContext, Depends(get_service)],
    session: Annotated[Session, Depends(get_read_session)],
) -> RedirectResponse:
    """Open the study in the PACS viewer (``ui.viewer_url``); audited by the auth gate."""
    if not is_valid_uid(study_uid):
        raise HTTPException(422, "study_uid is not a valid DICOM UID")
    if session.scalar(select(Study.id).where(Study.study_uid == study_uid)) is None:
        raise HTTPException(404, "study not found")
    url = service.settings.ui.viewer_url.replace("{study_uid}", study_uid)
    return RedirectResponse(url, status_code=303)
