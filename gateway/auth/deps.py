"""Request dependencies for the API and web routes: the process context, a database session
(read-write or read-only), and who is calling (set by the auth middleware)."""

from __future__ import annotations

from collections.abc import Iterator

from fastapi import HTTPException, Request
from sqlalchemy.orm import Session

from gateway.auth.accounts import Principal
from gateway.core.context import ProcessContext


def current_principal(request: Request) -> Principal:
    principal: Principal | None = getattr(request.state, "principal", None)
    if principal is None:
        raise HTTPException(401, "authentication required")
    return principal


def client_address(request: Request) -> str:
    return request.client.host if request.client else ""


def get_service(request: Request) -> ProcessContext:
    service: ProcessContext = request.app.state.service
    return service


def get_session(request: Request) -> Iterator[Session]:
    with get_service(request).db.write_session() as session:
        yield session


def get_read_session(request: Request) -> Iterator[Session]:
    """A read-only session (GET routes): it does not queue behind writers."""
    with get_service(request).db.read_session() as session:
        yield session
