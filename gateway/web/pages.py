"""Page data: what each UI page shows, read from the database (no HTTP, no templates)."""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from gateway.core.models import Instance, Job, JobState, Series, Study, StudyForward, utcnow
from gateway.intake.thumbnails import Thumbnail
from gateway.reconciliation.models import MatchState, StudyMatch


@dataclass
class PreviewInfo:
    series_uid: str
    modality: str
    description: str
    state: str  # OK | FAILED | PENDING
    reason: str = ""


@dataclass
class Pipeline:
    received: bool = True
    matched: bool = False
    forwarded: bool = False
    verified: bool = False
    reported: bool = False
    costed: bool = False
    previews: list[PreviewInfo] = field(default_factory=list)


def matched_study_pks(session: Session, study_pks: list[int]) -> set[int]:
    """Studies linked to an order: those whose reconciliation state is MATCHED."""
    if not study_pks:
        return set()
    return set(
        session.scalars(
            select(StudyMatch.study_pk).where(
                StudyMatch.study_pk.in_(study_pks), StudyMatch.state == MatchState.MATCHED
            )
        )
    )


def pipelines(session: Session, studies: list[tuple[int, str]]) -> dict[str, Pipeline]:
    """Pipeline state of each (study pk, study uid)."""
    from gateway.costing.models import CostRecordRow

    pks = [pk for pk, _ in studies]
    uids = [uid for _, uid in studies]
    out = {uid: Pipeline() for uid in uids}
    uid_by_pk = dict(studies)
    for pk in matched_study_pks(session, pks):
        out[uid_by_pk[pk]].matched = True
    for pk, state in session.execute(
        select(StudyForward.study_pk, StudyForward.state).where(StudyForward.study_pk.in_(pks))
    ):
        p = out[uid_by_pk[pk]]
        p.forwarded = p.forwarded or state in ("SENT", "VERIFIED")
        p.verified = p.verified or state == "VERIFIED"
    for pk in session.scalars(
        select(CostRecordRow.study_pk).where(CostRecordRow.study_pk.in_(pks)).distinct()
    ):
        out[uid_by_pk[pk]].costed = True
    for ref in session.scalars(
        select(Job.ref).where(Job.kind == "notify", Job.state == JobState.DONE, Job.ref.in_(uids))
    ):
        if ref in out:
            out[ref].reported = True
    thumbs = {
        t.series_uid: t
        for t in session.scalars(select(Thumbnail).where(Thumbnail.study_uid.in_(uids)))
    }
    for series, study_uid in session.execute(
        select(Series, Study.study_uid)
        .join(Study, Series.study_pk == Study.id)
        .where(Study.id.in_(pks))
        .order_by(Series.series_number, Series.id)
    ):
        t = thumbs.get(series.series_uid)
        out[study_uid].previews.append(
            PreviewInfo(
                series.series_uid,
                series.modality,
                series.description,
                t.state if t else "PENDING",
                t.reason if t else "",
            )
        )
    return out


def unmatched_study_pks(session: Session, limit: int = 200) -> list[int]:
    """Newest studies that no order matches."""
    candidates = list(
        session.scalars(select(Study.id).order_by(Study.last_received_at.desc()).limit(2000))
    )
    matched = matched_study_pks(session, candidates)
    return [pk for pk in candidates if pk not in matched][:limit]


@dataclass
class Dashboard:
    today_by_state: dict[str, int]
    queue: dict[str, dict[str, int]]
    dead: int
    errors: dict[str, int]
    hours: list[str]
    per_hour: list[float]


def dashboard(session: Session) -> Dashboard:
    from gateway.orders.models import HL7MessageRow

    now = utcnow()
    midnight = datetime(now.year, now.month, now.day)
    by_state = {
        s: int(n)
        for s, n in session.execute(
            select(Study.state, func.count())
            .where(Study.first_received_at >= midnight)
            .group_by(Study.state)
        )
    }
    queue: dict[str, dict[str, int]] = defaultdict(dict)
    dead = 0
    for kind, state, n in session.execute(
        select(Job.kind, Job.state, func.count())
        .where(Job.state != JobState.DONE)
        .group_by(Job.kind, Job.state)
    ):
        queue[kind][state] = int(n)
        if state == JobState.DEAD:
            dead += int(n)
    rejected = session.scalar(
        select(func.count(HL7MessageRow.id)).where(
            HL7MessageRow.received_at >= midnight, HL7MessageRow.ack_code != "AA"
        )
    )
    failed_previews = session.scalar(
        select(func.count(Thumbnail.id)).where(Thumbnail.state == "FAILED")
    )
    since = (now - timedelta(hours=23)).replace(minute=0, second=0, microsecond=0)
    counts: Counter[datetime] = Counter()
    for (at,) in session.execute(
        select(Instance.received_at).where(Instance.received_at >= since).limit(500_000)
    ):
        counts[at.replace(minute=0, second=0, microsecond=0)] += 1
    hours = [since + timedelta(hours=i) for i in range(24)]
    return Dashboard(
        by_state,
        dict(queue),
        dead,
        {"hl7_not_accepted": int(rejected or 0), "previews_failed": int(failed_previews or 0)},
        [f"{h:%H}" for h in hours],
        [float(counts[h]) for h in hours],
    )


@dataclass
class UncostedItem:
    """A study not costed, why, and what fixes it (``fixes``: i18n keys, in order)."""

    study_uid: str
    accession_number: str
    study_date: str
    kind: str
    detail: str
    procedure_code: str
    matched: bool
    fixes: list[str]


# What fixes each reason a study is not costed; "link_order" is added when no order matched.
_FIXES = {
    "UNMAPPED_SERVICE": ["fix_map_code"],
    "NO_CATALOGUE": ["fix_import_catalogue"],
    "COSTING_ERROR": ["fix_catalogue_or_machine"],
}


def uncosted(session: Session, limit: int = 200) -> list[UncostedItem]:
    """Studies not costed (unresolved), newest first, with the actions that fix them."""
    import json

    from gateway.costing.models import UncostedStudy

    rows = session.execute(
        select(UncostedStudy, Study.accession_number, Study.study_date)
        .join(Study, Study.id == UncostedStudy.study_pk)
        .where(UncostedStudy.resolved_at.is_(None))
        .order_by(UncostedStudy.last_seen_at.desc(), UncostedStudy.id.desc())
        .limit(limit)
    ).all()
    matched = matched_study_pks(session, [r.study_pk for r, _, _ in rows])
    items = []
    for row, accession, study_date in rows:
        facts = json.loads(row.facts_json or "{}")
        fixes = list(_FIXES.get(row.kind, []))
        if row.study_pk not in matched:
            fixes.insert(0, "fix_link_order")
        items.append(
            UncostedItem(
                row.study_uid,
                accession,
                study_date,
                row.kind,
                row.detail,
                str(facts.get("procedure_code") or ""),
                row.study_pk in matched,
                [*fixes, "fix_recost"],
            )
        )
    return items


def billing_chart(rows: list[tuple[date, str, int]]) -> tuple[list[str], dict[str, list[float]]]:
    """(day, modality, cost) rows -> day labels and one series per modality."""
    days = sorted({d for d, _, _ in rows})
    modalities = sorted({m or "?" for _, m, _ in rows})
    index = {d: i for i, d in enumerate(days)}
    series = {m: [0.0] * len(days) for m in modalities}
    for d, m, cost in rows:
        series[m or "?"][index[d]] += cost
    return [f"{d:%d/%m}" for d in days], series
