"""Costing against the example catalogue, with expected amounts computed by hand.

Rates used below (pricing_norms/data, ILLUSTRATIVE):
  staff VND/min: BS 737.90, KTV 591.65, DD 518.52
  depreciation: CT01 12e9/(10*200000 min) = 6,000/min; CT02 20e9/(10*200000) = 10,000/min
                MR01 30e9/(10*150000 min) = 20,000/min; DX01 3e9/(10*15000) = 20,000/use
                US01 1.5e9/(7*12000) = 17,857.142857.../use; MG01 6e9/(10*5000) = 120,000/use
  electricity 3,000/kWh; RIS-PACS share 15,000; film 35x43 30,000; gloves 3,000 per pair
Rule: each line rounded half-up to the dong, totals are sums of rounded lines.
"""

from __future__ import annotations

import json
from datetime import date, datetime
from decimal import Decimal

import pytest

from pricing_norms.catalogue import (
    Catalogue,
    Component,
    Equipment,
    NormLine,
    NormSet,
    Price,
    Service,
    StaffCategory,
    StaffRate,
)
from pricing_norms.costing import CostingError, CostRecord, cost_study
from pricing_norms.example import load_example_catalogue
from pricing_norms.mapping import StudyFacts

pytestmark = pytest.mark.unit

CT_CONTRAST = "18.0220.0041"


@pytest.fixture(scope="module")
def catalogue() -> Catalogue:
    return load_example_catalogue()


def facts(day: date, modality: str, **kwargs: object) -> StudyFacts:
    return StudyFacts(study_date=day, modality=modality, department="K02", **kwargs)  # type: ignore[arg-type]


def test_ct_abdomen_contrast_2024_norm_from_domain(catalogue: Catalogue) -> None:
    record = cost_study(
        catalogue,
        CT_CONTRAST,
        facts(date(2024, 9, 15), "CT", contrast_agent="Iopamidol", contrast_volume_ml=Decimal(100)),
        "CT01",
    )
    assert record.norm_set_code == "DM-MINHHOA-CT-2024"
    assert record.norm_illustrative is True
    # VAT_TU: films 2*30,000=60,000 + kit 150,000 + cannula 10,000 + gloves 2*3,000=6,000
    assert record.total(Component.VAT_TU) == 226_000
    # NHAN_CONG: KTV 20*591.65=11,833.00 -> 11,833; DD 10*518.52=5,185.20 -> 5,185;
    #            BS 15*737.90=11,068.50 -> 11,069 (half-up)  => 28,087
    assert record.total(Component.NHAN_CONG) == 28_087
    amounts = {line.item_code: line.amount for line in record.lines}
    assert amounts["BS"] == 11_069
    # KHAU_HAO: 15 min * 6,000 = 90,000; NANG_LUONG: 3 kWh * 3,000 = 9,000; CNTT 15,000
    assert record.total(Component.KHAU_HAO) == 90_000
    assert record.total(Component.NANG_LUONG) == 9_000
    assert record.total(Component.CNTT) == 15_000
    # contrast 100 ml * 4,500 = 450,000, billed separately: listed, not in THUOC/full cost
    assert record.total(Component.THUOC) == 0
    assert record.separately_billed == 450_000
    # full = 226,000 + 28,087 + 90,000 + 9,000 + 15,000 = 368,087
    assert record.full_cost == 368_087
    # margin = 663,400 - 368,087 = 295,313
    assert (record.price_bh, record.margin_bh, record.margin_bv) == (663_400, 295_313, 295_313)
    assert record.price_excludes.startswith("Thuốc cản quang")


def test_ct_abdomen_actual_contrast_and_films_override_norm(catalogue: Catalogue) -> None:
    record = cost_study(
        catalogue,
        CT_CONTRAST,
        facts(date(2024, 9, 15), "CT", contrast_volume_ml=Decimal(80), films_printed=1),
        "CT01",
    )
    contrast = next(line for line in record.lines if line.component is Component.THUOC)
    assert (contrast.norm_quantity, contrast.quantity, contrast.source) == (100, 80, "actual")
    # contrast 80 * 4,500 = 360,000 (separate); films 1 * 30,000 => VAT_TU 196,000
    assert record.separately_billed == 360_000
    assert record.total(Component.VAT_TU) == 196_000
    # full = 368,087 - 30,000 = 338,087
    assert record.full_cost == 338_087


def test_ct_abdomen_after_norm_change(catalogue: Catalogue) -> None:
    record = cost_study(catalogue, CT_CONTRAST, facts(date(2025, 7, 10), "CT"), "CT01")
    assert record.norm_set_code == "DM-MINHHOA-CT-2025"
    # VAT_TU: 1 film 30,000 + 150,000 + 10,000 + 6,000 = 196,000
    # NHAN_CONG: 11,833 + 5,185 + BS 20*737.90=14,758 = 31,776
    # full = 196,000 + 31,776 + 90,000 + 9,000 + 15,000 = 341,776; margin 663,400-341,776
    assert record.total(Component.NHAN_CONG) == 31_776
    assert record.full_cost == 341_776
    assert record.margin_bh == 321_624
    # no volume in the facts: the norm's 100 ml is used
    assert record.separately_billed == 450_000


def test_norm_boundary_days(catalogue: Catalogue) -> None:
    last_old = cost_study(catalogue, CT_CONTRAST, facts(date(2025, 6, 30), "CT"), "CT01")
    first_new = cost_study(catalogue, CT_CONTRAST, facts(date(2025, 7, 1), "CT"), "CT01")
    assert (last_old.norm_set_code, last_old.full_cost) == ("DM-MINHHOA-CT-2024", 368_087)
    assert (first_new.norm_set_code, first_new.full_cost) == ("DM-MINHHOA-CT-2025", 341_776)


def test_xray_chest_filmless(catalogue: Catalogue) -> None:
    record = cost_study(
        catalogue, "18.0119.0028", facts(date(2024, 10, 1), "DX", filmless=True), "DX01"
    )
    assert "VT-PHIM-3543" not in {line.item_code for line in record.lines}
    assert any("filmless" in note for note in record.notes)
    # VAT_TU: gloves 1*3,000 (film removed)
    # NHAN_CONG: KTV 5*591.65=2,958.25 -> 2,958; BS 5*737.90=3,689.50 -> 3,690 => 6,648
    # KHAU_HAO 1 use * 20,000; NANG_LUONG 0.2*3,000=600; CNTT 15,000
    # full = 3,000 + 6,648 + 20,000 + 600 + 15,000 = 45,248; margin 73,300-45,248 = 28,052
    assert record.total(Component.VAT_TU) == 3_000
    assert record.total(Component.NHAN_CONG) == 6_648
    assert record.full_cost == 45_248
    assert record.margin_bh == 28_052


def test_xray_chest_with_film(catalogue: Catalogue) -> None:
    record = cost_study(catalogue, "18.0119.0028", facts(date(2024, 10, 1), "DX"), "DX01")
    # same as filmless + 1 film 30,000 => 75,248; margin 73,300-75,248 = -1,948
    assert record.full_cost == 75_248
    assert record.margin_bh == -1_948


def test_ultrasound_exact_depreciation_rounding(catalogue: Catalogue) -> None:
    record = cost_study(catalogue, "18.0015.0001", facts(date(2024, 10, 1), "US"), "US01")
    # VAT_TU: gel 20*150=3,000 + paper 2*500=1,000 = 4,000
    # NHAN_CONG: BS 10*737.90=7,379; DD 5*518.52=2,592.60 -> 2,593 => 9,972
    # KHAU_HAO: 1 * 1,500,000,000/84,000 = 17,857.142857... -> 17,857
    # full = 4,000 + 9,972 + 17,857 + 0.1*3,000=300 + 15,000 = 47,129; margin 58,600-47,129
    depreciation = next(line for line in record.lines if line.component is Component.KHAU_HAO)
    assert depreciation.unit_cost == Decimal("17857.1429")
    assert depreciation.amount == 17_857
    assert record.full_cost == 47_129
    assert record.margin_bh == 11_471


def test_mri_contrast_actual_volume_and_films(catalogue: Catalogue) -> None:
    record = cost_study(
        catalogue,
        "18.0297.0065",
        facts(date(2024, 11, 5), "MR", contrast_volume_ml=Decimal(12), films_printed=2),
        "MR01",
    )
    # VAT_TU: films 2*30,000=60,000 + gloves 2*3,000=6,000 + syringe 5,000 + cannula 10,000
    assert record.total(Component.VAT_TU) == 81_000
    # NHAN_CONG: KTV 30*591.65=17,749.50 -> 17,750; DD 10*518.52=5,185.20 -> 5,185;
    #            BS 25*737.90=18,447.50 -> 18,448 => 41,383
    assert record.total(Component.NHAN_CONG) == 41_383
    # KHAU_HAO 40 min*20,000=800,000; DUY_TU 50,000; NANG_LUONG 18*3,000=54,000;
    # QUAN_LY 20,000; CNTT 15,000
    # full = 81,000+41,383+800,000+50,000+54,000+20,000+15,000 = 1,061,383
    assert record.full_cost == 1_061_383
    # gadolinium 12 ml * 25,000 = 300,000 billed separately
    assert record.separately_billed == 300_000
    # margin = 2,250,800 - 1,061,383 = 1,189,417
    assert record.margin_bh == 1_189_417


def test_ct_head_on_other_machine(catalogue: Catalogue) -> None:
    record = cost_study(catalogue, "18.0149.0040", facts(date(2024, 12, 1), "CT"), "CT02")
    # VAT_TU: film 30,000 + gloves 3,000 = 33,000
    # NHAN_CONG: KTV 10*591.65=5,916.50 -> 5,917; BS 10*737.90=7,379 => 13,296
    # KHAU_HAO: 10 min * 10,000 (CT02) = 100,000; DUY_TU 20,000; NANG_LUONG 2*3,000=6,000
    # full = 33,000+13,296+100,000+20,000+6,000+15,000 = 187,296; margin 550,100-187,296
    assert record.full_cost == 187_296
    assert record.margin_bh == 362_804
    on_ct01 = cost_study(catalogue, "18.0149.0040", facts(date(2024, 12, 1), "CT"), "CT01")
    # 10 min * 6,000 = 60,000 instead of 100,000
    assert on_ct01.full_cost == 187_296 - 40_000


def test_mammography_negative_margin(catalogue: Catalogue) -> None:
    record = cost_study(catalogue, "18.0126.0026", facts(date(2024, 12, 1), "MG"), "MG01")
    # VAT_TU 2*28,000 + 3,000 = 59,000; NHAN_CONG KTV 15*591.65=8,874.75 -> 8,875 + BS 7,379
    # = 16,254; KHAU_HAO 120,000; NANG_LUONG 0.5*3,000 = 1,500; CNTT 15,000 => 211,754
    assert record.full_cost == 211_754
    assert record.margin_bh == 102_300 - 211_754


def test_record_json_round_trip_is_stable(catalogue: Catalogue) -> None:
    record = cost_study(
        catalogue,
        CT_CONTRAST,
        facts(datetime(2024, 9, 15, 10, 30), "CT", contrast_volume_ml=Decimal("85.5")),
        "CT01",
    )
    text = record.to_json()
    again = CostRecord.from_json(text)
    assert again == record
    assert again.to_json() == text
    data = json.loads(text)
    assert data["schema_version"] == 2 and data["price_variant"] == "" and data["tyle_tt_dv"] == 100
    assert data["study_date"] == "2024-09-15"
    assert set(data["totals"]) == {c.value for c in Component}
    # 85.5 ml * 4,500 = 384,750
    assert data["separately_billed"] == 384_750
    # deterministic: same inputs, same bytes
    assert (
        cost_study(
            catalogue,
            CT_CONTRAST,
            facts(date(2024, 9, 15), "CT", contrast_volume_ml=Decimal("85.5")),
            "CT01",
        ).to_json()
        == text
    )


@pytest.mark.parametrize(
    ("service", "day", "machine", "message"),
    [
        ("18.9999.9999", date(2024, 9, 1), "CT01", "unknown service"),
        (CT_CONTRAST, date(2024, 6, 30), "CT01", "no price in force"),
        (CT_CONTRAST, date(2024, 9, 1), "XX99", "unknown machine"),
        (CT_CONTRAST, date(2024, 9, 1), None, "needs the machine"),
        (CT_CONTRAST, date(2024, 9, 1), "DX01", "capacity is per USE"),
    ],
)
def test_costing_errors(
    catalogue: Catalogue, service: str, day: date, machine: str | None, message: str
) -> None:
    with pytest.raises(CostingError, match=message):
        cost_study(catalogue, service, facts(day, "CT"), machine)


def test_staff_rate_change_and_missing_norm() -> None:
    service = Service("18.0001.0001", "Test", 2, "DX", False, "lần")
    norm = NormSet("N1", "official", "Decision X", date(2024, 1, 1), date(2024, 12, 31))
    code = service.code
    catalogue = Catalogue(
        norm_sets=[norm],
        services=[service],
        prices=[Price(service.code, 100_000, 120_000, "", date(2024, 1, 1))],
        norm_lines=[
            NormLine("N1", code, Component.NHAN_CONG, "KTV", "KTV", "phút", Decimal(3), None),
            NormLine("N1", code, Component.VAT_TU, "G", "Glove", "đôi", Decimal(1), Decimal("0.5")),
        ],
        staff_rates=[
            StaffRate(StaffCategory.KTV, Decimal("100.5"), date(2024, 1, 1), date(2024, 6, 30)),
            StaffRate(StaffCategory.KTV, Decimal("200.25"), date(2024, 7, 1)),
        ],
        equipment=[Equipment("M1", "DX", "m", 1, 1, 1)],
    )
    before = cost_study(catalogue, service.code, facts(date(2024, 6, 30), "DX"), None)
    after = cost_study(catalogue, service.code, facts(date(2024, 7, 1), "DX"), None)
    # 3*100.5 = 301.5 -> 302; gloves 0.5 -> 1 (half-up) => 303 ; margin BV 120,000-303
    assert (before.full_cost, before.margin_bv) == (303, 119_697)
    # 3*200.25 = 600.75 -> 601; + 1 => 602
    assert after.full_cost == 602
    assert before.norm_illustrative is False
    with pytest.raises(CostingError, match="no norm set in force"):
        cost_study(catalogue, service.code, facts(date(2025, 1, 1), "DX"), None)
