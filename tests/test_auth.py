"""Authentication: argon2 passwords, hashed API tokens, UI login with cookie flags and CSRF,
disabled users, the metrics token, HL7 masking for billing, and the ``risgate users`` CLI."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner
from fastapi.testclient import TestClient
from sqlalchemy import select

from gateway.auth import accounts
from gateway.auth.mask import mask_hl7
from gateway.auth.models import ApiToken, User
from gateway.cli import main
from gateway.core.context import ProcessContext
from gateway.core.database import Database, make_engine
from gateway.core.migrate import upgrade
from gateway.core.models import utcnow
from gateway.orders.models import HL7MessageRow
from gateway.process.http_app import create_app
from tests.support.auth import PASSWORD, user_token
from tests.support.costing import make_service
from tests.support.gateway_proc import to_toml

pytestmark = pytest.mark.unit


@pytest.fixture
def db(tmp_path: Path) -> Iterator[Database]:
    database = Database(make_engine(f"sqlite:///{tmp_path / 'auth.db'}"))
    upgrade(database.engine)
    yield database
    database.dispose()


@pytest.fixture
def service(db: Database, tmp_path: Path) -> ProcessContext:
    return make_service(db, tmp_path)


def login(client: TestClient, name: str, password: str = PASSWORD) -> TestClient:
    page = client.get("/login")
    token = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
    assert token, page.text
    r = client.post(
        "/login",
        data={"username": name, "password": password, "csrf_token": token.group(1)},
        follow_redirects=False,
    )
    assert r.status_code == 303
    return client


def test_passwords_are_argon2_and_tokens_stored_hashed(db: Database) -> None:
    token = user_token(db, "alice", "radiologist")
    with db.session_factory() as session:
        user = session.scalar(select(User).where(User.name == "alice"))
        assert user is not None and user.password_hash.startswith("$argon2id$")
        assert PASSWORD not in user.password_hash
        stored = list(session.scalars(select(ApiToken.token_hash)))
    assert token not in stored and accounts.digest(token) in stored
    with db.write_session() as session:
        assert accounts.check_password(session, "alice", PASSWORD) is not None
        assert accounts.check_password(session, "alice", "wrong-password") is None
        assert accounts.check_password(session, "nobody", PASSWORD) is None
        with pytest.raises(accounts.AccountError, match="at least"):
            accounts.create_user(session, "bob", "billing", "short")
        with pytest.raises(accounts.AccountError, match="role"):
            accounts.create_user(session, "bob", "root", PASSWORD)
        with pytest.raises(accounts.AccountError, match="user name"):
            accounts.create_user(session, "bad name/..", "billing", PASSWORD)


def test_unknown_users_are_checked_against_a_hash_like_the_real_ones() -> None:
    """The dummy hash (a literal) has the hasher's current parameters, so checking a name
    that does not exist costs what checking a real user's password costs."""
    assert accounts._DUMMY_HASH.startswith("$argon2id$")
    assert not accounts._hasher.check_needs_rehash(accounts._DUMMY_HASH)


def test_login_cookie_flags_csrf_and_logout(db: Database, service: ProcessContext) -> None:
    user_token(db, "rad", "radiologist")
    client = TestClient(create_app(service))
    # without the login form's double-submit cookie the login is refused
    r = client.post(
        "/login", data={"username": "rad", "password": PASSWORD, "csrf_token": "x"},
        follow_redirects=False,
    )  # fmt: skip
    assert r.status_code == 403
    page = client.get("/login")
    token = re.search(r'name="csrf_token" value="([^"]+)"', page.text).group(1)  # type: ignore[union-attr]
    bad = client.post(
        "/login", data={"username": "rad", "password": "nope-nope", "csrf_token": token},
        follow_redirects=False,
    )  # fmt: skip
    assert bad.status_code == 303 and "failed=1" in bad.headers["location"]
    ok = client.post(
        "/login", data={"username": "rad", "password": PASSWORD, "csrf_token": token},
        follow_redirects=False,
    )  # fmt: skip
    assert ok.status_code == 303 and ok.headers["location"] == "/ui/dashboard"
    cookie = ok.headers["set-cookie"]
    assert "risgate_session=" in cookie and "HttpOnly" in cookie
    assert "samesite=strict" in cookie.lower() and "Secure" not in cookie  # plain HTTP here
    assert client.get("/api/me").json() == {"name": "rad", "role": "radiologist", "via": "session"}
    # unsafe methods with a session need the CSRF token in X-CSRF-Token
    assert client.post("/logout").status_code == 403
    dashboard = client.get("/ui/dashboard")
    csrf = re.search(r'data-csrf="([^"]+)"', dashboard.text).group(1)  # type: ignore[union-attr]
    assert client.post("/logout", headers={"X-CSRF-Token": csrf}).json()["redirect"] == "/login"
    assert client.get("/api/me").status_code == 401


def test_secure_cookie_over_https_or_when_configured(db: Database, service: ProcessContext) -> None:
    user_token(db, "rad", "radiologist")
    https = TestClient(create_app(service), base_url="https://gateway.local")
    login(https, "rad")
    assert https.cookies.get("risgate_session")
    service.settings.auth.cookie_secure = True
    plain = TestClient(create_app(service))
    page = plain.get("/login")
    assert "Secure" in page.headers["set-cookie"]


def test_disabled_user_loses_sessions_and_tokens(db: Database, service: ProcessContext) -> None:
    token = user_token(db, "carol", "billing")
    client = login(TestClient(create_app(service)), "carol")
    assert client.get("/api/me").status_code == 200
    with db.write_session() as session:
        accounts.set_disabled(session, "carol")
    assert client.get("/api/me").status_code == 401
    api = TestClient(create_app(service))
    assert api.get("/api/me", headers={"Authorization": f"Bearer {token}"}).status_code == 401


def test_metrics_token(db: Database, service: ProcessContext) -> None:
    service.settings.metrics.token = "scrape-secret"
    client = TestClient(create_app(service))
    assert client.get("/metrics").status_code == 401
    assert client.get("/metrics", headers={"Authorization": "Bearer nope"}).status_code == 401
    r = client.get("/metrics", headers={"Authorization": "Bearer scrape-secret"})
    assert r.status_code == 200 and "risgate_instances_received" in r.text
    admin = {"Authorization": f"Bearer {user_token(db, 'adm', 'admin')}"}
    assert client.get("/metrics", headers=admin).status_code == 200
    rad = {"Authorization": f"Bearer {user_token(db, 'rad', 'radiologist')}"}
    assert client.get("/metrics", headers=rad).status_code == 403


def test_hl7_log_masked_for_billing(db: Database, service: ProcessContext) -> None:
    raw = (
        "MSH|^~\\&|HIS|BV|RISGATE|BV|20261125080000||ORM^O01|C1|P|2.5\r"
        "PID|1||PID4711^^^BV^MR||NGUYỄN^VĂN AN||19850704|M\rORC|NW|P1\r"
    ).encode()
    with db.write_session() as session:
        session.add(
            HL7MessageRow(
                received_at=utcnow(),
                sender="HIS",
                control_id="C1",
                message_type="ORM^O01",
                peer="127.0.0.1",
                status="ACCEPTED",
                ack_code="AA",
                error="",
                repeats=0,
                raw=raw,
                ack=b"MSA|AA|C1",
            )
        )
    client = TestClient(create_app(service))
    billing = {"Authorization": f"Bearer {user_token(db, 'bill', 'billing')}"}
    admin = {"Authorization": f"Bearer {user_token(db, 'adm', 'admin')}"}
    masked = client.get("/api/hl7/messages", headers=billing).json()["items"][0]
    assert "PID4711" not in str(masked) and "NGUYỄN" not in str(masked)
    assert masked["message_type"] == "ORM^O01" and masked["raw"].startswith("MSH|")
    full = client.get("/api/hl7/messages/1", headers=admin).json()
    assert "PID4711" in full["raw"] and "NGUYỄN" in full["raw"]
    assert "PID4711" not in client.get("/ui/hl7", headers=billing).text
    assert mask_hl7("PID|1||X^^^Y||N") == "PID|***||***||***"


def test_users_cli(tmp_path: Path) -> None:
    db_url = f"sqlite:///{tmp_path / 'cli.db'}"
    config = tmp_path / "c.toml"
    config.write_text(to_toml({"data_dir": str(tmp_path), "database": {"url": db_url}}))
    pw = tmp_path / "pw"
    pw.write_text(PASSWORD + "\n")
    run = CliRunner().invoke
    base = ["--config", str(config), "users"]
    r = run(main, [*base, "create", "--role", "admin", "--password-file", str(pw), "root1"])
    assert r.exit_code == 0, r.output
    r = run(main, [*base, "create", "--role", "admin", "--password-file", str(pw), "root1"])
    assert r.exit_code == 2 and "exists" in r.output
    r = run(main, [*base, "create", "--role", "billing", "bill1"], input="pw-typed-1\npw-typed-1\n")
    assert r.exit_code == 0, r.output
    r = run(main, [*base, "create", "--role", "integration", "--token", "his"])
    assert r.exit_code == 0 and "rg_" in r.output
    listing = run(main, [*base, "list"]).output
    assert re.search(r"root1\s+admin\s+active", listing) and "bill1" in listing
    assert run(main, [*base, "disable", "bill1"]).exit_code == 0
    assert re.search(r"bill1\s+billing\s+disabled", run(main, [*base, "list"]).output)
    assert run(main, [*base, "disable", "ghost"]).exit_code == 1
    db = Database(make_engine(db_url))
    with db.write_session() as session:
        assert accounts.check_password(session, "bill1", "pw-typed-1") is None  # disabled
        assert accounts.check_password(session, "root1", PASSWORD) is not None
    db.dispose()
