#!/usr/bin/env bash
# bench/ledger/run.sh — durable ledger transfers/s and pgbench TPC-B-like on one private
# PostgreSQL cluster (fsync and synchronous_commit on). Run it as `bench/run.sh ledger`.
# Environment: CAPX_ROOT, CAPX_BENCH_BUILD (set by bench/run.sh); LEDGER_BENCH_SECONDS
# (seconds per ledger run, default 5); LEDGER_BENCH_PGPORT (default: first free of 55550-55599).
# Prints a readable table, then as its last line one JSON object with the figures.
set -euo pipefail
root=${CAPX_ROOT:-$(cd "$(dirname "$0")/../.." && pwd)}
build=${CAPX_BENCH_BUILD:-$root/build-release}
bin=$build/bench/ledger/bench_ledger
secs=${LEDGER_BENCH_SECONDS:-5}
[ -x "$bin" ] || { echo "ledger bench: $bin not built" >&2; exit 1; }

port=${LEDGER_BENCH_PGPORT:-}
if [ -z "$port" ]; then
    for p in $(seq 55550 55599); do
        if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then port=$p; break; fi
    done
fi
[ -n "$port" ] || { echo "ledger bench: no free port in 55550-55599" >&2; exit 1; }
export CAPX_VAR; CAPX_VAR=$(mktemp -d /tmp/capx-ledger-bench.XXXXXX)
export CAPX_PGPORT=$port
pg() { "$root/deploy/pg.sh" "$@"; }
cleanup() { pg stop >/dev/null 2>&1 || true; rm -rf "$CAPX_VAR" "$(readlink -f "$CAPX_VAR/pg" 2>/dev/null || true)" 2>/dev/null || true; }
trap cleanup EXIT

pg start >/dev/null
# Settings beyond the defaults (docs/ledger.md says why); none touches durability:
# fsync, synchronous_commit and full_page_writes stay on.
pg psql -q -c "ALTER SYSTEM SET shared_buffers = '512MB'" \
        -c "ALTER SYSTEM SET max_wal_size = '8GB'" \
        -c "ALTER SYSTEM SET checkpoint_timeout = '30min'" >/dev/null
pg stop >/dev/null
pg start >/dev/null
conn=$(pg conninfo)
settings=$(pg psql -tA -c "SELECT string_agg(name || '=' || setting, ' ' ORDER BY name) FROM pg_settings WHERE name IN ('fsync','synchronous_commit','full_page_writes','wal_sync_method','shared_buffers','max_wal_size','checkpoint_timeout')")
echo "cluster: port $port, $settings"
echo "machine: $(nproc) cores, $(uname -sr), PostgreSQL $(pg psql -tA -c 'SHOW server_version')"
echo

out=$(mktemp)
"$bin" "$conn" "$secs" | tee "$out" | grep -v '^RESULT'
status=${PIPESTATUS[0]}

pgb_host=$(readlink -f "$CAPX_VAR/pg" 2>/dev/null || echo "$CAPX_VAR/pg")
# The floor: bare INSERTs of the same rows, no ledger logic (bench/ledger/floor.sh says how).
echo
"$root/bench/ledger/floor.sh" "$pgb_host" "$port" "${LEDGER_FLOOR_SECONDS:-8}" | tee -a "$out" | grep -v '^FLOOR'

# The anchor: pgbench TPC-B-like, scale 10, 8 clients, 2 threads, 20 s, same cluster.
pg psql -q -c "CREATE DATABASE pgbench" >/dev/null
pgbench -i -s 10 -q -h "$pgb_host" -p "$port" -U capx pgbench >/dev/null 2>&1
pgb=$(pgbench -c 8 -j 2 -T 20 -h "$pgb_host" -p "$port" -U capx pgbench 2>/dev/null)
tps=$(printf '%s\n' "$pgb" | awk '/^tps = / {print $3; exit}')
tps=${tps%.*}
echo
echo "pgbench TPC-B-like (-i -s 10; -c 8 -j 2 -T 20), same cluster: $tps tps"

awk -v tps="$tps" '
/^RESULT invariants/ { inv = $3; next }
/^FLOOR / { fl[$2] = $3; next }
/^RESULT / { n++; size[n] = $2; own[n] = $3; p99[n] = $4; app[n] = $5; app99[n] = $6 }
END {
    printf "\n%-7s %14s %10s %14s %10s %12s\n", "batch", "own tx /s", "p99 ms", "appended /s", "p99 ms", "vs pgbench";
    for (i = 1; i <= n; i++)
        printf "%-7s %14d %10.2f %14d %10.2f %11.1fx\n", size[i], own[i], p99[i], app[i], app99[i], own[i] / tps;
    for (i = 1; i <= n; i++)
        if (size[i] == 1000 && fl["shape"] > 0)
            printf "\nbatch 1000: ledger_submit %d/s; a bare INSERT of the same rows into ledger_transfers'"'"' shape %d/s (%.0f%% of it), with the id key alone %d/s, into a heap with no index %d/s\n", own[i], fl["shape"], 100 * own[i] / fl["shape"], fl["pk"], fl["heap"];
    tp = ""; pp = ""; r1000 = 0;
    for (i = 1; i <= n; i++) {
        tp = tp sprintf("%s\"%s\": %d", i > 1 ? ", " : "", size[i], own[i]);
        pp = pp sprintf("%s\"%s\": %.2f", i > 1 ? ", " : "", size[i], p99[i]);
        if (size[i] == 1000) r1000 = own[i] / tps;
    }
    printf "{\"bench\": \"ledger\", \"transfers_per_s\": {%s}, \"p99_ms\": {%s}, \"pgbench_tps\": %d, \"ratio_1000\": %.1f, \"invariants_ok\": %s}\n", tp, pp, tps, r1000, inv;
}' "$out"
rm -f "$out"
exit "$status"
