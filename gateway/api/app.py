"""FastAPI application factory: one app per process, bound to that process's Service."""

from __future__ import annotations

from fastapi import FastAPI
from sqlalchemy import text

from gateway.api import hl7_messages, orders, queue, studies
from gateway.service import Service


def create_app(service: Service) -> FastAPI:
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
    from gateway.api import costs, norms, reports

    for costing_routes in (norms, costs, reports):
        app.include_router(costing_routes.router)
    app.include_router(orders.router)
    app.include_router(hl7_messages.router)
    app.include_router(queue.router)
    from gateway.api import commitments

    app.include_router(commitments.router)
    from gateway.web.install import install as install_auth_and_ui

    install_auth_and_ui(app, service)  # auth gate over every route, added before or after
    return app
