"""The production stack (docker-compose.yml, Dockerfile, deploy/) is consistent.

No Docker engine runs here, so the file is parsed and checked: services, ports, wiring
by environment, secrets from files, and a gateway configuration that validates.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from gateway.settings import load_settings

pytestmark = pytest.mark.unit

ROOT = Path(__file__).parent.parent


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())


def test_services_and_ports(compose: dict) -> None:
    services = compose["services"]
    assert set(services) == {"gateway", "orthanc", "postgres"}
    assert set(services["gateway"]["ports"]) == {"11112:11112", "2575:2575", "8080:8080"}
    assert services["gateway"]["build"] == "."
    assert services["orthanc"]["image"].startswith("orthancteam/orthanc:")
    assert services["postgres"]["image"].startswith("postgres:")
    assert "service_healthy" in str(services["gateway"]["depends_on"]["postgres"])


def test_wiring_by_environment(compose: dict) -> None:
    gw = compose["services"]["gateway"]["environment"]
    assert gw["RISGATE_DICOM__HOST"] == "0.0.0.0"
    assert gw["RISGATE_HTTP__HOST"] == "0.0.0.0"
    assert gw["TCP_NODELAY"] == "1"
    assert gw["RISGATE_DATABASE__URL_FILE"].startswith("/run/secrets/")
    orthanc = compose["services"]["orthanc"]["environment"]
    assert orthanc["TCP_NODELAY"] == "1"
    assert orthanc["POSTGRESQL_PLUGIN_ENABLED"] == "true"
    assert orthanc["ORTHANC__POSTGRESQL__HOST"] == "postgres"
    assert orthanc["ORTHANC__AUTHENTICATION_ENABLED"] == "true"
    assert orthanc["ORTHANC__MAXIMUM_PDU_LENGTH"] == "131072"


def test_no_secret_in_clear(compose: dict) -> None:
    for service in compose["services"].values():
        for key in service.get("environment", {}):
            assert "PASSWORD" not in key or key.endswith("_FILE"), key
    for name, secret in compose["secrets"].items():
        assert secret["file"].startswith("./secrets/"), name
    assert "secrets/" in (ROOT / ".gitignore").read_text()


def test_volumes_persist_data(compose: dict) -> None:
    assert {"pgdata", "orthanc-storage", "risgate-data"} <= set(compose["volumes"])
    gw_volumes = compose["services"]["gateway"]["volumes"]
    assert "risgate-data:/var/lib/risgate" in gw_volumes


def test_gateway_config_validates(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    secret = tmp_path / "orthanc_password"
    secret.write_text("s3cret\n")
    text = (ROOT / "deploy" / "risgate.toml").read_text()
    config = tmp_path / "risgate.toml"
    config.write_text(text.replace("/run/secrets/orthanc_password", str(secret)))
    for key, value in {
        "RISGATE_DICOM__HOST": "0.0.0.0",
        "RISGATE_DATABASE__URL": "postgresql://risgate:x@postgres/risgate",
    }.items():
        monkeypatch.setenv(key, value)
    settings = load_settings(config)
    dest = settings.forward.destinations[0]
    assert (dest.host, dest.port, dest.url) == ("orthanc", 4242, "http://orthanc:8042")
    assert dest.secret() == "s3cret"
    assert settings.dicom.host == "0.0.0.0"


def test_dockerfile_installs_the_project() -> None:
    text = (ROOT / "Dockerfile").read_text()
    assert "pip install ." in text
    assert 'CMD ["risgate", "serve"]' in text
    assert "USER risgate" in text
