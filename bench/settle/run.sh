#!/usr/bin/env bash
# bench/settle/run.sh — see settle_bench.py. Starts its own capx (private PostgreSQL, simulated
# clock, Release build) on free ports, runs, stops everything.
set -euo pipefail
root=${CAPX_ROOT:-$(cd "$(dirname "$0")/../.." && pwd)}
build=${CAPX_BENCH_BUILD:-$root/build-release}
tmp=$(mktemp -d /tmp/capx-settle.XXXXXX)
chmod 755 "$tmp"
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
export CAPX_VAR="$tmp/var" CAPX_PORT=$(free_port) CAPX_PGPORT=$(free_port) CAPX_BUILD_DIR="$build"
export CAPX_CLOCK="sim:2027-01-01T00:00:00Z" CAPX_RATE_LIMIT=1000000 CAPX_RATE_BURST=1000000
export CAPX_MAX_OPEN_ORDERS=1000000 CAPX_LOG_LEVEL=warn
cleanup() {
    # capxd's warnings (if any) help when the bench failed; then stop everything it started.
    grep -E "level=(error|warn)" "$CAPX_VAR/capxd.log" 2>/dev/null | tail -5 >&2 || true
    "$root/deploy/dev-down.sh" >/dev/null 2>&1 || true
    rm -rf "$tmp"
}
trap cleanup EXIT
"$root/deploy/dev-up.sh" >/dev/null
python3 "$root/bench/settle/settle_bench.py" "$CAPX_PORT" "$CAPX_VAR"
