"""``risgate backup`` while the gateway receives a study, ``risgate restore`` into a fresh
target (refused when not empty unless --force), on SQLite and PostgreSQL; the restored
gateway starts and serves the studies; PostgreSQL's COPY fallback without pg_dump."""

from __future__ import annotations

import subprocess
import sys
import tarfile
import threading
from pathlib import Path

import pytest
from sqlalchemy import text

from gateway.core.database import make_engine
from gateway.core.settings import Settings
from gateway.operations.backup import BackupError, backup, restore
from tests.support.ctgen import make_ct_study
from tests.support.dcmtk import storescu
from tests.support.gateway_proc import GatewayProcess

pytestmark = pytest.mark.integration


def _target_url(db_url: str, tmp_path: Path, request: pytest.FixtureRequest) -> str:
    if db_url.startswith("sqlite"):
        return f"sqlite:///{tmp_path / 'restored.db'}"
    return str(request.getfixturevalue("pg_cluster").create_database())


def _cli(config: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "gateway", "--config", str(config), *args],
        capture_output=True,
        text=True,
        timeout=120,
    )


def _indexed(url: str) -> list[str]:
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            return [str(r[0]) for r in conn.execute(text("SELECT path FROM instances"))]
    finally:
        engine.dispose()


def test_backup_while_receiving_then_restore(
    db_url: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    gw = GatewayProcess(tmp_path / "gw", db_url)
    gw.start()
    try:
        first_uid, first = make_ct_study(tmp_path / "s1", 5, size=64, accession="B1")
        assert storescu(gw.dicom_port, first).returncode == 0
        _, second = make_ct_study(tmp_path / "s2", 20, size=64, accession="B2")
        sender = threading.Thread(target=storescu, args=(gw.dicom_port, second))
        sender.start()
        archive = tmp_path / "backup.tar.gz"
        r = _cli(gw.config_path, "backup", "--out", str(archive))
        sender.join(120)
        assert r.returncode == 0, r.stderr
        assert "0 indexed files missing" in r.stdout
    finally:
        gw.kill()

    with tarfile.open(archive) as tar:
        names = tar.getnames()
    assert "manifest.json" in names
    assert not any("/tmp/" in n for n in names)

    target_url = _target_url(db_url, tmp_path, request)
    target = GatewayProcess(tmp_path / "restored", target_url)
    r = _cli(target.config_path, "restore", str(archive))
    assert r.returncode == 0, r.stderr
    store = tmp_path / "restored" / "var" / "store" / "instances"
    paths = _indexed(target_url)
    assert len(paths) >= 5
    assert all((store / p).is_file() for p in paths)  # every indexed file came back

    again = _cli(target.config_path, "restore", str(archive))
    assert again.returncode == 1 and "not empty" in again.stderr
    forced = _cli(target.config_path, "restore", "--force", str(archive))
    assert forced.returncode == 0, forced.stderr
    assert sorted(_indexed(target_url)) == sorted(paths)

    target.start()  # the gateway runs on the restored database and store
    try:
        studies = target.get("/api/studies")
        uids = {s["study_uid"] for s in studies["items"]}
        assert first_uid in uids
    finally:
        target.kill()


def test_postgres_copy_fallback(tmp_path: Path, pg_cluster: object) -> None:
    from tests.support.postgres import PostgresCluster

    assert isinstance(pg_cluster, PostgresCluster)
    source = pg_cluster.create_database()
    gw = GatewayProcess(tmp_path / "gw", source)
    gw.start()
    try:
        _, files = make_ct_study(tmp_path / "s", 4, size=64, accession="C1")
        assert storescu(gw.dicom_port, files).returncode == 0
    finally:
        gw.kill()
    settings = Settings(data_dir=tmp_path / "gw" / "var", database={"url": source})
    archive = tmp_path / "copy.tar"
    manifest = backup(settings, archive, use_pg_dump=False)
    assert manifest.database == "copy" and manifest.archived_files == 4
    assert "instances" in manifest.tables

    target_url = pg_cluster.create_database()
    target = Settings(data_dir=tmp_path / "t", database={"url": target_url})
    restore(target, archive)
    assert sorted(_indexed(target_url)) == sorted(_indexed(source))
    with pytest.raises(BackupError, match="not empty"):
        restore(target, archive)
    # Sequences continue after the restored rows: a new row gets a fresh id.
    engine = make_engine(target_url)
    with engine.begin() as conn:
        top = conn.execute(text("SELECT MAX(id) FROM patients")).scalar_one()
        new = conn.execute(
            text(
                "INSERT INTO patients (patient_id, issuer, name, birth_date, sex, updated_at) "
                "VALUES ('NEW', '', '', '', '', now()) RETURNING id"
            )
        ).scalar_one()
    engine.dispose()
    assert new > top


def test_restore_refuses_a_foreign_archive(tmp_path: Path) -> None:
    bogus = tmp_path / "x.tar"
    with tarfile.open(bogus, "w") as tar:
        tar.add(__file__, arcname="hello.txt")
    settings = Settings(data_dir=tmp_path / "d")
    with pytest.raises(BackupError, match="manifest"):
        restore(settings, bogus)


def test_backup_of_a_missing_database_fails_cleanly(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path / "none")
    out = tmp_path / "b.tar"
    with pytest.raises(BackupError, match="no database"):
        backup(settings, out)
    assert not out.exists() and not (tmp_path / "b.tar.partial").exists()
