"""The one gate in front of every route: authenticate, then apply ``gateway.auth.policy``.

A pure ASGI middleware, so it also covers routes that are not FastAPI endpoints (docs,
static files). It finds the route the request will reach, looks its rule up, and answers
401 (nobody logged in), 403 (role not allowed, no rule, or a missing CSRF token) or lets
the request through with ``request.state.principal`` set. Calls of the routes listed in
``policy.AUDITED`` are written to the audit log with their outcome.
"""

from __future__ import annotations

import hmac
import json
import re
from typing import Any
from urllib.parse import quote

from starlette.concurrency import run_in_threadpool
from starlette.routing import Mount, Route, compile_path
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from gateway.auth import accounts, policy
from gateway.auth.accounts import Principal
from gateway.core import audit
from gateway.core.context import ProcessContext

SESSION_COOKIE = "risgate_session"
CSRF_HEADER = b"x-csrf-token"
USER_HEADER = b"x-risgate-user"
SAFE_METHODS = {"GET", "HEAD", "OPTIONS"}
ALL_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})


def _get(methods: frozenset[str]) -> frozenset[str]:
    return frozenset({"HEAD"}) if "GET" in methods else frozenset()


def _header(scope: Scope, name: bytes) -> str:
    for key, value in scope.get("headers", []):
        if key == name:
            return str(value.decode("latin-1"))
    return ""


def _cookie(scope: Scope, name: str) -> str:
    for part in _header(scope, b"cookie").split(";"):
        key, _, value = part.strip().partition("=")
        if key == name:
            return value
    return ""


def bearer(scope: Scope) -> str:
    auth = _header(scope, b"authorization")
    scheme, _, value = auth.partition(" ")
    return value.strip() if scheme.lower() == "bearer" else ""


class AuthMiddleware:
    def __init__(self, app: ASGIApp, service: ProcessContext, routes_app: Any) -> None:
        self.app = app
        self.service = service
        self.routes_app = routes_app  # the FastAPI app, whose router holds the routes
        self._routes: list[tuple[re.Pattern[str], str, frozenset[str]]] | None = None
        self._version = 0

    def _table(self) -> list[tuple[re.Pattern[str], str, frozenset[str]]]:
        """(regex, path template, methods) of every route, in matching order.

        From the OpenAPI schema (every API and UI route, at its full path) plus the
        application's own top-level routes that are not in it (docs, static files).
        """
        version = len(self.routes_app.router.routes)
        if self._routes is None or version != self._version:
            if self._routes is not None:
                self.routes_app.openapi_schema = None  # routes were added: build it again
            self._version = version
            table: list[tuple[re.Pattern[str], str, frozenset[str]]] = []
            for route in self.routes_app.router.routes:
                path = getattr(route, "path", None)
                if isinstance(route, Mount) and path:
                    table.append((re.compile(re.escape(path) + "(/.*)?$"), path, ALL_METHODS))
                elif isinstance(route, Route) and path and not route.include_in_schema:
                    table.append((compile_path(path)[0], path, frozenset(route.methods or ())))
            for path, operations in self.routes_app.openapi().get("paths", {}).items():
                methods = frozenset(m.upper() for m in operations)
                table.append((compile_path(path)[0], path, methods | _get(methods)))
            self._routes = table
        return self._routes

    def _route_path(self, scope: Scope) -> tuple[str | None, bool, dict[str, Any]]:
        """The matched route's path template, whether the method matched, its path params."""
        partial: str | None = None
        method = scope["method"]
        for regex, path, methods in self._table():
            match = regex.match(scope["path"])
            if match is None:
                continue
            if method in methods:
                return path, True, match.groupdict()
            if partial is None:
                partial = path
        return partial, False, {}

    def _authenticate(self, scope: Scope) -> Principal | None:
        token = bearer(scope)
        cookie = _cookie(scope, SESSION_COOKIE)
        if not token and not cookie:
            return None
        if token:
            return accounts.principal_for_token(self.service.db, token)
        return accounts.principal_for_session(self.service.db, cookie)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        method = scope["method"]
        path, full, path_params = self._route_path(scope)
        scope.setdefault("state", {})["route_template"] = path or "unmatched"
        rule = policy.rule_for(method, path) if path is not None else None
        if rule == policy.PUBLIC:
            await self.app(scope, receive, send)
            return
        if rule == policy.METRICS and self._metrics_ok(scope):
            await self.app(scope, receive, send)
            return
        principal = await run_in_threadpool(self._authenticate, scope)
        if principal is None:
            await self._deny(scope, send, 401, "authentication required")
            return
        scope.setdefault("state", {})["principal"] = principal
        if path is None or not full:
            # Fail closed: only routes this gate knows are ever served.
            code, reason = (404, "not found") if path is None else (405, "method not allowed")
            await self._deny(scope, send, code, reason)
            return
        if rule is None:
            await self._deny(scope, send, 403, f"no access rule for {method} {path}")
            return
        if rule == policy.METRICS:
            rule = frozenset({"admin", "integration"})
        if not policy.allows(rule, principal.role):
            await self._deny(scope, send, 403, f"role {principal.role} may not {method} {path}")
            return
        if principal.via == "session" and method not in SAFE_METHODS:
            sent = _header(scope, CSRF_HEADER)
            if not sent or not hmac.compare_digest(sent, principal.csrf_token):
                await self._deny(scope, send, 403, "missing or wrong CSRF token")
                return
        # Routes that record "who" read it from here, never from the client.
        scope["state"]["user_name"] = principal.name
        scope["headers"] = [(k, v) for k, v in scope["headers"] if k != USER_HEADER] + [
            (USER_HEADER, principal.name.encode())
        ]
        action = policy.audit_action(method, path)
        if action is None:
            await self.app(scope, receive, send)
            return
        status = [500]

        async def capture(message: Message) -> None:
            if message["type"] == "http.response.start":
                status[0] = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, capture)
        finally:
            await run_in_threadpool(self._audit, scope, principal, action, path_params, status[0])

    def _audit(
        self,
        scope: Scope,
        principal: Principal,
        action: str,
        params: dict[str, Any],
        status: int,
    ) -> None:
        client = scope.get("client")
        with self.service.db.write_session() as session:
            audit.append(
                session,
                action,
                user=principal.name,
                role=principal.role,
                source=client[0] if client else "",
                object_type=action.split(".", 1)[-1],
                object_id=(
                    scope["state"].get("audit_object") or ",".join(str(v) for v in params.values())
                )[:128],
                outcome="ok" if 200 <= status < 400 else f"http {status}",
                detail=scope.get("query_string", b"").decode("latin-1")[:500],
            )

    def _metrics_ok(self, scope: Scope) -> bool:
        expected = self.service.settings.metrics.secret()
        if not expected:
            return True
        return hmac.compare_digest(bearer(scope).encode(), expected.encode())

    async def _deny(self, scope: Scope, send: Send, status: int, reason: str) -> None:
        accept = _header(scope, b"accept")
        wants_html = (
            status == 401
            and scope["method"] == "GET"
            and "text/html" in accept
            and not scope["path"].startswith("/api/")
        )
        headers: list[tuple[bytes, bytes]] = []
        if wants_html:
            target = "/login?next=" + quote(scope["path"], safe="/")
            body = (
                f'<!doctype html><meta http-equiv="refresh" content="0;url={target}">'
                f'<a href="{target}">login</a>'
            ).encode()
            headers.append((b"content-type", b"text/html; charset=utf-8"))
        else:
            body = json.dumps({"detail": reason}).encode()
            headers.append((b"content-type", b"application/json"))
        if status == 401:
            headers.append((b"www-authenticate", b'Bearer realm="risgate"'))
        headers.append((b"content-length", str(len(body)).encode()))
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body})
