"""Study state tracking: RECEIVING until no instance arrived for ``stable_after_s``.

:func:`mark_stable` flips idle studies to STABLE and emits ``study.stable`` in the same
transaction; a late instance puts the study back to RECEIVING and it becomes stable again.
"""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from gateway.core import events
from gateway.core.models import Study, StudyState, utcnow


def mark_stable(session: Session, stable_after_s: float) -> list[str]:
    """Mark idle studies STABLE; return their Study Instance UIDs."""
    now = utcnow()
    cutoff = now - timedelta(seconds=stable_after_s)
    query = (
        select(Study)
        .where(Study.state == StudyState.RECEIVING, Study.last_received_at <= cutoff)
        .limit(500)
    )
    if session.get_bind().dialect.name == "postgresql":
        query = query.with_for_update(skip_locked=True)
    done = []
    for study in session.scalars(query):
        study.state = StudyState.STABLE
        study.stable_at = now
        events.emit(session, events.STUDY_STABLE, study.study_uid)
        done.append(study.study_uid)
    return done


def mark_complete_now(session: Session, study_uid: str) -> bool:
    """Make a study STABLE at once (e.g. MPPS COMPLETED); True if it changed."""
    study = session.scalar(select(Study).where(Study.study_uid == study_uid))
    if study is None or study.state == StudyState.STABLE:
        return False
    study.state = StudyState.STABLE
    study.stable_at = utcnow()
    events.emit(session, events.STUDY_STABLE, study_uid)
    return True
