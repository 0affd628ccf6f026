"""Run Debian's Orthanc on loopback with a generated configuration.

Used by ``scripts/run.sh`` (a local PACS beside the gateway), the tests and the benchmarks.
Authentication is on, remote access off, TCP_NODELAY=1 in its environment (measured
here: without it every C-STORE answer stalls about 45 ms).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from gateway.core.procutil import die_with_parent


@dataclass
class OrthancConfig:
    work_dir: Path
    http_port: int = 8042
    dicom_port: int = 4242
    aet: str = "ORTHANC"
    username: str = "risgate"
    password: str = "risgate"  # noqa: S105 - tests and benchmarks; `risgate dev` makes one
    dicom_peers: dict[str, list[object]] = field(default_factory=dict)
    max_pdu: int = 131072
    plugins: list[str] = field(default_factory=list)
    extra: dict[str, object] = field(default_factory=dict)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    def as_json(self) -> dict[str, object]:
        storage = self.work_dir / "storage"
        config: dict[str, object] = {
            "Name": "risgate-local-orthanc",
            "StorageDirectory": str(storage),
            "IndexDirectory": str(storage),
            "HttpPort": self.http_port,
            "DicomPort": self.dicom_port,
            "DicomAet": self.aet,
            "RemoteAccessAllowed": False,
            "AuthenticationEnabled": True,
            "RegisteredUsers": {self.username: self.password},
            "DicomModalities": self.dicom_peers,
            "DicomCheckCalledAet": False,
            "DicomAlwaysAllowStore": True,
            "DicomAlwaysAllowEcho": True,
            "MaximumPduLength": self.max_pdu,
            "StorageCompression": False,
            "OverwriteInstances": True,
            "HttpServerEnabled": True,
            "HttpTimeout": 60,
            "HttpThreadsCount": 20,
            "DicomThreadsCount": 8,
            "Plugins": [str(p) for p in self.plugins],
            "StableAge": 5,
        }
        config.update(self.extra)
        return config


class LocalOrthanc:
    """A real Orthanc process; start(), wait_ready(), stop()."""

    def __init__(
        self, config: OrthancConfig, binary: str = "Orthanc", *, die_with_parent: bool = True
    ) -> None:
        self.config = config
        self.die_with_parent = die_with_parent
        self.binary = shutil.which(binary) or binary
        self.process: subprocess.Popen[bytes] | None = None

    def write_config(self) -> Path:
        self.config.work_dir.mkdir(parents=True, exist_ok=True)
        path = self.config.work_dir / "orthanc.json"
        path.write_text(json.dumps(self.config.as_json(), indent=2))
        return path

    def start(self, timeout: float = 30.0) -> None:
        path = self.write_config()
        log = open(self.config.work_dir / "orthanc.log", "ab")  # noqa: SIM115
        env = dict(os.environ, TCP_NODELAY="1")
        self.process = subprocess.Popen(
            [self.binary, str(path)],
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
            preexec_fn=die_with_parent if self.die_with_parent else None,
        )
        log.close()
        self.wait_ready(timeout)

    def client(self) -> httpx.Client:
        return httpx.Client(
            base_url=self.config.url,
            auth=(self.config.username, self.config.password),
            timeout=30,
        )

    def wait_ready(self, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process is not None and self.process.poll() is not None:
                raise RuntimeError(f"Orthanc exited with {self.process.returncode}")
            try:
                with self.client() as c:
                    if c.get("/system").status_code == 200:
                        return
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        raise TimeoutError("Orthanc did not become ready")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait()
        self.process = None
