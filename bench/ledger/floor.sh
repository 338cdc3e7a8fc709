#!/usr/bin/env bash
# bench/ledger/floor.sh HOST PORT SECONDS — the floor under ledger_submit at batch 1,000, on the
# benchmark's own cluster (called by bench/ledger/run.sh after the ledger runs).
#
# One client commits, in a loop, one INSERT of 1,000 generated transfer rows (random text ids,
# random pairs of the 10,000 cash accounts, as the benchmark's batches), nothing else: no
# validation, no balance update, no result rows. The same rows go into four tables that differ
# only in what they must maintain:
#   shape    a copy of ledger_transfers with all its indexes and CHECKs (what a transfer needs:
#            the id's uniqueness, an account's transfers in order, holds resolved once, expiry)
#   accounts id primary key plus the two (account, seq) indexes: no CHECK, no partial index
#   pk       the id primary key only (idempotency needs at least this)
#   heap     no index at all
# and "generate" times the row generator alone. rows/s = 1,000 / (commit latency − the
# generator's latency): what that table could take if producing the rows cost nothing.
# Everything it creates is in the schema ledger_floor, dropped at the end.
set -euo pipefail
host=$1 port=$2 secs=${3:-8}
root=${CAPX_ROOT:-$(cd "$(dirname "$0")/../.." && pwd)}
dir=$(mktemp -d /tmp/capx-ledger-floor.XXXXXX)
trap 'rm -rf "$dir"' EXIT
psql_() { PGOPTIONS="-c client_min_messages=warning" psql -X -q -v ON_ERROR_STOP=1 -h "$host" -p "$port" -U capx capx "$@"; }

psql_ <<'SQL'
DROP SCHEMA IF EXISTS ledger_floor CASCADE;
CREATE SCHEMA ledger_floor;
CREATE TABLE ledger_floor.acct AS
    SELECT (row_number() OVER (ORDER BY id) - 1)::int AS i, id
      FROM ledger_accounts WHERE kind = 'cash';
ALTER TABLE ledger_floor.acct ADD PRIMARY KEY (i);
CREATE TABLE ledger_floor.shape (LIKE ledger_transfers INCLUDING ALL);
CREATE TABLE ledger_floor.accounts (LIKE ledger_transfers INCLUDING DEFAULTS INCLUDING IDENTITY);
ALTER TABLE ledger_floor.accounts ADD PRIMARY KEY (id);
CREATE INDEX ON ledger_floor.accounts (debit_account, seq);
CREATE INDEX ON ledger_floor.accounts (credit_account, seq);
CREATE TABLE ledger_floor.pk (LIKE ledger_transfers INCLUDING DEFAULTS INCLUDING IDENTITY);
ALTER TABLE ledger_floor.pk ADD PRIMARY KEY (id);
CREATE TABLE ledger_floor.heap (LIKE ledger_transfers INCLUDING DEFAULTS INCLUDING IDENTITY);
ANALYZE ledger_floor.acct;
SQL

n=$(psql_ -tA -c "SELECT count(*) FROM ledger_floor.acct")
rows="SELECT 'txn_' || md5(random()::text) AS id, a.id AS dr, c.id AS cr
        FROM (SELECT (random() * ($n - 1))::int AS x, (random() * ($n - 1))::int AS y
                FROM generate_series(1, 1000)) r
        JOIN ledger_floor.acct a ON a.i = r.x JOIN ledger_floor.acct c ON c.i = r.y
       WHERE a.id <> c.id"
printf 'SELECT count(*) FROM (%s) s;\n' "$rows" >"$dir/generate.sql"
for t in shape accounts pk heap; do
    printf 'INSERT INTO ledger_floor.%s (id, debit_account, credit_account, amount, kind, flags, created_at) SELECT id, dr, cr, 1, %s, 0, now() FROM (%s) s;\n' \
        "$t" "'fill'" "$rows" >"$dir/$t.sql"
done

lat() { # mean latency in ms of one pgbench script, one client
    pgbench -n -c 1 -T "$secs" -f "$dir/$1.sql" -h "$host" -p "$port" -U capx capx 2>/dev/null |
        awk '/^latency average/ {print $4; exit}'
}
gen=$(lat generate)
echo "floor: one INSERT of 1,000 generated transfer rows per commit, 1 client, nothing else"
printf '%-9s %12s %14s\n' "table" "commit ms" "rows/s"
printf '%-9s %12.2f %14s\n' generate "$gen" "(generator)"
for t in shape accounts pk heap; do
    l=$(lat "$t")
    r=$(awk -v l="$l" -v g="$gen" 'BEGIN { printf "%d", (l > g ? 1000 / ((l - g) / 1000) : 0) }')
    printf '%-9s %12.2f %14d\n' "$t" "$l" "$r"
    echo "FLOOR $t $r"
done
psql_ -c "DROP SCHEMA ledger_floor CASCADE"
