"""MPPS SCP (N-CREATE, N-SET on Modality Performed Procedure Step): decode, record, answer.

The :class:`~dicom_nodes.ports.MppsRecorder` it is handed applies the state rules and
effects (the gateway's: ``gateway.orders.mpps``); this maps its outcome to PS3.4
statuses (0x0111 duplicate, 0x0106 invalid value, 0x0112 no such instance, 0x0110 with
error id 0xA710 for an N-SET after COMPLETED or DISCONTINUED).

The Film Consumption Sequence (0040,0321), when the modality sends it, is decoded here
(:func:`films_reported`) and handed on as a plain number: costing uses it to tell a
study delivered on film from a filmless one.
"""

from __future__ import annotations

import logging
from typing import cast

from pydicom import Dataset
from pynetdicom import evt
from pynetdicom.dimse_primitives import N_CREATE, N_SET
from pynetdicom.events import Event
from pynetdicom.presentation import PresentationContext, build_context
from pynetdicom.sop_class import ModalityPerformedProcedureStep  # type: ignore[attr-defined]

from dicom_nodes.ports import MppsOutcome, MppsRecorder, MppsResult

log = logging.getLogger(__name__)

STATUS_SUCCESS = 0x0000
STATUS_PROCESSING_FAILURE = 0x0110
STATUS_INVALID_ATTRIBUTE_VALUE = 0x0106
STATUS_DUPLICATE_INSTANCE = 0x0111
STATUS_NO_SUCH_INSTANCE = 0x0112
STATUS_MISSING_ATTRIBUTE = 0x0120
ERROR_ID_NO_LONGER_UPDATABLE = 0xA710

_STATUS = {
    MppsOutcome.OK: STATUS_SUCCESS,
    MppsOutcome.DUPLICATE: STATUS_DUPLICATE_INSTANCE,
    MppsOutcome.INVALID_VALUE: STATUS_INVALID_ATTRIBUTE_VALUE,
    MppsOutcome.NO_SUCH_INSTANCE: STATUS_NO_SUCH_INSTANCE,
    MppsOutcome.FINALISED: STATUS_PROCESSING_FAILURE,
}


def films_reported(ds: Dataset) -> int | None:
    """Films printed per the Film Consumption Sequence (sum of Number of Films), or None
    when the sequence is absent. A present but empty sequence reports zero films; an
    item without a usable Number of Films counts as one film."""
    if "FilmConsumptionSequence" not in ds:
        return None
    total = 0
    for item in ds.FilmConsumptionSequence or []:
        raw = item.get("NumberOfFilms")
        try:
            count = int(raw) if raw not in (None, "") else 1
        except (TypeError, ValueError):
            count = 1
        total += max(count, 0)
    return total


def _status(result: MppsResult) -> int | Dataset:
    code = _STATUS[result.outcome]
    if code == STATUS_SUCCESS:
        return code
    rsp = Dataset()
    rsp.Status = code
    rsp.ErrorComment = result.reason[:64]
    if result.outcome is MppsOutcome.FINALISED:
        rsp.ErrorID = ERROR_ID_NO_LONGER_UPDATABLE
    return rsp


class MppsSCP:
    def __init__(self, recorder: MppsRecorder) -> None:
        self.recorder = recorder

    def handle_create(self, event: Event) -> tuple[int | Dataset, Dataset | None]:
        request = cast(N_CREATE, event.request)
        sop_uid = str(request.AffectedSOPInstanceUID or "")
        if not sop_uid:
            return STATUS_MISSING_ATTRIBUTE, None
        calling_ae = str(event.assoc.requestor.ae_title).strip()
        try:
            attrs = event.attribute_list
            result = self.recorder.create(sop_uid, attrs, calling_ae, films=films_reported(attrs))
        except Exception as exc:
            log.error("MPPS N-CREATE failed (%s)", type(exc).__name__)
            return STATUS_PROCESSING_FAILURE, None
        log.info("MPPS N-CREATE from %s: %s", calling_ae, result.outcome.value)
        return _status(result), attrs if result.outcome is MppsOutcome.OK else None

    def handle_set(self, event: Event) -> tuple[int | Dataset, Dataset | None]:
        request = cast(N_SET, event.request)
        sop_uid = str(request.RequestedSOPInstanceUID or "")
        calling_ae = str(event.assoc.requestor.ae_title).strip()
        try:
            mods = event.modification_list
            result = self.recorder.update(sop_uid, mods, films=films_reported(mods))
        except Exception as exc:
            log.error("MPPS N-SET failed (%s)", type(exc).__name__)
            return STATUS_PROCESSING_FAILURE, None
        log.info(
            "MPPS N-SET from %s: %s%s",
            calling_ae,
            result.outcome.value,
            " (study complete)" if result.study_completed else "",
        )
        return _status(result), mods if result.outcome is MppsOutcome.OK else None

    def spec(self) -> tuple[list[PresentationContext], list[tuple[object, object]]]:
        return [build_context(ModalityPerformedProcedureStep)], [
            (evt.EVT_N_CREATE, self.handle_create),
            (evt.EVT_N_SET, self.handle_set),
        ]
