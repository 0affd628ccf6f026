"""Flat cost rows and their aggregation for billing reports.

A :class:`CostRow` is the flat, storable projection of one costed study (one row per
study: component totals, full cost, prices). :func:`aggregate` consumes any iterable
of rows once (e.g. a streamed database cursor) and keeps one accumulator per group,
grouped by any of ``day``, ``month``, ``department`` (MA_KHOA), ``modality``,
``machine`` (MA_MAY), ``service``, ``staff`` and ``norm_set``. For each group it gives
the study count, full cost by component, billed amount (price BH and BV, one unit per
study), margin (billed - full cost), the separately billed total and how many studies
were costed with illustrative norms.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import date

from pricing_norms.catalogue import Component
from pricing_norms.costing import CostRecord

__all__ = ["GROUP_KEYS", "AggregateRow", "CostRow", "aggregate", "cost_row"]

_COMPONENTS = tuple(Component)
_FIELD = {component: component.value.lower() for component in Component}


@dataclass(frozen=True, slots=True)
class CostRow:
    """One costed study, flat. Money in integer VND; '' for an unknown code."""

    study_key: str
    study_date: date
    department: str
    modality: str
    machine: str
    service_code: str
    staff: str
    norm_set_code: str
    norm_illustrative: bool
    vat_tu: int
    thuoc: int
    nhan_cong: int
    khau_hao: int
    duy_tu: int
    nang_luong: int
    quan_ly: int
    cntt: int
    full_cost: int
    price_bh: int
    price_bv: int
    separately_billed: int

    @property
    def margin_bh(self) -> int:
        """DON_GIA_BH - full cost."""
        return self.price_bh - self.full_cost

    @property
    def margin_bv(self) -> int:
        """DON_GIA_BV - full cost."""
        return self.price_bv - self.full_cost

    def component(self, component: Component) -> int:
        """Total of one component."""
        value: int = getattr(self, _FIELD[component])
        return value


def cost_row(record: CostRecord, *, study_key: str, staff: str = "") -> CostRow:
    """Flatten a :class:`CostRecord`; ``staff`` is the performing staff code (for grouping)."""
    return CostRow(
        study_key=study_key,
        study_date=record.study_date,
        department=record.department or "",
        modality=record.modality,
        machine=record.machine_code or "",
        service_code=record.service_code,
        staff=staff,
        norm_set_code=record.norm_set_code,
        norm_illustrative=record.norm_illustrative,
        vat_tu=record.total(Component.VAT_TU),
        thuoc=record.total(Component.THUOC),
        nhan_cong=record.total(Component.NHAN_CONG),
        khau_hao=record.total(Component.KHAU_HAO),
        duy_tu=record.total(Component.DUY_TU),
        nang_luong=record.total(Component.NANG_LUONG),
        quan_ly=record.total(Component.QUAN_LY),
        cntt=record.total(Component.CNTT),
        full_cost=record.full_cost,
        price_bh=record.price_bh,
        price_bv=record.price_bv,
        separately_billed=record.separately_billed,
    )


GROUP_KEYS: dict[str, Callable[[CostRow], str]] = {
    "day": lambda row: row.study_date.isoformat(),
    "month": lambda row: row.study_date.strftime("%Y-%m"),
    "department": lambda row: row.department,
    "modality": lambda row: row.modality,
    "machine": lambda row: row.machine,
    "service": lambda row: row.service_code,
    "staff": lambda row: row.staff,
    "norm_set": lambda row: row.norm_set_code,
}


@dataclass(frozen=True, slots=True)
class AggregateRow:
    """Totals of one group; ``components`` follows ``Component`` order."""

    by: tuple[str, ...]
    key: tuple[str, ...]
    study_count: int
    components: tuple[int, ...]
    full_cost: int
    billed_bh: int
    billed_bv: int
    separately_billed: int
    illustrative_count: int

    @property
    def margin_bh(self) -> int:
        """Billed BH - full cost."""
        return self.billed_bh - self.full_cost

    @property
    def margin_bv(self) -> int:
        """Billed BV - full cost."""
        return self.billed_bv - self.full_cost

    def component(self, component: Component) -> int:
        """Total of one component over the group."""
        return self.components[_COMPONENTS.index(component)]


def aggregate(rows: Iterable[CostRow], by: Sequence[str]) -> list[AggregateRow]:
    """Group ``rows`` (consumed once) by the ``by`` keys; result sorted by key.

    ``by=()`` gives one grand-total row (if there are rows).
    """
    unknown = [name for name in by if name not in GROUP_KEYS]
    if unknown:
        raise ValueError(f"unknown group key(s) {unknown}; use {sorted(GROUP_KEYS)}")
    getters = [GROUP_KEYS[name] for name in by]
    width = len(_COMPONENTS) + 6
    sums: dict[tuple[str, ...], list[int]] = {}
    for row in rows:
        key = tuple(get(row) for get in getters)
        acc = sums.get(key)
        if acc is None:
            acc = sums[key] = [0] * width
        acc[0] += 1
        for index, component in enumerate(_COMPONENTS, start=1):
            acc[index] += row.component(component)
        tail = len(_COMPONENTS) + 1
        acc[tail] += row.full_cost
        acc[tail + 1] += row.price_bh
        acc[tail + 2] += row.price_bv
        acc[tail + 3] += row.separately_billed
        acc[tail + 4] += 1 if row.norm_illustrative else 0
    tail = len(_COMPONENTS) + 1
    return [
        AggregateRow(
            by=tuple(by),
            key=key,
            study_count=acc[0],
            components=tuple(acc[1:tail]),
            full_cost=acc[tail],
            billed_bh=acc[tail + 1],
            billed_bv=acc[tail + 2],
            separately_billed=acc[tail + 3],
            illustrative_count=acc[tail + 4],
        )
        for key, acc in sorted(sums.items())
    ]
