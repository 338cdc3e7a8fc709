#!/usr/bin/env bash
# deploy/quickstart.sh — from a fresh Debian 12 machine to a running capx: installs what is
# missing (apt-get, asks nothing), builds Release, starts PostgreSQL and capxd through
# deploy/dev-up.sh, and prints where things are and what to try first. Running it twice is
# harmless: what is up stays up.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
"$root/deploy/install-deps.sh"
export CAPX_VAR=${CAPX_VAR:-$root/var}
export CAPX_PORT=${CAPX_PORT:-8443}
cmake -S "$root" -B "$root/build" -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build "$root/build" -j"$(nproc)" >/dev/null
"$root/deploy/dev-up.sh"
cat <<MSG

capx is running.
  URL:         https://127.0.0.1:$CAPX_PORT
  admin key:   $CAPX_VAR/admin.key
  certificate: $CAPX_VAR/tls/cert.pem (self-signed; pass it with --cacert)
  logs:        $CAPX_VAR/capxd.log
  stop:        CAPX_VAR=$CAPX_VAR deploy/dev-down.sh

Try:
  curl --cacert $CAPX_VAR/tls/cert.pem https://127.0.0.1:$CAPX_PORT/healthz
  curl --cacert $CAPX_VAR/tls/cert.pem -H "Authorization: Bearer \$(cat $CAPX_VAR/admin.key)" \\
       https://127.0.0.1:$CAPX_PORT/v1/clock
MSG
