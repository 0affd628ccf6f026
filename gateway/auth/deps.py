"""Request dependencies for the API and web routes: the process context, a database session
(read-write or read-only), and who is calling (set by the auth middleware).

The ones that only read the request are ``async``: FastAPI runs a plain ``def``
dependency in its thread pool, a hop per dependency per request."""

from __future__ import annotations

from collections.abc import Iterator

from fastapi import HTTPException, Request
from sqlalchemy.orm import Session

from gateway.auth.accounts import Principal
from gateway.core.context import ProcessContext


async def current_principal(request: Request) -> Principal:
    principal: Principal | None = getattr(request.state, "principal", None)
    if principal is None:
        raise HTTPException(401, "authentication required")
    return principal


async def client_address(request: Request) -> str:
    return request.client.host if request.client else ""


def _context(request: Request) -> ProcessContext:
    service: ProcessContext = request.app.state.service
    return service


async def get_service(request: Request) -> ProcessContext:
    return _context(request)


def get_session(request: Request) -> Iterator[Session]:
    with _context(request).db.write_session() as session:
        yield session


def get_read_session(request: Request) -> Iterator[Session]:
    """A read-only session (GET routes): it does not queue behind writers."""
    with _context(request).db.read_session() as session:
        yield session
