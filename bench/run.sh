#!/usr/bin/env bash
# bench/run.sh NAME — the one entry point for capx's benchmarks.
# Builds Release into $CAPX_BENCH_BUILD (default build-release) when needed, then
# runs bench/NAME/run.sh, which prints a readable table and, as its last line, one
# JSON object with the figures. Names: the folders of bench/ that have a run.sh.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
name=${1:-}
if [ -z "$name" ] || [ ! -x "$root/bench/$name/run.sh" ]; then
    echo "usage: bench/run.sh NAME   (NAME is one of:$(cd "$root/bench" && for d in */; do [ -x "$d/run.sh" ] && printf ' %s' "${d%/}"; done))" >&2
    exit 2
fi
shift
export CAPX_ROOT="$root"
export CAPX_BENCH_BUILD=${CAPX_BENCH_BUILD:-$root/build-release}
"$root/deploy/install-deps.sh" --quiet
cmake -S "$root" -B "$CAPX_BENCH_BUILD" -DCMAKE_BUILD_TYPE=Release -DCAPX_SANITIZE=OFF >/dev/null
cmake --build "$CAPX_BENCH_BUILD" -j"$(nproc)" >/dev/null
exec "$root/bench/$name/run.sh" "$@"
