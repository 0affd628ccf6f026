"""Read-only HTTP paths: every GET route (API and web pages) reads in a read-only session.

On SQLite each GET answers while another connection holds the write lock, and changes
nothing; the views of patient data are audited by the auth gate after the response, in a
short write transaction of their own (written once the lock is free). On PostgreSQL the
same GETs run in ``READ ONLY`` transactions (a write in one fails the request).
Every GET route of the app is called: a new one without parameters here fails the test.
"""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path
from typing import Any

from sqlalchemy import func, inspect, select, table
from starlette.routing import Route

from gateway.auth import policy
from gateway.core.audit import AuditRecord
from gateway.core.database import Database, is_sqlite
from gateway.process.http_app import create_app
from tests.support.auth import user_token
from tests.support.costing import add_study, import_example, make_service

ANSWER_S = 20.0  # far above a GET's time; a GET waiting for the lock waits 60 s
# Path parameters of the GET routes; answers other than 2xx/3xx that are expected.
NOT_FOUND = {
    "/api/series/{series_uid}/thumbnail": "no preview rendered in this test",
    "/api/commitments/{transaction_uid}": "no commitment request",
    "/api/orders/{accession}": "no order",
    "/api/hl7/messages/{message_id}": "no HL7 message",
}
QUERIES = {"/api/reports/costs": "from=2025-01-01&to=2025-12-31"}


def _params(study_uid: str) -> dict[str, str]:
    return {
        "study_uid": study_uid,
        "series_uid": f"{study_uid}.1",
        "accession": "ACC404",
        "message_id": "404",
        "transaction_uid": "1.2.3.404",
        "code": "en",
    }


def _get_routes(app: Any) -> list[str]:
    """Every path answering GET, found as the auth gate finds them: the OpenAPI schema
    plus the app's own routes outside it (docs, /metrics)."""
    paths = {p for p, ops in app.openapi()["paths"].items() if "get" in ops}
    paths |= {
        r.path
        for r in app.router.routes
        if isinstance(r, Route) and not r.include_in_schema and "GET" in (r.methods or ())
    }
    return sorted(paths)


def _counts(db: Database) -> dict[str, int]:
    """Rows per table, the audit log aside."""
    names = [n for n in inspect(db.engine).get_table_names() if n != "audit_log"]
    with db.engine.connect() as conn:
        counts = {
            n: int(conn.scalar(select(func.count()).select_from(table(n))) or 0) for n in names
        }
        conn.rollback()
    return counts


def _audited(db: Database, action: str) -> int:
    with db.read_session() as session:
        return int(session.scalar(select(func.count()).where(AuditRecord.action == action)) or 0)


async def _get(app: Any, path: str, query: str, token: str) -> tuple[int, asyncio.Task[None]]:
    """Call the app directly: the status once the whole response body is out, and the
    call's task (the auth gate audits after the response, before the task ends)."""
    answered = asyncio.Event()
    status = [0]
    requested = [False]

    async def receive() -> dict[str, Any]:
        if not requested[0]:
            requested[0] = True
            return {"type": "http.request", "body": b"", "more_body": False}
        await answered.wait()
        return {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            status[0] = message["status"]
        elif message["type"] == "http.response.body" and not message.get("more_body"):
            answered.set()

    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": query.encode(),
        "root_path": "",
        "headers": [(b"host", b"testserver"), (b"authorization", f"Bearer {token}".encode())],
        "client": ("127.0.0.1", 50000),
        "server": ("testserver", 80),
    }
    task = asyncio.create_task(app(scope, receive, send))
    try:
        await asyncio.wait_for(answered.wait(), ANSWER_S)
    except TimeoutError:
        raise AssertionError(f"GET {path} did not answer while the write lock was held") from None
    return status[0], task


def test_every_get_reads_without_the_write_lock_and_writes_only_its_audit(
    database: Database, tmp_path: Path
) -> None:
    study_uid = add_study(database, study_date="20250310")
    import_example(database)
    token = user_token(database, "adm", "admin")
    app = create_app(make_service(database, tmp_path))
    params = _params(study_uid)
    routes = _get_routes(app)
    assert "/api/studies" in routes and "/ui/studies" in routes and "/metrics" in routes
    before = _counts(database)
    writer: sqlite3.Connection | None = None
    if is_sqlite(database.engine):
        path = database.engine.url.database
        assert path is not None
        writer = sqlite3.connect(path, isolation_level=None, timeout=0, check_same_thread=False)

    async def run() -> None:
        for template in routes:
            names = [p.split("}")[0] for p in template.split("{")[1:]]
            missing = [n for n in names if n not in params]
            assert not missing, f"GET {template}: give its parameters {missing} in this test"
            path = template.format(**params)
            action = policy.audit_action("GET", template)
            audited = _audited(database, action) if action else 0
            if writer is not None:
                writer.execute("BEGIN IMMEDIATE")  # another connection holds the write lock
            try:
                status, task = await _get(app, path, QUERIES.get(template, ""), token)
            finally:
                if writer is not None:
                    writer.execute("ROLLBACK")
            await asyncio.wait_for(task, ANSWER_S)
            if template in NOT_FOUND:
                assert status == 404, (template, status)
            else:
                assert 200 <= status < 400, (template, status)
            if action:
                assert _audited(database, action) == audited + 1, f"GET {template} not audited"

    try:
        asyncio.run(run())
    finally:
        if writer is not None:
            writer.close()
    assert _counts(database) == before
    # The pages that show patient data are among the audited views.
    assert {"view.studies", "view.orders", "view.unmatched", "view.hl7_log"} <= set(
        policy.AUDITED.values()
    )
