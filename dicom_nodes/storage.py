"""Storage SCP (C-STORE): hand the received temp file to the gateway, map the outcome.

Datasets arrive streamed to a temp file (pynetdicom's chunked mode), so memory does not
grow with instance size; the handler never decodes pixel data.
"""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import cast

from pydicom import Dataset
from pydicom.uid import (
    HTJ2K,
    JPEG2000,
    DeflatedExplicitVRLittleEndian,
    ExplicitVRBigEndian,
    ExplicitVRLittleEndian,
    HTJ2KLossless,
    HTJ2KLosslessRPCL,
    ImplicitVRLittleEndian,
    JPEG2000Lossless,
    JPEGBaseline8Bit,
    JPEGExtended12Bit,
    JPEGLossless,
    JPEGLosslessSV1,
    JPEGLSLossless,
    JPEGLSNearLossless,
    RLELossless,
)
from pynetdicom.dimse_primitives import C_STORE
from pynetdicom.events import Event
from pynetdicom.presentation import AllStoragePresentationContexts, PresentationContext

from gateway.receive import Outcome, Receiver

TRANSFER_SYNTAXES = [
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
    DeflatedExplicitVRLittleEndian,
    ExplicitVRBigEndian,
    JPEGBaseline8Bit,
    JPEGExtended12Bit,
    JPEGLossless,
    JPEGLosslessSV1,
    JPEGLSLossless,
    JPEGLSNearLossless,
    JPEG2000Lossless,
    JPEG2000,
    HTJ2KLossless,
    HTJ2KLosslessRPCL,
    HTJ2K,
    RLELossless,
]

# PS3.4 Annex B status codes
STATUS_SUCCESS = 0x0000
STATUS_OUT_OF_RESOURCES = 0xA700
STATUS_DATASET_MISMATCH = 0xA900
STATUS_CANNOT_UNDERSTAND = 0xC000
STATUS_PROCESSING_FAILURE = 0x0110

_STATUS = {
    Outcome.STORED: STATUS_SUCCESS,
    Outcome.DUPLICATE: STATUS_SUCCESS,
    Outcome.INVALID: STATUS_CANNOT_UNDERSTAND,
    Outcome.MISMATCH: STATUS_DATASET_MISMATCH,
    Outcome.OUT_OF_RESOURCES: STATUS_OUT_OF_RESOURCES,
    Outcome.ERROR: STATUS_PROCESSING_FAILURE,
}


def storage_contexts() -> list[PresentationContext]:
    """Every storage SOP class pynetdicom knows, with the syntaxes accepted as they are."""
    contexts = []
    for base in AllStoragePresentationContexts:
        cx = PresentationContext()
        cx.abstract_syntax = base.abstract_syntax
        cx.transfer_syntax = list(TRANSFER_SYNTAXES)
        contexts.append(cx)
    return contexts


class StorageSCP:
    def __init__(self, receiver: Receiver) -> None:
        self.receiver = receiver

    def handle_store(self, event: Event) -> int | Dataset:
        request = cast(C_STORE, event.request)
        calling_ae = str(event.assoc.requestor.ae_title).strip()
        path = Path(event.dataset_path)
        result = self.receiver.receive(
            path,
            sop_class_uid=str(request.AffectedSOPClassUID),
            sop_instance_uid=str(request.AffectedSOPInstanceUID),
            calling_ae=calling_ae,
        )
        status = _STATUS[result.outcome]
        if status == STATUS_SUCCESS:
            return status
        rsp = Dataset()
        rsp.Status = status
        rsp.ErrorComment = result.reason[:64]
        return rsp

    def handle_conn_close(self, event: Event) -> None:
        """Remove the temp file of a C-STORE whose association went away mid-dataset.

        pynetdicom creates it when the command arrives and hands it over only once the
        dataset is complete; a peer that stops half-way would leave it in the store's
        tmp dir until the process ends.
        """
        message = getattr(getattr(event.assoc, "dimse", None), "message", None)
        handle = getattr(message, "_data_set_file", None)
        path = getattr(message, "_data_set_path", None)
        if handle is not None:
            with contextlib.suppress(OSError):
                handle.close()
        if isinstance(path, Path):
            self.receiver.store.discard(path)
