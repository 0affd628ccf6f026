"""The ``risgate`` command line: serve, migrate, and the operators' subcommands."""

from __future__ import annotations

import secrets
import sys

import click

from gateway.core.settings import Settings, SettingsError, load_settings


class Context:
    def __init__(self, config: str | None) -> None:
        self.config = config
        self._settings: Settings | None = None

    @property
    def settings(self) -> Settings:
        if self._settings is None:
            try:
                self._settings = load_settings(self.config)
            except SettingsError as exc:
                click.echo(str(exc), err=True)
                sys.exit(2)
        return self._settings


@click.group()
@click.option(
    "--config",
    "config",
    envvar="RISGATE_CONFIG",
    type=click.Path(dir_okay=False),
    help="TOML configuration file (also $RISGATE_CONFIG).",
)
@click.pass_context
def main(ctx: click.Context, config: str | None) -> None:
    """risgate: RIS-PACS imaging integration gateway."""
    ctx.obj = Context(config)


@main.command()
@click.option(
    "--role",
    "roles",
    multiple=True,
    type=click.Choice(["dicom", "hl7", "api", "worker"]),
    help="Run only these roles (repeatable). Default: all in one process.",
)
@click.pass_obj
def serve(obj: Context, roles: tuple[str, ...]) -> None:
    """Run the gateway."""
    from gateway.process.runner import ROLES
    from gateway.process.runner import serve as run

    run(obj.settings, list(roles) or list(ROLES))


@main.command()
@click.option("--orthanc-http-port", default=8042, show_default=True)
@click.option("--orthanc-dicom-port", default=4242, show_default=True)
@click.pass_obj
def dev(obj: Context, orthanc_http_port: int, orthanc_dicom_port: int) -> None:
    """Run a local Orthanc (in the data directory) and every role of the gateway."""
    from gateway.operations.local_orthanc import LocalOrthanc, OrthancConfig
    from gateway.process.runner import ROLES
    from gateway.process.runner import serve as run

    settings = obj.settings
    password = secrets.token_urlsafe(16)
    orthanc = LocalOrthanc(
        OrthancConfig(
            work_dir=(settings.data_dir / "orthanc").resolve(),
            http_port=orthanc_http_port,
            dicom_port=orthanc_dicom_port,
            password=password,
            dicom_peers={"RISGATE": ["RISGATE", "127.0.0.1", settings.dicom.port]},
        )
    )
    for dest in settings.forward.destinations:
        if dest.url == orthanc.config.url and dest.password is None:
            dest.password = password  # the local Orthanc's one-off password
    orthanc.start()
    pw_file = orthanc.config.work_dir / "password"
    pw_file.write_text(password + "\n")
    pw_file.chmod(0o600)
    click.echo(
        f"Orthanc: {orthanc.config.url} (user risgate, password in {pw_file}), "
        f"DICOM port {orthanc_dicom_port}"
    )
    click.echo(
        f"Gateway: DICOM {settings.dicom.ae_title}@{settings.dicom.host}:{settings.dicom.port}, "
        f"HTTP http://{settings.http.host}:{settings.http.port}/docs"
    )
    try:
        run(settings, list(ROLES))
    finally:
        orthanc.stop()


@main.command()
@click.pass_obj
def migrate(obj: Context) -> None:
    """Apply database migrations."""
    from gateway.core.database import Database
    from gateway.core.migrate import upgrade

    db = Database.from_settings(obj.settings)
    upgrade(db.engine)
    click.echo("database is at the latest schema")


@main.group()
def forward() -> None:
    """Forwarding queue: status and retry of dead jobs."""


@forward.command("status")
@click.pass_obj
def forward_status(obj: Context) -> None:
    """Job counts by kind and state, and the dead jobs with their last error."""
    from gateway.core.database import Database
    from gateway.operations.queue import status

    db = Database.from_settings(obj.settings)
    with db.read_session() as session:
        result = status(session)
    for kind, counts in sorted(result.counts.items()):
        click.echo(f"{kind:10} " + "  ".join(f"{k}={v}" for k, v in sorted(counts.items())))
    for job in result.dead:
        click.echo(f"DEAD #{job.id} {job.kind} {job.destination} ref={job.ref}: {job.last_error}")


@forward.command("retry")
@click.option("--id", "ids", multiple=True, type=int, help="Dead job id (repeatable); default all.")
@click.pass_obj
def forward_retry(obj: Context, ids: tuple[int, ...]) -> None:
    """Put dead jobs back in the queue."""
    from gateway.core.database import Database
    from gateway.operations.queue import retry_dead

    db = Database.from_settings(obj.settings)
    with db.write_session() as session:
        n = retry_dead(session, list(ids), None)
    click.echo(f"{n} jobs put back in the queue")


@main.group()
def hl7() -> None:
    """HL7 interface: manual replay of messages."""


@hl7.command("send")
@click.argument("file", type=click.Path(exists=True, dir_okay=False))
@click.option("--host", default=None, help="MLLP host (default: hl7.host).")
@click.option("--port", type=int, default=None, help="MLLP port (default: hl7.port).")
@click.option("--timeout", type=float, default=30.0, show_default=True)
@click.pass_obj
def hl7_send(obj: Context, file: str, host: str | None, port: int | None, timeout: float) -> None:
    """Send the HL7 message in FILE over MLLP and print the ACK (exit 1 unless AA)."""
    import asyncio
    from pathlib import Path

    from hl7.errors import HL7Error
    from hl7.mllp_client import send
    from hl7.parse import parse

    raw = Path(file).read_bytes().replace(b"\r\n", b"\r").replace(b"\n", b"\r")
    settings = obj.settings
    ack = asyncio.run(
        send(
            host or settings.hl7.host, port or settings.hl7.port, raw.strip(b"\r") + b"\r", timeout
        )
    )
    click.echo(ack.decode("utf-8", errors="replace").replace("\r", "\n").strip())
    try:
        msa = parse(ack, versions=None).segment("MSA")
    except HL7Error:
        msa = None
    if msa is None or msa.get(1) not in ("AA", "CA"):
        sys.exit(1)


@main.group()
def norms() -> None:
    """Cost norm catalogue: import (all-or-nothing) and export."""


@norms.command("import")
@click.argument("path", required=False, type=click.Path(exists=True))
@click.option("--example", is_flag=True, help="Import the bundled ILLUSTRATIVE example.")
@click.option("--user", default=None, help="Who imports (default: the login name).")
@click.pass_obj
def norms_import(obj: Context, path: str | None, example: bool, user: str | None) -> None:
    """Import a catalogue: a directory of CSV files, an .xlsx workbook or a .zip of CSVs."""
    from gateway.costing.cli import import_catalogue

    sys.exit(import_catalogue(obj.settings, path, example=example, user=user))


@norms.command("export")
@click.argument("target", type=click.Path())
@click.pass_obj
def norms_export(obj: Context, target: str) -> None:
    """Export the catalogue in use to a directory of CSV files or to FILE.xlsx."""
    from gateway.costing.cli import export_catalogue

    sys.exit(export_catalogue(obj.settings, target))


@main.group()
def costs() -> None:
    """Cost records."""


@costs.command("recost")
@click.option("--from", "date_from", required=True, help="First study date, YYYY-MM-DD.")
@click.option("--to", "date_to", required=True, help="Last study date, YYYY-MM-DD.")
@click.option("--reason", required=True, help="Why (recorded on each new revision).")
@click.option("--user", default=None, help="Who (default: the login name).")
@click.pass_obj
def costs_recost(obj: Context, date_from: str, date_to: str, reason: str, user: str | None) -> None:
    """Cost the period's studies again; a new revision only where the figures change."""
    from gateway.costing.cli import recost_period

    sys.exit(recost_period(obj.settings, date_from, date_to, reason, user))


@main.group()
def report() -> None:
    """Billing reports."""


@report.command("export")
@click.option("--from", "date_from", required=True, help="First study date, YYYY-MM-DD.")
@click.option("--to", "date_to", required=True, help="Last study date, YYYY-MM-DD.")
@click.option("--format", "fmt", type=click.Choice(["csv", "xlsx", "xml3", "json"]), default="csv")
@click.option("--group-by", default=None, help="Comma-separated: department, modality...")
@click.option("--out", required=True, type=click.Path(dir_okay=False), help="Output file.")
@click.option(
    "--allow-illustrative",
    is_flag=True,
    help="xml3: write the claim files even from ILLUSTRATIVE norms (labelled; not official).",
)
@click.pass_obj
def report_export(
    obj: Context,
    date_from: str,
    date_to: str,
    fmt: str,
    group_by: str | None,
    out: str,
    allow_illustrative: bool,
) -> None:
    """Export the cost report of a period (latest revision per study), with progress."""
    from gateway.costing.cli import export_report

    sys.exit(
        export_report(obj.settings, date_from, date_to, fmt, group_by, out, allow_illustrative)
    )


@main.command("backup")
@click.option("--out", required=True, type=click.Path(dir_okay=False), help="Archive to write.")
@click.pass_obj
def backup_cmd(obj: Context, out: str) -> None:
    """Back up the database and the instance store into one tar (safe while running)."""
    from pathlib import Path

    from gateway.operations.backup import BackupError, backup

    try:
        m = backup(obj.settings, Path(out))
    except BackupError as exc:
        click.echo(f"backup failed: {exc}", err=True)
        sys.exit(1)
    click.echo(
        f"{out}: database ({m.database}, revision {','.join(m.revisions) or '-'}), "
        f"{m.archived_files} store files, {m.missing_files} indexed files missing"
    )


@main.command("restore")
@click.argument("archive", type=click.Path(exists=True, dir_okay=False))
@click.option("--force", is_flag=True, help="Replace a non-empty database and store.")
@click.pass_obj
def restore_cmd(obj: Context, archive: str, force: bool) -> None:
    """Restore a backup into the configured database and store (gateway stopped)."""
    from pathlib import Path

    from gateway.operations.backup import BackupError, restore

    try:
        m = restore(obj.settings, Path(archive), force=force)
    except BackupError as exc:
        click.echo(f"restore refused: {exc}", err=True)
        sys.exit(1)
    click.echo(f"restored {m.archived_files} store files and the database ({m.created_at})")


@main.command(context_settings={"ignore_unknown_options": True, "help_option_names": []})
@click.argument("args", nargs=-1, type=click.UNPROCESSED)
def bench(args: tuple[str, ...]) -> None:
    """Run every benchmark: bench/run_all.py of a source checkout (options passed on)."""
    import subprocess
    from pathlib import Path

    root = Path(__file__).resolve().parent.parent
    if not (root / "bench" / "run_all.py").is_file():
        click.echo("risgate bench needs a source checkout (bench/run_all.py)", err=True)
        sys.exit(2)
    sys.exit(subprocess.call([sys.executable, "-m", "bench.run_all", *args], cwd=root))


def _add_auth_commands() -> None:
    from gateway.auth.cli import audit_group, users

    main.add_command(users)
    main.add_command(audit_group)


_add_auth_commands()


@main.command("check-config")
@click.pass_obj
def check_config(obj: Context) -> None:
    """Validate the configuration and print it (secrets hidden)."""
    import json

    click.echo(json.dumps(redacted(obj.settings.model_dump(mode="json")), indent=2))


SECRET_KEYS = ("password", "token")


def redacted(value: object, key: str = "") -> object:
    """Settings data with passwords, tokens and URL credentials replaced by ``***``."""
    if isinstance(value, dict):
        return {k: redacted(v, k) for k, v in value.items()}
    if isinstance(value, list):
        return [redacted(v, key) for v in value]
    if isinstance(value, str) and value:
        if key in SECRET_KEYS:
            return "***"
        if key == "url" and "@" in value:
            from sqlalchemy.engine import make_url

            try:
                return make_url(value).render_as_string(hide_password=True)
            except Exception:
                return "***"
    return value
