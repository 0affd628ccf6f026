#!/usr/bin/env bash
# Check that the README's two commands pass on a stock Debian 12 (bookworm) with its own
# Python (3.11.2): debootstrap a minimal root with only python3, python3-venv, git, curl and
# ca-certificates, clone this repository's committed HEAD into it, then in a chroot run
# scripts/run.sh until /healthz answers (and stop it), then scripts/test.sh; prints the
# closing lines of both. Needs root and network access to a Debian mirror and PyPI, no
# Docker. Takes long (the whole suite): not part of .ci/run.
# Usage: scripts/check-debian12.sh [ROOT]   ROOT defaults to /var/tmp/risgate-bookworm and
#        is wiped first; the logs go to ROOT-logs/.
# Environment: DEBIAN_MIRROR (default: the Debian mirror in this machine's apt sources),
#        RUN_TIMEOUT_S (default 1800): how long scripts/run.sh may take to answer /healthz.
set -euo pipefail

if [ "${1:-}" != --in-namespace ]; then
  [ "$(id -u)" = 0 ] || { echo "check-debian12: run as root" >&2; exit 2; }
  # Private mount and PID namespaces: every mount and process of the check ends with it.
  exec unshare --mount --pid --fork --kill-child --propagation private "$(realpath "$0")" --in-namespace "$@"
fi
shift

repo=$(cd "$(dirname "$0")/.." && pwd)
root=$(realpath -m "${1:-/var/tmp/risgate-bookworm}")
logs="$root-logs"
sha=$(git -C "$repo" rev-parse HEAD)
say() { echo "check-debian12: $*"; }

sources() { grep -rhE '^(deb |URIs:)' /etc/apt/sources.list /etc/apt/sources.list.d 2>/dev/null || true; }
mirror=${DEBIAN_MIRROR:-$(sources | grep -oE 'https?://[^ ]+/debian/?( |$)' | head -1 | tr -d ' ')}
mirror=${mirror:-http://deb.debian.org/debian}
security=$(sources | grep -oE 'https?://[^ ]+/debian-security/?' | head -1)
security=${security:-${mirror%/debian*}/debian-security}

mounts=()
cleanup() {
  local i
  for ((i = ${#mounts[@]} - 1; i >= 0; i--)); do umount -l "${mounts[i]}" 2>/dev/null || true; done
}
trap cleanup EXIT
mnt() { mount "$@"; mounts+=("${*: -1}"); }

command -v debootstrap >/dev/null 2>&1 || {
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends debootstrap >/dev/null
}
if findmnt -rn -o TARGET | grep -q "^$root/"; then
  say "something is mounted under $root: unmount it first" >&2
  exit 2
fi
rm -rf --one-file-system "$root" "$logs"
mkdir -p "$logs"

say "debootstrap bookworm (minbase) from $mirror into $root"
debootstrap --variant=minbase --include=python3,python3-venv,git,curl,ca-certificates \
  bookworm "$root" "$mirror" >"$logs/debootstrap.log" 2>&1 || {
  tail -n 20 "$logs/debootstrap.log" >&2
  exit 1
}
cat >"$root/etc/apt/sources.list" <<EOF
deb $mirror bookworm main
deb $mirror bookworm-updates main
deb $security bookworm-security main
EOF
cp /etc/resolv.conf /etc/hosts "$root/etc/"
# A chroot has no init: package scripts must not start services (they would take this
# machine's ports); the tests start their own servers.
printf '#!/bin/sh\nexit 101\n' >"$root/usr/sbin/policy-rc.d"
chmod +x "$root/usr/sbin/policy-rc.d"

env_in=(HOME=/root LANG=C.UTF-8 TERM=dumb PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin)
for v in http_proxy https_proxy no_proxy HTTP_PROXY HTTPS_PROXY NO_PROXY; do
  [ -n "${!v:-}" ] && env_in+=("$v=${!v}")
done
# A machine that reaches the registries through a TLS-inspecting proxy trusts its CA: so
# must the root (pip uses its own CA bundle unless told).
if compgen -G "/usr/local/share/ca-certificates/*.crt" >/dev/null; then
  cp /usr/local/share/ca-certificates/*.crt "$root/usr/local/share/ca-certificates/"
  chroot "$root" update-ca-certificates >"$logs/update-ca-certificates.log" 2>&1
  env_in+=(PIP_CERT=/etc/ssl/certs/ca-certificates.crt)
fi

mnt -t proc proc "$root/proc"
mnt -t sysfs sysfs "$root/sys" 2>/dev/null || mnt --rbind /sys "$root/sys"
mnt -t tmpfs -o mode=0755 dev "$root/dev"
for node in null zero full random urandom tty; do
  touch "$root/dev/$node"
  mnt --bind "/dev/$node" "$root/dev/$node"
done
mkdir -p "$root/dev/pts" "$root/dev/shm"
mnt -t tmpfs -o mode=1777 shm "$root/dev/shm"
mnt -t devpts -o newinstance,ptmxmode=0666 devpts "$root/dev/pts" && ln -s pts/ptmx "$root/dev/ptmx"
ln -s /proc/self/fd "$root/dev/fd"
ln -s /proc/self/fd/0 "$root/dev/stdin"
ln -s /proc/self/fd/1 "$root/dev/stdout"
ln -s /proc/self/fd/2 "$root/dev/stderr"

git clone -q "$repo" "$root/opt/risgate"
git -C "$root/opt/risgate" checkout -q --detach "$sha"
in_root() { chroot "$root" /usr/bin/env -i "${env_in[@]}" /bin/bash -c "$1"; }
say "commit $sha; python3 in the root: $(in_root "python3 -c 'import sys; print(sys.version)'")"

# scripts/run.sh, on free ports so that a gateway already running here does not interfere.
read -r http_port dicom_port hl7_port orthanc_http orthanc_dicom < <(
  in_root "python3 -c '
import socket
socks = [socket.socket() for _ in range(5)]
for s in socks:
    s.bind((\"127.0.0.1\", 0))
print(*(s.getsockname()[1] for s in socks))
'"
)
status=0
say "scripts/run.sh (log: $logs/run.log)"
# chroot itself in the background (not in_root, a subshell): run_pid is then, through
# the execs, `risgate dev`, which stops on SIGTERM with its Orthanc.
chroot "$root" /usr/bin/env -i "${env_in[@]}" /bin/bash -c "cd /opt/risgate \
  && export RISGATE_HTTP__PORT=$http_port RISGATE_DICOM__PORT=$dicom_port \
  RISGATE_HL7__PORT=$hl7_port && exec scripts/run.sh --orthanc-http-port $orthanc_http \
  --orthanc-dicom-port $orthanc_dicom" >"$logs/run.log" 2>&1 &
run_pid=$!
deadline=$((SECONDS + ${RUN_TIMEOUT_S:-1800}))
until health=$(curl -fsS "http://127.0.0.1:$http_port/healthz" 2>/dev/null); do
  if ! kill -0 "$run_pid" 2>/dev/null || [ "$SECONDS" -ge "$deadline" ]; then
    health=""
    break
  fi
  sleep 2
done
if [ -n "$health" ]; then
  say "run.sh: /healthz answered $health"
else
  say "run.sh: /healthz never answered; its log ends:"
  tail -n 20 "$logs/run.log"
  status=1
fi
kill -TERM "$run_pid" 2>/dev/null || true
stop_deadline=$((SECONDS + 60))
while kill -0 "$run_pid" 2>/dev/null && [ "$SECONDS" -lt "$stop_deadline" ]; do sleep 1; done
if kill -0 "$run_pid" 2>/dev/null; then
  say "run.sh: still running 60 s after SIGTERM; killed"
  kill -KILL "$run_pid"
  status=1
fi
wait "$run_pid" 2>/dev/null || true

say "scripts/test.sh (log: $logs/test.log)"
set +e
in_root "cd /opt/risgate && scripts/test.sh" >"$logs/test.log" 2>&1
test_rc=$?
set -e
say "test.sh exited $test_rc; its closing lines:"
tail -n 15 "$logs/test.log"
[ "$test_rc" = 0 ] || status=1
exit "$status"
