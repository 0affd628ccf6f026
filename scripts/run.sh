#!/usr/bin/env bash
# Run the gateway on loopback with SQLite and a local Orthanc (the PACS), in ./var.
# Extra arguments go to `risgate serve` (for example --role dicom).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/bootstrap.sh run
export RISGATE_CONFIG="${RISGATE_CONFIG:-config/local.toml}"
exec .venv/bin/risgate dev "$@"
