"""Test helpers: users and API tokens in a test database, clients that send them."""

from __future__ import annotations

from fastapi.testclient import TestClient

from gateway.auth import accounts
from gateway.auth.models import Role
from gateway.core.context import ProcessContext
from gateway.core.database import Database
from gateway.process.http_app import create_app

PASSWORD = "correct horse battery"


def user_token(
    db: Database, name: str, role: str = Role.ADMIN, password: str | None = PASSWORD
) -> str:
    """Create ``name`` if needed (with ``password``) and return a new API token for it."""
    with db.write_session() as session:
        user = accounts.find_user(session, name)
        if user is None:
            pw = password if role != Role.INTEGRATION or password else None
            user = accounts.create_user(session, name, role, pw)
        return accounts.create_token(session, user, "test")


def authed_client(
    service: ProcessContext, name: str = "admin", role: str = Role.ADMIN
) -> TestClient:
    """A TestClient on the app of ``service`` that sends a bearer token of a ``role`` user."""
    client = TestClient(create_app(service))
    client.headers["Authorization"] = "Bearer " + user_token(service.db, name, role)
    return client
