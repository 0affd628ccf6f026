"""Request dependencies: the process's :class:`ProcessContext` and a database session (read-write
or read-only)."""

from __future__ import annotations

from collections.abc import Iterator

from fastapi import Request
from sqlalchemy.orm import Session

from gateway.process.context import ProcessContext


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
