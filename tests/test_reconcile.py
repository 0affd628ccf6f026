"""Studies meet their orders: matching, coercion, manual link, results to the EMR, ADT updates.

Real parts: the gateway process, Orthanc, dcmtk storescu/findscu, HL7 over MLLP both ways.
The EMR peer reads the gateway's ORU^R01 and ORM^O01 with hl7apy (an independent parser,
STRICT for the ORU: tests/support/hl7_independent.py), not with the project's own.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date
from pathlib import Path

import httpx
import pytest
from sqlalchemy import create_engine, select

from gateway.operations.local_orthanc import LocalOrthanc
from gateway.reconciliation.models import OutboundMessage
from tests.fixtures.orders.helpers import ack_code, adt, findscu, orm, send_all
from tests.support.ctgen import make_ct_study
from tests.support.dcmtk import storescu
from tests.support.destination import destination_for, orthanc_study, patient_id_in_orthanc
from tests.support.emr import EmrPeer
from tests.support.gateway_proc import GatewayProcess
from tests.support.hl7_independent import components, read, segments, value
from tests.support.net import free_port
from tests.support.wait import wait_until

pytestmark = pytest.mark.integration

TODAY = date.today().strftime("%Y%m%d")
SPS = "ScheduledProcedureStepSequence[0]."


@pytest.fixture
def emr() -> Iterator[EmrPeer]:
    peer = EmrPeer().start()
    yield peer
    peer.stop()


def _gateway(
    gateway_factory: type,
    orthanc: LocalOrthanc,
    emr_port: int,
    orm_status: bool = False,
    **extra: object,
) -> GatewayProcess:
    notify = {"enabled": True, "port": emr_port, "max_attempts": 3, "send_orm_status": orm_status}
    config: dict = {"forward": {"destinations": [destination_for(orthanc)]}, "notify": notify}
    config.update(extra)
    gw = gateway_factory.make(config)
    gw.start()
    return gw


def _first_instance_tags(orthanc: LocalOrthanc, study: dict) -> dict:
    with orthanc.client() as c:
        instances = c.get(f"/studies/{study['ID']}/instances").json()
        return c.get(f"/instances/{instances[0]['ID']}/tags", params={"simplify": ""}).json()


def test_full_path_order_study_corrected_and_reported(
    gateway_factory: type, orthanc: LocalOrthanc, emr: EmrPeer, tmp_path: Path
) -> None:
    gw = _gateway(gateway_factory, orthanc, emr.port, orm_status=True)
    order = orm("R1", patient_id="BN100", name="NGUYỄN^VĂN AN", placer="PL100",
                accession="ACC100", start=f"{TODAY}080000")  # fmt: skip
    assert ack_code(send_all(gw.hl7_port, [order])[0]) == "AA"
    items = findscu(gw.dicom_port, tmp_path / "wl", {"AccessionNumber": "ACC100"})
    assert len(items) == 1 and str(items[0].PatientName) == "NGUYỄN^VĂN AN"
    study_uid = str(items[0].StudyInstanceUID)

    # The modality sends different demographics (typed at the console).
    _, files = make_ct_study(tmp_path / "s", 20, size=32, patient_id="WRONG1",
                             patient_name="NGUYEN^VAN", accession="ACC100",
                             study_uid=study_uid)  # fmt: skip
    assert storescu(gw.dicom_port, files).returncode == 0

    wait_until(lambda: patient_id_in_orthanc(orthanc, study_uid) == "BN100", 60, "corrected study")
    study = orthanc_study(orthanc, study_uid)
    assert study is not None
    assert study["PatientMainDicomTags"]["PatientName"] == "NGUYỄN^VĂN AN"
    tags = _first_instance_tags(orthanc, study)
    assert tags["SpecificCharacterSet"] == "ISO_IR 192"
    assert tags["AccessionNumber"] == "ACC100"
    originals = tags["OriginalAttributesSequence"][0]["ModifiedAttributesSequence"][0]
    assert originals["PatientID"] == "WRONG1"
    assert originals["PatientName"] == "NGUYEN^VAN"

    wait_until(lambda: bool(emr.raw_of_type("ORM^O01")), 60, "ORU^R01 and ORM^O01 at the EMR")
    (oru,) = (read(raw) for raw in emr.raw_of_type("ORU^R01"))  # STRICT, v2.5
    assert value(oru.msh.msh_18) == "UNICODE UTF-8"
    result = oru.oru_r01_patient_result
    pid = result.oru_r01_patient.pid
    assert value(pid.pid_3) == "BN100^^^BV^MR" and value(pid.pid_5) == "NGUYỄN^VĂN AN"
    obr = result.oru_r01_order_observation.obr
    assert value(obr.obr_18) == "ACC100" and value(obr.obr_2) == "PL100"
    link, uid = (group.obx for group in result.oru_r01_order_observation.oru_r01_observation)
    assert value(uid.obx_5) == study_uid
    url = components(link.obx_5)[0]
    assert url.startswith(orthanc.config.url)
    (raw_status,) = emr.raw_of_type("ORM^O01")  # notify.send_orm_status
    status = read(raw_status)
    assert value(status.orm_o01_order.orc.orc_1) == "SC"
    assert value(status.orm_o01_order.orc.orc_5) == "CM"
    assert value(status.orm_o01_patient.pid.pid_5) == "NGUYỄN^VĂN AN"
    assert value(segments(raw_status, "ZDS")[0].children[0]).split("^")[0] == study_uid
    cfg = orthanc.config
    assert httpx.get(url, auth=(cfg.username, cfg.password), timeout=10).status_code == 200
    detail = gw.get(f"/api/studies/{study_uid}")
    assert detail["match_state"] == "MATCHED" and detail["order_accession"] == "ACC100"
    assert detail["viewer_url"] == url


def test_unmatched_study_held_then_linked(
    gateway_factory: type, orthanc: LocalOrthanc, emr: EmrPeer, tmp_path: Path
) -> None:
    gw = _gateway(gateway_factory, orthanc, emr.port, reconcile={"unmatched": "hold"})
    study_uid, files = make_ct_study(tmp_path / "s", 10, size=32, patient_id="UNKNOWN9",
                                     accession="NOPE")  # fmt: skip
    assert storescu(gw.dicom_port, files).returncode == 0
    wait_until(lambda: gw.get("/api/studies", matched="false")["total"] == 1, 30, "unmatched list")
    assert gw.get("/api/studies", matched="false")["items"][0]["study_uid"] == study_uid

    def held_when_stable() -> bool:
        state = gw.get(f"/api/studies/{study_uid}")["state"]
        return state == "STABLE" and gw.get("/api/queue")["counts"]["forward"] == {"HELD": 10}

    wait_until(held_when_stable, 30, "the stable study's forward jobs HELD")
    assert orthanc_study(orthanc, study_uid) is None
    assert gw.get("/api/queue")["counts"]["forward"] == {"HELD": 10}

    order = orm("R2", patient_id="BN200", name="TRẦN^THỊ MAI", placer="PL200",
                accession="ACC200", start=f"{TODAY}090000")  # fmt: skip
    assert ack_code(send_all(gw.hl7_port, [order])[0]) == "AA"
    bad = httpx.post(
        f"{gw.api}/api/studies/{study_uid}/link",
        json={"accession_number": "NOSUCH"},
        headers=gw.headers,
    )
    assert bad.status_code == 409
    ok = httpx.post(
        f"{gw.api}/api/studies/{study_uid}/link",
        json={"accession_number": "ACC200"},
        headers=gw.headers,
    )
    assert ok.status_code == 200, ok.text
    wait_until(lambda: patient_id_in_orthanc(orthanc, study_uid) == "BN200", 60, "linked study")
    wait_until(lambda: bool(emr.raw_of_type("ORU^R01")), 60, "ORU after the link")
    oru = read(emr.raw_of_type("ORU^R01")[0]).oru_r01_patient_result
    assert value(oru.oru_r01_order_observation.obr.obr_18) == "ACC200"
    assert value(oru.oru_r01_patient.pid.pid_5) == "TRẦN^THỊ MAI"
    assert gw.get("/api/studies", matched="false")["total"] == 0


def test_emr_down_then_back(gateway_factory: type, orthanc: LocalOrthanc, tmp_path: Path) -> None:
    emr_port = free_port()
    gw = _gateway(gateway_factory, orthanc, emr_port)
    order = orm("R3", patient_id="BN300", name="LÊ^HOÀNG^MINH", placer="PL300",
                accession="ACC300", start=f"{TODAY}100000")  # fmt: skip
    assert ack_code(send_all(gw.hl7_port, [order])[0]) == "AA"
    _, files = make_ct_study(tmp_path / "s", 5, size=32, patient_id="BN300", accession="ACC300")
    assert storescu(gw.dicom_port, files).returncode == 0

    engine = create_engine(gw.config["database"]["url"])

    def outbound() -> list[tuple[str, str]]:
        with engine.connect() as conn:
            return [(r.ack_code, r.error) for r in conn.execute(select(OutboundMessage))]

    wait_until(lambda: any("unreachable" in e for _, e in outbound()), 60, "EMR down recorded")
    peer = EmrPeer(port=emr_port).start()
    try:
        wait_until(lambda: bool(peer.messages_of_type("ORU^R01")), 60, "ORU once the EMR is back")
        wait_until(lambda: outbound() == [("AA", "")], 30, "AA recorded")
    finally:
        peer.stop()
    engine.dispose()


def test_emr_answering_ae_is_recorded_and_retried(
    gateway_factory: type, orthanc: LocalOrthanc, tmp_path: Path
) -> None:
    rude = EmrPeer(answer="AE").start()
    try:
        gw2 = _gateway(gateway_factory, orthanc, rude.port)
        order = orm("R4", patient_id="BN400", name="PHẠM^THU^HÀ", placer="PL400",
                    accession="ACC400", start=f"{TODAY}110000")  # fmt: skip
        assert ack_code(send_all(gw2.hl7_port, [order])[0]) == "AA"
        _, files = make_ct_study(tmp_path / "s4", 5, size=32, patient_id="BN400",
                                 accession="ACC400")  # fmt: skip
        assert storescu(gw2.dicom_port, files).returncode == 0

        def dead_notify() -> list[dict]:
            return [d for d in gw2.get("/api/queue")["dead"] if d["kind"] == "notify"]

        wait_until(lambda: bool(dead_notify()), 90, "notify job dead after AE answers")
        assert "AE" in dead_notify()[0]["last_error"]
        assert len(rude.messages_of_type("ORU^R01")) == 3  # notify.max_attempts
    finally:
        rude.stop()


def test_patient_merge_after_forwarding_updates_orthanc(
    gateway_factory: type, orthanc: LocalOrthanc, emr: EmrPeer, tmp_path: Path
) -> None:
    gw = _gateway(gateway_factory, orthanc, emr.port)
    order = orm("R5", patient_id="BN500", name="ĐỖ^MINH^TUẤN", placer="PL500",
                accession="ACC500", start=f"{TODAY}120000")  # fmt: skip
    assert ack_code(send_all(gw.hl7_port, [order])[0]) == "AA"
    study_uid, files = make_ct_study(tmp_path / "s", 8, size=32, patient_id="BN500",
                                     accession="ACC500")  # fmt: skip
    assert storescu(gw.dicom_port, files).returncode == 0
    wait_until(lambda: patient_id_in_orthanc(orthanc, study_uid) == "BN500", 60, "forwarded")
    wait_until(lambda: bool(emr.messages_of_type("ORU^R01")), 60, "verified and reported")

    merge = adt("R6", "A40", patient_id="BN501", name="ĐỖ^MINH^TUẤN", prior="BN500")
    assert ack_code(send_all(gw.hl7_port, [merge])[0]) == "AA"
    wait_until(lambda: patient_id_in_orthanc(orthanc, study_uid) == "BN501", 60, "merged id")
    with orthanc.client() as c:
        assert c.get("/statistics").json()["CountStudies"] == 1  # replaced, not duplicated
