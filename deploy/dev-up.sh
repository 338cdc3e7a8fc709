#!/usr/bin/env bash
# deploy/dev-up.sh — starts capx on one machine and returns when it is ready:
# a private PostgreSQL under $CAPX_VAR, the schema, a self-signed certificate, an admin key
# in $CAPX_VAR/admin.key, and capxd on https://127.0.0.1:$CAPX_PORT (pid in
# $CAPX_VAR/capxd.pid, log in $CAPX_VAR/capxd.log).
#
# Environment: CAPX_VAR (default ./var), CAPX_PORT (8443), CAPX_PGPORT (54329),
# CAPX_CLOCK (real, or sim:2027-01-01T00:00:00Z), CAPX_BUILD_DIR (default ./build, built as
# Release when capxd is missing or older than its sources). Any other CAPX_* setting of
# capxd (see capxd --help) passes through; with CAPX_DATABASE set, that database is used
# and no private PostgreSQL is started. Starts only what is down; runs beside another
# dev-up with another CAPX_VAR and other ports.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
export CAPX_VAR=${CAPX_VAR:-$root/var}
mkdir -p "$CAPX_VAR"
export CAPX_VAR=$(cd "$CAPX_VAR" && pwd)
export CAPX_PORT=${CAPX_PORT:-8443}
export CAPX_PGPORT=${CAPX_PGPORT:-54329}
export CAPX_CLOCK=${CAPX_CLOCK:-real}
build=${CAPX_BUILD_DIR:-$root/build}

# Build when capxd is missing or older than any source.
capxd="$build/server/capxd"
if [ ! -x "$capxd" ] || [ -n "$(find "$root"/{common,server,schema,ledger,matching,scheduler,clients} "$root/CMakeLists.txt" -newer "$capxd" \( -name '*.[ch]' -o -name '*.sql' -o -name CMakeLists.txt \) 2>/dev/null | head -1)" ]; then
    if [ -z "${CAPX_BUILD_DIR:-}" ]; then
        cmake -S "$root" -B "$build" -DCMAKE_BUILD_TYPE=Release >/dev/null
    fi
    cmake --build "$build" -j"$(nproc)" --target capxd capx-admin >/dev/null
fi
admin="$build/clients/capx-admin"

# An external database (CAPX_DATABASE) is used as it is; otherwise the private cluster.
if [ -z "${CAPX_DATABASE:-}" ]; then
    "$root/deploy/pg.sh" start >/dev/null
fi
"$admin" migrate >/dev/null

# A self-signed certificate for 127.0.0.1 and localhost (ECDSA P-256).
if [ ! -f "$CAPX_VAR/tls/cert.pem" ]; then
    mkdir -p "$CAPX_VAR/tls"
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 825 \
        -subj "/CN=capx development" -addext "subjectAltName=IP:127.0.0.1,DNS:localhost" \
        -keyout "$CAPX_VAR/tls/key.pem" -out "$CAPX_VAR/tls/cert.pem" >/dev/null 2>&1
    chmod 600 "$CAPX_VAR/tls/key.pem"
fi

if [ ! -s "$CAPX_VAR/admin.key" ]; then
    umask 077
    if ! "$admin" bootstrap --name admin >"$CAPX_VAR/admin.key.tmp" 2>"$CAPX_VAR/bootstrap.err"; then
        cat "$CAPX_VAR/bootstrap.err" >&2
        rm -f "$CAPX_VAR/admin.key.tmp"
        exit 1
    fi
    mv "$CAPX_VAR/admin.key.tmp" "$CAPX_VAR/admin.key"
fi

# Running means alive and not a zombie (a killed capxd can linger a moment before it is gone).
running() {
    [ -f "$CAPX_VAR/capxd.pid" ] || return 1
    local pid st
    pid=$(cat "$CAPX_VAR/capxd.pid")
    st=$(ps -o stat= -p "$pid" 2>/dev/null) || return 1
    [ -n "$st" ] && [ "${st#Z}" = "$st" ]
}
started=0
start_capxd() {
    nohup "$capxd" --pid-file "$CAPX_VAR/capxd.pid" --log-file "$CAPX_VAR/capxd.log" \
        </dev/null >>"$CAPX_VAR/capxd.out" 2>&1 &
    echo $! >"$CAPX_VAR/capxd.pid"
    started=1
}
running || start_capxd
for _ in $(seq 1 300); do
    if curl -sf --cacert "$CAPX_VAR/tls/cert.pem" "https://127.0.0.1:$CAPX_PORT/healthz" >/dev/null 2>&1; then
        echo "capx is up: https://127.0.0.1:$CAPX_PORT (admin key in $CAPX_VAR/admin.key)"
        exit 0
    fi
    if ! running; then
        if [ $started -eq 0 ]; then
            start_capxd # the one we found was on its way out
            continue
        fi
        echo "dev-up: capxd exited; last lines of $CAPX_VAR/capxd.log and capxd.out:" >&2
        tail -n 5 "$CAPX_VAR/capxd.log" "$CAPX_VAR/capxd.out" >&2 2>/dev/null || true
        exit 1
    fi
    sleep 0.1
done
echo "dev-up: capxd did not answer within 30 s" >&2
exit 1
