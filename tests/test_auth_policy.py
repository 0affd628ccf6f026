"""Role table over the whole application: every route has a rule in gateway/auth/policy.py,
and every (route, method) answers each role as the rule says (allowed: not 401/403;
denied: 403; anonymous: 401), so a new route without a rule fails here."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from starlette.routing import Mount, Route

from gateway.auth import policy
from gateway.auth.models import Role
from gateway.core.database import Database, make_engine
from gateway.core.migrate import upgrade
from gateway.process.http_app import create_app
from tests.support.auth import user_token
from tests.support.costing import make_service

pytestmark = pytest.mark.unit

PARAM_VALUES = {
    "message_id": "1",
    "accession": "ACC1",
    "name": "nobody",
    "code": "xx",
}


def _fill(path: str) -> str:
    def value(match: re.Match[str]) -> str:
        name = match.group(1).split(":")[0]
        if name.endswith("uid"):
            return "1.2.3.4"
        return PARAM_VALUES.get(name, "1")

    return re.sub(r"\{([^}]+)\}", value, path)


def all_routes(app) -> list[tuple[str, str]]:  # type: ignore[no-untyped-def]
    """Every (method, path template): the OpenAPI schema plus the non-schema routes."""
    found: set[tuple[str, str]] = set()
    for path, operations in app.openapi()["paths"].items():
        for method in operations:
            found.add((method.upper(), path))
    for route in app.router.routes:
        if isinstance(route, Route) and not route.include_in_schema:
            for method in route.methods or ():
                if method != "HEAD":
                    found.add((method, route.path))
        elif isinstance(route, Mount):
            found.add(("GET", route.path))
    return sorted(found)


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    tmp: Path = tmp_path_factory.mktemp("policy")
    db = Database(make_engine(f"sqlite:///{tmp / 'policy.db'}"))
    upgrade(db.engine)
    app = create_app(make_service(db, tmp))
    tokens = {role: user_token(db, f"u-{role}", role) for role in Role.ALL}
    yield app, tokens
    db.dispose()


def test_every_route_has_a_rule(setup) -> None:  # type: ignore[no-untyped-def]
    app, _ = setup
    routes = all_routes(app)
    assert ("GET", "/api/studies/{study_uid}") in routes and ("GET", "/healthz") in routes
    missing = [f"{m} {p}" for m, p in routes if policy.rule_for(m, p) is None]
    assert not missing, f"add a rule to gateway/auth/policy.py RULES for: {missing}"


def _call(client: TestClient, method: str, path: str, token: str | None) -> int:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    url = _fill(path) + ("/app.css" if path == "/static" else "")
    kwargs = {"json": {}} if method in ("POST", "PUT", "PATCH") else {}
    return client.request(
        method, url, headers=headers, follow_redirects=False, **kwargs
    ).status_code


def test_every_route_against_every_role(setup) -> None:  # type: ignore[no-untyped-def]
    app, tokens = setup
    client = TestClient(app)
    failures = []
    for method, path in all_routes(app):
        rule = policy.rule_for(method, path)
        if rule is None:
            continue  # reported by test_every_route_has_a_rule
        anonymous = _call(client, method, path, None)
        if rule in (policy.PUBLIC, policy.METRICS):  # metrics: no token configured here
            if anonymous in (401, 403):
                failures.append(f"{method} {path} anonymous -> {anonymous}, expected open")
            continue
        if anonymous != 401:
            failures.append(f"{method} {path} anonymous -> {anonymous}, expected 401")
        for role, token in tokens.items():
            status = _call(client, method, path, token)
            allowed = policy.allows(rule, role)
            if allowed and status in (401, 403):
                failures.append(f"{method} {path} {role} -> {status}, expected allowed")
            if not allowed and status != 403:
                failures.append(f"{method} {path} {role} -> {status}, expected 403")
    assert not failures, "\n".join(failures)


def test_bad_token_is_401_and_unknown_path_does_not_leak(setup) -> None:  # type: ignore[no-untyped-def]
    app, tokens = setup
    client = TestClient(app)
    bad = client.get("/api/studies", headers={"Authorization": "Bearer rg_wrong"})
    assert bad.status_code == 401 and bad.headers["www-authenticate"].startswith("Bearer")
    assert client.get("/api/nothing-here").status_code == 401
    ok = {"Authorization": f"Bearer {tokens['admin']}"}
    assert client.get("/api/nothing-here", headers=ok).status_code == 404


def test_route_without_rule_is_refused(setup) -> None:  # type: ignore[no-untyped-def]
    """Fail closed at run time too: a route nobody wrote a rule for answers 403."""
    app, tokens = setup
    assert policy.rule_for("GET", "/api/unruled") is None
    app.get("/api/unruled")(lambda: {"x": 1})
    app.openapi_schema = None
    client = TestClient(app)
    try:
        r = client.get("/api/unruled", headers={"Authorization": f"Bearer {tokens['admin']}"})
        assert r.status_code == 403 and "no access rule" in r.text, r.text
    finally:
        app.router.routes.pop()
        app.openapi_schema = None


def test_audited_routes_have_rules() -> None:
    """Every audited route is also in the rule table (a typo there would audit nothing)."""
    missing = [key for key in policy.AUDITED if key not in policy.RULES]
    assert not missing, missing
    assert all(
        action.split(".")[0] in ("view", "change", "export") for action in policy.AUDITED.values()
    )
