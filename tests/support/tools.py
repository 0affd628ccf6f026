"""Fail a test clearly when a program it needs (dcmtk, Orthanc, PostgreSQL, Chromium) is missing.

Only the fixtures and helpers that start those programs call this, so the ``unit`` tier runs on a
machine that has none of them.
"""

from __future__ import annotations

import shutil

import pytest

INSTALL_HINT = "install it (Debian: dcmtk, orthanc, postgresql, chromium) or run scripts/test.sh"


def require(*names: str) -> None:
    """Fail the calling test, naming the programs that are not on PATH."""
    missing = [name for name in names if shutil.which(name) is None]
    if missing:
        pytest.fail(f"this test needs {', '.join(missing)} on PATH: {INSTALL_HINT}", pytrace=False)
