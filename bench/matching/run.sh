#!/usr/bin/env bash
# bench/matching/run.sh — the matching engine's figures (issue 4). Called by bench/run.sh
# after a Release build into $CAPX_BENCH_BUILD. Single core: pinned to CPU 0 when taskset
# exists. Prints a table, then the JSON summary as the last line.
set -euo pipefail
build=${CAPX_BENCH_BUILD:?run through bench/run.sh matching}
bin="$build/bench/matching/bench_matching"
if command -v taskset >/dev/null 2>&1; then
    exec taskset -c 0 "$bin" "$@"
fi
exec "$bin" "$@"
