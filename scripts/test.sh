#!/usr/bin/env bash
# Run the whole test suite: lint, format check, type check, then pytest (SQLite and a
# throw-away PostgreSQL, real dcmtk, Orthanc and Chromium). Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/bootstrap.sh test
.venv/bin/ruff check .
.venv/bin/ruff format --check .
.venv/bin/mypy gateway dicom_nodes hl7 pricing_norms
.venv/bin/pytest -p no:cacheprovider "$@"
