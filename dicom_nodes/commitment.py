"""Storage Commitment Push Model SCP (PS3.4 J): N-ACTION in, N-EVENT-REPORT out.

The N-ACTION handler decodes and validates the request (Transaction UID, Referenced SOP
Sequence), has the :class:`~dicom_nodes.ports.CommitmentRecorder` it is handed store it
(the gateway's: with its job, ``gateway.forwarding.commitment.record``) and only then
answers success. The decision and the report are the ``commitment`` job's
(``gateway.forwarding.commitment.process``); it calls :func:`send_event_report`, which
opens a new association to the requesting AE (host and port from ``dicom.peers``)
proposing the SCP role for Storage Commitment (SCP/SCU Role Selection), as PS3.4 J.3.3
asks of an SCP reporting on another association.
"""

from __future__ import annotations

import ipaddress
import logging
import socket
from collections.abc import Sequence
from dataclasses import dataclass
from typing import cast

from pydicom import Dataset
from pydicom.sequence import Sequence as DicomSequence
from pynetdicom import AE, build_role, evt
from pynetdicom.dimse_primitives import N_ACTION
from pynetdicom.events import Event
from pynetdicom.presentation import PresentationContext, build_context

from dicom_nodes.association_policy import _host_matches
from dicom_nodes.config import DicomPeer
from dicom_nodes.identifiers import InvalidIdentifier, validate_uid
from dicom_nodes.ports import CommitmentRecorder, Recorded

log = logging.getLogger(__name__)

STORAGE_COMMITMENT_PUSH = "1.2.840.10008.1.20.1"
WELL_KNOWN_INSTANCE = "1.2.840.10008.1.20.1.1"
ACTION_REQUEST_COMMITMENT = 1
EVENT_ALL_SUCCESS = 1
EVENT_FAILURES_EXIST = 2

STATUS_SUCCESS = 0x0000
STATUS_INVALID_ATTRIBUTE_VALUE = 0x0106
STATUS_PROCESSING_FAILURE = 0x0110
STATUS_NO_SUCH_INSTANCE = 0x0112
STATUS_NO_SUCH_SOP_CLASS = 0x0118
STATUS_MISSING_ATTRIBUTE = 0x0120
STATUS_MISSING_ATTRIBUTE_VALUE = 0x0121
STATUS_NO_SUCH_ACTION = 0x0123
STATUS_RESOURCE_LIMITATION = 0x0213


class RequestError(Exception):
    """An N-ACTION request the SCP refuses: ``status`` and a short comment (no patient data)."""

    def __init__(self, status: int, comment: str) -> None:
        super().__init__(comment)
        self.status = status
        self.comment = comment


def _failure(status: int, comment: str) -> Dataset:
    rsp = Dataset()
    rsp.Status = status
    rsp.ErrorComment = comment[:64]
    return rsp


def _uid(ds: Dataset, keyword: str, what: str) -> str:
    if keyword not in ds:
        raise RequestError(STATUS_MISSING_ATTRIBUTE, f"{keyword} missing")
    value = ds[keyword].value
    if value is None or str(value).strip("\x00 ") == "":
        raise RequestError(STATUS_MISSING_ATTRIBUTE_VALUE, f"{keyword} empty")
    try:
        return validate_uid(str(value), what)
    except InvalidIdentifier:
        raise RequestError(STATUS_INVALID_ATTRIBUTE_VALUE, f"invalid {keyword}") from None


def parse_request(ds: Dataset, max_references: int) -> tuple[str, list[tuple[str, str]]]:
    """Transaction UID and (SOP Class UID, SOP Instance UID) pairs of an Action Information.

    Raises :class:`RequestError` with a PS3.7 status for a missing or invalid attribute.
    """
    try:
        transaction_uid = _uid(ds, "TransactionUID", "Transaction UID")
        if "ReferencedSOPSequence" not in ds:
            raise RequestError(STATUS_MISSING_ATTRIBUTE, "ReferencedSOPSequence missing")
        items = ds.ReferencedSOPSequence
        if not items:
            raise RequestError(STATUS_MISSING_ATTRIBUTE_VALUE, "ReferencedSOPSequence empty")
        if len(items) > max_references:
            raise RequestError(STATUS_RESOURCE_LIMITATION, "too many referenced instances")
        references = [
            (
                _uid(item, "ReferencedSOPClassUID", "SOP Class UID"),
                _uid(item, "ReferencedSOPInstanceUID", "SOP Instance UID"),
            )
            for item in items
        ]
    except RequestError:
        raise
    except Exception as exc:  # pydicom decodes lazily: a broken element raises here
        raise RequestError(
            STATUS_INVALID_ATTRIBUTE_VALUE, f"undecodable ({type(exc).__name__})"
        ) from None
    return transaction_uid, references


def _is_single_host(rule: str) -> bool:
    try:
        network = ipaddress.ip_network(rule, strict=False)
    except ValueError:
        return "/" not in rule  # a host name
    return network.num_addresses == 1


def report_address(
    peers: Sequence[DicomPeer], calling_ae: str, address: str
) -> tuple[str, int] | None:
    """Where to send the N-EVENT-REPORT for ``calling_ae`` (which asked from ``address``).

    The peer entry of that AE title with a ``port``, preferring one whose ``host`` matches
    the address; its ``host`` when it names one host, else the address the request came from.
    """
    candidates = [p for p in peers if p.ae_title == calling_ae.strip() and p.port]
    candidates.sort(key=lambda p: not _host_matches(p.host, address))
    for peer in candidates:
        if peer.host and _is_single_host(peer.host):
            return peer.host, cast(int, peer.port)
        if address:
            return address, cast(int, peer.port)
    return None


class CommitmentSCP:
    """EVT_N_ACTION handler for Storage Commitment Push Model.

    ``peers``: ``dicom.peers`` (where each AE gets its report); ``max_references``: the
    most referenced instances one request may carry.
    """

    def __init__(
        self, record: CommitmentRecorder, peers: Sequence[DicomPeer], *, max_references: int
    ) -> None:
        self.record = record
        self.peers = list(peers)
        self.max_references = max_references

    def handle_action(self, event: Event) -> tuple[int | Dataset, Dataset | None]:
        request = cast(N_ACTION, event.request)
        calling_ae = str(event.assoc.requestor.ae_title).strip()
        address = str(event.assoc.requestor.address or "")
        if str(request.RequestedSOPClassUID or "") != STORAGE_COMMITMENT_PUSH:
            return _failure(STATUS_NO_SUCH_SOP_CLASS, "not Storage Commitment"), None
        if str(request.RequestedSOPInstanceUID or "") != WELL_KNOWN_INSTANCE:
            return _failure(STATUS_NO_SUCH_INSTANCE, "not the well-known instance"), None
        if event.action_type != ACTION_REQUEST_COMMITMENT:
            return _failure(STATUS_NO_SUCH_ACTION, "only Action Type ID 1"), None
        try:
            info = event.action_information
        except Exception:
            return _failure(STATUS_INVALID_ATTRIBUTE_VALUE, "undecodable Action Information"), None
        try:
            transaction_uid, references = parse_request(info, self.max_references)
        except RequestError as exc:
            log.warning("storage commitment request from %s refused: %s", calling_ae, exc)
            return _failure(exc.status, exc.comment), None
        if report_address(self.peers, calling_ae, address) is None:
            log.error("storage commitment from %s refused: no port in dicom.peers", calling_ae)
            return _failure(STATUS_PROCESSING_FAILURE, "no port for this AE to report to"), None
        try:
            outcome = self.record(transaction_uid, calling_ae, address, references)
        except Exception as exc:
            log.error("storage commitment request not stored (%s)", type(exc).__name__)
            return _failure(STATUS_PROCESSING_FAILURE, "not stored"), None
        if outcome is Recorded.CONFLICT:
            return _failure(STATUS_PROCESSING_FAILURE, "Transaction UID used by another AE"), None
        log.info(
            "storage commitment request %s from %s: %d instances (%s)",
            transaction_uid,
            calling_ae,
            len(references),
            outcome.value,
        )
        return STATUS_SUCCESS, None

    def spec(self) -> tuple[list[PresentationContext], list[tuple[object, object]]]:
        return [build_context(STORAGE_COMMITMENT_PUSH)], [(evt.EVT_N_ACTION, self.handle_action)]


@dataclass(frozen=True)
class Report:
    """The outcome of one request, as plain data."""

    transaction_uid: str
    committed: list[tuple[str, str]]  # (SOP Class UID, SOP Instance UID)
    failed: list[tuple[str, str, int]]  # (SOP Class UID, SOP Instance UID, Failure Reason)

    @property
    def event_type(self) -> int:
        return EVENT_FAILURES_EXIST if self.failed else EVENT_ALL_SUCCESS


def event_information(report: Report) -> Dataset:
    """The Event Information of the N-EVENT-REPORT (PS3.4 J.3.3.1)."""
    ds = Dataset()
    ds.TransactionUID = report.transaction_uid
    if report.committed:
        items = []
        for sop_class, sop_instance in report.committed:
            item = Dataset()
            item.ReferencedSOPClassUID = sop_class
            item.ReferencedSOPInstanceUID = sop_instance
            items.append(item)
        ds.ReferencedSOPSequence = DicomSequence(items)
    if report.failed:
        failed = []
        for sop_class, sop_instance, reason in report.failed:
            item = Dataset()
            item.ReferencedSOPClassUID = sop_class
            item.ReferencedSOPInstanceUID = sop_instance
            item.FailureReason = reason
            failed.append(item)
        ds.FailedSOPSequence = DicomSequence(failed)
    return ds


class ReportError(Exception):
    """The N-EVENT-REPORT was not delivered; the message is safe to log."""


def send_event_report(
    report: Report,
    *,
    calling_ae: str,
    called_ae: str,
    host: str,
    port: int,
    timeout_s: float,
) -> None:
    """Deliver ``report`` on a new association, the gateway in the SCP role.

    Raises :class:`ReportError` if the peer cannot be reached, refuses the association or
    the SCP role, or answers with a non-success status.
    """
    ae = AE(calling_ae)
    ae.acse_timeout = ae.dimse_timeout = ae.network_timeout = timeout_s
    ae.connection_timeout = timeout_s
    ae.add_requested_context(STORAGE_COMMITMENT_PUSH)
    role = build_role(STORAGE_COMMITMENT_PUSH, scp_role=True)
    where = f"{called_ae}@{host}:{port}"
    assoc = ae.associate(host, port, ae_title=called_ae, ext_neg=[role])
    if not assoc.is_established:
        state = "rejected" if assoc.is_rejected else "failed"
        raise ReportError(f"association with {where} {state}")
    try:
        sock = getattr(getattr(assoc.dul, "socket", None), "socket", None)
        if sock is not None:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        accepted = [
            cx for cx in assoc.accepted_contexts if cx.abstract_syntax == STORAGE_COMMITMENT_PUSH
        ]
        if not accepted:
            raise ReportError(f"{where} did not accept Storage Commitment")
        if not accepted[0].as_scp:
            raise ReportError(f"{where} refused the SCP role for Storage Commitment")
        status, _reply = assoc.send_n_event_report(
            event_information(report),
            report.event_type,
            STORAGE_COMMITMENT_PUSH,
            WELL_KNOWN_INSTANCE,
        )
        code = getattr(status, "Status", None)
        if code is None:
            raise ReportError(f"no N-EVENT-REPORT response from {where} (timeout or abort)")
        if code != STATUS_SUCCESS:
            raise ReportError(f"N-EVENT-REPORT status 0x{code:04X} from {where}")
    finally:
        if assoc.is_established:
            assoc.release()
        else:
            assoc.abort()
