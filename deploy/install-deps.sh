#!/usr/bin/env bash
# deploy/install-deps.sh — installs with apt-get whatever capx needs and the
# machine lacks (build tools, libraries, PostgreSQL 15, the test and bench tools).
# Asks nothing; does nothing when everything is there. Needs root (or sudo) only
# when something is missing.
set -euo pipefail
quiet=0
[ "${1:-}" = "--quiet" ] && quiet=1
pkgs=(build-essential cmake pkg-config clang libclang-rt-14-dev
      libevent-dev libssl-dev libjansson-dev libpq-dev libhttp-parser-dev
      postgresql postgresql-contrib openssl curl wrk nginx-light python3 procps iproute2)
missing=()
for p in "${pkgs[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
    [ $quiet -eq 1 ] || echo "capx: all packages present"
    exit 0
fi
echo "capx: installing ${missing[*]}" >&2
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
export DEBIAN_FRONTEND=noninteractive
# Do not let the postgresql package start a system-wide cluster we do not use.
$SUDO mkdir -p /etc/postgresql-common
if [ ! -f /etc/postgresql-common/createcluster.conf ] || ! grep -q '^create_main_cluster = false' /etc/postgresql-common/createcluster.conf; then
    echo 'create_main_cluster = false' | $SUDO tee -a /etc/postgresql-common/createcluster.conf >/dev/null
fi
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
