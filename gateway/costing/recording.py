"""Cost one study and store the result as a new immutable revision (or an uncosted entry).

:func:`record_cost` is used by the ``cost`` job (on ``study.stable``) and by the recost
API. The job is idempotent: when the new figures equal the latest revision's, nothing is
added. An explicit recost (a correction) always adds a revision with its reason.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from gateway.core.instance_store import InstanceStore
from gateway.core.models import Study, utcnow
from gateway.core.settings import CostingSettings
from gateway.costing.catalogue_store import load_current
from gateway.costing.facts import facts_for_study, performed_at_of
from gateway.costing.models import (
    CostIssue,
    CostRecordDocument,
    CostRecordRow,
    StudyBillingInput,
    UncostedStudy,
)
from pricing_norms.catalogue import Component
from pricing_norms.costing import CostingError, CostRecord, cost_study
from pricing_norms.example import example_machine_mapper, example_service_mapper
from pricing_norms.mapping import (
    MachineMapper,
    MapEntry,
    MappingRule,
    ServiceMapper,
    StudyFacts,
)

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Mappers:
    """The study -> service and study -> machine mappers, built from settings."""

    service: ServiceMapper
    machine: MachineMapper
    settings: CostingSettings

    @classmethod
    def from_settings(cls, settings: CostingSettings) -> Mappers:
        entries: dict[str, list[MapEntry]] = {}
        rules: list[MappingRule] = []
        by_station: dict[str, str] = {}
        by_serial: dict[str, str] = {}
        if settings.use_example_mapping:
            example, machines = example_service_mapper(), example_machine_mapper()
            for entry in example.entries:
                entries.setdefault(entry.local_code, []).append(entry)
            rules += example.rules
            by_station.update(machines.by_station_ae)
            by_serial.update(machines.by_serial)
        site: dict[str, list[MapEntry]] = {}
        for entry in settings.site_map():
            site.setdefault(entry.local_code, []).append(entry)
        entries.update(site)  # the site's entries of a code replace the example's
        rules += [
            MappingRule(
                rule_id=r.rule_id,
                service_code=r.service_code,
                modality=r.modality,
                priority=r.priority,
                body_parts=frozenset(r.body_parts) if r.body_parts is not None else None,
                contrast=r.contrast,
                min_instances=r.min_instances,
                max_instances=r.max_instances,
                effective_from=r.effective_from,
                effective_to=r.effective_to,
            )
            for r in settings.rules
        ]
        by_station.update(settings.machine_by_station)
        by_serial.update(settings.machine_by_serial)
        return cls(
            ServiceMapper(
                rules=tuple(rules), entries=tuple(e for group in entries.values() for e in group)
            ),
            MachineMapper(by_serial=by_serial, by_station_ae=by_station),
            settings,
        )

    def fingerprint(self) -> tuple[str, str]:
        """SHA-256 of the mapping configuration in effect, and that configuration (JSON)."""
        text = json.dumps(self.settings.model_dump(mode="json"), sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest(), text

    def adjust(self, facts: StudyFacts, staff: StudyBillingInput | None = None) -> StudyFacts:
        """Apply the default department, how the result was delivered and TYLE_TT_DV.

        Delivery, first that applies: what staff stated for the study; the films the
        modality reported by MPPS (0 = filmless); a filmless department (or
        ``filmless_default``); otherwise on film.
        """
        settings = self.settings
        department = facts.department or settings.default_department or None
        films = facts.films_printed
        if staff is not None and staff.filmless is not None:
            filmless, films, source = staff.filmless, None, "staff"
        elif films is not None:
            filmless, source = films == 0, "mpps"
        elif department is not None and department in settings.filmless_departments:
            filmless, source = True, "department"
        elif settings.filmless_default:
            filmless, source = True, "setting"
        else:
            filmless, source = False, "default"
        tyle = staff.tyle_tt_dv if staff is not None and staff.tyle_tt_dv is not None else 100
        return dataclasses.replace(
            facts,
            department=department,
            filmless=filmless,
            films_printed=films,
            delivery_source=source,
            tyle_tt_dv=tyle,
        )


@dataclass(frozen=True)
class CostOutcome:
    """What :func:`record_cost` did: a record (new or unchanged) or why it could not."""

    record: CostRecordRow | None
    created: bool
    issue_kind: str | None = None
    detail: str = ""


def _facts_json(facts: StudyFacts) -> str:
    data = {k: v for k, v in dataclasses.asdict(facts).items() if v is not None}
    return json.dumps(data, default=str, sort_keys=True)


def _note_uncosted(
    session: Session, study: Study, kind: str, detail: str, facts: StudyFacts | None
) -> CostOutcome:
    now = utcnow()
    row = session.scalar(select(UncostedStudy).where(UncostedStudy.study_pk == study.id))
    if row is None:
        row = UncostedStudy(study_pk=study.id, study_uid=study.study_uid, first_seen_at=now)
        session.add(row)
    row.kind = kind
    row.detail = detail[:4000]
    row.facts_json = _facts_json(facts) if facts else "{}"
    row.last_seen_at = now
    row.resolved_at = None
    session.flush()
    log.info("study not costed: %s", kind)
    return CostOutcome(None, False, kind, detail)


def latest_record(session: Session, study_pk: int) -> CostRecordRow | None:
    return session.scalar(
        select(CostRecordRow)
        .where(CostRecordRow.study_pk == study_pk)
        .order_by(CostRecordRow.revision.desc())
        .limit(1)
    )


def record_cost(
    session: Session,
    study: Study,
    mappers: Mappers,
    *,
    reason: str,
    created_by: str,
    force: bool = False,
    store: InstanceStore | None = None,
) -> CostOutcome:
    """Cost ``study`` with the current catalogue; add a revision if the figures changed
    (always when ``force``). Unmapped or uncostable studies are noted, not dropped."""
    staff = session.scalar(select(StudyBillingInput).where(StudyBillingInput.study_pk == study.id))
    facts = mappers.adjust(facts_for_study(session, study.id, store=store), staff)
    current = load_current(session)
    if current is None:
        return _note_uncosted(session, study, CostIssue.NO_CATALOGUE, "no catalogue", facts)
    imp, catalogue = current
    service = mappers.service.map(facts, catalogue)
    if service.service_code is None:
        return _note_uncosted(session, study, CostIssue.UNMAPPED_SERVICE, service.reason, facts)
    machine = mappers.machine.map(facts)
    try:
        record = cost_study(catalogue, service.service_code, facts, machine.machine_code)
    except CostingError as exc:
        detail = f"{exc} (service {service.reason}; machine {machine.reason})"
        return _note_uncosted(session, study, CostIssue.COSTING_ERROR, detail, facts)
    document = record.to_json()
    latest = latest_record(session, study.id)
    if latest is not None and not force:
        old = session.get(CostRecordDocument, latest.id)
        if old is not None and old.record_json == document:
            _resolve(session, study.id)
            return CostOutcome(latest, False)
    row = _insert(
        session,
        study,
        record,
        document,
        revision=(latest.revision + 1) if latest else 1,
        import_pk=imp.id,
        mapping=f"{service.reason}; {machine.reason}",
        reason=reason,
        created_by=created_by,
    )
    _resolve(session, study.id)
    return CostOutcome(row, True)


def _resolve(session: Session, study_pk: int) -> None:
    row = session.scalar(
        select(UncostedStudy).where(
            UncostedStudy.study_pk == study_pk, UncostedStudy.resolved_at.is_(None)
        )
    )
    if row is not None:
        row.resolved_at = utcnow()


def _insert(
    session: Session,
    study: Study,
    record: CostRecord,
    document: str,
    *,
    revision: int,
    import_pk: int | None,
    mapping: str,
    reason: str,
    created_by: str,
) -> CostRecordRow:
    totals: dict[str, Any] = {c.value.lower(): record.total(c) for c in Component}
    row = CostRecordRow(
        study_pk=study.id,
        study_uid=study.study_uid,
        accession_number=study.accession_number or "",
        revision=revision,
        study_date=record.study_date,
        performed_at=performed_at_of(study),
        department=record.department or "",
        modality=record.modality,
        machine_code=record.machine_code or "",
        service_code=record.service_code,
        norm_set_code=record.norm_set_code,
        norm_illustrative=record.norm_illustrative,
        **totals,
        full_cost=record.full_cost,
        separately_billed=record.separately_billed,
        price_bh=record.price_bh,
        price_bv=record.price_bv,
        price_variant=record.price_variant,
        delivery=record.delivery,
        tyle_tt_dv=record.tyle_tt_dv,
        margin_bh=record.margin_bh,
        margin_bv=record.margin_bv,
        catalogue_import_pk=import_pk,
        mapping=mapping[:256],
        created_at=utcnow(),
        created_by=created_by[:64],
        reason=reason[:512],
    )
    session.add(row)
    session.flush()
    session.add(CostRecordDocument(record_pk=row.id, record_json=document))
    session.flush()
    return row
