"""The production stack (docker-compose.yml, Dockerfile, deploy/) is consistent.

No Docker engine runs here, so both files are parsed and checked as structures: the
services and what they depend on, healthchecks, named volumes on every data directory,
secrets from files, gateway environment keys that the settings really read (and that
land where they should), and a Dockerfile whose instructions install and run the project
as the compose file expects.
"""

from __future__ import annotations

import json
import shlex
import tomllib
from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import BaseModel

from gateway.auth.policy import PUBLIC, RULES
from gateway.core.settings import CONFIG_ENV, Settings, load_settings

pytestmark = pytest.mark.unit

ROOT = Path(__file__).parent.parent
DATA_DIRS = {
    "postgres": "/var/lib/postgresql/data",
    "orthanc": "/var/lib/orthanc/db",
    "gateway": "/var/lib/risgate",
}


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())


def dockerfile() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, continuation lines joined, comments dropped."""
    instructions: list[tuple[str, str]] = []
    pending = ""
    for line in (ROOT / "Dockerfile").read_text().splitlines():
        if not pending and (not line.strip() or line.lstrip().startswith("#")):
            continue
        pending += line.rstrip()
        if pending.endswith("\\"):
            pending = pending[:-1] + " "
            continue
        keyword, _, args = pending.strip().partition(" ")
        instructions.append((keyword.upper(), args.strip()))
        pending = ""
    return instructions


def _ports(service: dict[str, Any]) -> set[int]:
    """Container ports a compose service publishes."""
    return {int(str(p).rsplit(":", 1)[-1]) for p in service.get("ports", [])}


def _settings_path_exists(path: list[str]) -> bool:
    model: type[BaseModel] = Settings
    for i, part in enumerate(path):
        field = model.model_fields.get(part)
        if field is None:
            return False
        annotation = field.annotation
        if i < len(path) - 1:
            if not (isinstance(annotation, type) and issubclass(annotation, BaseModel)):
                return False
            model = annotation
    return True


def test_services_dependencies_and_ports(compose: dict[str, Any]) -> None:
    services = compose["services"]
    assert set(services) == {"gateway", "orthanc", "postgres"}
    assert services["gateway"]["build"] == "."
    assert services["orthanc"]["image"].startswith("orthancteam/orthanc:")
    assert services["postgres"]["image"].startswith("postgres:")
    gateway_deps = services["gateway"]["depends_on"]
    assert gateway_deps["postgres"]["condition"] == "service_healthy"
    assert "orthanc" in gateway_deps
    assert services["orthanc"]["depends_on"]["postgres"]["condition"] == "service_healthy"
    for name, service in services.items():
        assert service["restart"] == "unless-stopped", name
    # The gateway publishes the ports its configuration listens on.
    deploy = tomllib.loads((ROOT / "deploy" / "risgate.toml").read_text())
    defaults = Settings()
    listening = {
        deploy.get("dicom", {}).get("port", defaults.dicom.port),
        deploy.get("hl7", {}).get("port", defaults.hl7.port),
        deploy.get("http", {}).get("port", defaults.http.port),
    }
    assert _ports(services["gateway"]) == listening
    assert 8042 in _ports(services["orthanc"])


def test_healthchecks(compose: dict[str, Any]) -> None:
    postgres = compose["services"]["postgres"]
    check = postgres["healthcheck"]
    assert check["test"][0] == "CMD-SHELL" and "pg_isready" in check["test"][1]
    env = postgres["environment"]
    assert f"-U {env['POSTGRES_USER']}" in check["test"][1]
    assert f"-d {env['POSTGRES_DB']}" in check["test"][1]
    assert check["retries"] >= 1
    # The gateway's healthcheck is in its image: an HTTP GET of /healthz on the HTTP port.
    [(_, health)] = [(k, a) for k, a in dockerfile() if k == "HEALTHCHECK"]
    assert "--interval=" in health and " CMD " in f" {health}"
    http_port = Settings().http.port
    assert f"http://127.0.0.1:{http_port}/healthz" in health
    # /healthz answers without a login (the healthcheck has no credentials)
    assert RULES[("GET", "/healthz")] == PUBLIC


def test_named_volumes_hold_every_data_directory(compose: dict[str, Any]) -> None:
    declared = set(compose["volumes"])
    used: set[str] = set()
    for name, service in compose["services"].items():
        mounts = dict(str(v).split(":")[:2] for v in service.get("volumes", []))
        named = {source for source in mounts if not source.startswith((".", "/"))}
        assert named <= declared, f"{name} uses undeclared volumes {named - declared}"
        used |= named
        data_mount = [source for source, target in mounts.items() if target == DATA_DIRS[name]]
        assert data_mount and data_mount[0] in declared, f"{name}: data not on a named volume"
    assert used == declared, f"declared but unused volumes: {declared - used}"
    gateway = compose["services"]["gateway"]
    assert gateway["environment"]["RISGATE_DATA_DIR"] == DATA_DIRS["gateway"]


def test_no_secret_in_clear(compose: dict[str, Any]) -> None:
    for service in compose["services"].values():
        for key in service.get("environment", {}):
            assert "PASSWORD" not in key or key.endswith("_FILE"), key
        assert set(service.get("secrets", [])) <= set(compose["secrets"])
    for name, secret in compose["secrets"].items():
        assert secret["file"].startswith("./secrets/"), name
    assert "secrets/" in (ROOT / ".gitignore").read_text().splitlines()


def test_gateway_environment_keys_are_read_by_the_settings(compose: dict[str, Any]) -> None:
    env = compose["services"]["gateway"]["environment"]
    unknown = [
        key
        for key in env
        if key.startswith("RISGATE_")
        and key != CONFIG_ENV
        and not _settings_path_exists(key.removeprefix("RISGATE_").lower().split("__"))
    ]
    assert unknown == [], f"environment keys no setting reads: {unknown}"


def test_compose_environment_and_config_load(
    compose: dict[str, Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The gateway's environment and deploy/risgate.toml, as the container sees them."""
    service = compose["services"]["gateway"]
    mounts = dict(str(v).split(":")[:2][::-1] for v in service["volumes"])
    secrets = {f"/run/secrets/{name}": tmp_path / name for name in service["secrets"]}
    (tmp_path / "database_url").write_text("postgresql://risgate:x@postgres/risgate\n")
    (tmp_path / "orthanc_password").write_text("s3cret\n")
    env = dict(service["environment"])
    config_in_container = env.pop(CONFIG_ENV)
    config_source = ROOT / mounts[config_in_container]
    config = tmp_path / "risgate.toml"
    text = config_source.read_text()
    for in_container, here in secrets.items():
        text = text.replace(in_container, str(here))
    config.write_text(text)
    for key, value in env.items():
        monkeypatch.setenv(key, str(secrets.get(str(value), value)))
    settings = load_settings(config)
    assert settings.dicom.host == settings.hl7.host == settings.http.host == "0.0.0.0"
    assert settings.data_dir == Path(DATA_DIRS["gateway"])
    assert settings.database_url == "postgresql://risgate:x@postgres/risgate"
    dest = settings.forward.destinations[0]
    orthanc = compose["services"]["orthanc"]["environment"]
    assert (dest.host, dest.port) == ("orthanc", int(orthanc["ORTHANC__DICOM_PORT"]))
    assert dest.ae_title == orthanc["ORTHANC__DICOM_AET"]
    assert dest.url == "http://orthanc:8042"
    assert dest.secret() == "s3cret"
    # Orthanc knows the gateway under its AE title, at the service name and DICOM port.
    modalities = json.loads(orthanc["ORTHANC__DICOM_MODALITIES"])
    assert [settings.dicom.ae_title, "gateway", settings.dicom.port] in modalities.values()


def test_dockerfile_installs_and_runs_the_project(compose: dict[str, Any]) -> None:
    steps = dockerfile()
    keywords = [k for k, _ in steps]
    assert keywords[0] == "FROM" and steps[0][1].startswith("python:3.1")
    copied = {src for k, a in steps if k == "COPY" for src in shlex.split(a)[:-1]}
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    include = pyproject["tool"]["setuptools"]["packages"]["find"]["include"]
    packages = {pattern.rstrip("*") for pattern in include}
    assert packages | {"pyproject.toml", "README.md", "constraints.txt"} <= copied
    # The image installs the exact versions the tests ran with (constraints.txt).
    assert ("RUN", "pip install -c constraints.txt .") in steps
    # Runs as the unprivileged user, set before the command.
    assert keywords.index("USER") < keywords.index("CMD")
    assert dict(steps)["USER"] == "risgate"
    assert json.loads(dict(steps)["CMD"]) == ["risgate", "serve"]
    assert pyproject["project"]["scripts"]["risgate"] == "gateway.cli:main"
    exposed = {int(p) for k, a in steps if k == "EXPOSE" for p in a.split()}
    assert exposed == _ports(compose["services"]["gateway"])
    env = dict(shlex.split(a)[0].split("=", 1) for k, a in steps if k == "ENV" and "=" in a)
    assert env.get(CONFIG_ENV) == compose["services"]["gateway"]["environment"][CONFIG_ENV]
