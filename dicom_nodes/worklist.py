"""Modality Worklist SCP (C-FIND, MWL information model): decode, query, answer.

The calling AE's modality (``dicom.peers``) lets a modality that sends no Scheduled
Station AE title still get its steps. Matching and items come from the
:data:`~dicom_nodes.ports.WorklistSource` it is handed (the gateway's:
``gateway.orders.worklist``).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator

from pydicom import Dataset
from pynetdicom import evt
from pynetdicom.events import Event
from pynetdicom.presentation import PresentationContext, build_context
from pynetdicom.sop_class import ModalityWorklistInformationFind  # type: ignore[attr-defined]

from dicom_nodes.association_policy import AssociationPolicy
from dicom_nodes.config import DicomSettings
from dicom_nodes.ports import WorklistQuery, WorklistSource

log = logging.getLogger(__name__)

STATUS_PENDING = 0xFF00
STATUS_CANCEL = 0xFE00
STATUS_CANNOT_PROCESS = 0xC000
STATUS_OUT_OF_RESOURCES = 0xA700


class WorklistSCP:
    def __init__(
        self,
        source: WorklistSource,
        dicom: DicomSettings,
        *,
        max_results: int,
        modality_from_calling_ae: bool,
    ) -> None:
        self.source = source
        self.policy = AssociationPolicy(dicom)
        self.max_results = max_results
        self.modality_from_calling_ae = modality_from_calling_ae

    def handle_find(self, event: Event) -> Iterator[tuple[int, Dataset | None]]:
        try:
            identifier = event.identifier
        except Exception:
            log.warning("worklist C-FIND with an undecodable identifier")
            yield STATUS_CANNOT_PROCESS, None
            return
        calling_ae = str(event.assoc.requestor.ae_title).strip()
        modality = self.policy.modality_of(calling_ae)
        query = WorklistQuery(
            identifier=identifier,
            calling_ae=calling_ae,
            calling_modality=modality.upper() if modality else None,
            modality_from_calling_ae=self.modality_from_calling_ae,
            max_results=self.max_results,
        )
        sent = 0
        try:
            items = list(self.source(query))
        except Exception as exc:
            log.error("worklist query failed (%s)", type(exc).__name__)
            yield STATUS_OUT_OF_RESOURCES, None
            return
        for item in items:
            if event.is_cancelled:
                yield STATUS_CANCEL, None
                return
            sent += 1
            yield STATUS_PENDING, item
        if sent >= self.max_results:
            log.warning("worklist C-FIND from %s cut at %d items", calling_ae, self.max_results)
        log.info("worklist C-FIND from %s: %d items", calling_ae, sent)

    def spec(self) -> tuple[list[PresentationContext], list[tuple[object, object]]]:
        return [build_context(ModalityWorklistInformationFind)], [
            (evt.EVT_C_FIND, self.handle_find)
        ]
