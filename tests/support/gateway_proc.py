"""Run ``risgate serve`` as a real process with a generated TOML configuration."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx

from tests.support.net import free_port
from tests.support.wait import wait_until


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return str(value)
    if isinstance(value, list):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    text = str(value).replace("\\", "\\\\").replace('"', '\\"')
    return f'"{text}"'


def to_toml(config: dict[str, Any]) -> str:
    """Enough TOML for test configs: top-level keys, sections, arrays of tables."""
    lines: list[str] = []
    tables: list[tuple[str, dict[str, Any]]] = []
    for key, value in config.items():
        if isinstance(value, dict):
            tables.append((key, value))
        else:
            lines.append(f"{key} = {_toml_value(value)}")
    for name, table in tables:
        lines.append(f"\n[{name}]")
        arrays: list[tuple[str, list[dict[str, Any]]]] = []
        for key, value in table.items():
            if isinstance(value, list) and value and isinstance(value[0], dict):
                arrays.append((key, value))
            elif isinstance(value, dict):
                lines.append(f"[{name}.{key}]")
                lines.extend(f"{k} = {_toml_value(v)}" for k, v in value.items())
            else:
                lines.append(f"{key} = {_toml_value(value)}")
        for key, items in arrays:
            for item in items:
                lines.append(f"\n[[{name}.{key}]]")
                lines.extend(f"{k} = {_toml_value(v)}" for k, v in item.items())
    return "\n".join(lines) + "\n"


def deep_merge(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = deep_merge(out[key], value)
        else:
            out[key] = value
    return out


ADMIN_NAME = "test-admin"
TEST_PASSWORD = "test-password-1"

DEFAULT_PEERS = [
    {"ae_title": "STORESCU", "host": "127.0.0.1"},
    {"ae_title": "ECHOSCU", "host": "127.0.0.1"},
    {"ae_title": "FINDSCU", "host": "127.0.0.1", "modality": "CT"},
    {"ae_title": "MODALITY", "host": "127.0.0.1", "modality": "CT"},
]


class GatewayProcess:
    def __init__(self, work: Path, db_url: str, extra: dict[str, Any] | None = None) -> None:
        self.work = work
        self.work.mkdir(parents=True, exist_ok=True)
        self.dicom_port = free_port()
        self.http_port = free_port()
        self.hl7_port = free_port()
        config: dict[str, Any] = {
            "data_dir": str(work / "var"),
            "dicom": {"port": self.dicom_port, "peers": DEFAULT_PEERS},
            "hl7": {"port": self.hl7_port},
            "http": {"port": self.http_port},
            "database": {"url": db_url},
            "studies": {"stable_after_s": 2},
            "worker": {"poll_interval_s": 0.2},
            # No PACS unless a test names one (the default points at a local Orthanc).
            "forward": {"destinations": [], "backoff_base_s": 0.5, "backoff_cap_s": 2.0},
        }
        self.config = deep_merge(config, extra or {})
        self.config_path = work / "risgate.toml"
        self.config_path.write_text(to_toml(self.config))
        self.log_path = work / "gateway.log"
        self.process: subprocess.Popen[bytes] | None = None
        self.db_url = db_url
        self.token: str | None = None  # an admin's API token, made by start()

    @property
    def headers(self) -> dict[str, str]:
        """Credentials for raw HTTP calls: ``httpx.get(url, headers=gw.headers)``."""
        if self.token is None:
            self.token = self.user_token(ADMIN_NAME, "admin")
        return {"Authorization": f"Bearer {self.token}"}

    def user_token(self, name: str, role: str, password: str | None = TEST_PASSWORD) -> str:
        """Create user ``name`` (migrating the database first) if needed; a new API token."""
        from gateway.auth import accounts
        from gateway.core.database import Database, make_engine
        from gateway.core.migrate import upgrade

        db = Database(make_engine(self.db_url))
        try:
            upgrade(db.engine)
            with db.write_session() as session:
                user = accounts.find_user(session, name)
                if user is None:
                    user = accounts.create_user(session, name, role, password)
                return accounts.create_token(session, user, "tests")
        finally:
            db.dispose()

    def create_user(self, name: str, role: str, password: str = TEST_PASSWORD) -> None:
        """``risgate users create`` against this gateway's configuration."""
        pw_file = self.work / f".pw-{name}"
        pw_file.write_text(password + "\n")
        subprocess.run(
            [sys.executable, "-m", "gateway", "--config", str(self.config_path), "users",
             "create", "--role", role, "--password-file", str(pw_file), name],
            check=True, capture_output=True, timeout=60,
        )  # fmt: skip

    def stored_file(self, sop_uid: str) -> Path | None:
        """The store's file of the instance indexed as ``sop_uid``; None if not indexed."""
        from sqlalchemy import create_engine, select

        from gateway.core.models import Instance

        engine = create_engine(self.config["database"]["url"])
        try:
            with engine.connect() as conn:
                relative = conn.execute(
                    select(Instance.path).where(Instance.sop_instance_uid == sop_uid)
                ).scalar()
        finally:
            engine.dispose()
        if relative is None:
            return None
        return Path(self.config["data_dir"]) / "store" / "instances" / relative

    @property
    def api(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    def start(self, timeout: float = 60.0) -> None:
        self.headers  # noqa: B018 -- an admin token for the API calls of the tests
        log = open(self.log_path, "ab")  # noqa: SIM115
        env = dict(os.environ)
        env.pop("RISGATE_CONFIG", None)
        self.process = subprocess.Popen(
            [sys.executable, "-m", "gateway", "--config", str(self.config_path), "serve"],
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
            start_new_session=True,
        )
        log.close()
        process = self.process

        def ready() -> bool:
            if process.poll() is not None:
                raise RuntimeError(f"gateway exited: {self.log_path.read_text()[-3000:]}")
            try:
                return httpx.get(f"{self.api}/healthz", timeout=2).status_code == 200
            except httpx.HTTPError:
                return False

        wait_until(ready, timeout, "the gateway's /healthz", interval=0.2)

    def kill(self) -> None:
        """SIGKILL the whole process group (the gateway and its children)."""
        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()
        self.process = None

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(20)
            except subprocess.TimeoutExpired:
                self.kill()
        self.process = None

    def get(self, path: str, **params: Any) -> Any:
        r = httpx.get(f"{self.api}{path}", params=params, headers=self.headers, timeout=30)
        r.raise_for_status()
        return r.json()
