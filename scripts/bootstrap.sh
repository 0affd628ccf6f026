#!/usr/bin/env bash
# Install what the gateway needs on Debian 12 (as root): apt packages and the .venv.
# Usage: scripts/bootstrap.sh [run|test]   -- "test" also installs the test tools.
set -euo pipefail
cd "$(dirname "$0")/.."
mode="${1:-run}"

need=()
command -v storescu >/dev/null 2>&1 || need+=(dcmtk)
command -v Orthanc >/dev/null 2>&1 || need+=(orthanc)
[ -e /usr/share/orthanc/plugins/libOrthancDicomWeb.so ] || need+=(orthanc-dicomweb)
[ -e /usr/share/orthanc/plugins/libOrthancPostgreSQLIndex.so ] || need+=(orthanc-postgresql)
python3 -c "import venv, ensurepip" >/dev/null 2>&1 || need+=(python3-venv)
if [ "$mode" = test ]; then
  compgen -G "/usr/lib/postgresql/*/bin/initdb" >/dev/null || need+=(postgresql)
  command -v chromium >/dev/null 2>&1 || need+=(chromium)
  # Playwright's bundled node driver links libatomic, which a minimal Debian lacks.
  ldconfig -p | grep 'libatomic\.so\.1 ' >/dev/null || need+=(libatomic1)
fi
if [ ${#need[@]} -gt 0 ]; then
  echo "installing: ${need[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi

stamp=.venv/.installed
if [ ! -x .venv/bin/python ]; then
  python3 -m venv .venv
fi
# Exact versions from constraints.txt (scripts/freeze-constraints.sh); re-install when
# either the dependency list or the pins change.
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ] || [ constraints.txt -nt "$stamp" ]; then
  .venv/bin/pip install -q --upgrade pip
  .venv/bin/pip install -q -c constraints.txt -e '.[test]'
  touch "$stamp"
fi

if [ "$mode" = test ] && ! out=$(.venv/bin/python -m playwright --version 2>&1); then
  echo "bootstrap: Playwright's driver does not start: $out" >&2
  exit 1
fi
