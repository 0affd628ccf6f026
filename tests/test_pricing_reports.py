"""Aggregation of flat cost rows, including a norm change inside the period."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

import pytest

from pricing_norms.catalogue import Component
from pricing_norms.costing import cost_study
from pricing_norms.example import load_example_catalogue
from pricing_norms.mapping import StudyFacts
from pricing_norms.reports import CostRow, aggregate, cost_row

pytestmark = pytest.mark.unit

CT = "18.0220.0041"


def study(day: date, service: str, machine: str, staff: str, dept: str = "K02", **kw: object):
    facts = StudyFacts(day, "CT", department=dept, **kw)  # type: ignore[arg-type]
    record = cost_study(load_example_catalogue(), service, facts, machine)
    return cost_row(record, study_key=f"{service}-{day}-{staff}", staff=staff)


@pytest.fixture(scope="module")
def rows() -> list[CostRow]:
    return [
        # June 2025: old CT norm (full 368,087 each, contrast 450,000 separately)
        study(date(2025, 6, 2), CT, "CT01", "BS01"),
        study(date(2025, 6, 30), CT, "CT01", "BS02"),
        # July 2025: new CT norm (full 341,776)
        study(date(2025, 7, 1), CT, "CT01", "BS01"),
        # CT head on CT02 (full 187,296), department K03
        study(date(2025, 7, 15), "18.0149.0040", "CT02", "BS01", dept="K03"),
        # X-ray filmless (45,248)
        study(date(2025, 7, 20), "18.0119.0028", "DX01", "BS02", filmless=True),
    ]


def test_cost_row_projection(rows: list[CostRow]) -> None:
    first = rows[0]
    assert (first.vat_tu, first.nhan_cong, first.khau_hao, first.full_cost) == (
        226_000,
        28_087,
        90_000,
        368_087,
    )
    assert (first.margin_bh, first.separately_billed, first.norm_illustrative) == (
        295_313,
        450_000,
        True,
    )
    assert sum(first.component(c) for c in Component) == first.full_cost


def test_norm_change_mid_period_by_month(rows: list[CostRow]) -> None:
    june, july = aggregate(rows, ["month"])
    assert (june.key, june.study_count) == (("2025-06",), 2)
    # 2 x 368,087
    assert june.full_cost == 736_174
    # 341,776 + 187,296 + 45,248 = 574,320
    assert (july.key, july.study_count, july.full_cost) == (("2025-07",), 3, 574_320)
    # billed BH: 663,400 + 550,100 + 73,300 = 1,286,800; margin = 1,286,800 - 574,320
    assert july.billed_bh == 1_286_800
    assert july.margin_bh == 712_480
    # labour: 28,087 (old CT norm, BS 15 min) vs 31,776 (new, BS 20 min) + 13,296 + 6,648
    assert june.component(Component.NHAN_CONG) == 2 * 28_087
    assert july.component(Component.NHAN_CONG) == 31_776 + 13_296 + 6_648
    assert july.separately_billed == 450_000
    assert june.illustrative_count == 2 and july.illustrative_count == 3


def test_group_by_norm_set_and_service(rows: list[CostRow]) -> None:
    groups = {g.key: g for g in aggregate(rows, ["service", "norm_set"])}
    assert groups[(CT, "DM-MINHHOA-CT-2024")].full_cost == 736_174
    assert groups[(CT, "DM-MINHHOA-CT-2025")].full_cost == 341_776
    assert groups[("18.0149.0040", "DM-MINHHOA-2024")].study_count == 1


@pytest.mark.parametrize(
    ("by", "expected"),
    [
        (["department"], {("K02",): 4, ("K03",): 1}),
        (["modality"], {("CT",): 4, ("DX",): 1}),
        (["machine"], {("CT01",): 3, ("CT02",): 1, ("DX01",): 1}),
        (["staff"], {("BS01",): 3, ("BS02",): 2}),
        (
            ["day"],
            {
                (d,): 1
                for d in ("2025-06-02", "2025-06-30", "2025-07-01", "2025-07-15", "2025-07-20")
            },
        ),
        (
            ["month", "machine"],
            {
                ("2025-06", "CT01"): 2,
                ("2025-07", "CT01"): 1,
                ("2025-07", "CT02"): 1,
                ("2025-07", "DX01"): 1,
            },
        ),
    ],
)
def test_group_keys(rows: list[CostRow], by: list[str], expected: dict) -> None:
    assert {g.key: g.study_count for g in aggregate(rows, by)} == expected


def test_grand_total_consumes_iterator_once(rows: list[CostRow]) -> None:
    (total,) = aggregate(iter(rows), [])
    # 736,174 + 574,320
    assert total.full_cost == 1_310_494
    assert total.margin_bv == total.billed_bv - 1_310_494
    assert aggregate(iter(()), ["month"]) == []
    with pytest.raises(ValueError, match="unknown group key"):
        aggregate(rows, ["week"])


def test_contrast_volume_flows_into_separately_billed() -> None:
    row = study(date(2025, 6, 3), CT, "CT01", "BS01", contrast_volume_ml=Decimal(50))
    # 50 ml * 4,500 = 225,000; full cost unchanged
    assert (row.separately_billed, row.full_cost) == (225_000, 368_087)
