"""What the gateway knows about a study, as :class:`~pricing_norms.mapping.StudyFacts`.

From the DICOM index: study date, the main modality (the image series with most
instances; SR/PR/KO and other non-image series are ignored), body part, station name
(or the calling AE), instance count. From the stored files, when an instance store is
given: Contrast/Bolus Agent and Volume, Device Serial Number (one instance per series).
From MPPS: the films printed that the modality reported (Film Consumption Sequence) on
the latest MPPS of the study (its Study Instance UID, or its accession number) that
reported any.
From the order: the procedure code and the department (of the order's visit) of the
requested procedure reconciliation matched the study to (state MATCHED), else the one with
the study's accession number, else the one with its Study Instance UID.
"""

from __future__ import annotations

import logging
from datetime import date, datetime
from decimal import Decimal, InvalidOperation

from sqlalchemy import ColumnElement, func, or_, select
from sqlalchemy.orm import Session

from gateway.core.instance_store import InstanceStore
from gateway.core.models import Instance, Series, Study
from gateway.orders.models import MppsRecord, Order, RequestedProcedure, Visit
from gateway.reconciliation.models import MatchState, StudyMatch
from pricing_norms.mapping import StudyFacts

log = logging.getLogger(__name__)

NON_IMAGE_MODALITIES = frozenset({"SR", "PR", "KO", "DOC", "REG", "SEG", "RWV", "PLAN", "OT"})


def study_date_of(study: Study) -> date:
    """The DICOM Study Date, else the day the study was first received."""
    raw = (study.study_date or "").strip()
    try:
        return datetime.strptime(raw, "%Y%m%d").date()
    except ValueError:
        return study.first_received_at.date()


def performed_at_of(study: Study) -> datetime:
    """Study date and time (to the minute) for claims; midnight when the time is unknown."""
    day = study_date_of(study)
    digits = "".join(ch for ch in (study.study_time or "")[:4] if ch.isdigit())
    hour, minute = (int(digits[:2]), int(digits[2:4])) if len(digits) == 4 else (0, 0)
    if hour > 23 or minute > 59:
        hour = minute = 0
    return datetime(day.year, day.month, day.day, hour, minute)


def facts_for_study(
    session: Session, study_pk: int, *, store: InstanceStore | None = None
) -> StudyFacts:
    """Build the facts of one indexed study (see the module docstring for the sources)."""
    study = session.get(Study, study_pk)
    if study is None:
        raise LookupError(f"no study with pk {study_pk}")
    series_rows = session.execute(
        select(Series, func.count(Instance.id))
        .outerjoin(Instance, Instance.series_pk == Series.id)
        .where(Series.study_pk == study_pk)
        .group_by(Series.id)
        .order_by(Series.id)
    ).all()
    images = [(s, int(n)) for s, n in series_rows if s.modality.upper() not in NON_IMAGE_MODALITIES]
    chosen = images or [(s, int(n)) for s, n in series_rows]
    main = max(chosen, key=lambda pair: pair[1])[0] if chosen else None
    modality = main.modality.upper() if main else ""
    body_part = next((s.body_part for s, _ in chosen if s.body_part), None)
    station = next((s.station_name for s, _ in chosen if s.station_name), None)
    count = sum(n for _, n in chosen)
    agent, volume, serial = _from_files(session, [s.id for s, _ in chosen], store)
    procedure_code, department = order_info(session, study)
    return StudyFacts(
        films_printed=films_reported(session, study),
        study_date=study_date_of(study),
        modality=modality,
        body_part=body_part or None,
        procedure_code=procedure_code,
        contrast_agent=agent,
        contrast_volume_ml=volume,
        number_of_instances=count,
        station_ae=station or study.calling_ae or None,
        device_serial=serial,
        department=department,
    )


def _from_files(
    session: Session, series_pks: list[int], store: InstanceStore | None
) -> tuple[str | None, Decimal | None, str | None]:
    """Contrast agent, total contrast volume and device serial from one file per series."""
    if store is None or not series_pks:
        return None, None, None
    import pydicom

    agent: str | None = None
    volume: Decimal | None = None
    serial: str | None = None
    for series_pk in series_pks:
        path = session.scalar(select(Instance.path).where(Instance.series_pk == series_pk).limit(1))
        if path is None:
            continue
        try:
            ds = pydicom.dcmread(
                store.absolute(path),
                stop_before_pixels=True,
                specific_tags=[0x00180010, 0x00181041, 0x00181000],
            )
        except Exception as exc:  # unreadable file: facts stay unknown
            log.warning("cannot read header for costing: %s", type(exc).__name__)
            continue
        text = str(ds.get("ContrastBolusAgent", "") or "").strip()
        agent = agent or text or None
        raw_volume = ds.get("ContrastBolusVolume")
        if raw_volume not in (None, ""):
            try:
                value = Decimal(str(raw_volume))
            except InvalidOperation:
                value = None
            if value is not None and value.is_finite() and value >= 0:
                volume = max(volume or Decimal(0), value)
        serial = serial or (str(ds.get("DeviceSerialNumber", "") or "").strip() or None)
    return agent, volume, serial


def films_reported(session: Session, study: Study) -> int | None:
    """Films printed per the study's latest MPPS reporting them, or None (not reported).

    An MPPS is the study's by Study Instance UID or, when the study has one, accession.
    """
    same_study = MppsRecord.study_instance_uid == study.study_uid
    if study.accession_number:  # an MPPS may name the order's accession only
        same_study = or_(same_study, MppsRecord.accession_number == study.accession_number)
    films = session.scalar(
        select(MppsRecord.films_printed)
        .where(same_study, MppsRecord.films_printed.is_not(None))
        .order_by(MppsRecord.id.desc())
        .limit(1)
    )
    return None if films is None else int(films)


def order_info(session: Session, study: Study) -> tuple[str | None, str | None]:
    """(procedure code, department) of the study's order, or (None, None)."""
    rp = session.scalar(
        select(RequestedProcedure)
        .join(StudyMatch, StudyMatch.rp_pk == RequestedProcedure.id)
        .where(StudyMatch.study_pk == study.id, StudyMatch.state == MatchState.MATCHED)
    )
    if rp is None and study.accession_number:
        rp = _latest(session, RequestedProcedure.accession_number == study.accession_number)
    if rp is None:
        rp = _latest(session, RequestedProcedure.study_instance_uid == study.study_uid)
    if rp is None:
        return None, None
    department = session.scalar(
        select(Visit.department)
        .join(Order, Order.visit_pk == Visit.id)
        .where(Order.id == rp.order_pk)
    )
    return rp.procedure_code.strip() or None, department or None


def _latest(session: Session, condition: ColumnElement[bool]) -> RequestedProcedure | None:
    return session.scalar(
        select(RequestedProcedure).where(condition).order_by(RequestedProcedure.id.desc()).limit(1)
    )
