"""Audit log: hash chain on SQLite and PostgreSQL (a changed or deleted record is found by
``risgate audit verify``), audited routes, and the admin-only list and CSV export."""

from __future__ import annotations

import csv
import io
from pathlib import Path

from click.testing import CliRunner
from sqlalchemy import text

from gateway.cli import main
from gateway.core import audit
from gateway.core.database import Database
from tests.support.auth import authed_client
from tests.support.costing import make_service
from tests.support.gateway_proc import to_toml


def _fill(database: Database, n: int) -> list[int]:
    ids = []
    for i in range(n):
        with database.write_session() as session:
            rec = audit.append(
                session, "view.study", user=f"u{i}", role="radiologist", source="10.0.0.1",
                object_type="study", object_id=f"1.2.{i}",
            )  # fmt: skip
            ids.append(rec.id)
    return ids


def _verify_cli(db_url: str, tmp_path: Path) -> tuple[int, str]:
    config = tmp_path / "verify.toml"
    config.write_text(to_toml({"data_dir": str(tmp_path), "database": {"url": db_url}}))
    result = CliRunner().invoke(main, ["--config", str(config), "audit", "verify"])
    return result.exit_code, result.output


def test_changed_record_detected(database: Database, db_url: str, tmp_path: Path) -> None:
    ids = _fill(database, 6)
    assert audit.verify(database).ok and audit.verify(database).checked == 6
    code, out = _verify_cli(db_url, tmp_path)
    assert code == 0 and "6 records" in out
    with database.engine.begin() as conn:
        conn.execute(
            text("UPDATE audit_log SET user_name = 'mallory' WHERE id = :i"), {"i": ids[3]}
        )
    result = audit.verify(database)
    assert not result.ok and result.bad_id == ids[3] and result.checked == 3
    code, out = _verify_cli(db_url, tmp_path)
    assert code == 1 and f"record id {ids[3]}" in out


def test_deleted_record_detected(database: Database, db_url: str, tmp_path: Path) -> None:
    ids = _fill(database, 5)
    with database.engine.begin() as conn:
        conn.execute(text("DELETE FROM audit_log WHERE id = :i"), {"i": ids[1]})
    result = audit.verify(database)
    assert not result.ok and result.bad_id == ids[2] and "missing" in result.reason
    code, out = _verify_cli(db_url, tmp_path)
    assert code == 1 and f"record id {ids[2]}" in out


def test_rehashed_record_still_breaks_the_chain(database: Database) -> None:
    """Recomputing the changed record's own hash does not help: the next link breaks."""
    ids = _fill(database, 4)
    with database.write_session() as session:
        rec = session.get(audit.AuditRecord, ids[1])
        assert rec is not None
        rec.object_id = "9.9.9"
        rec.hash = audit.chain_hash(rec.prev_hash, rec)
    result = audit.verify(database)
    assert not result.ok and result.bad_id == ids[2]


def test_routes_are_audited_and_listed(database: Database, tmp_path: Path) -> None:
    service = make_service(database, tmp_path)
    rad = authed_client(service, "rad1", "radiologist")
    assert rad.get("/api/studies/1.2.3.4").status_code == 404
    assert rad.get("/api/orders/ACC9").status_code == 404
    assert rad.get("/api/audit").status_code == 403
    admin = authed_client(service, "adm1", "admin")
    page = admin.get("/api/audit", params={"user": "rad1"}).json()
    assert page["total"] == 2
    actions = {(i["action"], i["object_id"], i["outcome"]) for i in page["items"]}
    assert actions == {("view.study", "1.2.3.4", "http 404"), ("view.order", "ACC9", "http 404")}
    assert all(i["source"] == "testclient" and i["role"] == "radiologist" for i in page["items"])
    assert admin.get("/api/audit", params={"action": "view.order"}).json()["total"] == 1
    assert admin.get("/api/audit", params={"from": "2026-13-01"}).status_code == 422
    exported = admin.get("/api/audit/export", params={"user": "rad1"})
    assert exported.status_code == 200 and exported.headers["content-type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(exported.text)))
    assert [r["action"] for r in rows] == ["view.study", "view.order"]
    # the export itself is audited, and the chain is intact
    assert admin.get("/api/audit", params={"action": "export."}).json()["total"] == 1
    assert audit.verify(database).ok


def test_list_reads_are_audited_with_their_filters(database: Database, tmp_path: Path) -> None:
    """The study and order lists show patient names: who listed what is recorded too."""
    service = make_service(database, tmp_path)
    billing = authed_client(service, "bill1", "billing")
    assert billing.get("/api/studies", params={"patient_id": "BN0001"}).status_code == 200
    assert billing.get("/api/orders", params={"limit": 5}).status_code == 200
    assert billing.get("/api/studies", params={"limit": 0}).status_code == 422
    admin = authed_client(service, "adm2", "admin")
    items = admin.get("/api/audit", params={"user": "bill1"}).json()["items"]
    got = sorted((i["action"], i["outcome"], i["detail"]) for i in items)
    assert got == [
        ("view.order_list", "ok", "limit=5"),
        ("view.study_list", "http 422", "limit=0"),
        ("view.study_list", "ok", "patient_id=BN0001"),
    ]
    assert audit.verify(database).ok
