"""Shared fixtures: databases (SQLite and a throw-away PostgreSQL), real gateway processes."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from gateway.db import Database, make_engine
from gateway.local_orthanc import LocalOrthanc, OrthancConfig
from gateway.migrate import upgrade
from tests.support.gateway_proc import GatewayProcess
from tests.support.net import free_port
from tests.support.postgres import PostgresCluster

REQUIRED_TOOLS = ["storescu", "echoscu", "findscu", "Orthanc"]


@pytest.fixture(scope="session")
def pg_cluster() -> Iterator[PostgresCluster]:
    cluster = PostgresCluster()
    cluster.start()
    yield cluster
    cluster.stop()


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'test.db'}"
    cluster: PostgresCluster = request.getfixturevalue("pg_cluster")
    return cluster.create_database()


@pytest.fixture
def database(db_url: str) -> Iterator[Database]:
    db = Database(make_engine(db_url))
    upgrade(db.engine)
    yield db
    db.dispose()


@pytest.fixture
def gateway_factory(tmp_path: Path, db_url: str) -> Iterator[type]:
    started: list[GatewayProcess] = []

    class Factory:
        @staticmethod
        def make(extra: dict | None = None, name: str = "gw") -> GatewayProcess:
            gw = GatewayProcess(tmp_path / name, db_url, extra)
            started.append(gw)
            return gw

    yield Factory
    for gw in started:
        gw.kill()


@pytest.fixture
def gateway(gateway_factory: type) -> GatewayProcess:
    gw = gateway_factory.make()
    gw.start()
    return gw


def pytest_sessionstart(session: pytest.Session) -> None:
    missing = [t for t in REQUIRED_TOOLS if shutil.which(t) is None]
    if missing:
        raise pytest.UsageError(
            f"missing tools {missing}: run scripts/test.sh, which installs them"
        )


@pytest.fixture
def orthanc(tmp_path: Path) -> Iterator[LocalOrthanc]:
    """A real Orthanc on loopback (authentication on), fresh for each test."""
    server = LocalOrthanc(
        OrthancConfig(work_dir=tmp_path / "orthanc", http_port=free_port(), dicom_port=free_port())
    )
    server.start()
    yield server
    server.stop()
