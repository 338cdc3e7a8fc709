#!/usr/bin/env bash
# deploy/dev-down.sh — stops capxd (SIGTERM, then waits) and the private PostgreSQL of
# $CAPX_VAR; the data stays, and dev-up.sh finds it again.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
export CAPX_VAR=${CAPX_VAR:-$root/var}
[ -d "$CAPX_VAR" ] || { echo "dev-down: no state directory $CAPX_VAR"; exit 0; }
export CAPX_VAR=$(cd "$CAPX_VAR" && pwd)
if [ -f "$CAPX_VAR/capxd.pid" ]; then
    pid=$(cat "$CAPX_VAR/capxd.pid")
    alive() { st=$(ps -o stat= -p "$pid" 2>/dev/null) && [ "${st#Z}" = "$st" ]; }
    if alive; then
        kill -TERM "$pid"
        for _ in $(seq 1 200); do alive || break; sleep 0.1; done
        alive && kill -KILL "$pid"
    fi
    rm -f "$CAPX_VAR/capxd.pid"
fi
[ -n "${CAPX_DATABASE:-}" ] || "$root/deploy/pg.sh" stop >/dev/null
echo "capx is down (data kept in $CAPX_VAR)"
