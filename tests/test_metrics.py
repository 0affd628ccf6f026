"""``/metrics``: database-derived counts (instances, queue depth, HL7 by type and ACK,
studies) read at scrape time, so every receiver process is counted; HTTP latencies."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families

from gateway.core import jobs
from gateway.core.context import ProcessContext
from gateway.core.models import utcnow
from gateway.core.settings import Settings
from gateway.orders.models import HL7MessageRow
from gateway.process.http_app import create_app
from gateway.process.startup import create_context
from tests.support.ctgen import make_ct_study
from tests.support.receive import receive_file


@pytest.fixture
def service(db_url: str, tmp_path: Path) -> Iterator[ProcessContext]:
    svc = create_context(
        Settings(data_dir=tmp_path / "var", database={"url": db_url}, store={"fsync": False})
    )
    yield svc
    svc.close()


def _samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    out = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def test_metrics_from_the_database(service: ProcessContext, tmp_path: Path) -> None:
    _, paths = make_ct_study(tmp_path / "ct", 2, size=32)
    for path in paths:
        receive_file(service, path, "A")
    with service.db.write_session() as session:
        jobs.enqueue(session, "forward", "1", "pacs")
        jobs.enqueue(session, "forward", "2", "pacs")
        for cid, ack in (("C1", "AA"), ("C2", "AA"), ("C3", "AR")):
            session.add(
                HL7MessageRow(
                    received_at=utcnow(),
                    sender="HIS",
                    control_id=cid,
                    message_type="ORM^O01",
                    peer="p",
                    status="ACCEPTED",
                    ack_code=ack,
                    error="",
                    repeats=0,
                    raw=b"x",
                    ack=b"",
                )
            )
    client = TestClient(create_app(service))  # no metrics token configured: open
    assert client.get("/healthz").status_code == 200
    r = client.get("/metrics")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/plain")
    got = _samples(r.text)
    assert got[("risgate_instances_received_total", ())] == 2
    assert got[("risgate_queue_jobs", (("kind", "forward"), ("state", "PENDING")))] == 2
    assert got[("risgate_hl7_messages_total", (("ack", "AA"), ("type", "ORM^O01")))] == 2
    assert got[("risgate_hl7_messages_total", (("ack", "AR"), ("type", "ORM^O01")))] == 1
    assert got[("risgate_studies", (("state", "RECEIVING"),))] == 1
    latency = ("risgate_http_request_duration_seconds_count",
               (("method", "GET"), ("route", "/healthz"), ("status", "200")))  # fmt: skip
    assert got[latency] == 1
    assert client.get("/api/studies/1.2.3").status_code == 401
    again = _samples(client.get("/metrics").text)
    route = ("route", "/api/studies/{study_uid}")
    denied = ("risgate_http_request_duration_seconds_count",
              (("method", "GET"), route, ("status", "401")))  # fmt: skip
    assert again[denied] == 1
