"""``risgate backup`` / ``risgate restore``: the database and the instance store in one tar.

Consistent while the gateway runs. The database is snapshotted first (SQLite: the online
backup API, one step under a read transaction, which WAL lets writers work through;
PostgreSQL: ``pg_dump -Fc`` on a snapshot exported by a REPEATABLE READ transaction,
or, without ``pg_dump``, a COPY of every table in that same transaction). The store is
archived AFTER the snapshot: a file is fsynced in place before it is indexed, so every
instance indexed in the snapshot is already on disk when the tar walks the store. The
same snapshot lists the indexed paths, and the manifest counts any that are missing
(a study purged after verification between the two steps).

Archive layout: ``manifest.json``, ``database/risgate.sqlite`` | ``database/risgate.pgdump``
| ``database/copy/<table>.tsv``, ``store/instances/<study>/<series>/<sop>.dcm``.

Restore runs with the gateway stopped; it refuses a target database with tables or a
store with files unless ``force``, then brings the schema to the latest migration. An
archive with a member that is not a plain file or directory with a safe relative name is
refused before anything is touched (``gateway.operations.safe_tar``, on every Python 3.11).
"""

from __future__ import annotations

import io
import json
import logging
import os
import shutil
import sqlite3
import subprocess
import tarfile
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, inspect, text
from sqlalchemy.engine import make_url

from gateway.core.database import Database, make_engine
from gateway.core.migrate import upgrade
from gateway.core.settings import Settings
from gateway.operations.safe_tar import UnsafeMemberError, check_name, extract

log = logging.getLogger(__name__)

FORMAT = 1
DB_SQLITE = "database/risgate.sqlite"
DB_PGDUMP = "database/risgate.pgdump"
DB_COPY_DIR = "database/copy"
STORE_PREFIX = "store/instances"


class BackupError(Exception):
    """A backup or restore that cannot be done; the message says why."""


@dataclass
class Manifest:
    format: int
    created_at: str
    database: str  # "sqlite", "pg_dump" or "copy"
    revisions: list[str]
    indexed_files: int
    archived_files: int
    missing_files: int
    tables: list[str] = field(default_factory=list)


def _sqlite_path(url: str) -> Path:
    db = make_url(url).database
    if not db or db == ":memory:":
        raise BackupError("an in-memory SQLite database cannot be backed up")
    return Path(db)


def _pg_env_args(url: str) -> tuple[list[str], dict[str, str]]:
    """libpq connection arguments (the password goes in the environment, not argv)."""
    u = make_url(url)
    args = ["-h", u.host or "localhost", "-p", str(u.port or 5432), "-d", u.database or ""]
    if u.username:
        args += ["-U", u.username]
    env = dict(os.environ)
    if u.password:
        env["PGPASSWORD"] = str(u.password)
    return args, env


def _add_bytes(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    info.mtime = int(datetime.now(UTC).timestamp())
    info.mode = 0o600
    tar.addfile(info, io.BytesIO(data))


def _indexed_paths(conn: Connection) -> set[str]:
    rows = conn.execute(
        text(
            "SELECT i.path FROM instances i JOIN series se ON se.id = i.series_pk "
            "JOIN studies st ON st.id = se.study_pk WHERE st.purged_at IS NULL"
        )
    )
    return {str(r[0]) for r in rows}


def _revisions(conn: Connection) -> list[str]:
    if not inspect(conn).has_table("alembic_version"):
        return []
    return sorted(str(r[0]) for r in conn.execute(text("SELECT version_num FROM alembic_version")))


@contextmanager
def _pg_snapshot(db: Database) -> Iterator[tuple[Connection, str]]:
    """A REPEATABLE READ transaction and its exported snapshot id (for pg_dump)."""
    with db.engine.connect() as conn:
        conn = conn.execution_options(isolation_level="REPEATABLE READ")
        with conn.begin():
            snap = str(conn.execute(text("SELECT pg_export_snapshot()")).scalar_one())
            yield conn, snap


def _copy_tables(conn: Connection, tar: tarfile.TarFile) -> list[str]:
    """COPY every table of the public schema (text format) into the archive."""
    tables = sorted(inspect(conn).get_table_names())
    raw = conn.connection.dbapi_connection
    assert raw is not None
    with raw.cursor() as cur:  # type: ignore[attr-defined]
        for table in tables:
            buf = io.BytesIO()
            with cur.copy(f'COPY "{table}" TO STDOUT') as copy:
                for chunk in copy:
                    buf.write(bytes(chunk))
            _add_bytes(tar, f"{DB_COPY_DIR}/{table}.tsv", buf.getvalue())
    return tables


def _add_store(tar: tarfile.TarFile, instances_dir: Path) -> set[str]:
    """Every file under the store's instances directory; returns their relative paths."""
    archived: set[str] = set()
    if not instances_dir.is_dir():
        return archived
    for dirpath, _dirs, files in os.walk(instances_dir):
        for name in sorted(files):
            path = Path(dirpath) / name
            rel = path.relative_to(instances_dir).as_posix()
            try:
                tar.add(path, arcname=f"{STORE_PREFIX}/{rel}", recursive=False)
            except FileNotFoundError:  # purged while we walked
                continue
            archived.add(rel)
    return archived


def backup(settings: Settings, out: Path, *, use_pg_dump: bool | None = None) -> Manifest:
    """Write the backup archive ``out`` (``.tar``, or gzip for ``.tar.gz``/``.tgz``)."""
    url = settings.database_url
    db = Database(make_engine(url))
    out.parent.mkdir(parents=True, exist_ok=True)
    gz = out.name.endswith((".tar.gz", ".tgz"))
    partial = out.with_name(out.name + ".partial")
    tables: list[str] = []
    try:
        with (
            tempfile.TemporaryDirectory(prefix="risgate-backup-") as tmp,
            tarfile.open(partial, "w:gz") if gz else tarfile.open(partial, "w") as tar,
        ):
            if url.startswith("sqlite"):
                kind = "sqlite"
                snap_path = Path(tmp) / "risgate.sqlite"
                source = _sqlite_path(url)
                if not source.is_file():
                    raise BackupError(f"no database at {source}")
                src = sqlite3.connect(f"file:{source}?mode=ro", uri=True, timeout=60)
                dst = sqlite3.connect(snap_path)
                try:
                    src.backup(dst)  # all pages in one step: one consistent read
                finally:
                    src.close()
                    dst.close()
                snap_db = make_engine(f"sqlite:///{snap_path}")
                with snap_db.connect() as conn:
                    indexed = _indexed_paths(conn)
                    revisions = _revisions(conn)
                snap_db.dispose()
                tar.add(snap_path, arcname=DB_SQLITE)
            else:
                if use_pg_dump is None:
                    use_pg_dump = shutil.which("pg_dump") is not None
                kind = "pg_dump" if use_pg_dump else "copy"
                with _pg_snapshot(db) as (conn, snap):
                    indexed = _indexed_paths(conn)
                    revisions = _revisions(conn)
                    if use_pg_dump:
                        dump = Path(tmp) / "risgate.pgdump"
                        args, env = _pg_env_args(url)
                        proc = subprocess.run(
                            ["pg_dump", "-Fc", "--no-owner", "--no-privileges",
                             f"--snapshot={snap}", "-f", str(dump), *args],
                            env=env, capture_output=True, text=True,
                        )  # fmt: skip
                        if proc.returncode != 0:
                            raise BackupError(f"pg_dump failed: {proc.stderr.strip()[-500:]}")
                        tar.add(dump, arcname=DB_PGDUMP)
                    else:
                        tables = _copy_tables(conn, tar)
            archived = _add_store(tar, settings.store_path / "instances")
            missing = len(indexed - archived)
            manifest = Manifest(
                format=FORMAT,
                created_at=datetime.now(UTC).isoformat(timespec="seconds"),
                database=kind,
                revisions=revisions,
                indexed_files=len(indexed),
                archived_files=len(archived),
                missing_files=missing,
                tables=tables,
            )
            _add_bytes(tar, "manifest.json", json.dumps(manifest.__dict__, indent=2).encode())
        with open(partial, "rb") as fh:
            os.fsync(fh.fileno())
        partial.replace(out)
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
    finally:
        db.dispose()
    if missing:
        log.warning("backup: %d indexed files were purged before the store was archived", missing)
    return manifest


def read_manifest(tar: tarfile.TarFile) -> Manifest:
    try:
        member = tar.extractfile("manifest.json")
    except KeyError:
        member = None
    if member is None:
        raise BackupError("not a risgate backup: no manifest.json")
    data: dict[str, Any] = json.loads(member.read())
    if data.get("format") != FORMAT:
        raise BackupError(f"unsupported backup format {data.get('format')!r}")
    return Manifest(**data)


def _check_archive(tar: tarfile.TarFile) -> None:
    """Refuse an archive with any member that is not a plain file or directory with a safe
    relative name, before anything in the target is touched."""
    for member in tar.getmembers():
        try:
            check_name(member)
        except UnsafeMemberError as exc:
            raise BackupError(f"unsafe backup archive: {exc}") from exc


def _extract(tar: tarfile.TarFile, member: tarfile.TarInfo, dest: Path) -> None:
    try:
        extract(tar, member, dest)
    except UnsafeMemberError as exc:
        raise BackupError(f"unsafe backup archive: {exc}") from exc


def _database_in_use(db: Database) -> bool:
    with db.engine.connect() as conn:
        return bool(inspect(conn).get_table_names())


def _store_in_use(instances_dir: Path) -> bool:
    return instances_dir.is_dir() and any(p.is_file() for p in instances_dir.rglob("*"))


def _clear_database(db: Database) -> None:
    """Drop every table (``--force``): the restore starts from an empty schema."""
    with db.engine.begin() as conn:
        if conn.dialect.name == "postgresql":
            tables = inspect(conn).get_table_names()
            if tables:
                conn.execute(text("DROP TABLE " + ", ".join(f'"{t}"' for t in tables) + " CASCADE"))
            return
    db.dispose()


def _restore_sqlite(tar: tarfile.TarFile, url: str, tmp: Path) -> None:
    _extract(tar, tar.getmember(DB_SQLITE), tmp)
    target = _sqlite_path(url)
    target.parent.mkdir(parents=True, exist_ok=True)
    src = sqlite3.connect(tmp / DB_SQLITE)
    dst = sqlite3.connect(target)
    try:
        src.backup(dst)  # replaces every page of the target
    finally:
        src.close()
        dst.close()


def _restore_pg_dump(tar: tarfile.TarFile, url: str, tmp: Path) -> None:
    _extract(tar, tar.getmember(DB_PGDUMP), tmp)
    args, env = _pg_env_args(url)
    proc = subprocess.run(
        ["pg_restore", "--no-owner", "--no-privileges", "--exit-on-error", *args,
         str(tmp / DB_PGDUMP)],
        env=env, capture_output=True, text=True,
    )  # fmt: skip
    if proc.returncode != 0:
        raise BackupError(f"pg_restore failed: {proc.stderr.strip()[-500:]}")


def _restore_copy(tar: tarfile.TarFile, db: Database, manifest: Manifest) -> None:
    """Schema from the migrations at the backup's revision, then COPY FROM per table."""
    for rev in manifest.revisions or ["heads"]:
        upgrade(db.engine, rev)
    with db.engine.begin() as conn:
        conn.execute(text("SET CONSTRAINTS ALL DEFERRED"))
        raw = conn.connection.dbapi_connection
        assert raw is not None
        with raw.cursor() as cur:  # type: ignore[attr-defined]
            # Foreign keys are checked per row: load each table after those it references.
            for table in _dependency_order(conn, manifest.tables):
                cur.execute(f'DELETE FROM "{table}"')  # e.g. alembic_version
                member = tar.extractfile(f"{DB_COPY_DIR}/{table}.tsv")
                assert member is not None
                with cur.copy(f'COPY "{table}" FROM STDIN') as copy:
                    while chunk := member.read(1 << 20):
                        copy.write(chunk)
        for table in manifest.tables:
            for col in inspect(conn).get_columns(table):
                seq = conn.execute(
                    text("SELECT pg_get_serial_sequence(:t, :c)"), {"t": table, "c": col["name"]}
                ).scalar()
                if seq:
                    conn.execute(
                        text(
                            f'SELECT setval(:s, COALESCE((SELECT MAX("{col["name"]}") '
                            f'FROM "{table}"), 0) + 1, false)'
                        ),
                        {"s": seq},
                    )


def _dependency_order(conn: Connection, tables: list[str]) -> list[str]:
    insp = inspect(conn)
    deps = {t: {fk["referred_table"] for fk in insp.get_foreign_keys(t)} - {t} for t in tables}
    ordered: list[str] = []
    while deps:
        ready = sorted(t for t, d in deps.items() if not (d & deps.keys()))
        if not ready:  # a cycle: keep going, deferred constraints may still cope
            ready = sorted(deps)
        for t in ready:
            ordered.append(t)
            del deps[t]
    return ordered


def restore(settings: Settings, archive: Path, *, force: bool = False) -> Manifest:
    """Restore ``archive`` into the configured database and store (gateway stopped)."""
    url = settings.database_url
    instances_dir = settings.store_path / "instances"
    db = Database(make_engine(url))
    try:
        with tarfile.open(archive, "r:*") as tar:
            manifest = read_manifest(tar)
            _check_archive(tar)
            in_use = [
                what
                for what, used in (
                    ("database", _database_in_use(db)),
                    ("store", _store_in_use(instances_dir)),
                )
                if used
            ]
            if in_use and not force:
                raise BackupError(
                    f"target {' and '.join(in_use)} not empty: refusing to overwrite "
                    "(--force replaces them)"
                )
            is_sqlite = url.startswith("sqlite")
            if (manifest.database == "sqlite") != is_sqlite:
                raise BackupError(
                    f"a {manifest.database} backup cannot be restored into {url.split(':')[0]}"
                )
            if force:
                _clear_database(db)
                if instances_dir.exists():
                    shutil.rmtree(instances_dir)
            with tempfile.TemporaryDirectory(prefix="risgate-restore-") as tmp:
                if manifest.database == "sqlite":
                    db.dispose()
                    for suffix in ("-wal", "-shm"):
                        Path(str(_sqlite_path(url)) + suffix).unlink(missing_ok=True)
                    _restore_sqlite(tar, url, Path(tmp))
                elif manifest.database == "pg_dump":
                    _restore_pg_dump(tar, url, Path(tmp))
                else:
                    _restore_copy(tar, db, manifest)
            instances_dir.mkdir(parents=True, exist_ok=True)
            prefix = STORE_PREFIX + "/"
            for member in tar:
                if not member.name.startswith(prefix) or not member.isfile():
                    continue
                member.name = member.name[len(prefix) :]
                _extract(tar, member, instances_dir)
        db.dispose()
        upgrade(db.engine)  # a backup from an older version is brought up to date
    finally:
        db.dispose()
    return manifest
