"""Cost-norm catalogue: plain frozen dataclasses and the validated ``Catalogue`` aggregate.

Tables: norm sets (decisions issuing norms), services (``XX.YYYY.ZZZZ`` codes), prices
(DON_GIA_BH / DON_GIA_BV), norm lines (per norm set and service, one line per item of
one cost component), staff rates (VND per minute per staff category) and equipment
(MA_MAY, depreciation per use or per machine-minute derived from purchase value,
life and yearly capacity).

Effective periods are closed intervals ``[effective_from, effective_to]`` in days;
``effective_to=None`` means open-ended. A study is costed with the norm set, price and
staff rates in force on its date. For one service (or staff category), two prices, two
norm sets containing that service, or two staff rates must not overlap: that is a
catalogue error, so "in force on a date" is always unique.

No I/O and no database access here: :mod:`pricing_norms.catalogue_io` reads and writes
files; the gateway persists the same dataclasses.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal
from enum import StrEnum
from fractions import Fraction
from typing import TypeVar

__all__ = [
    "ILLUSTRATIVE_NOTE",
    "CapacityUnit",
    "Catalogue",
    "CatalogueError",
    "CatalogueIssue",
    "Component",
    "Equipment",
    "NormLine",
    "NormSelection",
    "NormSet",
    "Override",
    "Price",
    "PriceVariant",
    "Service",
    "StaffCategory",
    "StaffRate",
    "capacity_unit_of",
    "in_force",
    "is_service_code",
    "validate_catalogue",
]

ILLUSTRATIVE_NOTE = (
    "ILLUSTRATIVE norms (định mức minh hoạ): quantities, rates and equipment values are "
    "examples for demonstration, NOT official Ministry of Health figures."
)

_T = TypeVar("_T")

_SERVICE_CODE = re.compile(r"[0-9]{2}\.[0-9]{4}\.[0-9]{4}")


def is_service_code(text: str) -> bool:
    """True if ``text`` is exactly ``XX.YYYY.ZZZZ`` with ASCII digits (no whitespace)."""
    return _SERVICE_CODE.fullmatch(text) is not None


class Component(StrEnum):
    """Cost components of a technical-economic norm (Law 15/2023/QH15 art. 110)."""

    VAT_TU = "VAT_TU"  # consumables: film, injector kit, cannula, gloves
    THUOC = "THUOC"  # drugs: contrast agent (often billed separately)
    NHAN_CONG = "NHAN_CONG"  # labour: minutes x staff rate
    KHAU_HAO = "KHAU_HAO"  # equipment depreciation: machine minutes or uses
    DUY_TU = "DUY_TU"  # maintenance
    NANG_LUONG = "NANG_LUONG"  # energy
    QUAN_LY = "QUAN_LY"  # management
    CNTT = "CNTT"  # information technology (RIS-PACS share)


#: Components whose unit cost is derived (staff rates, equipment), never typed in a line.
DERIVED_COMPONENTS = frozenset({Component.NHAN_CONG, Component.KHAU_HAO})


class StaffCategory(StrEnum):
    """Staff categories: radiologist, radiographer/technician, nurse."""

    BS = "BS"
    KTV = "KTV"
    DD = "DD"


class Override(StrEnum):
    """Norm lines whose quantity the study's actual facts may replace."""

    CONTRAST_ML = "CONTRAST_ML"  # quantity := StudyFacts.contrast_volume_ml
    FILM = "FILM"  # quantity := films printed; removed for filmless studies
    PACS = "PACS"  # a line of filmless delivery only (e.g. online result); removed with film


class PriceVariant(StrEnum):
    """Which delivery a price is for (Decision 313/QĐ-BYT: a film and a PACS price).

    ``ANY`` (empty text in files) is a price that does not distinguish, the only kind
    before filmless PACS prices were approved.
    """

    ANY = ""
    FILM = "FILM"  # result delivered on printed film
    PACS = "PACS"  # filmless: result delivered through the RIS-PACS only


class CapacityUnit(StrEnum):
    """Unit of an equipment's yearly capacity, and of a KHAU_HAO/NHAN_CONG line quantity."""

    USE = "USE"
    MINUTE = "MINUTE"


_UNIT_ALIASES: Mapping[str, CapacityUnit] = {
    "use": CapacityUnit.USE,
    "uses": CapacityUnit.USE,
    "lần": CapacityUnit.USE,
    "lan": CapacityUnit.USE,
    "ca": CapacityUnit.USE,
    "minute": CapacityUnit.MINUTE,
    "minutes": CapacityUnit.MINUTE,
    "min": CapacityUnit.MINUTE,
    "phút": CapacityUnit.MINUTE,
    "phut": CapacityUnit.MINUTE,
}


def capacity_unit_of(unit: str) -> CapacityUnit | None:
    """Map a unit text ("phút", "lần", "MINUTE", "use"...) to a CapacityUnit, else None."""
    key = unicodedata.normalize("NFC", unit).strip().lower()
    return _UNIT_ALIASES.get(key)


def in_force(effective_from: date, effective_to: date | None, on: date) -> bool:
    """True if ``on`` lies in the closed interval [effective_from, effective_to]."""
    return effective_from <= on and (effective_to is None or on <= effective_to)


def _overlap(a_from: date, a_to: date | None, b_from: date, b_to: date | None) -> bool:
    return (b_to is None or a_from <= b_to) and (a_to is None or b_from <= a_to)


def _period(effective_from: date, effective_to: date | None) -> str:
    return f"{effective_from.isoformat()}..{effective_to.isoformat() if effective_to else 'open'}"


@dataclass(frozen=True, slots=True)
class NormSet:
    """A decision issuing norms; ``illustrative`` marks demo figures (UI/exports show it)."""

    code: str
    name: str
    legal_basis: str
    effective_from: date
    effective_to: date | None = None
    illustrative: bool = False

    def in_force(self, on: date) -> bool:
        """True if the norm set applies on ``on``."""
        return in_force(self.effective_from, self.effective_to, on)


@dataclass(frozen=True, slots=True)
class Service:
    """A technical service (DVKT); ``ma_nhom`` 2 = diagnostic imaging."""

    code: str
    name: str
    ma_nhom: int
    modality: str
    contrast: bool
    unit: str

    def __post_init__(self) -> None:
        if not is_service_code(self.code):
            raise ValueError(f"bad service code {self.code!r} (expected XX.YYYY.ZZZZ)")


@dataclass(frozen=True, slots=True)
class Price:
    """Prices of a service in force over a period, in whole VND.

    ``variant`` says which delivery the price is for (film, PACS/filmless, or either);
    ``decision_number`` / ``decision_date`` name the approving decision (for example
    ``313/QĐ-BYT`` of 2026-01-29), kept on every cost record priced with it.
    """

    service_code: str
    don_gia_bh: int
    don_gia_bv: int
    excludes: str
    effective_from: date
    effective_to: date | None = None
    legal_basis: str = ""
    variant: PriceVariant = PriceVariant.ANY
    decision_number: str = ""
    decision_date: date | None = None

    def in_force(self, on: date) -> bool:
        """True if the price applies on ``on``."""
        return in_force(self.effective_from, self.effective_to, on)


@dataclass(frozen=True, slots=True)
class NormLine:
    """One item of one component of a service's norm.

    ``unit_cost`` is VND per ``unit`` and must be ``None`` for derived components:
    NHAN_CONG (``item_code`` = staff category, quantity = minutes, rate from StaffRate)
    and KHAU_HAO (quantity = machine minutes or uses, rate from the study's Equipment).
    """

    norm_set_code: str
    service_code: str
    component: Component
    item_code: str
    item_name: str
    unit: str
    quantity: Decimal
    unit_cost: Decimal | None
    billed_separately: bool = False
    override: Override | None = None


@dataclass(frozen=True, slots=True)
class StaffRate:
    """Labour cost of a staff category in VND per minute over a period."""

    category: StaffCategory
    vnd_per_minute: Decimal
    effective_from: date
    effective_to: date | None = None
    basis: str = ""

    def in_force(self, on: date) -> bool:
        """True if the rate applies on ``on``."""
        return in_force(self.effective_from, self.effective_to, on)


@dataclass(frozen=True, slots=True)
class Equipment:
    """A machine (MA_MAY). Depreciation per capacity unit is derived, never typed."""

    ma_may: str
    modality: str
    name: str
    purchase_value: int
    life_years: int
    yearly_capacity: int
    capacity_unit: CapacityUnit = CapacityUnit.USE

    @property
    def depreciation_per_unit(self) -> Fraction:
        """Exact VND per use (or per minute): purchase / (life_years * yearly_capacity)."""
        return Fraction(self.purchase_value, self.life_years * self.yearly_capacity)


@dataclass(frozen=True, slots=True)
class NormSelection:
    """The norm set in force for one service on one date, with that service's lines."""

    norm_set: NormSet
    lines: tuple[NormLine, ...]


@dataclass(frozen=True, slots=True)
class CatalogueIssue:
    """One validation problem; ``row`` is the file/sheet row (header = row 1) when known."""

    table: str
    row: int | None
    column: str | None
    message: str

    def __str__(self) -> str:
        where = self.table
        if self.row is not None:
            where += f" row {self.row}"
        if self.column is not None:
            where += f" column {self.column}"
        return f"{where}: {self.message}"


class CatalogueError(ValueError):
    """A catalogue is invalid; ``issues`` lists every problem found."""

    def __init__(self, issues: Sequence[CatalogueIssue]) -> None:
        self.issues: tuple[CatalogueIssue, ...] = tuple(issues)
        lines = "\n".join(f"  - {issue}" for issue in self.issues)
        super().__init__(f"{len(self.issues)} catalogue error(s):\n{lines}")


@dataclass
class _Checker:
    rows: Mapping[str, Sequence[int]] | None
    issues: list[CatalogueIssue] = field(default_factory=list)

    def row(self, table: str, index: int) -> int:
        return self.rows[table][index] if self.rows is not None else index + 1

    def add(self, table: str, index: int | None, column: str | None, message: str) -> None:
        row = None if index is None else self.row(table, index)
        self.issues.append(CatalogueIssue(table, row, column, message))


def _check_unique(check: _Checker, table: str, column: str, keys: Sequence[str], what: str) -> None:
    first: dict[str, int] = {}
    for index, key in enumerate(keys):
        if key in first:
            first_row = check.row(table, first[key])
            check.add(table, index, column, f"duplicate {what} {key!r} (first in row {first_row})")
        else:
            first[key] = index


def _check_periods(
    check: _Checker,
    table: str,
    items: Sequence[tuple[str, date, date | None]],
    what: str,
) -> None:
    """Report reversed periods and overlapping periods for the same key."""
    by_key: dict[str, list[int]] = {}
    for index, (key, start, end) in enumerate(items):
        if end is not None and end < start:
            check.add(table, index, "effective_to", f"effective_to {end} is before {start}")
            continue
        by_key.setdefault(key, []).append(index)
    for key, indexes in by_key.items():
        for pos, i in enumerate(indexes):
            for j in indexes[:pos]:
                _, a_from, a_to = items[j]
                _, b_from, b_to = items[i]
                if _overlap(a_from, a_to, b_from, b_to):
                    check.add(
                        table,
                        i,
                        "effective_from",
                        f"overlapping effective dates for {what} {key}: "
                        f"{_period(b_from, b_to)} overlaps {_period(a_from, a_to)}",
                    )


def validate_catalogue(
    *,
    norm_sets: Sequence[NormSet],
    services: Sequence[Service],
    prices: Sequence[Price],
    norm_lines: Sequence[NormLine],
    staff_rates: Sequence[StaffRate],
    equipment: Sequence[Equipment],
    rows: Mapping[str, Sequence[int]] | None = None,
    assume_known: Mapping[str, Iterable[str]] | None = None,
) -> list[CatalogueIssue]:
    """Cross-table validation; returns every issue (empty list = valid).

    ``rows`` maps a table name to the file row number of each item (else item numbers
    1..n are reported). ``assume_known`` lists keys (per table ``services``,
    ``norm_sets``, ``staff_rates``) whose rows exist but failed to parse, so references
    to them are not reported a second time.
    """
    check = _Checker(rows)
    known = {k: set(v) for k, v in (assume_known or {}).items()}
    service_codes = {s.code for s in services} | known.get("services", set())
    set_by_code = {n.code: n for n in norm_sets}
    set_codes = set(set_by_code) | known.get("norm_sets", set())
    categories = {r.category.value for r in staff_rates} | known.get("staff_rates", set())

    _check_unique(check, "norm_sets", "code", [n.code for n in norm_sets], "norm set")
    _check_unique(check, "services", "code", [s.code for s in services], "service")
    _check_unique(check, "equipment", "ma_may", [e.ma_may for e in equipment], "machine")

    for index, price in enumerate(prices):
        if price.service_code not in service_codes:
            check.add("prices", index, "service_code", f"unknown service {price.service_code}")
        if price.don_gia_bh < 0 or price.don_gia_bv < 0:
            check.add("prices", index, "don_gia_bh", "negative price")
    _check_periods(
        check,
        "prices",
        [(_price_key(p), p.effective_from, p.effective_to) for p in prices],
        "the price of service",
    )
    _check_periods(
        check,
        "staff_rates",
        [(str(r.category), r.effective_from, r.effective_to) for r in staff_rates],
        "staff category",
    )
    for index, rate in enumerate(staff_rates):
        if rate.vnd_per_minute <= 0:
            check.add("staff_rates", index, "vnd_per_minute", "rate must be positive")
    for index, machine in enumerate(equipment):
        if machine.life_years <= 0:
            check.add("equipment", index, "life_years", "life_years must be positive")
        if machine.yearly_capacity <= 0:
            check.add("equipment", index, "yearly_capacity", "capacity must be positive")
        if machine.purchase_value < 0:
            check.add("equipment", index, "purchase_value", "negative purchase value")
    for index, norm_set in enumerate(norm_sets):
        end = norm_set.effective_to
        if end is not None and end < norm_set.effective_from:
            check.add("norm_sets", index, "effective_to", f"effective_to {end} is before start")

    _check_norm_lines(check, norm_lines, service_codes, set_codes, categories)
    _check_norm_set_overlaps(check, norm_sets, norm_lines)
    return check.issues


def _price_key(price: Price) -> str:
    """Prices must not overlap per service and variant (a film and a PACS price may)."""
    variant = f" ({price.variant.value})" if price.variant is not PriceVariant.ANY else ""
    return price.service_code + variant


def _check_norm_lines(
    check: _Checker,
    norm_lines: Sequence[NormLine],
    service_codes: set[str],
    set_codes: set[str],
    categories: set[str],
) -> None:
    seen_items: dict[tuple[str, str, Component, str], int] = {}
    seen_overrides: dict[tuple[str, str, Override], int] = {}
    for index, line in enumerate(norm_lines):
        table = "norm_lines"
        if line.norm_set_code not in set_codes:
            check.add(table, index, "norm_set_code", f"unknown norm set {line.norm_set_code}")
        if line.service_code not in service_codes:
            check.add(table, index, "service_code", f"unknown service {line.service_code}")
        if line.quantity < 0:
            check.add(table, index, "quantity", f"negative quantity {line.quantity}")
        if line.component in DERIVED_COMPONENTS:
            if line.unit_cost is not None:
                check.add(
                    table,
                    index,
                    "unit_cost",
                    f"unit_cost must be empty for {line.component} (derived from "
                    f"{'staff_rates' if line.component is Component.NHAN_CONG else 'equipment'})",
                )
        elif line.unit_cost is None:
            check.add(table, index, "unit_cost", f"unit_cost required for {line.component}")
        elif line.unit_cost < 0:
            check.add(table, index, "unit_cost", f"negative unit cost {line.unit_cost}")
        if line.component is Component.NHAN_CONG:
            if line.item_code not in {c.value for c in StaffCategory}:
                message = f"NHAN_CONG item_code {line.item_code!r} must be BS, KTV or DD"
                check.add(table, index, "item_code", message)
            elif line.item_code not in categories:
                check.add(table, index, "item_code", f"no staff rate for {line.item_code}")
            if capacity_unit_of(line.unit) is not CapacityUnit.MINUTE:
                check.add(table, index, "unit", "NHAN_CONG quantity must be in minutes (phút)")
        if line.component is Component.KHAU_HAO and capacity_unit_of(line.unit) is None:
            check.add(table, index, "unit", "KHAU_HAO unit must be minutes (phút) or uses (lần)")
        if line.override is Override.CONTRAST_ML and line.component is not Component.THUOC:
            check.add(table, index, "override", "CONTRAST_ML override only on a THUOC line")
        if line.override is Override.FILM and line.component is not Component.VAT_TU:
            check.add(table, index, "override", "FILM override only on a VAT_TU line")
        if line.override is Override.PACS and line.component in DERIVED_COMPONENTS:
            check.add(table, index, "override", f"PACS override not on a {line.component} line")
        item_key = (line.norm_set_code, line.service_code, line.component, line.item_code)
        if item_key in seen_items:
            check.add(table, index, "item_code", f"duplicate item {line.item_code} in this norm")
        else:
            seen_items[item_key] = index
        if line.override is not None:
            override_key = (line.norm_set_code, line.service_code, line.override)
            if override_key in seen_overrides:
                check.add(table, index, "override", f"second {line.override} line in this norm")
            else:
                seen_overrides[override_key] = index


def _check_norm_set_overlaps(
    check: _Checker, norm_sets: Sequence[NormSet], norm_lines: Sequence[NormLine]
) -> None:
    """Two norm sets covering the same service must not be in force on the same day."""
    services_of: dict[str, set[str]] = {}
    for line in norm_lines:
        services_of.setdefault(line.norm_set_code, set()).add(line.service_code)
    for pos, later in enumerate(norm_sets):
        for earlier in norm_sets[:pos]:
            if earlier.code == later.code:
                continue  # duplicate code, reported separately
            shared = services_of.get(earlier.code, set()) & services_of.get(later.code, set())
            a_end, b_end = earlier.effective_to, later.effective_to
            if (a_end is not None and a_end < earlier.effective_from) or (
                b_end is not None and b_end < later.effective_from
            ):
                continue
            if shared and _overlap(earlier.effective_from, a_end, later.effective_from, b_end):
                check.add(
                    "norm_sets",
                    pos,
                    "effective_from",
                    f"overlapping effective dates: norm set {later.code} "
                    f"({_period(later.effective_from, b_end)}) and {earlier.code} "
                    f"({_period(earlier.effective_from, a_end)}) both cover "
                    f"{', '.join(sorted(shared))}",
                )


class Catalogue:
    """Validated, immutable set of catalogue tables with date-aware lookups."""

    def __init__(
        self,
        *,
        norm_sets: Iterable[NormSet] = (),
        services: Iterable[Service] = (),
        prices: Iterable[Price] = (),
        norm_lines: Iterable[NormLine] = (),
        staff_rates: Iterable[StaffRate] = (),
        equipment: Iterable[Equipment] = (),
    ) -> None:
        """Build and validate; raises :class:`CatalogueError` listing every problem."""
        self._norm_sets = tuple(norm_sets)
        self._services = tuple(services)
        self._prices = tuple(prices)
        self._norm_lines = tuple(norm_lines)
        self._staff_rates = tuple(staff_rates)
        self._equipment = tuple(equipment)
        issues = validate_catalogue(
            norm_sets=self._norm_sets,
            services=self._services,
            prices=self._prices,
            norm_lines=self._norm_lines,
            staff_rates=self._staff_rates,
            equipment=self._equipment,
        )
        if issues:
            raise CatalogueError(issues)
        self._service_by_code = {s.code: s for s in self._services}
        self._machine_by_code = {e.ma_may: e for e in self._equipment}
        self._set_by_code = {n.code: n for n in self._norm_sets}
        self._prices_by_service: dict[str, list[Price]] = {}
        for price in self._prices:
            self._prices_by_service.setdefault(price.service_code, []).append(price)
        grouped: dict[tuple[str, str], list[NormLine]] = {}
        for line in self._norm_lines:
            grouped.setdefault((line.service_code, line.norm_set_code), []).append(line)
        self._norms_by_service: dict[str, list[NormSelection]] = {}
        for (service_code, set_code), lines in grouped.items():
            selection = NormSelection(self._set_by_code[set_code], tuple(lines))
            self._norms_by_service.setdefault(service_code, []).append(selection)

    # -- tables -------------------------------------------------------------
    @property
    def norm_sets(self) -> tuple[NormSet, ...]:
        """All norm sets, in input order."""
        return self._norm_sets

    @property
    def services(self) -> tuple[Service, ...]:
        """All services, in input order."""
        return self._services

    @property
    def prices(self) -> tuple[Price, ...]:
        """All prices, in input order."""
        return self._prices

    @property
    def norm_lines(self) -> tuple[NormLine, ...]:
        """All norm lines, in input order."""
        return self._norm_lines

    @property
    def staff_rates(self) -> tuple[StaffRate, ...]:
        """All staff rates, in input order."""
        return self._staff_rates

    @property
    def equipment(self) -> tuple[Equipment, ...]:
        """All machines, in input order."""
        return self._equipment

    @property
    def has_illustrative(self) -> bool:
        """True if any norm set is illustrative (exports must say so)."""
        return any(n.illustrative for n in self._norm_sets)

    @property
    def illustrative_note(self) -> str | None:
        """The standard "illustrative" note, or None if every norm set is official."""
        return ILLUSTRATIVE_NOTE if self.has_illustrative else None

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Catalogue):
            return NotImplemented
        return self.tables() == other.tables()

    __hash__ = None  # type: ignore[assignment]

    def tables(self) -> dict[str, tuple[object, ...]]:
        """The six tables by name (the names used by :mod:`catalogue_io`)."""
        return {
            "norm_sets": self._norm_sets,
            "services": self._services,
            "prices": self._prices,
            "norm_lines": self._norm_lines,
            "staff_rates": self._staff_rates,
            "equipment": self._equipment,
        }

    # -- lookups ------------------------------------------------------------
    def service(self, code: str) -> Service | None:
        """The service with this code, or None."""
        return self._service_by_code.get(code)

    def machine(self, ma_may: str) -> Equipment | None:
        """The machine with this MA_MAY, or None."""
        return self._machine_by_code.get(ma_may)

    def norm_set(self, code: str) -> NormSet | None:
        """The norm set with this code, or None."""
        return self._set_by_code.get(code)

    def price_on(
        self, service_code: str, on: date, variant: PriceVariant = PriceVariant.ANY
    ) -> Price | None:
        """The price of ``service_code`` and ``variant`` in force on ``on`` (unique)."""
        return _first(
            self._prices_by_service.get(service_code, ()),
            lambda p: p.variant is variant and p.in_force(on),
        )

    def price_for_delivery(self, service_code: str, on: date, *, filmless: bool) -> Price | None:
        """The price for how the result was delivered: the PACS price of a filmless
        study (the film price of a study with film), else the undistinguished price.

        A filmless study is never priced with a film price, nor a film study with a
        PACS price: None then (the study is left uncosted with the reason).
        """
        wanted = PriceVariant.PACS if filmless else PriceVariant.FILM
        return self.price_on(service_code, on, wanted) or self.price_on(service_code, on)

    def prices_in_force(self, service_code: str, on: date) -> tuple[Price, ...]:
        """Every price (any variant) of ``service_code`` in force on ``on``."""
        return tuple(p for p in self._prices_by_service.get(service_code, ()) if p.in_force(on))

    def service_in_force(self, code: str, on: date) -> Service | None:
        """The service ``code`` if the catalogue prices it on ``on`` (any variant)."""
        service = self._service_by_code.get(code)
        return service if service is not None and self.prices_in_force(code, on) else None

    def norm_on(self, service_code: str, on: date) -> NormSelection | None:
        """The norm set covering ``service_code`` in force on ``on``, with its lines."""
        return _first(
            self._norms_by_service.get(service_code, ()), lambda s: s.norm_set.in_force(on)
        )

    def staff_rate_on(self, category: StaffCategory | str, on: date) -> StaffRate | None:
        """The rate of a staff category in force on ``on``."""
        return _first(
            (r for r in self._staff_rates if r.category == category), lambda r: r.in_force(on)
        )


def _first(items: Iterable[_T], predicate: Callable[[_T], bool]) -> _T | None:
    for item in items:
        if predicate(item):
            return item
    return None
