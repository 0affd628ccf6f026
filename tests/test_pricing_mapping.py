"""Study -> service and study -> machine mapping."""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal

import pytest

from pricing_norms.example import (
    example_machine_mapper,
    example_service_mapper,
    load_example_catalogue,
)
from pricing_norms.mapping import (
    MachineMapper,
    MappingMethod,
    MappingRule,
    ServiceMapper,
    StudyFacts,
)

pytestmark = pytest.mark.unit

DAY = date(2024, 9, 1)
MR, DX = "18.0296.0066", "18.0119.0028"


def test_procedure_code_table_wins_over_rules() -> None:
    facts = StudyFacts(DAY, "CT", body_part="HEAD", procedure_code=" ct-bung-cq ")
    result = example_service_mapper().map(facts)
    assert (result.service_code, result.method) == ("18.0220.0041", MappingMethod.PROCEDURE_CODE)


@pytest.mark.parametrize(
    ("facts", "service", "rule"),
    [
        (StudyFacts(DAY, "CT", body_part="head"), "18.0149.0040", "ct-head"),
        (
            StudyFacts(DAY, "CT", body_part="ABDOMEN", contrast_agent="Iopamidol 370"),
            "18.0220.0041",
            "ct-abd-contrast",
        ),
        (
            StudyFacts(DAY, "MR", body_part="BRAIN", contrast_volume_ml=Decimal(15)),
            "18.0297.0065",
            "mr-brain-c",
        ),
        (
            StudyFacts(DAY, "MR", body_part="BRAIN", contrast_agent="NONE"),
            "18.0296.0066",
            "mr-brain",
        ),
        (
            StudyFacts(DAY, "DX", body_part="CHEST", number_of_instances=2),
            "18.0119.0028",
            "dx-chest-1",
        ),
        (StudyFacts(DAY, "MG"), "18.0126.0026", "mg"),
    ],
)
def test_rules(facts: StudyFacts, service: str, rule: str) -> None:
    result = example_service_mapper().map(facts)
    assert result.mapped
    assert (result.service_code, result.method, result.rule_id) == (
        service,
        MappingMethod.RULE,
        rule,
    )


def test_unmapped_explains_why() -> None:
    facts = StudyFacts(DAY, "DX", body_part="CHEST", number_of_instances=5, procedure_code="P9")
    result = example_service_mapper().map(facts)
    assert not result.mapped and result.method is MappingMethod.UNMAPPED
    assert "site map: no entry for P9" in result.reason
    assert "dx-chest-1: 5 instances > 2" in result.reason
    ct_contrast_unknown_count = ServiceMapper(
        rules=(MappingRule("r", "18.0149.0040", "CT", min_instances=10),)
    ).map(StudyFacts(DAY, "CT"))
    assert "number of instances unknown" in ct_contrast_unknown_count.reason
    assert "no rules configured" in ServiceMapper().map(StudyFacts(DAY, "CT")).reason


def test_rule_priority_then_given_order() -> None:
    rules = (
        MappingRule("late", "18.0001.0003", "CT", priority=5),
        MappingRule("first", "18.0001.0001", "CT", priority=1),
        MappingRule("second", "18.0001.0002", "CT", priority=1),
    )
    assert ServiceMapper(rules=rules).map(StudyFacts(DAY, "CT")).rule_id == "first"
    assert [r.rule_id for r in ServiceMapper(rules=rules).rules] == ["first", "second", "late"]


def test_machine_mapping_serial_before_ae() -> None:
    mapper = example_machine_mapper()
    both = mapper.map(StudyFacts(DAY, "CT", station_ae="CT_64", device_serial="sn-ct-0001"))
    assert (both.machine_code, both.method) == ("CT01", MappingMethod.DEVICE_SERIAL)
    by_ae = mapper.map(StudyFacts(DAY, "CT", station_ae="ct_64 ", device_serial="UNKNOWN"))
    assert (by_ae.machine_code, by_ae.method) == ("CT02", MappingMethod.STATION_AE)
    none = mapper.map(StudyFacts(DAY, "CT", station_ae="X"))
    assert not none.mapped
    assert none.reason == "device serial (none) unknown; station AE X unknown"


def test_mapping_config_checked_against_catalogue() -> None:
    catalogue = load_example_catalogue()
    assert example_service_mapper().check(catalogue) == []
    assert example_machine_mapper().check(catalogue) == []
    bad = ServiceMapper({"P": "18.9999.0000"}, (MappingRule("r", "18.8888.0000", "CT"),))
    assert bad.check(catalogue) == [
        "procedure code P -> unknown service 18.9999.0000",
        "rule r -> unknown service 18.8888.0000",
    ]
    assert MachineMapper(by_station_ae={"AE": "NOPE"}).check(catalogue) == [
        "AE AE -> unknown machine NOPE"
    ]


def test_study_facts_normalisation() -> None:
    facts = StudyFacts(datetime(2024, 9, 1, 23, 59), "CT", contrast_volume_ml=Decimal("0"))
    assert facts.study_date == date(2024, 9, 1) and type(facts.study_date) is date
    assert not facts.has_contrast
    assert StudyFacts(DAY, "CT", contrast_agent="Không").has_contrast is False
    with pytest.raises(ValueError, match="films_printed"):
        StudyFacts(DAY, "CT", films_printed=-1)
