#!/usr/bin/env bash
# deploy/pg.sh start|stop|status|conninfo|psql [args] — capx's private PostgreSQL cluster.
#
# The cluster's data lives under the state directory, $CAPX_VAR/pg (default ./var/pg), and
# it listens on a Unix socket in that directory and on 127.0.0.1:$CAPX_PGPORT (default 54329).
#
# PostgreSQL refuses to run as root. As root the server runs as the `postgres` user, which
# must be able to reach its data directory. When $CAPX_VAR lies under a directory that user
# cannot traverse (a checkout in /root, mode 0700), the data goes to
# /var/lib/capx/pg-<hash of $CAPX_VAR> and $CAPX_VAR/pg becomes a symbolic link to it, so
# every path that names $CAPX_VAR/pg still works.
#
# Authentication: `trust` on the Unix socket (its directory is private to the server's user
# and root) and scram-sha-256 on TCP with a generated password kept in $CAPX_VAR/pgpass
# (mode 0600, libpq's passfile format).
set -euo pipefail

cmd=${1:-status}
[ $# -gt 0 ] && shift
root=$(cd "$(dirname "$0")/.." && pwd)
var=${CAPX_VAR:-$root/var}
mkdir -p "$var"
var=$(cd "$var" && pwd)
port=${CAPX_PGPORT:-54329}
link="$var/pg"

pgbin=""
for d in /usr/lib/postgresql/15/bin $(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -rV); do
    if [ -x "$d/pg_ctl" ]; then pgbin=$d; break; fi
done
if [ -z "$pgbin" ]; then
    echo "pg.sh: PostgreSQL server binaries not found; run deploy/install-deps.sh" >&2
    exit 1
fi

runas=()
owner=$(id -un)
if [ "$(id -u)" -eq 0 ]; then
    owner=postgres
    id postgres >/dev/null 2>&1 || useradd --system --home-dir /var/lib/postgresql --shell /bin/bash postgres
    runas=(runuser -u postgres --)
fi

# Where the data really is.
resolve_data() {
    if [ -L "$link" ]; then
        readlink -f "$link"
    elif [ -d "$link" ]; then
        echo "$link"
    elif [ "$(id -u)" -eq 0 ] && ! runuser -u postgres -- test -x "$var" 2>/dev/null; then
        echo "/var/lib/capx/pg-$(printf '%s' "$var" | sha256sum | cut -c1-16)"
    else
        echo "$link"
    fi
}
data=$(resolve_data)

as_owner() { (cd / && "${runas[@]}" "$@"); }

ensure_dirs() {
    if [ "$data" != "$link" ] && [ ! -L "$link" ]; then
        mkdir -p "$(dirname "$data")"
        chmod 755 /var/lib/capx 2>/dev/null || true
        ln -sfn "$data" "$link"
    fi
    mkdir -p "$data"
    [ "$(id -u)" -eq 0 ] && chown postgres:postgres "$data"
    chmod 700 "$data"
}

is_running() { as_owner "$pgbin/pg_ctl" -D "$data/db" status >/dev/null 2>&1; }

conninfo() { echo "host=$data port=$port dbname=capx user=capx"; }

case "$cmd" in
start)
    ensure_dirs
    if [ ! -f "$data/db/PG_VERSION" ]; then
        pw=$(head -c 18 /dev/urandom | base64 | tr -d '/+=')
        pwfile=$(mktemp)
        printf '%s\n' "$pw" >"$pwfile"
        chmod 644 "$pwfile"
        as_owner "$pgbin/initdb" -D "$data/db" -U capx -E UTF8 --locale=C \
            --auth-local=trust --auth-host=scram-sha-256 --pwfile="$pwfile" >"$data/initdb.log" 2>&1 ||
            { cat "$data/initdb.log" >&2; rm -f "$pwfile"; exit 1; }
        rm -f "$pwfile"
        printf '127.0.0.1:%s:*:capx:%s\n' "$port" "$pw" >"$var/pgpass"
        chmod 600 "$var/pgpass"
        cat >>"$data/db/postgresql.conf" <<CONF
# capx private cluster
listen_addresses = '127.0.0.1'
unix_socket_permissions = 0700
logging_collector = off
CONF
    fi
    if is_running; then
        echo "pg.sh: already running ($(conninfo))"
        exit 0
    fi
    as_owner "$pgbin/pg_ctl" -D "$data/db" -l "$data/postgres.log" -w -t 60 \
        -o "-p $port -k $data" start >/dev/null ||
        { tail -20 "$data/postgres.log" >&2; exit 1; }
    if ! "$pgbin/psql" -X -q -h "$data" -p "$port" -U capx -d postgres -tAc \
        "SELECT 1 FROM pg_database WHERE datname='capx'" | grep -q 1; then
        "$pgbin/psql" -X -q -h "$data" -p "$port" -U capx -d postgres -c "CREATE DATABASE capx" >/dev/null
    fi
    echo "pg.sh: running ($(conninfo))"
    ;;
stop)
    if [ -f "$data/db/PG_VERSION" ] && is_running; then
        as_owner "$pgbin/pg_ctl" -D "$data/db" -m fast -w -t 60 stop >/dev/null
        echo "pg.sh: stopped"
    else
        echo "pg.sh: not running"
    fi
    ;;
kill9)
    # For crash tests: the postmaster and every backend die at once, without a checkpoint.
    if [ -f "$data/db/postmaster.pid" ]; then
        pm=$(head -1 "$data/db/postmaster.pid")
        kids=$(pgrep -P "$pm" 2>/dev/null || true)
        kill -9 "$pm" $kids 2>/dev/null || true
        for _ in $(seq 1 50); do
            kill -0 "$pm" $kids 2>/dev/null || break
            sleep 0.1
        done
    fi
    ;;
status)
    if [ -f "$data/db/PG_VERSION" ] && is_running; then
        echo "pg.sh: running ($(conninfo))"
    else
        echo "pg.sh: not running"
        exit 3
    fi
    ;;
conninfo)
    conninfo
    ;;
psql)
    exec "$pgbin/psql" -X -h "$data" -p "$port" -U capx -d capx "$@"
    ;;
*)
    echo "usage: deploy/pg.sh start|stop|status|conninfo|psql [args]" >&2
    exit 2
    ;;
esac
