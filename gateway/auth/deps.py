"""Request dependencies for routes: who is calling (set by the auth middleware)."""

from __future__ import annotations

from fastapi import HTTPException, Request

from gateway.auth.accounts import Principal


def current_principal(request: Request) -> Principal:
    principal: Principal | None = getattr(request.state, "principal", None)
    if principal is None:
        raise HTTPException(401, "authentication required")
    return principal


def client_address(request: Request) -> str:
    return request.client.host if request.client else ""
