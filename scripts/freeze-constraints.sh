#!/usr/bin/env bash
# Regenerate constraints.txt from the project venv (after the tests passed with it).
set -euo pipefail
cd "$(dirname "$0")/.."
.venv/bin/python scripts/freeze_constraints.py constraints.txt
