"""Cost one study against the norm, price and staff rates in force on its date.

Rounding rule (the only one in the subsystem)
    Each line amount = quantity x unit cost, computed exactly (Decimal/Fraction, no
    floats) and rounded **half-up to the whole dong** (0.5 -> 1). Component totals,
    full cost, separately-billed total and margins are plain integer sums/differences of
    those rounded line amounts and integer prices. Derived rates (staff VND/minute,
    depreciation per use or minute = purchase / (life x yearly capacity)) are used exactly;
    the ``unit_cost`` shown in a :class:`CostLine` for depreciation is that rate rounded
    half-up to 4 decimals, for display only (other unit costs are shown exactly).

Quantities
    Norm quantities, except where the study shows the actual quantity: the CONTRAST_ML
    line takes ``facts.contrast_volume_ml`` when known; FILM lines take
    ``facts.films_printed`` when known (the MPPS Film Consumption Sequence), and are
    removed for a filmless study otherwise; PACS lines (costs of filmless delivery only)
    are removed for a study delivered on film. So film is an internal consumable of the
    norm (VAT_TU, never billed on its own) that follows how the result was delivered.

Film or PACS price
    The price follows the delivery too (Decision 313/QĐ-BYT approves a film and a
    filmless PACS price per service): a filmless study takes the PACS price in force,
    a study with film the film price, each falling back to a price that does not
    distinguish (:meth:`~pricing_norms.catalogue.Catalogue.price_for_delivery`). The
    record keeps the delivery, who decided it, the price variant and its decision.
    ``tyle_tt_dv`` (XML3 TYLE_TT_DV) is carried from the facts for the claim export.

Separately billed items (e.g. contrast agent, billed as a drug in XML2) are listed with
their amount but are *not* in the component totals or the full cost:
``separately_billed`` sums them. Margins compare the service price (which excludes
them) with the full cost: ``margin_bh = DON_GIA_BH - full_cost``, same for BV.

``cost_study`` is pure and deterministic; a :class:`CostRecord` has a stable dict/JSON
form (``schema_version`` 2; version 1 documents, written before price variants, still
read, with an unknown delivery, variant ``""`` and TYLE_TT_DV 100) for immutable storage.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from fractions import Fraction
from typing import Any

from pricing_norms.catalogue import (
    Catalogue,
    Component,
    Equipment,
    NormLine,
    Override,
    StaffCategory,
    capacity_unit_of,
)
from pricing_norms.mapping import Delivery, StudyFacts
from pricing_norms.money import decimal_text, line_amount, to_decimal

__all__ = ["SCHEMA_VERSION", "CostLine", "CostRecord", "CostingError", "cost_study"]

SCHEMA_VERSION = 2
_READABLE_SCHEMAS = (1, 2)
_COMPONENT_ORDER = {component: index for index, component in enumerate(Component)}


class CostingError(ValueError):
    """The study cannot be costed (no price/norm/rate in force, unknown machine...)."""


@dataclass(frozen=True, slots=True)
class CostLine:
    """One costed line. ``source`` is "norm" or "actual" (quantity from the study)."""

    component: Component
    item_code: str
    item_name: str
    unit: str
    norm_quantity: Decimal
    quantity: Decimal
    unit_cost: Decimal
    amount: int
    billed_separately: bool
    source: str

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe form (decimals as canonical strings)."""
        return {
            "component": self.component.value,
            "item_code": self.item_code,
            "item_name": self.item_name,
            "unit": self.unit,
            "norm_quantity": decimal_text(self.norm_quantity),
            "quantity": decimal_text(self.quantity),
            "unit_cost": decimal_text(self.unit_cost),
            "amount": self.amount,
            "billed_separately": self.billed_separately,
            "source": self.source,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> CostLine:
        """Inverse of :meth:`to_dict`."""
        return cls(
            component=Component(data["component"]),
            item_code=data["item_code"],
            item_name=data["item_name"],
            unit=data["unit"],
            norm_quantity=Decimal(data["norm_quantity"]),
            quantity=Decimal(data["quantity"]),
            unit_cost=Decimal(data["unit_cost"]),
            amount=int(data["amount"]),
            billed_separately=bool(data["billed_separately"]),
            source=data["source"],
        )


@dataclass(frozen=True, slots=True)
class CostRecord:
    """The cost of one study; all money in integer VND."""

    service_code: str
    service_name: str
    ma_nhom: int
    service_unit: str
    modality: str
    study_date: date
    department: str | None
    machine_code: str | None
    norm_set_code: str
    norm_set_name: str
    norm_illustrative: bool
    price_bh: int
    price_bv: int
    price_excludes: str
    lines: tuple[CostLine, ...]
    totals: Mapping[Component, int]
    full_cost: int
    separately_billed: int
    margin_bh: int
    margin_bv: int
    notes: tuple[str, ...] = ()
    delivery: str = ""
    delivery_source: str = ""
    films_printed: int | None = None
    price_variant: str = ""
    price_decision_number: str = ""
    price_decision_date: date | None = None
    tyle_tt_dv: int = 100
    schema_version: int = SCHEMA_VERSION

    @property
    def price_decision(self) -> str:
        """``"313/QĐ-BYT (2026-01-29)"``, the number alone, or ''."""
        if not self.price_decision_number:
            return ""
        when = self.price_decision_date
        return self.price_decision_number + (f" ({when.isoformat()})" if when else "")

    def total(self, component: Component) -> int:
        """Total of one component (0 if the norm has none)."""
        return self.totals.get(component, 0)

    def to_dict(self) -> dict[str, Any]:
        """Stable JSON-safe dict (dates ISO, decimals as strings, all components present)."""
        return {
            "schema_version": self.schema_version,
            "service_code": self.service_code,
            "service_name": self.service_name,
            "ma_nhom": self.ma_nhom,
            "service_unit": self.service_unit,
            "modality": self.modality,
            "study_date": self.study_date.isoformat(),
            "department": self.department,
            "machine_code": self.machine_code,
            "norm_set_code": self.norm_set_code,
            "norm_set_name": self.norm_set_name,
            "norm_illustrative": self.norm_illustrative,
            "price_bh": self.price_bh,
            "price_bv": self.price_bv,
            "price_excludes": self.price_excludes,
            "lines": [line.to_dict() for line in self.lines],
            "totals": {c.value: self.total(c) for c in Component},
            "full_cost": self.full_cost,
            "separately_billed": self.separately_billed,
            "margin_bh": self.margin_bh,
            "margin_bv": self.margin_bv,
            "notes": list(self.notes),
            "delivery": self.delivery,
            "delivery_source": self.delivery_source,
            "films_printed": self.films_printed,
            "price_variant": self.price_variant,
            "price_decision_number": self.price_decision_number,
            "price_decision_date": (
                self.price_decision_date.isoformat() if self.price_decision_date else None
            ),
            "tyle_tt_dv": self.tyle_tt_dv,
        }

    def to_json(self) -> str:
        """Canonical JSON text: sorted keys, no spaces, UTF-8 characters kept."""
        return json.dumps(self.to_dict(), sort_keys=True, ensure_ascii=False, separators=(",", ":"))

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> CostRecord:
        """Inverse of :meth:`to_dict`."""
        if data.get("schema_version") not in _READABLE_SCHEMAS:
            raise ValueError(f"unsupported cost record schema {data.get('schema_version')!r}")
        decided = data.get("price_decision_date")
        films = data.get("films_printed")
        return cls(
            service_code=data["service_code"],
            service_name=data["service_name"],
            ma_nhom=int(data["ma_nhom"]),
            service_unit=data["service_unit"],
            modality=data["modality"],
            study_date=date.fromisoformat(data["study_date"]),
            department=data["department"],
            machine_code=data["machine_code"],
            norm_set_code=data["norm_set_code"],
            norm_set_name=data["norm_set_name"],
            norm_illustrative=bool(data["norm_illustrative"]),
            price_bh=int(data["price_bh"]),
            price_bv=int(data["price_bv"]),
            price_excludes=data["price_excludes"],
            lines=tuple(CostLine.from_dict(line) for line in data["lines"]),
            totals={Component(k): int(v) for k, v in data["totals"].items()},
            full_cost=int(data["full_cost"]),
            separately_billed=int(data["separately_billed"]),
            margin_bh=int(data["margin_bh"]),
            margin_bv=int(data["margin_bv"]),
            notes=tuple(data["notes"]),
            delivery=data.get("delivery", ""),
            delivery_source=data.get("delivery_source", ""),
            films_printed=None if films is None else int(films),
            price_variant=data.get("price_variant", ""),
            price_decision_number=data.get("price_decision_number", ""),
            price_decision_date=date.fromisoformat(decided) if decided else None,
            tyle_tt_dv=int(data.get("tyle_tt_dv", 100)),
            schema_version=int(data["schema_version"]),
        )

    @classmethod
    def from_json(cls, text: str) -> CostRecord:
        """Inverse of :meth:`to_json`."""
        return cls.from_dict(json.loads(text))


def _actual_quantity(
    line: NormLine, facts: StudyFacts, notes: list[str]
) -> tuple[Decimal, str] | None:
    """Quantity and source for a line, or None if the study removes the line."""
    if line.override is Override.PACS and facts.delivery is Delivery.FILM:
        notes.append(f"delivered on film: filmless line {line.item_code} removed")
        return None
    if line.override is Override.FILM:
        if facts.films_printed is not None:
            if facts.filmless and facts.films_printed > 0:
                notes.append(
                    f"study flagged filmless but {facts.films_printed} film(s) printed: "
                    "printed count used"
                )
            return Decimal(facts.films_printed), "actual"
        if facts.filmless:
            notes.append(f"filmless: line {line.item_code} removed")
            return None
    if line.override is Override.CONTRAST_ML and facts.contrast_volume_ml is not None:
        return facts.contrast_volume_ml, "actual"
    return line.quantity, "norm"


def cost_study(
    catalogue: Catalogue, service_code: str, facts: StudyFacts, machine_code: str | None
) -> CostRecord:
    """Cost a study of ``service_code`` performed on ``machine_code`` (MA_MAY).

    Raises :class:`CostingError` if the service is unknown, no price, norm set or staff
    rate is in force on ``facts.study_date``, the machine is unknown, or the norm needs
    depreciation (KHAU_HAO) but no machine is given or its capacity unit does not match.
    """
    on = facts.study_date
    service = catalogue.service(service_code)
    if service is None:
        raise CostingError(f"unknown service {service_code}")
    delivery = facts.delivery
    price = catalogue.price_for_delivery(service_code, on, filmless=delivery is Delivery.FILMLESS)
    if price is None:
        others = catalogue.prices_in_force(service_code, on)
        if others:
            variants = ", ".join(sorted(p.variant.value for p in others))
            raise CostingError(
                f"no price for a {delivery.value} study of {service_code} on {on} "
                f"(delivery from {facts.delivery_source}); prices in force: {variants}"
            )
        raise CostingError(f"no price in force for {service_code} on {on}")
    selection = catalogue.norm_on(service_code, on)
    if selection is None:
        raise CostingError(f"no norm set in force for {service_code} on {on}")
    machine = None
    notes: list[str] = []
    if machine_code is not None:
        machine = catalogue.machine(machine_code)
        if machine is None:
            raise CostingError(f"unknown machine {machine_code}")
        if machine.modality != service.modality:
            notes.append(
                f"machine {machine.ma_may} modality {machine.modality} differs from "
                f"service modality {service.modality}"
            )
    has_contrast_line = any(x.override is Override.CONTRAST_ML for x in selection.lines)
    if facts.has_contrast and not has_contrast_line:
        notes.append("contrast recorded but the norm has no contrast line: check mapping")

    lines: list[CostLine] = []
    for line in sorted(selection.lines, key=lambda x: (_COMPONENT_ORDER[x.component], x.item_code)):
        actual = _actual_quantity(line, facts, notes)
        if actual is None:
            continue
        quantity, source = actual
        rate, shown_rate = _rate(catalogue, line, machine, on)
        lines.append(
            CostLine(
                component=line.component,
                item_code=line.item_code,
                item_name=line.item_name,
                unit=line.unit,
                norm_quantity=line.quantity,
                quantity=quantity,
                unit_cost=shown_rate,
                amount=line_amount(quantity, rate),
                billed_separately=line.billed_separately,
                source=source,
            )
        )

    totals: dict[Component, int] = {component: 0 for component in Component}
    separately = 0
    for cost_line in lines:
        if cost_line.billed_separately:
            separately += cost_line.amount
        else:
            totals[cost_line.component] += cost_line.amount
    full_cost = sum(totals.values())
    return CostRecord(
        service_code=service.code,
        service_name=service.name,
        ma_nhom=service.ma_nhom,
        service_unit=service.unit,
        modality=service.modality,
        study_date=on,
        department=facts.department,
        machine_code=machine_code,
        norm_set_code=selection.norm_set.code,
        norm_set_name=selection.norm_set.name,
        norm_illustrative=selection.norm_set.illustrative,
        price_bh=price.don_gia_bh,
        price_bv=price.don_gia_bv,
        price_excludes=price.excludes,
        lines=tuple(lines),
        totals=totals,
        full_cost=full_cost,
        separately_billed=separately,
        margin_bh=price.don_gia_bh - full_cost,
        margin_bv=price.don_gia_bv - full_cost,
        notes=tuple(notes),
        delivery=delivery.value,
        delivery_source=facts.delivery_source,
        films_printed=facts.films_printed,
        price_variant=price.variant.value,
        price_decision_number=price.decision_number,
        price_decision_date=price.decision_date,
        tyle_tt_dv=facts.tyle_tt_dv,
    )


def _rate(
    catalogue: Catalogue,
    line: NormLine,
    machine: Equipment | None,
    on: date,
) -> tuple[Fraction, Decimal]:
    """Exact VND per unit of ``line`` on ``on``, and its display form.

    The display form is the catalogue Decimal itself where there is one; only the
    derived depreciation rate is shown rounded (4 decimals).
    """
    if line.component is Component.NHAN_CONG:
        rate = catalogue.staff_rate_on(StaffCategory(line.item_code), on)
        if rate is None:
            raise CostingError(f"no staff rate in force for {line.item_code} on {on}")
        return Fraction(rate.vnd_per_minute), rate.vnd_per_minute
    if line.component is Component.KHAU_HAO:
        if machine is None:
            raise CostingError("depreciation (KHAU_HAO) needs the machine (MA_MAY)")
        if capacity_unit_of(line.unit) is not machine.capacity_unit:
            raise CostingError(
                f"norm counts {line.item_code} depreciation in {line.unit!r} but machine "
                f"{machine.ma_may} capacity is per {machine.capacity_unit}"
            )
        exact = machine.depreciation_per_unit
        return exact, to_decimal(exact)
    if line.unit_cost is None:  # excluded by catalogue validation
        raise CostingError(f"line {line.item_code} has no unit cost")
    return Fraction(line.unit_cost), line.unit_cost
