"""The API's OpenAPI document is the contract clients are built on: it changes only on
purpose. A change fails here; if intended, regenerate the snapshot with
``RISGATE_UPDATE_OPENAPI=1 pytest tests/test_openapi.py`` and say so in the commit."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from gateway.core.settings import Settings
from gateway.process.http_app import create_app
from gateway.process.startup import create_context

pytestmark = pytest.mark.unit

SNAPSHOT = Path(__file__).parent / "fixtures" / "openapi.json"


def test_openapi_document_matches_the_snapshot(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path, database={"url": f"sqlite:///{tmp_path / 'g.db'}"})
    service = create_context(settings)
    try:
        document = json.dumps(create_app(service).openapi(), sort_keys=True, indent=1) + "\n"
    finally:
        service.close()
    if os.environ.get("RISGATE_UPDATE_OPENAPI") == "1":
        SNAPSHOT.write_text(document)
    assert json.loads(document) == json.loads(SNAPSHOT.read_text())
