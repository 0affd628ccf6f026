"""The norm catalogue in the database: import a validated catalogue as one new version,
load the current (or any) version back as a :class:`~pricing_norms.catalogue.Catalogue`.

An import is all-or-nothing: files are parsed and validated completely by
:mod:`pricing_norms.catalogue_io` before anything is written, and the rows of a version
are written in one transaction. Each import replaces the whole catalogue (the file *is*
the catalogue: export, edit, import); earlier versions stay for audit.
"""

from __future__ import annotations

import hashlib
import io
import json
import tempfile
import threading
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path, PurePath
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from gateway.core.models import utcnow
from gateway.costing.models import (
    CatEquipment,
    CatNormLine,
    CatNormSet,
    CatPrice,
    CatService,
    CatStaffRate,
    NormImport,
)
from pricing_norms.catalogue import (
    CapacityUnit,
    Catalogue,
    CatalogueError,
    CatalogueIssue,
    Component,
    Equipment,
    NormLine,
    NormSet,
    Override,
    Price,
    PriceVariant,
    Service,
    StaffCategory,
    StaffRate,
)
from pricing_norms.catalogue_io import load_csv_dir, load_xlsx
from pricing_norms.money import decimal_text

MAX_UPLOAD_BYTES = 20 * 1024 * 1024


@dataclass(frozen=True)
class UploadedFile:
    """A catalogue file as received (CLI or HTTP): its name and bytes."""

    name: str
    data: bytes


def checksum(files: Sequence[UploadedFile]) -> str:
    """SHA-256 over the files sorted by name (name, NUL, bytes, NUL for each)."""
    digest = hashlib.sha256()
    for item in sorted(files, key=lambda f: f.name):
        digest.update(item.name.encode() + b"\0" + item.data + b"\0")
    return digest.hexdigest()


def _fail(message: str) -> CatalogueError:
    return CatalogueError([CatalogueIssue("catalogue", None, None, message)])


def parse_files(files: Sequence[UploadedFile]) -> Catalogue:
    """Parse one ``.xlsx``, one ``.zip`` of CSV files, or several ``.csv`` files.

    Raises :class:`CatalogueError` (row/column-numbered issues) on any problem.
    """
    if not files:
        raise _fail("no file given")
    if sum(len(f.data) for f in files) > MAX_UPLOAD_BYTES:
        raise _fail(f"files larger than {MAX_UPLOAD_BYTES // 1024 // 1024} MB")
    suffixes = {PurePath(f.name).suffix.lower() for f in files}
    if len(files) == 1 and suffixes == {".xlsx"}:
        return load_xlsx(io.BytesIO(files[0].data))
    if len(files) == 1 and suffixes == {".zip"}:
        return _parse_zip(files[0].data)
    if suffixes == {".csv"}:
        with tempfile.TemporaryDirectory(prefix="risgate-norms-") as tmp:
            for item in files:
                (Path(tmp) / _safe_name(item.name)).write_bytes(item.data)
            return load_csv_dir(tmp)
    raise _fail("expected one .xlsx workbook, one .zip of CSV files, or the .csv files")


def _safe_name(name: str) -> str:
    base = PurePath(name.replace("\\", "/")).name
    if not base or base.startswith(".") or not base.lower().endswith(".csv"):
        raise _fail(f"bad file name {name[:80]!r}")
    return base


def _parse_zip(data: bytes) -> Catalogue:
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
    except zipfile.BadZipFile as exc:
        raise _fail(f"not a zip file: {exc}") from None
    with archive, tempfile.TemporaryDirectory(prefix="risgate-norms-") as tmp:
        total = 0
        for info in archive.infolist():
            if info.is_dir() or not info.filename.lower().endswith(".csv"):
                continue
            total += info.file_size
            if total > MAX_UPLOAD_BYTES:
                raise _fail("zip content too large")
            (Path(tmp) / _safe_name(info.filename)).write_bytes(archive.read(info))
        return load_csv_dir(tmp)


def read_path(path: Path) -> list[UploadedFile]:
    """The files of a CSV directory (``*.csv``), or the one file named."""
    if path.is_dir():
        return [UploadedFile(p.name, p.read_bytes()) for p in sorted(path.glob("*.csv"))]
    return [UploadedFile(path.name, path.read_bytes())]


def _dec(value: Decimal | None) -> str | None:
    return None if value is None else decimal_text(value)


def store_catalogue(
    session: Session, catalogue: Catalogue, *, file_name: str, digest: str, imported_by: str
) -> NormImport:
    """Write ``catalogue`` as a new version (the caller's transaction) and return it."""
    counts = {name: len(rows) for name, rows in catalogue.tables().items()}
    imp = NormImport(
        imported_at=utcnow(),
        imported_by=imported_by[:64],
        file_name=file_name[:256],
        checksum=digest,
        illustrative=catalogue.has_illustrative,
        summary=json.dumps(counts, sort_keys=True),
    )
    session.add(imp)
    session.flush()
    pk = imp.id
    rows: list[object] = []
    rows += [
        CatNormSet(
            import_pk=pk,
            code=n.code,
            name=n.name,
            legal_basis=n.legal_basis,
            effective_from=n.effective_from,
            effective_to=n.effective_to,
            illustrative=n.illustrative,
        )
        for n in catalogue.norm_sets
    ]
    rows += [
        CatService(
            import_pk=pk,
            code=s.code,
            name=s.name,
            ma_nhom=s.ma_nhom,
            modality=s.modality,
            contrast=s.contrast,
            unit=s.unit,
        )
        for s in catalogue.services
    ]
    rows += [
        CatPrice(
            import_pk=pk,
            service_code=p.service_code,
            don_gia_bh=p.don_gia_bh,
            don_gia_bv=p.don_gia_bv,
            excludes=p.excludes,
            effective_from=p.effective_from,
            effective_to=p.effective_to,
            legal_basis=p.legal_basis,
            variant=p.variant.value,
            decision_number=p.decision_number,
            decision_date=p.decision_date,
        )
        for p in catalogue.prices
    ]
    rows += [
        CatNormLine(
            import_pk=pk,
            norm_set_code=x.norm_set_code,
            service_code=x.service_code,
            component=x.component.value,
            item_code=x.item_code,
            item_name=x.item_name,
            unit=x.unit,
            quantity=decimal_text(x.quantity),
            unit_cost=_dec(x.unit_cost),
            billed_separately=x.billed_separately,
            override=x.override.value if x.override else None,
        )
        for x in catalogue.norm_lines
    ]
    rows += [
        CatStaffRate(
            import_pk=pk,
            category=r.category.value,
            vnd_per_minute=decimal_text(r.vnd_per_minute),
            effective_from=r.effective_from,
            effective_to=r.effective_to,
            basis=r.basis,
        )
        for r in catalogue.staff_rates
    ]
    rows += [
        CatEquipment(
            import_pk=pk,
            ma_may=e.ma_may,
            modality=e.modality,
            name=e.name,
            purchase_value=e.purchase_value,
            life_years=e.life_years,
            yearly_capacity=e.yearly_capacity,
            capacity_unit=e.capacity_unit.value,
        )
        for e in catalogue.equipment
    ]
    session.add_all(rows)
    session.flush()
    return imp


def current_import(session: Session) -> NormImport | None:
    """The latest import (the catalogue in use), or None before the first one."""
    return session.scalar(select(NormImport).order_by(NormImport.id.desc()).limit(1))


_cache: dict[tuple[object, ...], Catalogue] = {}
_cache_lock = threading.Lock()


def load_version(session: Session, imp: NormImport) -> Catalogue:
    """The catalogue of one import (versions never change, so they are cached)."""
    import_pk = imp.id
    key = (str(session.get_bind().engine.url), import_pk, imp.checksum, imp.imported_at)
    with _cache_lock:
        found = _cache.get(key)
    if found is not None:
        return found

    def rows(model: Any) -> list[Any]:
        return list(
            session.scalars(select(model).where(model.import_pk == import_pk).order_by(model.id))
        )

    catalogue = Catalogue(
        norm_sets=[
            NormSet(r.code, r.name, r.legal_basis, r.effective_from, r.effective_to, r.illustrative)
            for r in rows(CatNormSet)
        ],
        services=[
            Service(r.code, r.name, r.ma_nhom, r.modality, r.contrast, r.unit)
            for r in rows(CatService)
        ],
        prices=[
            Price(
                r.service_code,
                r.don_gia_bh,
                r.don_gia_bv,
                r.excludes,
                r.effective_from,
                r.effective_to,
                r.legal_basis,
                PriceVariant(r.variant),
                r.decision_number,
                r.decision_date,
            )
            for r in rows(CatPrice)
        ],
        norm_lines=[
            NormLine(
                r.norm_set_code,
                r.service_code,
                Component(r.component),
                r.item_code,
                r.item_name,
                r.unit,
                Decimal(r.quantity),
                None if r.unit_cost is None else Decimal(r.unit_cost),
                r.billed_separately,
                Override(r.override) if r.override else None,
            )
            for r in rows(CatNormLine)
        ],
        staff_rates=[
            StaffRate(
                StaffCategory(r.category),
                Decimal(r.vnd_per_minute),
                r.effective_from,
                r.effective_to,
                r.basis,
            )
            for r in rows(CatStaffRate)
        ],
        equipment=[
            Equipment(
                r.ma_may,
                r.modality,
                r.name,
                r.purchase_value,
                r.life_years,
                r.yearly_capacity,
                CapacityUnit(r.capacity_unit),
            )
            for r in rows(CatEquipment)
        ],
    )
    with _cache_lock:
        _cache[key] = catalogue
    return catalogue


def load_current(session: Session) -> tuple[NormImport, Catalogue] | None:
    """The current import and its catalogue, or None."""
    imp = current_import(session)
    if imp is None:
        return None
    return imp, load_version(session, imp)
