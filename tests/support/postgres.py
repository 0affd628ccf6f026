"""A throw-away PostgreSQL cluster (Debian's server binaries) for the test session."""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

from tests.support.net import free_port
from tests.support.wait import wait_until


def _bin(name: str) -> str:
    found = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"))
    if not found:
        raise RuntimeError("PostgreSQL server binaries not found: apt-get install postgresql")
    return found[-1]


class PostgresCluster:
    def __init__(self) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="risgate-pg-"))
        self.port = free_port()
        self._counter = 0
        self._as_user: list[str] = []
        if os.geteuid() == 0:
            shutil.chown(self.dir, "postgres", "postgres")
            self._as_user = ["runuser", "-u", "postgres", "--"]

    def _run(self, *args: str) -> None:
        subprocess.run([*self._as_user, *args], check=True, capture_output=True)

    def start(self) -> None:
        data = str(self.dir / "data")
        self._run(_bin("initdb"), "-D", data, "-U", "postgres", "--auth=trust", "-E", "UTF8")
        self._run(
            _bin("pg_ctl"),
            "-D",
            data,
            "-l",
            str(self.dir / "log"),
            "-w",
            "-o",
            f"-p {self.port} -k {self.dir} -c listen_addresses=127.0.0.1 -c fsync=off "
            "-c max_connections=300",
            "start",
        )
        isready = [_bin("pg_isready"), "-h", "127.0.0.1", "-p", str(self.port)]
        wait_until(
            lambda: subprocess.run(isready, capture_output=True).returncode == 0,
            30,
            "PostgreSQL accepting connections",
            interval=0.2,
        )

    def create_database(self) -> str:
        """A new empty database; returns its SQLAlchemy URL."""
        import psycopg

        self._counter += 1
        name = f"t{os.getpid()}_{self._counter}"
        with psycopg.connect(
            f"host=127.0.0.1 port={self.port} user=postgres dbname=postgres", autocommit=True
        ) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/{name}"

    def stop(self) -> None:
        try:
            self._run(_bin("pg_ctl"), "-D", str(self.dir / "data"), "-m", "immediate", "stop")
        finally:
            _remove_later(self.dir)


_REMOVERS: list[subprocess.Popen[bytes]] = []


def _remove_later(path: Path) -> None:
    """Delete the stopped cluster's files without waiting for it: a test session's hundreds
    of databases are gigabytes of small files (~20 s at the end of every suite run)."""
    try:
        _REMOVERS.append(
            subprocess.Popen(
                ["rm", "-rf", "--", str(path)],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                start_new_session=True,  # outlives this process
            )
        )
    except OSError:
        shutil.rmtree(path, ignore_errors=True)
