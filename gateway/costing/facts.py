"""What the gateway knows about a study, as :class:`~pricing_norms.mapping.StudyFacts`.

From the DICOM index: study date, the main modality (the image series with most
instances; SR/PR/KO and other non-image series are ignored), body part, station name
(or the calling AE), instance count. From the stored files, when an instance store is
given: Contrast/Bolus Agent and Volume, Device Serial Number (one instance per series).
From MPPS, when the order tables exist: the films printed that the modality reported
(Film Consumption Sequence) on the latest MPPS of the study (its Study Instance UID, or
its accession number) that reported any.
From the order, when the order tables exist (checked in ``Base.metadata`` at run time,
so costing works before and without the order module): the procedure code and the
department: the requested procedure reconciliation matched the study to (table
``study_matches``, state MATCHED), else the one with the study's accession number
(``studies.accession_number``), else the one with its Study Instance UID.
"""

from __future__ import annotations

import logging
from datetime import date, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from sqlalchemy import Table, func, or_, select
from sqlalchemy.orm import Session

from gateway.models import Base, Instance, Series, Study
from gateway.store import InstanceStore
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
    import gateway.all_models  # noqa: F401  (registers every model module's tables)

    mpps = Base.metadata.tables.get("mpps")
    if mpps is None or "films_printed" not in mpps.c:
        return None
    same_study = mpps.c.study_instance_uid == study.study_uid
    if study.accession_number:  # an MPPS may name the order's accession only
        same_study = or_(same_study, mpps.c.accession_number == study.accession_number)
    films = session.scalar(
        select(mpps.c.films_printed)
        .where(same_study, mpps.c.films_printed.is_not(None))
        .order_by(mpps.c.id.desc())
        .limit(1)
    )
    return None if films is None else int(films)


def _order_table() -> Table | None:
    """The table holding accession number + procedure code, if the order module exists."""
    import gateway.all_models  # noqa: F401  (registers every model module's tables)

    for name in ("requested_procedures", "orders"):
        table = Base.metadata.tables.get(name)
        if table is not None and {"accession_number", "procedure_code"} <= set(table.c.keys()):
            return table
    return None


def order_info(session: Session, study: Study) -> tuple[str | None, str | None]:
    """(procedure code, department) of the study's order, or (None, None)."""
    table = _order_table()
    if table is None:
        return None, None
    row: Any = _matched_row(session, study, table)
    if row is None and study.accession_number:
        row = session.execute(
            select(table)
            .where(table.c.accession_number == study.accession_number)
            .order_by(table.c.id.desc())
            .limit(1)
        ).first()
    if row is None and "study_instance_uid" in table.c:
        row = session.execute(
            select(table)
            .where(table.c.study_instance_uid == study.study_uid)
            .order_by(table.c.id.desc())
            .limit(1)
        ).first()
    if row is None:
        return None, None
    values = row._mapping
    code = str(values["procedure_code"] or "").strip() or None
    return code, _department(session, values)


def _matched_row(session: Session, study: Study, table: Table) -> Any:
    """The requested procedure reconciliation matched the study to (MATCHED only)."""
    matches = Base.metadata.tables.get("study_matches")
    if (
        matches is None
        or table.name != "requested_procedures"
        or not {"study_pk", "rp_pk", "state"} <= set(matches.c.keys())
    ):
        return None
    rp_pk = session.scalar(
        select(matches.c.rp_pk).where(matches.c.study_pk == study.id, matches.c.state == "MATCHED")
    )
    if rp_pk is None:
        return None
    return session.execute(select(table).where(table.c.id == rp_pk)).first()


def _department(session: Session, values: Any) -> str | None:
    if values.get("department"):
        return str(values["department"])
    tables = Base.metadata.tables
    orders, visits = tables.get("orders"), tables.get("visits")
    if (
        "order_pk" not in values
        or orders is None
        or visits is None
        or "visit_pk" not in orders.c
        or "department" not in visits.c
    ):
        return None
    department = session.scalar(
        select(visits.c.department)
        .join(orders, orders.c.visit_pk == visits.c.id)
        .where(orders.c.id == values["order_pk"])
    )
    return str(department) if department else None
