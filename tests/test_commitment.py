"""Storage Commitment Push Model against a running gateway forwarding to a real Orthanc.

A pynetdicom AE plays the modality: it sends the study with dcmtk storescu, asks for
commitment with N-ACTION and listens (its own SCP, Storage Commitment with role selection)
for the N-EVENT-REPORT, which the gateway sends on a new association once every instance
is verified in Orthanc, or once ``commitment.timeout_s`` has passed for the rest.
"""

from __future__ import annotations

import queue
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pydicom
import pytest
from pydicom import Dataset
from pydicom.sequence import Sequence
from pydicom.uid import CTImageStorage, generate_uid
from pynetdicom import AE, evt
from pynetdicom.sop_class import StorageCommitmentPushModel  # type: ignore[attr-defined]
from pynetdicom.transport import ThreadedAssociationServer

from gateway.operations.local_orthanc import LocalOrthanc
from tests.fixtures.orders.helpers import ack_code, omi, send_all
from tests.support.ctgen import make_ct_study
from tests.support.dcmtk import storescu
from tests.support.destination import destination_for
from tests.support.gateway_proc import DEFAULT_PEERS, GatewayProcess
from tests.support.net import free_port
from tests.support.wait import wait_until

pytestmark = pytest.mark.integration

MODALITY = "CTMOD"
WELL_KNOWN = "1.2.840.10008.1.20.1.1"


@dataclass
class Received:
    at: datetime  # naive UTC, as the gateway's timestamps
    event_type: int
    info: Dataset
    roles: tuple[bool, bool]  # (as SCU, as SCP) of the modality on that association


class Modality:
    """The modality's Storage Commitment SCU: N-ACTION out, N-EVENT-REPORT in."""

    def __init__(self) -> None:
        self.port = free_port()
        self.reports: queue.Queue[Received] = queue.Queue()
        self.server: ThreadedAssociationServer | None = None

    def _on_report(self, event: evt.Event) -> tuple[int, Dataset | None]:
        cx = next(
            c
            for c in event.assoc.accepted_contexts
            if c.abstract_syntax == StorageCommitmentPushModel
        )
        self.reports.put(
            Received(
                datetime.now(UTC).replace(tzinfo=None),
                int(event.event_type or 0),
                event.event_information,
                (bool(cx.as_scu), bool(cx.as_scp)),
            )
        )
        return 0x0000, None

    def listen(self) -> None:
        ae = AE(MODALITY)
        # Accept the requestor (the gateway) as SCP, refuse it as SCU (PS3.4 J.3.3).
        ae.add_supported_context(StorageCommitmentPushModel, scu_role=False, scp_role=True)
        self.server = ae.start_server(
            ("127.0.0.1", self.port),
            block=False,
            evt_handlers=[(evt.EVT_N_EVENT_REPORT, self._on_report)],
        )

    def stop(self) -> None:
        if self.server is not None:
            self.server.shutdown()

    def request(
        self, gw_port: int, info: Dataset | None, action_type: int = 1, ae_title: str = MODALITY
    ) -> Dataset:
        ae = AE(ae_title)
        ae.add_requested_context(StorageCommitmentPushModel)
        assoc = ae.associate("127.0.0.1", gw_port, ae_title="RISGATE")
        assert assoc.is_established
        try:
            status, _reply = assoc.send_n_action(
                info, action_type, StorageCommitmentPushModel, WELL_KNOWN
            )
        finally:
            assoc.release()
        return status

    def wait_report(self, timeout: float) -> Received:
        return self.reports.get(timeout=timeout)


@pytest.fixture
def modality() -> Iterator[Modality]:
    m = Modality()
    yield m
    m.stop()


def action_info(transaction_uid: str | None, refs: list[tuple[str, str]]) -> Dataset:
    ds = Dataset()
    if transaction_uid is not None:
        ds.TransactionUID = transaction_uid
    items = []
    for sop_class, sop_instance in refs:
        item = Dataset()
        item.ReferencedSOPClassUID = sop_class
        item.ReferencedSOPInstanceUID = sop_instance
        items.append(item)
    ds.ReferencedSOPSequence = Sequence(items)
    return ds


def pairs(seq: Any) -> set[tuple[str, str]]:
    return {(str(i.ReferencedSOPClassUID), str(i.ReferencedSOPInstanceUID)) for i in seq}


def start_gateway(
    gateway_factory: type, orthanc: LocalOrthanc, modality: Modality, **commitment: object
) -> GatewayProcess:
    peer = {"ae_title": MODALITY, "host": "127.0.0.1", "port": modality.port}
    cfg = {
        "dicom": {"peers": [*DEFAULT_PEERS, peer]},
        "forward": {"destinations": [destination_for(orthanc)], "verify_retry_s": 0.5},
        "commitment": {"check_interval_s": 0.3, **commitment},
    }
    gw: GatewayProcess = gateway_factory.make(cfg)
    gw.start()
    return gw


def send_study(gw: GatewayProcess, tmp_path: Path, count: int) -> tuple[str, set[tuple[str, str]]]:
    """The HIS orders the study (HL7), then the modality sends it (storescu)."""
    study_uid = generate_uid()
    accession = f"SC{study_uid[-8:]}"
    order = omi(
        f"SC-{accession}",
        patient_id="SC1",
        name="TRẦN^THỊ^MAI",
        placer=accession,
        accession=accession,
        start=f"{date.today():%Y%m%d}100000",
        station=MODALITY,
        study_uid=study_uid,
    )
    assert [ack_code(a) for a in send_all(gw.hl7_port, [order])] == ["AA"]
    _, files = make_ct_study(
        tmp_path / "ct", count, size=32, patient_id="SC1", accession=accession, study_uid=study_uid
    )
    assert storescu(gw.dicom_port, files).returncode == 0
    refs = {
        (str(ds.SOPClassUID), str(ds.SOPInstanceUID))
        for ds in (pydicom.dcmread(f, stop_before_pixels=True) for f in files)
    }
    return study_uid, refs


def test_success_reported_only_after_verification_in_orthanc(
    orthanc: LocalOrthanc, gateway_factory: type, modality: Modality, tmp_path: Path
) -> None:
    modality.listen()
    gw = start_gateway(gateway_factory, orthanc, modality)
    study_uid, refs = send_study(gw, tmp_path, 3)
    transaction = generate_uid()
    status = modality.request(gw.dicom_port, action_info(transaction, sorted(refs)))
    assert status.Status == 0x0000

    report = modality.wait_report(40)
    forwarding = gw.get(f"/api/studies/{study_uid}")["forwarding"]
    assert [f["state"] for f in forwarding] == ["VERIFIED"]
    verified_at = datetime.fromisoformat(forwarding[0]["verified_at"])
    assert report.at >= verified_at, "reported before the study was verified in Orthanc"
    assert report.event_type == 1
    assert report.roles == (True, False)  # the gateway was the SCP on that association
    assert report.info.TransactionUID == transaction
    assert pairs(report.info.ReferencedSOPSequence) == refs
    assert "FailedSOPSequence" not in report.info
    with orthanc.client() as c:
        assert c.get("/statistics").json()["CountInstances"] == 3

    page = gw.get("/api/commitments")
    assert page["total"] == 1
    item = page["items"][0]
    assert (item["transaction_uid"], item["calling_ae"], item["state"], item["result"]) == (
        transaction,
        MODALITY,
        "REPORTED",
        "SUCCESS",
    )
    assert (item["instances"], item["committed"], item["failed"]) == (3, 3, 0)
    assert item["reported_at"] is not None
    detail = gw.get(f"/api/commitments/{transaction}")
    assert {r["state"] for r in detail["references"]} == {"COMMITTED"}

    # The same request again (e.g. the report was lost on the modality's side): the same
    # outcome is reported again, nothing else changes.
    assert modality.request(gw.dicom_port, action_info(transaction, sorted(refs))).Status == 0
    again = modality.wait_report(20)
    assert (again.event_type, again.info.TransactionUID) == (1, transaction)
    assert pairs(again.info.ReferencedSOPSequence) == refs

    # Malformed requests get failure statuses and store nothing.
    sop_class, sop_instance = sorted(refs)[0]
    no_transaction = action_info(None, [(sop_class, sop_instance)])
    assert modality.request(gw.dicom_port, no_transaction).Status == 0x0120
    bad_uid = action_info(generate_uid(), [(sop_class, "1.2.03.4")])
    assert modality.request(gw.dicom_port, bad_uid).Status == 0x0106
    no_class = action_info(generate_uid(), [(sop_class, sop_instance)])
    del no_class.ReferencedSOPSequence[0].ReferencedSOPClassUID
    assert modality.request(gw.dicom_port, no_class).Status == 0x0120
    empty = action_info(generate_uid(), [])
    assert modality.request(gw.dicom_port, empty).Status == 0x0121
    wrong_action = action_info(generate_uid(), [(sop_class, sop_instance)])
    assert modality.request(gw.dicom_port, wrong_action, action_type=2).Status == 0x0123
    # An AE with no port in dicom.peers could never get its report: refused at once.
    no_port = action_info(generate_uid(), [(sop_class, sop_instance)])
    assert modality.request(gw.dicom_port, no_port, ae_title="MODALITY").Status == 0x0110
    assert gw.get("/api/commitments")["total"] == 1
    assert modality.reports.empty()


def test_unknown_instance_fails_after_timeout_and_report_waits_for_modality(
    orthanc: LocalOrthanc, gateway_factory: type, modality: Modality, tmp_path: Path
) -> None:
    gw = start_gateway(
        gateway_factory,
        orthanc,
        modality,
        timeout_s=2,
        report_retry_base_s=0.5,
        report_retry_cap_s=1,
        report_timeout_s=2,
    )
    study_uid, refs = send_study(gw, tmp_path, 2)

    def verified() -> bool:
        fwd = gw.get(f"/api/studies/{study_uid}")["forwarding"]
        return [f["state"] for f in fwd] == ["VERIFIED"]

    wait_until(verified, 30, "verification in Orthanc")
    never_sent = (CTImageStorage, generate_uid())
    transaction = generate_uid()
    info = action_info(transaction, [*sorted(refs), never_sent])
    assert modality.request(gw.dicom_port, info).Status == 0x0000

    # The modality is not listening yet: the report is retried, and the failure is visible.
    def attempted() -> bool:
        items = gw.get("/api/commitments")["items"]
        return bool(items) and items[0]["report_attempts"] >= 2

    wait_until(attempted, 30, "report attempts")
    item = gw.get("/api/commitments")["items"][0]
    assert item["state"] == "REPORTING"
    assert "association" in item["last_error"]
    assert modality.reports.empty()
    modality.listen()

    report = modality.wait_report(30)
    assert report.event_type == 2
    assert report.info.TransactionUID == transaction
    assert pairs(report.info.ReferencedSOPSequence) == refs
    failed = report.info.FailedSOPSequence
    assert pairs(failed) == {never_sent}
    assert failed[0].FailureReason == 0x0112

    def reported() -> bool:
        return gw.get("/api/commitments")["items"][0]["state"] == "REPORTED"

    wait_until(reported, 10, "the report recorded")
    item = gw.get("/api/commitments", state="reported")["items"][0]
    assert (item["result"], item["event_type"], item["committed"], item["failed"]) == (
        "FAILURES",
        2,
        2,
        1,
    )
    detail = gw.get(f"/api/commitments/{transaction}")
    reasons = {r["sop_instance_uid"]: r["failure_reason"] for r in detail["references"]}
    assert reasons[never_sent[1]] == 0x0112
