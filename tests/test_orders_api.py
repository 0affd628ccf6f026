"""``risgate hl7 send`` into a live listener, then the orders and HL7 message routes."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date
from pathlib import Path

import pytest
from click.testing import CliRunner

from gateway.cli import main
from gateway.core.context import ProcessContext
from gateway.core.settings import Settings
from gateway.orders.hl7_listener import HL7Listener
from gateway.process.startup import create_context
from tests.fixtures.orders.helpers import orm
from tests.support.auth import authed_client
from tests.support.gateway_proc import to_toml

TODAY = date.today().strftime("%Y%m%d")


@pytest.fixture
def service(db_url: str, tmp_path: Path) -> Iterator[ProcessContext]:
    settings = Settings(
        data_dir=tmp_path, database={"url": db_url}, hl7={"port": 0}, log={"level": "WARNING"}
    )
    svc = create_context(settings)
    yield svc
    svc.close()


def test_cli_send_then_api(service: ProcessContext, tmp_path: Path) -> None:
    listener = HL7Listener(service.db, service.settings)
    listener.start()
    try:
        config = tmp_path / "cli.toml"
        config.write_text(to_toml({"data_dir": str(tmp_path), "hl7": {"port": listener.port}}))
        message = tmp_path / "order.hl7"
        text = orm(
            "API-1", patient_id="AP1", name="TRẦN^THỊ MAI", placer="APL1", accession="AACC1",
            start=f"{TODAY}083000",
        ).decode().replace("\r", "\n")  # fmt: skip
        message.write_text(text, encoding="utf-8")
        runner = CliRunner()
        result = runner.invoke(main, ["--config", str(config), "hl7", "send", str(message)])
        assert result.exit_code == 0, result.output
        assert "MSA|AA|API-1" in result.output
        bad = tmp_path / "bad.hl7"
        bad_text = text.replace("ORM^O01^ORM_O01", "ORM^O77").replace("|API-1|", "|API-2|")
        bad.write_text(bad_text, encoding="utf-8")
        result = runner.invoke(main, ["--config", str(config), "hl7", "send", str(bad)])
        assert result.exit_code == 1 and "MSA|AR" in result.output
    finally:
        listener.stop()

    client = authed_client(service)
    page = client.get("/api/orders", params={"modality": "CT", "date_from": TODAY}).json()
    assert page["total"] == 1
    order = page["items"][0]
    assert (order["patient_id"], order["patient_name"], order["status"]) == (
        "AP1",
        "TRẦN^THỊ MAI",
        "SCHEDULED",
    )
    assert order["procedures"][0]["steps"][0]["start_time"] == "083000"
    assert client.get("/api/orders", params={"status": "CANCELED"}).json()["total"] == 0
    assert client.get("/api/orders", params={"patient_id": "nobody"}).json()["total"] == 0
    assert client.get("/api/orders", params={"date_from": "2026-11"}).status_code == 422

    detail = client.get("/api/orders/AACC1").json()
    assert detail["procedures"][0]["accession_number"] == "AACC1"
    assert [h["source"] for h in detail["history"]] == ["HL7 NW"]
    assert client.get("/api/orders/NOPE").status_code == 404

    messages = client.get("/api/hl7/messages").json()
    assert messages["total"] == 2
    rejected, accepted = messages["items"]
    assert (accepted["control_id"], accepted["status"], accepted["ack_code"]) == (
        "API-1",
        "PROCESSED",
        "AA",
    )
    assert accepted["parsed"][1][0] == "PID" and "TRẦN^THỊ MAI" in accepted["parsed"][1]
    assert "MSA|AA|API-1" in accepted["ack"]
    assert (rejected["status"], rejected["ack_code"]) == ("REJECTED", "AR")
    one = client.get(f"/api/hl7/messages/{accepted['id']}").json()
    assert one["raw"].startswith("MSH|")
    filtered = client.get("/api/hl7/messages", params={"status": "rejected"}).json()
    assert filtered["total"] == 1
