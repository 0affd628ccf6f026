"""Shared fixtures (databases, real gateway processes, a real Orthanc) and the test tiers.

Every test carries at least one tier marker (registered in pyproject.toml):

- ``unit``: logic in this process, SQLite at most, loopback sockets it opens itself, the
  project's own CLI; runs with none of dcmtk, Orthanc, PostgreSQL or Chromium installed
  (``pytest -m unit``);
- ``integration``: real servers or programs (dcmtk, Orthanc, PostgreSQL, a gateway process);
- ``browser``: a real headless Chromium; ``proof``: long proofs, bounded unless RISGATE_PROOF=full.

A test using the ``db_url``/``database`` fixtures gets its tier from the database: the SQLite
variant is ``unit``, the PostgreSQL variant ``integration``. A test that also needs real servers is
``integration`` whatever the database, so the hook below drops the SQLite variant's ``unit``.
A test with no tier, or one marked ``unit`` that reaches PostgreSQL, stops the run.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from gateway.core.database import Database, make_engine
from gateway.core.migrate import upgrade
from gateway.operations.local_orthanc import LocalOrthanc, OrthancConfig
from tests.support.gateway_proc import GatewayProcess
from tests.support.net import free_port
from tests.support.postgres import PostgresCluster
from tests.support.tools import require

TIERS = ("unit", "integration", "browser", "proof")
HEAVY_TIERS = frozenset(TIERS[1:])


@pytest.fixture(scope="session")
def pg_cluster() -> Iterator[PostgresCluster]:
    """One throw-away PostgreSQL for the session (Debian's server binaries, not on PATH)."""
    cluster = PostgresCluster()
    cluster.start()
    yield cluster
    cluster.stop()


@pytest.fixture(
    params=[
        pytest.param("sqlite", marks=pytest.mark.unit),
        pytest.param("postgresql", marks=pytest.mark.integration),
    ]
)
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


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Settle each tier before ``-m`` selects; refuse tests whose tier is missing or false."""
    untiered: list[str] = []
    contradictory: list[str] = []
    for item in items:
        names = {mark.name for mark in item.iter_markers()}
        if names & HEAVY_TIERS and "unit" in names:
            # the SQLite parameter's ``unit`` does not hold for a test that starts real servers
            item.own_markers[:] = [m for m in item.own_markers if m.name != "unit"]
            names = {mark.name for mark in item.iter_markers()}
        if not names & set(TIERS):
            untiered.append(item.nodeid)
        elif "unit" in names and names & HEAVY_TIERS:
            contradictory.append(item.nodeid)
    if untiered:
        raise pytest.UsageError(
            f"tests without a tier marker ({', '.join(TIERS)}): " + " ".join(untiered)
        )
    if contradictory:
        raise pytest.UsageError(
            "tests marked unit that need real servers or PostgreSQL (let the database fixture "
            "give the tier): " + " ".join(contradictory)
        )


@pytest.fixture
def orthanc(tmp_path: Path) -> Iterator[LocalOrthanc]:
    """A real Orthanc on loopback (authentication on), fresh for each test.

    The Orthanc fixtures end their server with SIGKILL: its work dir is thrown away, and a
    SIGTERM'd Orthanc takes 3.3 s to stop when idle and runs into ``stop()``'s 15 s limit
    after a correction or a merge (tests/test_resend.py, tests/test_reconcile.py)."""
    require("Orthanc")
    server = LocalOrthanc(
        OrthancConfig(work_dir=tmp_path / "orthanc", http_port=free_port(), dicom_port=free_port())
    )
    server.start()
    yield server
    server.kill()


@pytest.fixture
def pacs(tmp_path: Path) -> Iterator[LocalOrthanc]:
    """A real Orthanc keeping the first copy of a re-sent instance (``OverwriteInstances``
    off), as a hospital's PACS may be set up: corrections must not rely on overwriting."""
    server = LocalOrthanc(
        OrthancConfig(
            work_dir=tmp_path / "pacs",
            http_port=free_port(),
            dicom_port=free_port(),
            extra={"OverwriteInstances": False},
        )
    )
    server.start()
    yield server
    server.kill()
