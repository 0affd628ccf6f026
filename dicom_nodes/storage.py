"""Storage SCP (C-STORE): check the received temp file's structure, hand it to the
receive path it was given (:class:`dicom_nodes.ports.InstanceSink`), map the outcome.

Datasets arrive streamed to a temp file (pynetdicom's chunked mode), so memory does not
grow with instance size; the handler never decodes pixel data. A data set whose encoding
does not hold together (:mod:`dicom_nodes.structure_check`: a value running past the end,
an odd length, a missing delimiter) is refused with 0xC000 and the reason as Error
Comment before the receive path sees it, and its temp file removed.
"""

from __future__ import annotations

import contextlib
import logging
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

from dicom_nodes.fast_path import relaxed_reading
from dicom_nodes.ports import InstanceSink, StoreOutcome
from dicom_nodes.structure_check import check_file

log = logging.getLogger(__name__)

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
STATUS_SOP_CLASS_NOT_SUPPORTED = 0x0122  # PS3.7 C.4.2.1.4: not this context's SOP class

_STATUS = {
    StoreOutcome.STORED: STATUS_SUCCESS,
    StoreOutcome.DUPLICATE: STATUS_SUCCESS,
    StoreOutcome.INVALID: STATUS_CANNOT_UNDERSTAND,
    StoreOutcome.MISMATCH: STATUS_DATASET_MISMATCH,
    StoreOutcome.OUT_OF_RESOURCES: STATUS_OUT_OF_RESOURCES,
    StoreOutcome.ERROR: STATUS_PROCESSING_FAILURE,
}


def _failure(status: int, reason: str) -> Dataset:
    rsp = Dataset()
    rsp.Status = status
    rsp.ErrorComment = reason[:64]
    return rsp


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
    def __init__(self, receiver: InstanceSink) -> None:
        self.receiver = receiver

    def handle_store(self, event: Event) -> int | Dataset:
        request = cast(C_STORE, event.request)
        calling_ae = str(event.assoc.requestor.ae_title).strip()
        path = Path(event.dataset_path)
        context_class = str(event.context.abstract_syntax)
        if str(request.AffectedSOPClassUID) != context_class:
            # PS3.7 9.3.1.1: the Affected SOP Class is the context's abstract syntax; a
            # C-STORE sent on the Verification (or another class's) context is refused.
            self.receiver.store.discard(path)
            log.warning("C-STORE refused from %s: sent on the context of %s", calling_ae,
                        context_class)  # fmt: skip
            return _failure(
                STATUS_SOP_CLASS_NOT_SUPPORTED,
                f"on context {context_class}, not for {request.AffectedSOPClassUID}",
            )
        with relaxed_reading():
            reason = check_file(path)
            if reason is not None:
                self.receiver.store.discard(path)
                log.warning("C-STORE refused from %s: malformed data set: %s", calling_ae, reason)
                return _failure(STATUS_CANNOT_UNDERSTAND, reason)
            result = self.receiver.receive(
                path,
                sop_class_uid=str(request.AffectedSOPClassUID),
                sop_instance_uid=str(request.AffectedSOPInstanceUID),
                calling_ae=calling_ae,
            )
        status = _STATUS[result.outcome]
        if status == STATUS_SUCCESS:
            return status
        return _failure(status, result.reason)

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
