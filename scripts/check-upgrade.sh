#!/usr/bin/env bash
# Try the newest pydicom and pynetdicom before pinning them: a scratch copy of the project
# and a scratch venv with every other dependency at its constraints.txt version and the
# newest pydicom/pynetdicom (or the versions given, e.g.
# `scripts/check-upgrade.sh pynetdicom==3.1.0`); the copy's dicom_nodes/fast_path.py is
# told those versions are verified, then the DICOM receive/forward tests run on the forced
# fast path and on stock pynetdicom. Changes nothing in the project or its venv.
# If both pass: put the versions in dicom_nodes/fast_path.py (VERIFIED), run
# scripts/freeze-constraints.sh after the upgrade, commit both. See docs/decisions.md.
set -euo pipefail
cd "$(dirname "$0")/.."
wanted=("$@")
[ ${#wanted[@]} -gt 0 ] || wanted=(--upgrade pydicom pynetdicom)
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
mkdir "$scratch/src"
tar --exclude=./.venv --exclude=./var --exclude=.git -c . | tar -x -C "$scratch/src"
python3 -m venv "$scratch/venv"
py="$scratch/venv/bin/python"
grep -v -E '^(pydicom|pynetdicom)==' constraints.txt >"$scratch/constraints.txt"
cd "$scratch/src"
"$py" -m pip install -q --upgrade pip
"$py" -m pip install -q -c "$scratch/constraints.txt" -e '.[test]'
"$py" -m pip install -q -c "$scratch/constraints.txt" "${wanted[@]}"
versions=$("$py" -c 'from importlib.metadata import version as v
print(repr({"pydicom": v("pydicom"), "pynetdicom": v("pynetdicom")}))')
echo "trying: $versions"
sed -i "s/^VERIFIED: Mapping\[str, str\] = .*/VERIFIED: Mapping[str, str] = $versions/" \
  dicom_nodes/fast_path.py
grep -q "^VERIFIED: Mapping\[str, str\] = $versions" dicom_nodes/fast_path.py
dicom=(tests/test_dimse_shortcuts.py tests/test_storescu_sendfile.py
  tests/test_storescu_peer_failures.py tests/test_dicom_receive.py tests/test_forward.py
  tests/test_dicom_state_machine.py)
RISGATE_DICOM__FAST_PATH=force "$py" -m pytest -p no:cacheprovider -q "${dicom[@]}"
RISGATE_DICOM__FAST_PATH=false "$py" -m pytest -p no:cacheprovider -q "${dicom[@]}"
echo "check-upgrade: $versions pass on the fast path and on stock pynetdicom"
