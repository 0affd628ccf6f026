"""``risgate users ...`` and ``risgate audit verify``: accounts and the audit chain."""

from __future__ import annotations

import getpass
import sys
from pathlib import Path

import click

from gateway.auth import accounts
from gateway.auth.models import Role, User
from gateway.core import audit
from gateway.core.database import Database


def _db(ctx: click.Context) -> Database:
    from gateway.core.migrate import upgrade

    db = Database.from_settings(ctx.obj.settings)
    upgrade(db.engine)
    return db


def _operator() -> str:
    try:
        return "cli:" + getpass.getuser()
    except Exception:
        return "cli"


@click.group()
def users() -> None:
    """User accounts (roles: admin, radiologist, billing, integration)."""


@users.command("create")
@click.argument("name")
@click.option("--role", required=True, type=click.Choice(list(Role.ALL)))
@click.option(
    "--password-file",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Read the password from this file (first line); default: prompt.",
)
@click.option("--token", "with_token", is_flag=True, help="Also create and print an API token.")
@click.pass_context
def create(
    ctx: click.Context, name: str, role: str, password_file: Path | None, with_token: bool
) -> None:
    """Create a user (integration users may have no password: use --token)."""
    if password_file is not None:
        lines = password_file.read_text().splitlines()
        password: str | None = lines[0] if lines else ""
    elif role == Role.INTEGRATION and with_token:
        password = None
    else:
        password = click.prompt("Password", hide_input=True, confirmation_prompt=True)
    db = _db(ctx)
    try:
        with db.write_session() as session:
            user = accounts.create_user(session, name, role, password)
            token = accounts.create_token(session, user, "cli") if with_token else None
            audit.append(
                session,
                "change.user_create",
                user=_operator(),
                source="cli",
                object_type="user",
                object_id=name,
                detail=f"role={role}",
            )
    except accounts.AccountError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(2)
    click.echo(f"user {name} created with role {role}")
    if token:
        click.echo(f"API token (shown once): {token}")


@users.command("list")
@click.pass_context
def list_users(ctx: click.Context) -> None:
    """List users: name, role, state."""
    from sqlalchemy import select

    db = _db(ctx)
    with db.session_factory() as session:
        for user in session.scalars(select(User).order_by(User.name)):
            state = "disabled" if user.disabled else "active"
            click.echo(f"{user.name:24} {user.role:12} {state}")


@users.command("disable")
@click.argument("name")
@click.pass_context
def disable(ctx: click.Context, name: str) -> None:
    """Disable a user: sessions end, tokens stop working."""
    db = _db(ctx)
    try:
        with db.write_session() as session:
            accounts.set_disabled(session, name, True)
            audit.append(
                session,
                "change.user_disable",
                user=_operator(),
                source="cli",
                object_type="user",
                object_id=name,
            )
    except accounts.AccountError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(1)
    click.echo(f"user {name} disabled")


@users.command("token")
@click.argument("name")
@click.option("--label", default="", help="What the token is for.")
@click.pass_context
def token(ctx: click.Context, name: str, label: str) -> None:
    """Create an API token for a user and print it (only its hash is stored)."""
    db = _db(ctx)
    with db.write_session() as session:
        user = accounts.find_user(session, name)
        if user is None or user.disabled:
            click.echo(f"error: no active user {name}", err=True)
            sys.exit(1)
        value = accounts.create_token(session, user, label)
        audit.append(
            session,
            "change.user_token",
            user=_operator(),
            source="cli",
            object_type="user",
            object_id=name,
            detail=label,
        )
    click.echo(value)


@click.group("audit")
def audit_group() -> None:
    """The audit log."""


@audit_group.command("verify")
@click.pass_context
def verify(ctx: click.Context) -> None:
    """Check the hash chain; exit 1 with the first bad record if anything was changed."""
    result = audit.verify(_db(ctx))
    if result.ok:
        click.echo(f"audit log intact: {result.checked} records")
        return
    click.echo(
        f"audit log BROKEN at record id {result.bad_id} (seq {result.bad_seq}): {result.reason}; "
        f"{result.checked} records before it are intact",
        err=True,
    )
    sys.exit(1)
