"""Catalogue model: code validator, validation of overlaps, date-aware lookups."""

from __future__ import annotations

from datetime import date, timedelta
from decimal import Decimal
from fractions import Fraction

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pricing_norms.catalogue import (
    ILLUSTRATIVE_NOTE,
    CapacityUnit,
    Catalogue,
    CatalogueError,
    Component,
    Equipment,
    NormLine,
    NormSet,
    Price,
    Service,
    StaffCategory,
    StaffRate,
    is_service_code,
)
from pricing_norms.example import load_example_catalogue

pytestmark = pytest.mark.unit

DIGITS = st.text(alphabet="0123456789", min_size=1, max_size=1)


@given(st.lists(DIGITS, min_size=10, max_size=10))
def test_every_well_formed_code_is_accepted(digits: list[str]) -> None:
    code = "".join(digits[:2]) + "." + "".join(digits[2:6]) + "." + "".join(digits[6:])
    assert is_service_code(code)
    assert Service(code, "x", 2, "CT", False, "lần").code == code


@given(st.text(max_size=16))
def test_validator_agrees_with_the_format(text: str) -> None:
    expected = (
        len(text) == 12
        and text[2] == "."
        and text[7] == "."
        and all(ch in "0123456789" for i, ch in enumerate(text) if i not in (2, 7))
    )
    assert is_service_code(text) is expected


@pytest.mark.parametrize(
    "bad",
    ["18.119.0028", "18.0119.0028 ", "18.0119.0028\n", "١٨.0119.0028", "18-0119-0028", ""],
)
def test_bad_codes_rejected(bad: str) -> None:
    assert not is_service_code(bad)
    with pytest.raises(ValueError, match="bad service code"):
        Service(bad, "x", 2, "CT", False, "lần")


def _service(code: str = "18.0001.0001") -> Service:
    return Service(code, "Test", 2, "CT", False, "lần")


def _line(norm_set: str, service: str = "18.0001.0001") -> NormLine:
    one = Decimal(1)
    return NormLine(norm_set, service, Component.VAT_TU, "G", "Gloves", "đôi", one, one)


def test_overlapping_prices_rejected() -> None:
    service = _service()
    with pytest.raises(CatalogueError) as caught:
        Catalogue(
            services=[service],
            prices=[
                Price(service.code, 1, 1, "", date(2024, 1, 1), date(2024, 6, 30)),
                Price(service.code, 2, 2, "", date(2024, 6, 30)),  # shares 2024-06-30
            ],
        )
    (issue,) = caught.value.issues
    assert (issue.table, issue.row, issue.column) == ("prices", 2, "effective_from")


def test_adjacent_periods_accepted_and_looked_up_by_date() -> None:
    service = _service()
    catalogue = Catalogue(
        services=[service],
        prices=[
            Price(service.code, 1, 1, "", date(2024, 1, 1), date(2024, 6, 30)),
            Price(service.code, 2, 2, "", date(2024, 7, 1)),
        ],
    )
    assert catalogue.price_on(service.code, date(2023, 12, 31)) is None
    first = catalogue.price_on(service.code, date(2024, 6, 30))
    second = catalogue.price_on(service.code, date(2024, 7, 1))
    assert first is not None and first.don_gia_bh == 1
    assert second is not None and second.don_gia_bh == 2


def test_norm_sets_overlap_only_matters_for_shared_services() -> None:
    one, two = _service("18.0001.0001"), _service("18.0002.0002")
    sets = [
        NormSet("A", "a", "", date(2024, 1, 1)),
        NormSet("B", "b", "", date(2024, 6, 1)),
    ]
    # A covers service one, B covers service two: no conflict
    Catalogue(norm_sets=sets, services=[one, two], norm_lines=[_line("A"), _line("B", two.code)])
    with pytest.raises(CatalogueError, match=r"both cover 18\.0001\.0001"):
        Catalogue(norm_sets=sets, services=[one, two], norm_lines=[_line("A"), _line("B")])


def test_duplicates_and_reversed_periods() -> None:
    with pytest.raises(CatalogueError) as caught:
        Catalogue(
            norm_sets=[NormSet("A", "a", "", date(2024, 2, 1), date(2024, 1, 1))],
            services=[_service(), _service()],
            staff_rates=[
                StaffRate(StaffCategory.BS, Decimal(1), date(2024, 1, 1)),
                StaffRate(StaffCategory.BS, Decimal(2), date(2025, 1, 1)),
            ],
            equipment=[Equipment("M", "CT", "m", 1, 1, 1), Equipment("M", "CT", "m", 1, 1, 1)],
        )
    where = {(i.table, i.row, i.column) for i in caught.value.issues}
    assert where == {
        ("norm_sets", 1, "effective_to"),
        ("services", 2, "code"),
        ("staff_rates", 2, "effective_from"),
        ("equipment", 2, "ma_may"),
    }


def test_depreciation_is_derived_exactly() -> None:
    machine = Equipment("US01", "US", "us", 1_500_000_000, 7, 12_000, CapacityUnit.USE)
    assert machine.depreciation_per_unit == Fraction(1_500_000_000, 84_000)
    assert machine.depreciation_per_unit * 84_000 == 1_500_000_000


def test_example_catalogue_is_labelled_illustrative() -> None:
    catalogue = load_example_catalogue()
    assert len(catalogue.services) == 7
    assert catalogue.has_illustrative and catalogue.illustrative_note == ILLUSTRATIVE_NOTE
    for norm_set in catalogue.norm_sets:
        assert norm_set.illustrative
        assert "ILLUSTRATIVE" in norm_set.name and "minh hoạ" in norm_set.name
    prices = {p.service_code: p.don_gia_bh for p in catalogue.prices}
    assert prices == {
        "18.0119.0028": 73_300,
        "18.0015.0001": 58_600,
        "18.0126.0026": 102_300,
        "18.0149.0040": 550_100,
        "18.0220.0041": 663_400,
        "18.0296.0066": 1_341_500,
        "18.0297.0065": 2_250_800,
    }
    assert all(p.don_gia_bv == p.don_gia_bh for p in catalogue.prices)
    assert all(s.ma_nhom == 2 for s in catalogue.services)


def test_example_norm_for_ct_abdomen_matches_domain() -> None:
    catalogue = load_example_catalogue()
    selection = catalogue.norm_on("18.0220.0041", date(2024, 7, 1))
    assert selection is not None
    lines = {(x.component, x.item_code): x for x in selection.lines}
    quantities = {key[1]: (x.quantity, x.unit_cost) for key, x in lines.items()}
    assert quantities == {
        "VT-PHIM-3543": (2, 30_000),
        "VT-KIT-BOM": (1, 150_000),
        "VT-KIM-20G": (1, 10_000),
        "VT-GANG": (2, 3_000),
        "TH-CQ-IOD": (100, 4_500),
        "KTV": (20, None),
        "DD": (10, None),
        "BS": (15, None),
        "CT": (15, None),
        "NL-DIEN": (3, 3_000),
        "CNTT-RISPACS": (1, 15_000),
    }
    assert lines[(Component.THUOC, "TH-CQ-IOD")].billed_separately
    assert sum(x.billed_separately for x in selection.lines) == 1


@given(st.dates(min_value=date(2024, 7, 1), max_value=date(2030, 12, 31)))
def test_exactly_one_ct_norm_in_force(day: date) -> None:
    catalogue = load_example_catalogue()
    selection = catalogue.norm_on("18.0220.0041", day)
    assert selection is not None
    expected = "DM-MINHHOA-CT-2024" if day <= date(2025, 6, 30) else "DM-MINHHOA-CT-2025"
    assert selection.norm_set.code == expected
    assert catalogue.norm_on("18.0220.0041", date(2024, 7, 1) - timedelta(days=1)) is None


def test_staff_rates_follow_documented_derivation() -> None:
    catalogue = load_example_catalogue()
    minutes = 22 * 8 * 60
    for category, coefficient in (("BS", "3.33"), ("KTV", "2.67"), ("DD", "2.34")):
        rate = catalogue.staff_rate_on(category, date(2024, 7, 1))
        assert rate is not None
        exact = Decimal(2_340_000) * Decimal(coefficient) / minutes
        assert rate.vnd_per_minute == exact.quantize(Decimal("0.01"))
