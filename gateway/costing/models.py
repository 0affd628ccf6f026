"""ORM tables of costing: catalogue imports (versioned), cost records (insert-only
revisions) with their full JSON document, and the studies that could not be costed.

Catalogue: every import is a complete catalogue version. Its rows carry ``import_pk``;
the current catalogue is the latest import. Old versions stay (audit: a cost record
names the import it was costed with). Exact numbers (quantities, VND/minute rates) are
stored as canonical decimal text, money as integer VND.

Cost records: one row per (study, revision), never updated; the row keeps the price
variant (film / PACS), the delivery and TYLE_TT_DV, the document the price decision.
Reports read the latest revision of each study. The full ``CostRecord.to_dict()`` JSON lives in
``cost_record_documents`` (1:1), so report scans do not drag kilobytes of JSON per row.
"""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import (
    BigInteger,
    Boolean,
    Date,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from gateway.core.models import Base


class NormImport(Base):
    """One catalogue import: who, when, which file (name and SHA-256)."""

    __tablename__ = "norm_imports"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    imported_at: Mapped[datetime] = mapped_column(DateTime())
    imported_by: Mapped[str] = mapped_column(String(64))
    file_name: Mapped[str] = mapped_column(String(256))
    checksum: Mapped[str] = mapped_column(String(64))
    illustrative: Mapped[bool] = mapped_column(Boolean, default=False)
    summary: Mapped[str] = mapped_column(Text, default="")


class CatNormSet(Base):
    __tablename__ = "cat_norm_sets"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    import_pk: Mapped[int] = mapped_column(ForeignKey("norm_imports.id"), index=True)
    code: Mapped[str] = mapped_column(String(64))
    name: Mapped[str] = mapped_column(String(512))
    legal_basis: Mapped[str] = mapped_column(Text, default="")
    effective_from: Mapped[date] = mapped_column(Date())
    effective_to: Mapped[date | None] = mapped_column(Date(), nullable=True)
    illustrative: Mapped[bool] = mapped_column(Boolean, default=False)


class CatService(Base):
    __tablename__ = "cat_services"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    import_pk: Mapped[int] = mapped_column(ForeignKey("norm_imports.id"), index=True)
    code: Mapped[str] = mapped_column(String(16))
    name: Mapped[str] = mapped_column(String(512))
    ma_nhom: Mapped[int] = mapped_column(Integer)
    modality: Mapped[str] = mapped_column(String(16))
    contrast: Mapped[bool] = mapped_column(Boolean)
    unit: Mapped[str] = mapped_column(String(64))


class CatPrice(Base):
    __tablename__ = "cat_prices"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    import_pk: Mapped[int] = mapped_column(ForeignKey("norm_imports.id"), index=True)
    service_code: Mapped[str] = mapped_column(String(16))
    don_gia_bh: Mapped[int] = mapped_column(BigInteger)
    don_gia_bv: Mapped[int] = mapped_column(BigInteger)
    excludes: Mapped[str] = mapped_column(Text, default="")
    effective_from: Mapped[date] = mapped_column(Date())
    effective_to: Mapped[date | None] = mapped_column(Date(), nullable=True)
    legal_basis: Mapped[str] = mapped_column(Text, default="")
    variant: Mapped[str] = mapped_column(String(8), default="")
    decision_number: Mapped[str] = mapped_column(String(128), default="")
    decision_date: Mapped[date | None] = mapped_column(Date(), nullable=True)


class CatNormLine(Base):
    __tablename__ = "cat_norm_lines"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    import_pk: Mapped[int] = mapped_column(ForeignKey("norm_imports.id"), index=True)
    norm_set_code: Mapped[str] = mapped_column(String(64))
    service_code: Mapped[str] = mapped_column(String(16))
    component: Mapped[str] = mapped_column(String(16))
    item_code: Mapped[str] = mapped_column(String(64))
    item_name: Mapped[str] = mapped_column(String(512))
    unit: Mapped[str] = mapped_column(String(64))
    quantity: Mapped[str] = mapped_column(String(32))
    unit_cost: Mapped[str | None] = mapped_column(String(32), nullable=True)
    billed_separately: Mapped[bool] = mapped_column(Boolean, default=False)
    override: Mapped[str | None] = mapped_column(String(16), nullable=True)


class CatStaffRate(Base):
    __tablename__ = "cat_staff_rates"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    import_pk: Mapped[int] = mapped_column(ForeignKey("norm_imports.id"), index=True)
    category: Mapped[str] = mapped_column(String(8))
    vnd_per_minute: Mapped[str] = mapped_column(String(32))
    effective_from: Mapped[date] = mapped_column(Date())
    effective_to: Mapped[date | None] = mapped_column(Date(), nullable=True)
    basis: Mapped[str] = mapped_column(Text, default="")


class CatEquipment(Base):
    __tablename__ = "cat_equipment"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    import_pk: Mapped[int] = mapped_column(ForeignKey("norm_imports.id"), index=True)
    ma_may: Mapped[str] = mapped_column(String(64))
    modality: Mapped[str] = mapped_column(String(16))
    name: Mapped[str] = mapped_column(String(512))
    purchase_value: Mapped[int] = mapped_column(BigInteger)
    life_years: Mapped[int] = mapped_column(Integer)
    yearly_capacity: Mapped[int] = mapped_column(BigInteger)
    capacity_unit: Mapped[str] = mapped_column(String(8))


class CostRecordRow(Base):
    """One revision of one study's cost; inserted once, never updated."""

    __tablename__ = "cost_records"
    __table_args__ = (
        UniqueConstraint("study_pk", "revision", name="uq_cost_revision"),
        Index("ix_cost_records_date", "study_date", "id"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    study_pk: Mapped[int] = mapped_column(ForeignKey("studies.id"))
    study_uid: Mapped[str] = mapped_column(String(64), index=True)
    accession_number: Mapped[str] = mapped_column(String(64), default="")
    revision: Mapped[int] = mapped_column(Integer)
    study_date: Mapped[date] = mapped_column(Date())
    performed_at: Mapped[datetime | None] = mapped_column(DateTime(), nullable=True)
    department: Mapped[str] = mapped_column(String(64), default="")
    modality: Mapped[str] = mapped_column(String(16), default="")
    machine_code: Mapped[str] = mapped_column(String(64), default="")
    service_code: Mapped[str] = mapped_column(String(16))
    norm_set_code: Mapped[str] = mapped_column(String(64))
    norm_illustrative: Mapped[bool] = mapped_column(Boolean, default=False)
    vat_tu: Mapped[int] = mapped_column(BigInteger, default=0)
    thuoc: Mapped[int] = mapped_column(BigInteger, default=0)
    nhan_cong: Mapped[int] = mapped_column(BigInteger, default=0)
    khau_hao: Mapped[int] = mapped_column(BigInteger, default=0)
    duy_tu: Mapped[int] = mapped_column(BigInteger, default=0)
    nang_luong: Mapped[int] = mapped_column(BigInteger, default=0)
    quan_ly: Mapped[int] = mapped_column(BigInteger, default=0)
    cntt: Mapped[int] = mapped_column(BigInteger, default=0)
    full_cost: Mapped[int] = mapped_column(BigInteger)
    separately_billed: Mapped[int] = mapped_column(BigInteger, default=0)
    price_bh: Mapped[int] = mapped_column(BigInteger)
    price_bv: Mapped[int] = mapped_column(BigInteger)
    price_variant: Mapped[str] = mapped_column(String(8), default="")
    delivery: Mapped[str] = mapped_column(String(16), default="")
    tyle_tt_dv: Mapped[int] = mapped_column(Integer, default=100)
    margin_bh: Mapped[int] = mapped_column(BigInteger)
    margin_bv: Mapped[int] = mapped_column(BigInteger)
    catalogue_import_pk: Mapped[int | None] = mapped_column(
        ForeignKey("norm_imports.id"), nullable=True
    )
    mapping: Mapped[str] = mapped_column(String(256), default="")
    created_at: Mapped[datetime] = mapped_column(DateTime())
    created_by: Mapped[str] = mapped_column(String(64))
    reason: Mapped[str] = mapped_column(String(512))


class CostRecordDocument(Base):
    """The full ``CostRecord.to_dict()`` JSON of one cost record revision."""

    __tablename__ = "cost_record_documents"

    record_pk: Mapped[int] = mapped_column(ForeignKey("cost_records.id"), primary_key=True)
    record_json: Mapped[str] = mapped_column(Text)


class CostIssue:
    NO_CATALOGUE = "NO_CATALOGUE"
    UNMAPPED_SERVICE = "UNMAPPED_SERVICE"
    COSTING_ERROR = "COSTING_ERROR"


class UncostedStudy(Base):
    """A study that could not be costed (unmapped, no norm...): listed for billing staff."""

    __tablename__ = "cost_uncosted"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    study_pk: Mapped[int] = mapped_column(ForeignKey("studies.id"), unique=True)
    study_uid: Mapped[str] = mapped_column(String(64))
    kind: Mapped[str] = mapped_column(String(32))
    detail: Mapped[str] = mapped_column(Text, default="")
    facts_json: Mapped[str] = mapped_column(Text, default="{}")
    first_seen_at: Mapped[datetime] = mapped_column(DateTime())
    last_seen_at: Mapped[datetime] = mapped_column(DateTime())
    resolved_at: Mapped[datetime | None] = mapped_column(DateTime(), nullable=True, index=True)


class StudyBillingInput(Base):
    """What billing staff stated about one study: result delivered without film (or
    with film), and the service payment percentage (XML3 TYLE_TT_DV). ``None`` = not
    stated. Every change is audited and costs the study again (a new revision)."""

    __tablename__ = "cost_study_inputs"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    study_pk: Mapped[int] = mapped_column(ForeignKey("studies.id"), unique=True)
    filmless: Mapped[bool | None] = mapped_column(Boolean, nullable=True)
    tyle_tt_dv: Mapped[int | None] = mapped_column(Integer, nullable=True)
    reason: Mapped[str] = mapped_column(String(512), default="")
    updated_by: Mapped[str] = mapped_column(String(64))
    updated_at: Mapped[datetime] = mapped_column(DateTime())


class MappingVersion(Base):
    """Each distinct costing mapping configuration seen at start-up (SHA-256 of it):
    a new one re-queues the uncosted studies, which the new mapping may now cost."""

    __tablename__ = "cost_mapping_versions"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    fingerprint: Mapped[str] = mapped_column(String(64), unique=True)
    mapping_json: Mapped[str] = mapped_column(Text)
    first_seen_at: Mapped[datetime] = mapped_column(DateTime())
