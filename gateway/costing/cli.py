"""The bodies of ``risgate norms import|export`` and ``risgate report export``.

Each returns the process exit code: 0 done, 1 rejected input (errors printed), 2 usage.
"""

from __future__ import annotations

import getpass
from contextlib import nullcontext
from pathlib import Path

import click

from gateway.core.database import Database
from gateway.core.migrate import upgrade
from gateway.core.settings import Settings
from gateway.costing.catalogue_store import (
    UploadedFile,
    checksum,
    load_current,
    parse_files,
    read_path,
    store_catalogue,
)
from gateway.costing.handlers import requeue_uncosted
from gateway.costing.reports import (
    IllustrativeRefused,
    ReportError,
    ReportQuery,
    check_claim,
    claim_options,
    count_rows,
    parse_day,
    parse_group_by,
    write_report,
)
from pricing_norms.catalogue import CatalogueError
from pricing_norms.catalogue_io import export_csv_dir, export_xlsx
from pricing_norms.claims_schema import ClaimValidationError
from pricing_norms.example import EXAMPLE_DATA_DIR


def _database(settings: Settings) -> Database:
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    db = Database.from_settings(settings)
    upgrade(db.engine)
    return db


def import_catalogue(
    settings: Settings, path: str | None, *, example: bool, user: str | None
) -> int:
    if example == (path is not None):
        click.echo("give a PATH or --example (not both)", err=True)
        return 2
    source = EXAMPLE_DATA_DIR if example else Path(str(path))
    files: list[UploadedFile] = read_path(source)
    try:
        catalogue = parse_files(files)
    except CatalogueError as exc:
        click.echo(f"rejected, nothing imported: {exc}", err=True)
        return 1
    name = "example (pricing_norms/data)" if example else source.name
    db = _database(settings)
    try:
        with db.write_session() as session:
            imp = store_catalogue(
                session,
                catalogue,
                file_name=name,
                digest=checksum(files),
                imported_by=user or getpass.getuser(),
            )
            requeued = requeue_uncosted(session)
    finally:
        db.dispose()
    counts = ", ".join(f"{k} {len(v)}" for k, v in catalogue.tables().items())
    click.echo(f"imported catalogue #{imp.id} from {name}: {counts}")
    if catalogue.illustrative_note:
        click.echo(catalogue.illustrative_note)
    if requeued:
        click.echo(f"{requeued} uncosted studies queued for costing")
    return 0


def export_catalogue(settings: Settings, target: str) -> int:
    db = _database(settings)
    try:
        with db.session_factory() as session:
            current = load_current(session)
    finally:
        db.dispose()
    if current is None:
        click.echo("no catalogue imported yet", err=True)
        return 1
    imp, catalogue = current
    out = Path(target)
    if out.suffix.lower() == ".xlsx":
        export_xlsx(catalogue, out)
    else:
        export_csv_dir(catalogue, out)
    click.echo(f"catalogue #{imp.id} written to {out}")
    return 0


def export_report(
    settings: Settings,
    date_from: str,
    date_to: str,
    fmt: str,
    group_by: str | None,
    out: str,
    allow_illustrative: bool = False,
) -> int:
    """Exit status: 0 written, 2 bad request, 3 claim file refused (illustrative figures),
    1 claim file failing the schema (the partial files are removed)."""
    try:
        query = ReportQuery(
            parse_day(date_from, "--from"), parse_day(date_to, "--to"), parse_group_by(group_by)
        )
        query.check(fmt)
    except ReportError as exc:
        click.echo(str(exc), err=True)
        return 2
    db = _database(settings)
    try:
        check_claim(db, query, fmt, allow_illustrative)
    except IllustrativeRefused as exc:
        db.dispose()
        click.echo(f"{exc} (--allow-illustrative)", err=True)
        return 3
    target = Path(out)
    xml2_path = target.with_name(target.stem + "_XML2.xml") if fmt == "xml3" else None
    options = claim_options(settings.billing)
    try:
        total = count_rows(db, query)
        with (
            click.progressbar(length=total, label=f"{fmt} export", show_pos=True) as bar,
            target.open("wb") as handle,
            xml2_path.open("wb") if xml2_path is not None else nullcontext() as xml2,
        ):
            rows = write_report(
                db, query, fmt, handle, xml2_out=xml2, progress=bar.update,
                allow_illustrative=True, claims=options,
            )  # fmt: skip
    except ClaimValidationError as exc:
        for path in (target, xml2_path):
            if path is not None:
                path.unlink(missing_ok=True)
        click.echo(f"{fmt.upper()} refused by the XML schema, nothing written: {exc}", err=True)
        return 1
    finally:
        db.dispose()
    click.echo(f"{rows} rows written to {target}")
    if xml2_path is not None:
        click.echo(f"contrast agents (XML2) written to {xml2_path}")
    return 0


def recost_period(
    settings: Settings, date_from: str, date_to: str, reason: str, user: str | None
) -> int:
    """Cost again every study costed in the period (after a norm or mapping change).

    A study gets a new revision only when its figures change; each study is its own
    transaction.
    """
    from sqlalchemy import select

    from gateway.core.instance_store import InstanceStore
    from gateway.core.models import Study
    from gateway.costing.models import CostRecordRow
    from gateway.costing.recording import Mappers, record_cost

    try:
        first, last = parse_day(date_from, "--from"), parse_day(date_to, "--to")
    except ReportError as exc:
        click.echo(str(exc), err=True)
        return 2
    if len(reason.strip()) < 3:
        click.echo("--reason is required", err=True)
        return 2
    db = _database(settings)
    mappers = Mappers.from_settings(settings.costing)
    store = InstanceStore(settings.store_path, fsync=False)
    changed = 0
    try:
        with db.session_factory() as session:
            study_pks = list(
                session.scalars(
                    select(CostRecordRow.study_pk)
                    .where(CostRecordRow.study_date >= first, CostRecordRow.study_date <= last)
                    .distinct()
                )
            )
        with click.progressbar(study_pks, label="recost") as bar:
            for study_pk in bar:
                with db.write_session() as session:
                    study = session.get(Study, study_pk)
                    if study is None:
                        continue
                    outcome = record_cost(
                        session,
                        study,
                        mappers,
                        reason=reason.strip(),
                        created_by=user or getpass.getuser(),
                        store=store,
                    )
                    changed += 1 if outcome.created else 0
    finally:
        db.dispose()
    click.echo(f"{len(study_pks)} studies checked, {changed} new revisions")
    return 0
