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
    from gateway.costing import jobs as costing_jobs

    costing_jobs.install(service)


def dicom_services(service: Service) -> list[ServiceSpec]:
    """Extra DIMSE services (worklist, MPPS, storage commitment) for the DICOM node."""
    from dicom_nodes.mpps import MppsSCP
    from dicom_nodes.worklist import WorklistSCP

    return [WorklistSCP(service.db, service.settings).spec(), MppsSCP(service.db).spec()]


def start_hl7(service: Service) -> Callable[[], None]:
    """Start the MLLP listener; returns its stop function."""
    from gateway.hl7_listener import HL7Listener

    return HL7Listener(service.db, service.settings).start()
