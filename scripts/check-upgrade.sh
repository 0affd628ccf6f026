#!/usr/bin/env bash
# Try the newest pydicom and pynetdicom before pinning them: a scratch venv with every
# other dependency at its constraints.txt version, the newest pydicom/pynetdicom (or the
# versions given, e.g. `scripts/check-upgrade.sh pynetdicom==3.1.0`), then the fast-path
# tests, on the fast path and on stock pynetdicom. Changes nothing in the project venv.
# If it passes: update dicom_nodes/fast_path.py's VERIFIED versions, re-run the DICOM
# tests, then scripts/freeze-constraints.sh. See docs/decisions.md.
set -euo pipefail
cd "$(dirname "$0")/.."
wanted=("$@")
[ ${#wanted[@]} -gt 0 ] || wanted=(--upgrade pydicom pynetdicom)
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
python3 -m venv "$scratch/venv"
py="$scratch/venv/bin/python"
grep -v -E '^(pydicom|pynetdicom)==' constraints.txt >"$scratch/constraints.txt"
"$py" -m pip install -q --upgrade pip
"$py" -m pip install -q -c "$scratch/constraints.txt" -e '.[test]'
"$py" -m pip install -q -c "$scratch/constraints.txt" "${wanted[@]}"
"$py" -m pip show pydicom pynetdicom | grep -E '^(Name|Version):'
dicom=(tests/test_dimse_shortcuts.py tests/test_storescu_sendfile.py
  tests/test_storescu_peer_failures.py tests/test_dicom_receive.py tests/test_forward.py)
# The fast path refuses versions it was not verified with unless forced: force it here.
RISGATE_DICOM__FAST_PATH=force "$py" -m pytest -p no:cacheprovider -q "${dicom[@]}"
RISGATE_DICOM__FAST_PATH=false "$py" -m pytest -p no:cacheprovider -q "${dicom[@]}"
