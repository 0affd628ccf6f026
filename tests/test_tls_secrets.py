"""Secrets stay out of the configuration file: every secret-bearing key has a ``*_file``
sibling or comes from the environment, and ``risgate check-config`` never prints one."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from gateway.core.settings import load_settings

pytestmark = pytest.mark.unit


def test_secrets_from_files_and_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "db_url").write_text("postgresql://risgate:s3cret-db@db/risgate\n")
    (tmp_path / "pacs_pw").write_text("s3cret-pacs\n")
    cfg = tmp_path / "c.toml"
    cfg.write_text(
        f'[database]\nurl_file = "{tmp_path / "db_url"}"\n'
        f'[[forward.destinations]]\nname = "pacs"\npassword_file = "{tmp_path / "pacs_pw"}"\n'
    )
    s = load_settings(cfg)
    assert s.database_url == "postgresql://risgate:s3cret-db@db/risgate"
    assert s.forward.destinations[0].secret() == "s3cret-pacs"
    assert "s3cret" not in cfg.read_text()
    monkeypatch.setenv("RISGATE_DATABASE__URL", "postgresql://risgate:s3cret-env@db/risgate")
    assert load_settings(cfg).database_url.endswith(":s3cret-env@db/risgate")


def test_check_config_hides_secrets(tmp_path: Path) -> None:
    cfg = tmp_path / "c.toml"
    cfg.write_text(
        '[database]\nurl = "postgresql://risgate:s3cret-db@db/risgate"\n'
        '[[forward.destinations]]\nname = "pacs"\npassword = "s3cret-pacs"\n'
    )
    r = subprocess.run(
        [sys.executable, "-m", "gateway", "--config", str(cfg), "check-config"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert r.returncode == 0, r.stderr
    assert "s3cret" not in r.stdout
    assert "risgate:***@db/risgate" in r.stdout
