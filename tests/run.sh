#!/usr/bin/env bash
# tests/run.sh — installs what is missing, builds Debug with AddressSanitizer and
# UndefinedBehaviorSanitizer, starts a throwaway PostgreSQL on a free port, runs the fuzz
# harness (60 s, when clang is present) and every test through ctest, and stops what it
# started, also when a test fails. The exit status is the tests' status.
#
# CAPX_TEST_BUILD picks the build directory (default build-test); CAPX_FUZZ_SECONDS the
# fuzzing time (default 60; 0 skips); CAPX_TEST_REGEX runs only the ctest tests matching it.
set -uo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
"$root/deploy/install-deps.sh" --quiet || exit 1

build=${CAPX_TEST_BUILD:-$root/build-test}
jobs=$(nproc)
cmake -S "$root" -B "$build" -DCMAKE_BUILD_TYPE=Debug -DCAPX_SANITIZE=ON >/dev/null || exit 1
cmake --build "$build" -j"$jobs" 2>&1 | grep -vE '^\[|^(Consolidate|Scanning|Built|Linking|Building|Embedding)' ; \
    [ "${PIPESTATUS[0]}" -eq 0 ] || { echo "tests/run.sh: build failed" >&2; exit 1; }

# A throwaway PostgreSQL cluster, reachable by the postgres user when run as root.
tmp=$(mktemp -d /tmp/capx-test.XXXXXX)
chmod 755 "$tmp"
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
pgport=$(free_port)
cleanup() {
    # Any capxd a test left behind, then the cluster, then the files.
    for pidf in "$tmp"/*/capxd.pid "$tmp"/*/*/capxd.pid; do
        [ -f "$pidf" ] && kill -KILL "$(cat "$pidf")" 2>/dev/null
    done
    CAPX_VAR="$tmp/var" CAPX_PGPORT=$pgport "$root/deploy/pg.sh" stop >/dev/null 2>&1
    for d in "$tmp"/*/var; do
        [ -d "$d/pg" ] && CAPX_VAR="$d" "$root/deploy/pg.sh" stop >/dev/null 2>&1
    done
    # A cluster that had to live outside $tmp (state under a 0700 directory, as root) is
    # reached through its pg link: remove what it points to as well.
    find "$tmp" -maxdepth 4 -type l -name pg 2>/dev/null | while read -r l; do
        t=$(readlink -f "$l")
        case "$t" in /var/lib/capx/pg-*) rm -rf "$t" ;; esac
    done
    rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT TERM
CAPX_VAR="$tmp/var" CAPX_PGPORT=$pgport "$root/deploy/pg.sh" start >/dev/null || exit 1

export CAPX_ROOT="$root"
export CAPX_TEST_BUILD="$build"
export CAPX_TEST_TMP="$tmp"
export CAPX_TEST_VAR="$tmp/var"
export CAPX_TEST_PGPORT=$pgport
export CAPX_TEST_DATABASE="host=$tmp/var/pg port=$pgport dbname=capx user=capx"
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=0:strict_string_checks=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}

status=0
# Fuzzing first, so ctest's summary is the last thing printed.
fuzz_s=${CAPX_FUZZ_SECONDS:-60}
if [ "$fuzz_s" -gt 0 ] && command -v clang >/dev/null 2>&1; then
    fbuild="$build-fuzz"
    if CC=clang cmake -S "$root" -B "$fbuild" -DCMAKE_BUILD_TYPE=Debug -DCAPX_FUZZ=ON >/dev/null &&
        cmake --build "$fbuild" -j"$jobs" --target fuzz_request >/dev/null; then
        mkdir -p "$tmp/fuzz-corpus"
        cp "$root"/tests/fuzz/corpus/* "$tmp/fuzz-corpus/"
        if "$fbuild/tests/fuzz/fuzz_request" -max_total_time="$fuzz_s" -use_value_profile=1 \
            -max_len=8192 -timeout=10 -rss_limit_mb=2048 -artifact_prefix="$tmp/" \
            "$tmp/fuzz-corpus" >"$tmp/fuzz.log" 2>&1; then
            echo "fuzz_request: $(grep -E '^#[0-9]+.*(DONE|pulse)' "$tmp/fuzz.log" | tail -1)"
        else
            echo "fuzz_request FAILED:" >&2
            tail -40 "$tmp/fuzz.log" >&2
            status=1
        fi
    else
        echo "fuzz_request: build failed" >&2
        status=1
    fi
fi

ctest_args=(--test-dir "$build" --output-on-failure --timeout 600)
[ -n "${CAPX_TEST_REGEX:-}" ] && ctest_args+=(-R "$CAPX_TEST_REGEX")
ctest "${ctest_args[@]}" || status=1
exit $status
