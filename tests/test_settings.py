"""Settings: TOML file, environment overrides, errors naming the key, docs listing every key."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import BaseModel

from gateway.core.settings import DestinationSettings, Settings, SettingsError, load_settings

pytestmark = pytest.mark.unit

DOC = Path(__file__).parent.parent / "docs" / "configuration.md"


def _keys(model: type[BaseModel], prefix: str = "") -> list[str]:
    keys = []
    for name, field in model.model_fields.items():
        ann = field.annotation
        if isinstance(ann, type) and issubclass(ann, BaseModel) and prefix == "":
            keys += _keys(ann, f"{name}.")
        elif name == "destinations":
            keys.append(prefix + name)
            keys += [f"{prefix}{name}[].{k}" for k in _keys(DestinationSettings)]
        else:
            keys.append(prefix + name)
    return keys


def test_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("RISGATE_CONFIG", raising=False)
    s = Settings()
    assert (s.dicom.ae_title, s.dicom.port, s.hl7.port, s.http.port) == (
        "RISGATE",
        11112,
        2575,
        8080,
    )
    assert s.dicom.host == s.hl7.host == s.http.host == "127.0.0.1"
    assert s.database_url.endswith("var/risgate.db")


def test_toml_and_env_override(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cfg = tmp_path / "c.toml"
    cfg.write_text('[dicom]\nport = 104\nae_title = "GW"\n[[dicom.peers]]\nae_title = "CT1"\n')
    monkeypatch.setenv("RISGATE_DICOM__PORT", "1104")
    s = load_settings(cfg)
    assert s.dicom.port == 1104
    assert s.dicom.ae_title == "GW"
    assert [p.ae_title for p in s.dicom.peers] == ["CT1"]


@pytest.mark.parametrize(
    ("toml", "key"),
    [
        ("[dicom]\nport = 70000\n", "dicom.port"),
        ("[dicom]\nportt = 1\n", "dicom.portt"),
        ('[dicom]\nae_title = "A\\\\B"\n', "dicom.ae_title"),
        ('[log]\nlevel = "LOUD"\n', "log.level"),
    ],
)
def test_bad_key_named(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, toml: str, key: str
) -> None:
    monkeypatch.delenv("RISGATE_DICOM__PORT", raising=False)
    cfg = tmp_path / "c.toml"
    cfg.write_text(toml)
    with pytest.raises(SettingsError) as exc:
        load_settings(cfg)
    assert key in str(exc.value)


def test_missing_file() -> None:
    with pytest.raises(SettingsError, match="not found"):
        load_settings("/nonexistent/risgate.toml")


def test_every_key_documented() -> None:
    text = DOC.read_text()

    def documented(key: str) -> bool:
        if f"`{key}`" in text:
            return True  # destination keys may be listed together: `.host`, `.port`
        return "[]." in key and f".{key.rsplit('.', 1)[-1]}`" in text

    missing = [k for k in _keys(Settings) if not documented(k)]
    assert not missing, f"add to docs/configuration.md: {missing}"
