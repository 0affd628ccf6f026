#!/usr/bin/env bash
# Run the whole test suite: lint, format, types, import contracts, then pytest (SQLite and a
# throw-away PostgreSQL, real dcmtk, Orthanc and Chromium), then the DICOM receive/forward
# tests on stock pynetdicom. Extra arguments go to pytest (and skip that second run).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/bootstrap.sh test
.venv/bin/ruff check .
.venv/bin/ruff format --check .
.venv/bin/mypy gateway dicom_nodes hl7 pricing_norms
.venv/bin/lint-imports  # import contracts: [tool.importlinter] in pyproject.toml
.venv/bin/pytest -p no:cacheprovider "$@"
if [ $# -eq 0 ]; then
  # The DICOM receive, forward (corrected too) and state-machine tests on stock pynetdicom
  # (dicom.fast_path = false, docs/decisions.md): the fallback must keep working, not only
  # exist. SQLite variants only: the database is the same code on both paths.
  RISGATE_DICOM__FAST_PATH=false .venv/bin/pytest -p no:cacheprovider -q -k "not postgresql" \
    tests/test_dicom_receive.py tests/test_forward.py tests/test_dicom_state_machine.py \
    tests/test_coerce_stream_orthanc.py tests/test_proof_hostile_dicom.py tests/test_storescu_idle.py
fi
