"""Wire authentication, audit, the web UI, previews and ``/metrics`` into the FastAPI app.

Called last by ``gateway.api.app.create_app``: the auth gate then wraps every route,
including routers added before or after (it looks routes up at request time).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles
from starlette.responses import Response
from starlette.types import ASGIApp, Receive, Scope, Send

from gateway.auth.middleware import AuthMiddleware
from gateway.operations.metrics import Metrics
from gateway.process.context import ProcessContext

STATIC_DIR = Path(__file__).parent / "static"


class _Measured:
    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        self.wrapped = metrics.asgi(app)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self.wrapped(scope, receive, send)


def install(app: FastAPI, service: ProcessContext) -> None:
    from gateway.api import audit as audit_routes
    from gateway.api import users
    from gateway.web import previews, routes

    metrics = Metrics(service)
    app.state.metrics = metrics

    @app.get("/metrics", include_in_schema=False)
    def prometheus_metrics() -> Response:
        return metrics.render()

    app.include_router(users.router)
    app.include_router(audit_routes.router)
    app.include_router(previews.router)
    app.include_router(routes.router)
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
    kwargs: dict[str, Any] = {"service": service, "routes_app": app}
    app.add_middleware(AuthMiddleware, **kwargs)
    app.add_middleware(_Measured, metrics=metrics)
