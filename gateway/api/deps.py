"""Request dependencies: the process's :class:`Service` and a database session (read-write
or read-only)."""

from __future__ import annotations

from collections.abc import Iterator

from fastapi import Request
from sqlalchemy.orm import Session

from gateway.service import Service


def get_service(request: Request) -> Service:
    service: Service = request.app.state.service
    return service


def get_session(request: Request) -> Iterator[Session]:
    with get_service(request).db.session() as session:
        yield session


def get_read_session(request: Request) -> Iterator[Session]:
    """A read-only session (GET routes): it does not queue behind writers."""
    with get_service(request).db.read_session() as session:
        yield session
