"""Where the pipeline's parts plug into a process: job handlers, hooks, extra DIMSE services.

Each later part (forwarding, HL7 orders, worklist, MPPS, costing) adds itself here, so
``runner`` stays the same and a newcomer finds every wiring in one place.
"""

from __future__ import annotations

from collections.abc import Callable

from dicom_nodes.server import ServiceSpec
from gateway.service import Service


def install_extensions(service: Service) -> None:
    """Register job handlers and receive hooks on ``service``."""


def dicom_services(service: Service) -> list[ServiceSpec]:
    """Extra DIMSE services (worklist, MPPS, storage commitment) for the DICOM node."""
    return []


def start_hl7(service: Service) -> Callable[[], None]:
    """Start the MLLP listener; returns its stop function."""
    return lambda: None
