"""The bundled example catalogue and example mapping tables (ILLUSTRATIVE norms).

The data lives in ``pricing_norms/data/`` (see its README for sources and the staff-rate
derivation). Prices are the 2024 figures of ``docs/domain.md``; every norm set is
flagged ``illustrative`` and named "ILLUSTRATIVE - Định mức minh hoạ ...".
"""

from __future__ import annotations

from functools import cache
from pathlib import Path

from pricing_norms.catalogue import Catalogue
from pricing_norms.catalogue_io import load_csv_dir
from pricing_norms.mapping import MachineMapper, MappingRule, ServiceMapper

__all__ = [
    "EXAMPLE_DATA_DIR",
    "example_machine_mapper",
    "example_service_mapper",
    "load_example_catalogue",
]

EXAMPLE_DATA_DIR = Path(__file__).with_name("data")


@cache
def load_example_catalogue() -> Catalogue:
    """Load (once) the example catalogue from ``pricing_norms/data``."""
    return load_csv_dir(EXAMPLE_DATA_DIR)


def example_service_mapper() -> ServiceMapper:
    """Illustrative mapping: a few procedure codes, then modality/body-part rules."""
    return ServiceMapper(
        procedure_map={
            "XQ-NGUC": "18.0119.0028",
            "SA-BUNG": "18.0015.0001",
            "CT-BUNG-CQ": "18.0220.0041",
        },
        rules=(
            MappingRule("mg", "18.0126.0026", "MG", priority=10),
            MappingRule("us-abdomen", "18.0015.0001", "US", 20, frozenset({"ABDOMEN"})),
            MappingRule(
                "dx-chest-1", "18.0119.0028", "DX", 30, frozenset({"CHEST"}), max_instances=2
            ),
            MappingRule("ct-head", "18.0149.0040", "CT", 40, frozenset({"HEAD", "BRAIN"}), False),
            MappingRule(
                "ct-abd-contrast", "18.0220.0041", "CT", 40, frozenset({"ABDOMEN", "PELVIS"}), True
            ),
            MappingRule("mr-brain-c", "18.0297.0065", "MR", 50, frozenset({"HEAD", "BRAIN"}), True),
            MappingRule("mr-brain", "18.0296.0066", "MR", 51, frozenset({"HEAD", "BRAIN"}), False),
        ),
    )


def example_machine_mapper() -> MachineMapper:
    """Illustrative device serial / station AE -> MA_MAY table for the example machines."""
    return MachineMapper(
        by_serial={"SN-CT-0001": "CT01", "SN-CT-0002": "CT02", "SN-MR-0001": "MR01"},
        by_station_ae={
            "DX_ROOM1": "DX01",
            "US_ROOM2": "US01",
            "MAMMO1": "MG01",
            "CT_32": "CT01",
            "CT_64": "CT02",
            "MR_15T": "MR01",
        },
    )
