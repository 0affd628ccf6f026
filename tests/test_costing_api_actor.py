"""Who a cost revision or a catalogue import is recorded for: the authenticated user, never
a name sent in the ``X-Risgate-User`` header."""

from __future__ import annotations

from pathlib import Path

from gateway.core.database import Database
from pricing_norms.example import EXAMPLE_DATA_DIR
from tests.support.auth import authed_client
from tests.support.costing import add_study, import_example, make_service


def test_actor_is_the_authenticated_user(database: Database, tmp_path: Path) -> None:
    service = make_service(database, tmp_path)
    admin = authed_client(service, "admin7", "admin")
    files = [
        ("files", (p.name, p.read_bytes(), "text/csv")) for p in EXAMPLE_DATA_DIR.glob("*.csv")
    ]
    r = admin.post("/api/norms/import", files=files, headers={"X-Risgate-User": "mallory"})
    assert r.status_code == 201, r.text
    assert r.json()["imported_by"] == "admin7"

    import_example(database)
    uid = add_study(database)
    billing = authed_client(service, "billing7", "billing")
    r = billing.post(
        f"/api/costs/{uid}/recost", json={"reason": "check"}, headers={"X-Risgate-User": "eve"}
    )
    assert r.status_code == 201, r.text
    assert r.json()["created_by"] == "billing7"
