"""Service resolution (site map -> the order's service code -> rules) with effective
dates, code normalisation (hypothesis), and the film / PACS price variants."""

from __future__ import annotations

import dataclasses
import json
from datetime import date
from decimal import Decimal
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pricing_norms.catalogue import Catalogue, CatalogueError, Price, PriceVariant
from pricing_norms.catalogue_io import export_csv_dir, load_csv_dir
from pricing_norms.claims import ClaimContext, xml3_rows
from pricing_norms.costing import CostingError, CostRecord, cost_study
from pricing_norms.mapping import (
    Delivery,
    MapEntry,
    MappingMethod,
    MappingRule,
    ServiceMapper,
    StudyFacts,
    normalize_code,
)

pytestmark = pytest.mark.unit

FIXTURE = Path(__file__).parent / "fixtures" / "pricing" / "film_pacs"  # ILLUSTRATIVE
CT_HEAD, DX, MR_C = "18.0149.0040", "18.0119.0028", "18.0297.0065"
ANNEX_02 = "18.9149.0040"  # an invented Annex 02 code for the same technique
DAY = date(2026, 3, 10)
LAST_ANNEX_01, FIRST_ANNEX_02 = date(2027, 12, 31), date(2028, 1, 1)


@pytest.fixture(scope="module")
def catalogue() -> Catalogue:
    return load_csv_dir(FIXTURE)


def _ct_rule(effective_to: date | None = None) -> MappingRule:
    return MappingRule("ct-head", CT_HEAD, "CT", 10, frozenset({"HEAD"}), effective_to=effective_to)


# -- resolution order -------------------------------------------------------------------


def test_site_map_wins_over_order_code_and_rules(catalogue: Catalogue) -> None:
    mapper = ServiceMapper(procedure_map={CT_HEAD: MR_C}, rules=(_ct_rule(),))
    facts = StudyFacts(DAY, "CT", body_part="HEAD", procedure_code=CT_HEAD)
    result = mapper.map(facts, catalogue)
    assert (result.service_code, result.method) == (MR_C, MappingMethod.PROCEDURE_CODE)


def test_order_code_naming_a_catalogue_service_wins_over_rules(catalogue: Catalogue) -> None:
    mapper = ServiceMapper(rules=(MappingRule("any-ct", MR_C, "CT"),))
    result = mapper.map(StudyFacts(DAY, "CT", procedure_code=f" {CT_HEAD}\t"), catalogue)
    assert (result.service_code, result.method) == (CT_HEAD, MappingMethod.SERVICE_CODE)
    assert "service of the catalogue in force on 2026-03-10" in result.reason
    # without a catalogue (or with an unknown code) the rules decide
    assert mapper.map(StudyFacts(DAY, "CT", procedure_code=CT_HEAD)).method is MappingMethod.RULE
    unknown = mapper.map(StudyFacts(DAY, "CT", procedure_code="18.0001.0001"), catalogue)
    assert unknown.rule_id == "any-ct"


def test_order_code_out_of_force_falls_to_rules_and_explains(catalogue: Catalogue) -> None:
    before_prices = date(2024, 6, 30)  # the fixture's prices start 2024-07-01
    result = ServiceMapper(rules=(_ct_rule(),)).map(
        StudyFacts(before_prices, "MR", procedure_code=CT_HEAD), catalogue
    )
    assert not result.mapped
    assert result.reason.split("; ")[:2] == [
        f"site map: no entry for {CT_HEAD}",
        f"catalogue: service {CT_HEAD} has no price in force on 2024-06-30",
    ]
    assert "rules: none matched (ct-head: modality 'MR' != CT)" in result.reason


def test_unmapped_lists_every_step_tried(catalogue: Catalogue) -> None:
    result = ServiceMapper().map(StudyFacts(DAY, "CT", procedure_code="XQ-LA"), catalogue)
    assert result.reason == (
        "site map: no entry for XQ-LA; catalogue: XQ-LA is not a service of the catalogue; "
        "rules: none matched (no rules configured)"
    )
    assert (
        ServiceMapper()
        .map(StudyFacts(DAY, "CT"), catalogue)
        .reason.startswith("no procedure code on the order; rules")
    )


# -- effective dates ------------------------------------------------------------------------


def test_site_map_entries_follow_annex_01_then_annex_02() -> None:
    mapper = ServiceMapper(
        entries=(
            MapEntry("ct-so-nao", CT_HEAD, effective_to=LAST_ANNEX_01),
            MapEntry("CT-SO-NAO", ANNEX_02, effective_from=FIRST_ANNEX_02),
        )
    )
    old = mapper.map(StudyFacts(LAST_ANNEX_01, "CT", procedure_code="ct-so-nao"))
    new = mapper.map(StudyFacts(FIRST_ANNEX_02, "CT", procedure_code="Ct-So-Nao"))
    assert (old.service_code, new.service_code) == (CT_HEAD, ANNEX_02)
    assert "valid until 2027-12-31" in old.reason and "valid from 2028-01-01" in new.reason


def test_site_map_entry_out_of_force_is_not_used() -> None:
    mapper = ServiceMapper(entries=(MapEntry("K1", CT_HEAD, date(2025, 1, 1), date(2025, 12, 31)),))
    result = mapper.map(StudyFacts(DAY, "CT", procedure_code="k1"))
    assert not result.mapped
    assert "site map: K1 has no entry in force on 2026-03-10 (2025-01-01..2025-12-31)" in (
        result.reason
    )


def test_overlapping_site_map_entries_are_refused() -> None:
    with pytest.raises(ValueError, match="overlaps"):
        ServiceMapper(
            procedure_map={"K1": CT_HEAD},  # undated: always
            entries=(MapEntry("k1", ANNEX_02, effective_from=FIRST_ANNEX_02),),
        )
    with pytest.raises(ValueError, match="before"):
        MapEntry("K1", CT_HEAD, date(2026, 1, 2), date(2026, 1, 1))


def test_rules_apply_only_in_their_period() -> None:
    mapper = ServiceMapper(
        rules=(
            _ct_rule(effective_to=LAST_ANNEX_01),
            MappingRule("ct-head-02", ANNEX_02, "CT", 10, frozenset({"HEAD"}),
                        effective_from=FIRST_ANNEX_02),
        )
    )  # fmt: skip
    old = mapper.map(StudyFacts(LAST_ANNEX_01, "CT", body_part="HEAD"))
    new = mapper.map(StudyFacts(FIRST_ANNEX_02, "CT", body_part="HEAD"))
    assert (old.rule_id, new.rule_id) == ("ct-head", "ct-head-02")
    assert (
        "ct-head: not in force on 2028-01-01 (until 2027-12-31)"
        in mapper.map(StudyFacts(FIRST_ANNEX_02, "MR")).reason
    )


# -- code normalisation (property tests) ---------------------------------------------------

_SPACE = st.sampled_from([" ", "\t", "\u00a0", "\u3000", "\n", ""])
_CODE = st.from_regex(r"[0-9]{2}\.[0-9]{4}\.[0-9]{4}", fullmatch=True)
_LOCAL = st.text(st.characters(categories=("Lu", "Ll", "Nd"), max_codepoint=0x24F), min_size=1)


@given(st.text())
def test_normalize_is_idempotent(text: str) -> None:
    assert normalize_code(normalize_code(text)) == normalize_code(text)


@given(_CODE, _SPACE, _SPACE)
def test_service_code_survives_surrounding_space(code: str, left: str, right: str) -> None:
    assert normalize_code(left + code + right) == code


@given(_CODE)
def test_full_width_service_code_is_ascii(code: str) -> None:
    full_width = "".join(chr(ord(ch) + 0xFEE0) for ch in code)  # full-width forms
    assert normalize_code(full_width) == code


@given(_LOCAL, st.booleans())
def test_site_map_lookup_ignores_case_and_space(local: str, upper: bool) -> None:
    key = normalize_code(local)
    if not key:
        return
    mapper = ServiceMapper(procedure_map={local: CT_HEAD})
    asked = f"  {local.upper() if upper else local.lower()} "
    if normalize_code(asked) != key:  # a few letters change length when cased (e.g. ß)
        return
    assert mapper.map(StudyFacts(DAY, "CT", procedure_code=asked)).service_code == CT_HEAD


# -- film / PACS prices ---------------------------------------------------------------------


def _facts(**kw: object) -> StudyFacts:
    return StudyFacts(DAY, "DX", **kw)  # type: ignore[arg-type]


def test_fixture_catalogue_is_illustrative(catalogue: Catalogue) -> None:
    assert catalogue.has_illustrative
    assert all("ILLUSTRATIVE" in p.legal_basis for p in catalogue.prices)


def test_delivery_chooses_film_or_pacs_price_with_its_decision(catalogue: Catalogue) -> None:
    film = cost_study(catalogue, DX, _facts(), "DX01")
    pacs = cost_study(catalogue, DX, _facts(filmless=True, delivery_source="staff"), "DX01")
    assert (film.delivery, film.price_variant, film.price_bv) == ("film", "FILM", 73_300)
    assert (pacs.delivery, pacs.price_variant, pacs.price_bv) == ("filmless", "PACS", 59_700)
    assert pacs.price_decision == "313/QĐ-BYT (2026-01-29)" and pacs.delivery_source == "staff"
    # the film (a VAT_TU cost component, 1 x 30,000) goes with the film delivery
    assert film.full_cost - pacs.full_cost == 30_000
    assert "VT-PHIM-3543" not in {line.item_code for line in pacs.lines}


def test_mpps_film_count_decides_and_prices(catalogue: Catalogue) -> None:
    zero = cost_study(catalogue, DX, _facts(films_printed=0, delivery_source="mpps"), "DX01")
    two = cost_study(catalogue, DX, _facts(films_printed=2, delivery_source="mpps"), "DX01")
    assert (zero.delivery, zero.price_variant) == ("filmless", "PACS")
    assert (two.delivery, two.price_variant, two.films_printed) == ("film", "FILM", 2)
    film_line = next(x for x in two.lines if x.item_code == "VT-PHIM-3543")
    assert (film_line.quantity, film_line.amount, film_line.source) == (2, 60_000, "actual")


def test_pacs_price_not_yet_in_force_is_not_invented(catalogue: Catalogue) -> None:
    before = StudyFacts(date(2026, 1, 31), "DX", filmless=True, delivery_source="department")
    with pytest.raises(CostingError, match=r"no price for a filmless study.*prices in force: FILM"):
        cost_study(catalogue, DX, before, "DX01")


def test_undistinguished_price_serves_both_deliveries(catalogue: Catalogue) -> None:
    film = cost_study(catalogue, MR_C, StudyFacts(DAY, "MR"), "MR01")
    pacs = cost_study(catalogue, MR_C, StudyFacts(DAY, "MR", filmless=True), "MR01")
    assert (film.price_variant, pacs.price_variant) == ("", "")
    assert film.price_bv == pacs.price_bv == 2_250_800


def test_film_and_pacs_prices_may_overlap_but_not_two_film_prices(catalogue: Catalogue) -> None:
    tables = catalogue.tables()
    second_film = Price(DX, 1, 1, "", date(2026, 1, 1), variant=PriceVariant.FILM)
    with pytest.raises(CatalogueError, match=r"the price of service 18.0119.0028 \(FILM\)"):
        Catalogue(**{**tables, "prices": (*catalogue.prices, second_film)})  # type: ignore[arg-type]


def test_variant_and_decision_survive_csv_round_trip(catalogue: Catalogue, tmp_path: Path) -> None:
    export_csv_dir(catalogue, tmp_path)
    again = load_csv_dir(tmp_path)
    assert again == catalogue
    [pacs] = [p for p in again.prices if p.variant is PriceVariant.PACS and p.service_code == DX]
    assert (pacs.decision_number, pacs.decision_date) == ("313/QĐ-BYT", date(2026, 1, 29))


def test_pacs_only_norm_line_goes_with_film(catalogue: Catalogue) -> None:
    from pricing_norms.catalogue import Component, NormLine, Override

    online = NormLine("DM-MINHHOA-2024", DX, Component.CNTT, "CNTT-TRA-KQ",
                      "Trả kết quả trực tuyến", "ca", Decimal(1), Decimal(2_000),
                      override=Override.PACS)  # fmt: skip
    tables = catalogue.tables()
    with_line = Catalogue(**{**tables, "norm_lines": (*catalogue.norm_lines, online)})  # type: ignore[arg-type]
    film = cost_study(with_line, DX, _facts(), "DX01")
    pacs = cost_study(with_line, DX, _facts(filmless=True), "DX01")
    assert "CNTT-TRA-KQ" not in {x.item_code for x in film.lines}
    assert pacs.total(Component.CNTT) == 15_000 + 2_000
    assert any("filmless line CNTT-TRA-KQ removed" in n for n in film.notes)


# -- the record and the claim -------------------------------------------------------------


def test_tyle_tt_dv_reaches_xml3(catalogue: Catalogue) -> None:
    record = cost_study(catalogue, MR_C, StudyFacts(DAY, "MR", tyle_tt_dv=50), "MR01")
    when = date(2026, 3, 10)
    context = ClaimContext("LK1", ngay_yl=when, ngay_th_yl=when)  # type: ignore[arg-type]
    [row] = xml3_rows(record, context)
    assert (row["TYLE_TT_DV"], row["THANH_TIEN_BV"], row["THANH_TIEN_BH"]) == (
        "50", "1125400", "1125400",
    )  # fmt: skip
    with pytest.raises(ValueError):
        StudyFacts(DAY, "MR", tyle_tt_dv=101)


def test_schema_1_documents_still_read(catalogue: Catalogue) -> None:
    record = cost_study(catalogue, DX, _facts(), "DX01")
    data = json.loads(record.to_json())
    for key in ("delivery", "delivery_source", "films_printed", "price_variant",
                "price_decision_number", "price_decision_date", "tyle_tt_dv"):  # fmt: skip
        del data[key]
    data["schema_version"] = 1
    old = CostRecord.from_dict(data)
    assert (old.price_variant, old.delivery, old.tyle_tt_dv) == ("", "", 100)
    assert old == dataclasses.replace(
        record, delivery="", delivery_source="", price_variant="", price_decision_number="",
        price_decision_date=None, schema_version=1,
    )  # fmt: skip


def test_delivery_property() -> None:
    assert _facts().delivery is Delivery.FILM
    assert _facts(filmless=True).delivery is Delivery.FILMLESS
    assert _facts(filmless=True, films_printed=1).delivery is Delivery.FILM
