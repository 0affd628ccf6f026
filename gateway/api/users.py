"""User routes (admin): list, create, disable, API tokens; and ``/api/me`` for anyone."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Request
from pydantic import BaseModel, Field
from sqlalchemy.orm import Session

from gateway.auth import accounts
from gateway.auth.accounts import Principal
from gateway.auth.deps import current_principal, get_read_session, get_session
from gateway.views.users import UserOut, user_list, user_out

router = APIRouter(tags=["users"])


class Me(BaseModel):
    name: str
    role: str
    via: str


class UserCreate(BaseModel):
    name: str = Field(min_length=1, max_length=64)
    role: str = Field(max_length=16)
    password: str | None = Field(default=None, max_length=256)


class TokenRequest(BaseModel):
    label: str = Field(default="", max_length=64)


class TokenOut(BaseModel):
    token: str = Field(description="shown once; only its hash is stored")


@router.get("/api/me", response_model=Me)
def me(principal: Annotated[Principal, Depends(current_principal)]) -> Me:
    return Me(name=principal.name, role=principal.role, via=principal.via)


@router.get("/api/users", response_model=list[UserOut])
def list_users(session: Annotated[Session, Depends(get_read_session)]) -> list[UserOut]:
    return user_list(session)


@router.post("/api/users", response_model=UserOut, status_code=201)
def create_user(
    body: UserCreate, request: Request, session: Annotated[Session, Depends(get_session)]
) -> UserOut:
    request.state.audit_object = body.name if accounts.NAME_RE.match(body.name) else ""
    try:
        user = accounts.create_user(session, body.name, body.role, body.password)
    except accounts.AccountError as exc:
        raise HTTPException(422, str(exc)) from None
    return user_out(user)


@router.post("/api/users/{name}/disable", response_model=UserOut)
def disable_user(name: str, session: Annotated[Session, Depends(get_session)]) -> UserOut:
    try:
        user = accounts.set_disabled(session, accounts.validate_name(name), True)
    except accounts.AccountError as exc:
        raise HTTPException(404 if "no user" in str(exc) else 422, str(exc)) from None
    return user_out(user)


@router.post("/api/users/{name}/tokens", response_model=TokenOut, status_code=201)
def create_token(
    name: str,
    body: TokenRequest,
    session: Annotated[Session, Depends(get_session)],
) -> TokenOut:
    user = accounts.find_user(session, name) if accounts.NAME_RE.match(name) else None
    if user is None:
        raise HTTPException(404, "no such user")
    if user.disabled:
        raise HTTPException(409, "user is disabled")
    token = accounts.create_token(session, user, body.label)
    return TokenOut(token=token)
