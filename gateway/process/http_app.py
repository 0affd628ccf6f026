"""The HTTP application of a process: the JSON API, the web UI, previews and ``/metrics``,
behind the auth gate (authentication, role policy, audit). One app per process, bound to
that process's context. The API and the web UI are siblings: neither imports the other;
this module puts them together.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles
from sqlalchemy import text
from starlette.responses import Response
from starlette.types import ASGIApp, Receive, Scope, Send

from gateway.api import (
    audit,
    commitments,
    costs,
    hl7_messages,
    norms,
    orders,
    queue,
    reports,
    studies,
    users,
)
from gateway.auth.middleware import AuthMiddleware
from gateway.core.context import ProcessContext
from gateway.operations.metrics import Metrics
from gateway.web import previews, routes

STATIC_DIR = Path(routes.__file__).parent / "static"


class _Measured:
    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        self.wrapped = metrics.asgi(app)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self.wrapped(scope, receive, send)


def create_app(service: ProcessContext) -> FastAPI:
    app = FastAPI(
        title="risgate",
        version="0.1.0",
        description="RIS-PACS imaging integration gateway",
    )
    app.state.service = service

    @app.get("/healthz", tags=["health"])
    def healthz() -> dict[str, str]:
        with service.db.read_session() as session:
            session.execute(text("SELECT 1"))
        return {"status": "ok"}

    app.include_router(studies.router)
    for costing_routes in (norms, costs, reports):
        app.include_router(costing_routes.router)
    app.include_router(orders.router)
    app.include_router(hl7_messages.router)
    app.include_router(queue.router)
    app.include_router(commitments.router)
    _install_auth_and_ui(app, service)
    return app


def _install_auth_and_ui(app: FastAPI, service: ProcessContext) -> None:
    """Added last: the auth gate then wraps every route, including routers added before or
    after (it looks routes up at request time)."""
    metrics = Metrics(service)
    app.state.metrics = metrics

    @app.get("/metrics", include_in_schema=False)
    def prometheus_metrics() -> Response:
        return metrics.render()

    app.include_router(users.router)
    app.include_router(audit.router)
    app.include_router(previews.router)
    app.include_router(routes.router)
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
    kwargs: dict[str, Any] = {"service": service, "routes_app": app}
    app.add_middleware(AuthMiddleware, **kwargs)
    app.add_middleware(_Measured, metrics=metrics)
