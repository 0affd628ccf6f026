"""User accounts: create, list, disable, password check (argon2id), API tokens, sessions."""

from __future__ import annotations

import hashlib
import re
import secrets
from dataclasses import dataclass
from datetime import timedelta

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError
from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from gateway.auth.models import ApiToken, Role, User, WebSession
from gateway.core.database import Database, is_sqlite
from gateway.core.fastsql import stamp
from gateway.core.models import utcnow

_hasher = PasswordHasher()  # argon2id, library defaults (RFC 9106 low-memory profile)
# Verified against when the user does not exist, so timing does not reveal names. A
# literal (an argon2id hash of a throw-away string with the library's default parameters,
# checked by the tests): hashing it at import cost every process start ~0.15-0.5 s.
_DUMMY_HASH = (
    "$argon2id$v=19$m=65536,t=3,p=4$rQd9YeYjuoIbLi2cGYRrOA"
    "$OuHapTLHCG2kWpZYELbTkF0JkursE6byH0wKxOutyDQ"
)
NAME_RE = re.compile(r"^[A-Za-z0-9_.@-]{1,64}$")
MIN_PASSWORD = 8
TOKEN_PREFIX = "rg_"  # noqa: S105 -- a prefix, not a secret


class AccountError(ValueError):
    """Bad input for an account operation; the message says why."""


@dataclass(frozen=True)
class Principal:
    """Who is calling: the user and how they authenticated."""

    user_id: int
    name: str
    role: str
    via: str  # "session" | "token"
    csrf_token: str = ""


def digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def validate_name(name: str) -> str:
    if not NAME_RE.match(name):
        raise AccountError("user name: 1-64 characters of A-Z a-z 0-9 _ . @ -")
    return name


def validate_role(role: str) -> str:
    if role not in Role.ALL:
        raise AccountError(f"role must be one of {', '.join(Role.ALL)}")
    return role


def create_user(session: Session, name: str, role: str, password: str | None) -> User:
    """A new enabled user; ``password`` may be None for an integration (token-only) user."""
    validate_name(name)
    validate_role(role)
    if password is not None and len(password) < MIN_PASSWORD:
        raise AccountError(f"password must have at least {MIN_PASSWORD} characters")
    if password is None and role != Role.INTEGRATION:
        raise AccountError("a password is required for this role")
    if session.scalar(select(User.id).where(User.name == name)) is not None:
        raise AccountError(f"user {name} exists")
    now = utcnow()
    user = User(
        name=name,
        role=role,
        password_hash=_hasher.hash(password) if password else "",
        disabled=False,
        created_at=now,
        updated_at=now,
    )
    session.add(user)
    session.flush()
    return user


def find_user(session: Session, name: str) -> User | None:
    return session.scalar(select(User).where(User.name == name))


def set_disabled(session: Session, name: str, disabled: bool = True) -> User:
    """Disable (or enable) a user; a disabled user's sessions end and tokens stop working."""
    user = find_user(session, name)
    if user is None:
        raise AccountError(f"no user {name}")
    user.disabled = disabled
    user.updated_at = utcnow()
    if disabled:
        session.execute(delete(WebSession).where(WebSession.user_pk == user.id))
    return user


def check_password(session: Session, name: str, password: str) -> User | None:
    """The enabled user with that name and password, or None (constant-ish time)."""
    user = find_user(session, name) if NAME_RE.match(name) else None
    stored = user.password_hash if user is not None and user.password_hash else _DUMMY_HASH
    try:
        _hasher.verify(stored, password)
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return None
    if user is None or user.disabled or not user.password_hash:
        return None
    if _hasher.check_needs_rehash(stored):
        user.password_hash = _hasher.hash(password)
    user.last_login_at = utcnow()
    return user


def create_token(session: Session, user: User, label: str = "") -> str:
    """A new API token for ``user``; the plain value is returned once and never stored."""
    value = TOKEN_PREFIX + secrets.token_urlsafe(32)
    session.add(
        ApiToken(user_pk=user.id, token_hash=digest(value), label=label[:64], created_at=utcnow())
    )
    session.flush()
    return value


def principal_for_token(db: Database, value: str) -> Principal | None:
    """Who holds this API token (None: unknown, revoked or its user disabled).

    Every API call asks this, so it is one read statement outside any session (no ORM,
    no transaction of its own; on PostgreSQL two round trips fewer)."""
    row = db.read_one(
        "SELECT u.id, u.name, u.role FROM api_tokens t JOIN users u ON u.id = t.user_pk"
        " WHERE t.token_hash = ? AND t.revoked_at IS NULL AND u.disabled = ?",
        [digest(value), False],
    )
    return Principal(int(row[0]), row[1], row[2], "token") if row is not None else None


def create_session(session: Session, user: User, lifetime_s: float) -> tuple[str, str]:
    """A UI session: returns (session cookie value, CSRF token)."""
    value = secrets.token_urlsafe(32)
    csrf = secrets.token_urlsafe(32)
    now = utcnow()
    session.add(
        WebSession(
            user_pk=user.id,
            session_hash=digest(value),
            csrf_token=csrf,
            created_at=now,
            expires_at=now + timedelta(seconds=lifetime_s),
        )
    )
    return value, csrf


def principal_for_session(db: Database, value: str) -> Principal | None:
    """Who is logged in with this UI session cookie (None: unknown, expired or the user
    disabled); one read statement, as ``principal_for_token``."""
    row = db.read_one(
        "SELECT u.id, u.name, u.role, s.csrf_token FROM web_sessions s"
        " JOIN users u ON u.id = s.user_pk"
        " WHERE s.session_hash = ? AND s.expires_at > ? AND u.disabled = ?",
        [digest(value), stamp(utcnow(), pg=not is_sqlite(db.engine)), False],
    )
    if row is None:
        return None
    return Principal(int(row[0]), row[1], row[2], "session", row[3])


def end_session(session: Session, value: str) -> None:
    session.execute(delete(WebSession).where(WebSession.session_hash == digest(value)))
