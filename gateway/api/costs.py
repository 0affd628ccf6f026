"""Cost record routes: the revisions of one study, recost with a reason (a new revision),
staff statements about a study (no film printed, TYLE_TT_DV) that cost it again, and the
studies that could not be costed (unmapped, no norm in force...)."""

from __future__ import annotations

import json
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header, HTTPException, Query, Request
from pydantic import BaseModel, Field
from sqlalchemy import select
from sqlalchemy.orm import Session

from dicom_nodes.identifiers import is_valid_uid
from gateway.auth.deps import get_read_session, get_service
from gateway.core.context import ProcessContext
from gateway.core.models import Study, utcnow
from gateway.costing.models import (
    CostRecordDocument,
    CostRecordRow,
    StudyBillingInput,
    UncostedStudy,
)
from gateway.costing.recording import Mappers, record_cost

router = APIRouter(prefix="/api/costs", tags=["costs"])


def actor(request: Request, header: str | None) -> str:
    """Who acts: the authenticated user; the ``X-Risgate-User`` header only without auth."""
    principal = getattr(request.state, "principal", None)
    if principal is not None:
        return str(principal.name)[:64]
    return header or "api"


def record_info(row: CostRecordRow, document: str | None = None) -> dict[str, Any]:
    info: dict[str, Any] = {
        "study_uid": row.study_uid,
        "revision": row.revision,
        "study_date": row.study_date.isoformat(),
        "service_code": row.service_code,
        "norm_set_code": row.norm_set_code,
        "norm_illustrative": row.norm_illustrative,
        "machine_code": row.machine_code,
        "department": row.department,
        "full_cost": row.full_cost,
        "price_bh": row.price_bh,
        "price_bv": row.price_bv,
        "price_variant": row.price_variant,
        "delivery": row.delivery,
        "tyle_tt_dv": row.tyle_tt_dv,
        "margin_bh": row.margin_bh,
        "margin_bv": row.margin_bv,
        "separately_billed": row.separately_billed,
        "catalogue_import": row.catalogue_import_pk,
        "mapping": row.mapping,
        "created_at": row.created_at.isoformat(),
        "created_by": row.created_by,
        "reason": row.reason,
    }
    if document is not None:
        info["record"] = json.loads(document)
    return info


@router.get("/unmapped")
def list_unmapped(
    session: Annotated[Session, Depends(get_read_session)],
    offset: Annotated[int, Query(ge=0)] = 0,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> dict[str, Any]:
    """Studies not costed yet and why (unmapped service, no catalogue, costing error)."""
    query = select(UncostedStudy).where(UncostedStudy.resolved_at.is_(None))
    rows = session.scalars(query.order_by(UncostedStudy.id).offset(offset).limit(limit))
    return {
        "items": [
            {
                "study_uid": r.study_uid,
                "kind": r.kind,
                "detail": r.detail,
                "facts": json.loads(r.facts_json or "{}"),
                "first_seen_at": r.first_seen_at.isoformat(),
                "last_seen_at": r.last_seen_at.isoformat(),
            }
            for r in rows
        ]
    }


def _study(session: Session, study_uid: str) -> Study:
    if not is_valid_uid(study_uid):
        raise HTTPException(422, "study_uid is not a valid DICOM UID")
    study = session.scalar(select(Study).where(Study.study_uid == study_uid))
    if study is None:
        raise HTTPException(404, "study not found")
    return study


@router.get("/{study_uid}")
def get_costs(
    study_uid: str, session: Annotated[Session, Depends(get_read_session)]
) -> dict[str, Any]:
    """Every revision of the study's cost, newest first, with the full record document."""
    study = _study(session, study_uid)
    rows = session.execute(
        select(CostRecordRow, CostRecordDocument.record_json)
        .join(CostRecordDocument, CostRecordDocument.record_pk == CostRecordRow.id)
        .where(CostRecordRow.study_pk == study.id)
        .order_by(CostRecordRow.revision.desc())
    ).all()
    uncosted = session.scalar(
        select(UncostedStudy).where(
            UncostedStudy.study_pk == study.id, UncostedStudy.resolved_at.is_(None)
        )
    )
    inputs = session.scalar(select(StudyBillingInput).where(StudyBillingInput.study_pk == study.id))
    return {
        "study_uid": study_uid,
        "inputs": inputs_info(inputs),
        "revisions": [record_info(row, doc) for row, doc in rows],
        "uncosted": None
        if uncosted is None
        else {"kind": uncosted.kind, "detail": uncosted.detail},
    }


class RecostRequest(BaseModel):
    reason: str = Field(min_length=3, max_length=512)


@router.post("/{study_uid}/recost", status_code=201)
def recost(
    study_uid: str,
    body: RecostRequest,
    request: Request,
    service: Annotated[ProcessContext, Depends(get_service)],
    x_risgate_user: Annotated[str | None, Header(max_length=64)] = None,
) -> dict[str, Any]:
    """Cost the study again with the current catalogue and mapping: always a new revision."""
    if not body.reason.strip():
        raise HTTPException(422, "reason is required")
    mappers = Mappers.from_settings(service.settings.costing)
    with service.db.write_session() as session:
        study = _study(session, study_uid)
        outcome = record_cost(
            session,
            study,
            mappers,
            reason=body.reason.strip(),
            created_by=actor(request, x_risgate_user),
            force=True,
            store=service.store,
        )
        if outcome.record is None:
            result: dict[str, Any] = {"kind": outcome.issue_kind, "detail": outcome.detail}
        else:
            document = session.get(CostRecordDocument, outcome.record.id)
            result = record_info(outcome.record, document.record_json if document else None)
    if outcome.record is None:
        raise HTTPException(409, result)
    return result


class InputsRequest(BaseModel):
    """What staff state about a study; a field left out keeps its value, null clears it."""

    filmless: bool | None = None
    tyle_tt_dv: int | None = Field(default=None, ge=0, le=100)
    reason: str = Field(min_length=3, max_length=512)


def inputs_info(row: StudyBillingInput | None) -> dict[str, Any]:
    if row is None:
        return {"filmless": None, "tyle_tt_dv": None}
    return {
        "filmless": row.filmless,
        "tyle_tt_dv": row.tyle_tt_dv,
        "reason": row.reason,
        "updated_by": row.updated_by,
        "updated_at": row.updated_at.isoformat(),
    }


@router.post("/{study_uid}/inputs")
def set_inputs(
    study_uid: str,
    body: InputsRequest,
    request: Request,
    service: Annotated[ProcessContext, Depends(get_service)],
    x_risgate_user: Annotated[str | None, Header(max_length=64)] = None,
) -> dict[str, Any]:
    """Record "no film printed" (``filmless``: the PACS price applies) and/or the service
    payment percentage TYLE_TT_DV for a study, then cost it again (a new revision when
    the figures change). Audited; billing staff and administrators only."""
    given = body.model_fields_set - {"reason"}
    if not given:
        raise HTTPException(422, "give filmless and/or tyle_tt_dv")
    if not body.reason.strip():
        raise HTTPException(422, "reason is required")
    user = actor(request, x_risgate_user)
    mappers = Mappers.from_settings(service.settings.costing)
    with service.db.write_session() as session:
        study = _study(session, study_uid)
        row = session.scalar(
            select(StudyBillingInput).where(StudyBillingInput.study_pk == study.id)
        )
        if row is None:
            row = StudyBillingInput(study_pk=study.id)
            session.add(row)
        if "filmless" in given:
            row.filmless = body.filmless
        if "tyle_tt_dv" in given:
            row.tyle_tt_dv = body.tyle_tt_dv
        row.reason, row.updated_by, row.updated_at = body.reason.strip(), user, utcnow()
        session.flush()
        outcome = record_cost(
            session,
            study,
            mappers,
            reason=f"staff: {body.reason.strip()}",
            created_by=user,
            store=service.store,
        )
        result: dict[str, Any] = {"inputs": inputs_info(row)}
        if outcome.record is None:
            result["uncosted"] = {"kind": outcome.issue_kind, "detail": outcome.detail}
        else:
            document = session.get(CostRecordDocument, outcome.record.id)
            result["cost"] = record_info(outcome.record, document.record_json if document else None)
            result["new_revision"] = outcome.created
    return result
