"""Users as administrators see them (never a password or token hash). The API and the
web UI's users page both show these."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel
from sqlalchemy import select
from sqlalchemy.orm import Session

from gateway.auth.models import User


class UserOut(BaseModel):
    name: str
    role: str
    disabled: bool
    created_at: datetime
    last_login_at: datetime | None


def user_out(u: User) -> UserOut:
    return UserOut(
        name=u.name,
        role=u.role,
        disabled=u.disabled,
        created_at=u.created_at,
        last_login_at=u.last_login_at,
    )


def user_list(session: Session) -> list[UserOut]:
    return [user_out(u) for u in session.scalars(select(User).order_by(User.name))]
