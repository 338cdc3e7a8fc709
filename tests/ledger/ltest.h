/*
 * ltest.h — what the ledger tests share: a fresh database per test on the cluster that
 * tests/run.sh provides (CAPX_TEST_DATABASE, a libpq conninfo, superuser), with the
 * migrations applied, dropped again at the end; participants with their ledger accounts.
 */
#ifndef CAPX_TESTS_LEDGER_LTEST_H
#define CAPX_TESTS_LEDGER_LTEST_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <libpq-fe.h>

#include "ledger/ledger.h"
#include "schema/migrate.h"

struct ltest_db {
    char name[64];   /* the test's database */
    char base[1024]; /* CAPX_TEST_DATABASE */
};

/* A connection to `dbname` on the test cluster (NULL: the conninfo's own database). */
static PGconn *ltest_connect(const struct ltest_db *db, const char *dbname)
{
    const char *keys[] = {"dbname", "dbname", NULL};
    const char *vals[] = {db->base, dbname, NULL};
    PGconn *c = PQconnectdbParams(keys, vals, 1);
    if (PQstatus(c) != CONNECTION_OK) {
        fprintf(stderr, "ltest: cannot connect: %s", PQerrorMessage(c));
        PQfinish(c);
        return NULL;
    }
    PGresult *r = PQexec(c, "SET client_min_messages = warning");
    PQclear(r);
    return c;
}

static void ltest_exec_admin(const struct ltest_db *db, const char *sql)
{
    PGconn *c = ltest_connect(db, NULL);
    if (!c)
        exit(1);
    PGresult *r = PQexec(c, sql);
    if (PQresultStatus(r) != PGRES_COMMAND_OK) {
        fprintf(stderr, "ltest: %s: %s", sql, PQresultErrorMessage(r));
        exit(1);
    }
    PQclear(r);
    PQfinish(c);
}

/* Creates ledger_<test>_<pid> with the schema; exits with a clear message without a cluster. */
static void ltest_db_create(struct ltest_db *db, const char *test)
{
    const char *base = getenv("CAPX_TEST_DATABASE");
    char sql[160], err[512];
    int applied;
    if (!base || !*base) {
        fprintf(stderr,
                "%s: CAPX_TEST_DATABASE is not set: run the tests through tests/run.sh, "
                "or start a cluster (deploy/pg.sh start) and export "
                "CAPX_TEST_DATABASE=\"$(deploy/pg.sh conninfo)\"\n",
                test);
        exit(1);
    }
    snprintf(db->base, sizeof db->base, "%s", base);
    snprintf(db->name, sizeof db->name, "ledger_%s_%d", test, (int)getpid());
    snprintf(sql, sizeof sql, "DROP DATABASE IF EXISTS %s", db->name);
    ltest_exec_admin(db, sql);
    snprintf(sql, sizeof sql, "CREATE DATABASE %s", db->name);
    ltest_exec_admin(db, sql);
    PGconn *c = ltest_connect(db, db->name);
    if (!c || schema_migrate(c, &applied, err, sizeof err) < 0) {
        fprintf(stderr, "%s: migrations failed: %s\n", test, c ? err : "no connection");
        exit(1);
    }
    PQfinish(c);
}

static void ltest_db_drop(struct ltest_db *db)
{
    char sql[160];
    snprintf(sql, sizeof sql, "DROP DATABASE IF EXISTS %s WITH (FORCE)", db->name);
    ltest_exec_admin(db, sql);
}

/* Runs sql (no parameters) and exits on failure: for setup only. */
static void ltest_must(PGconn *c, const char *sql)
{
    PGresult *r = PQexec(c, sql);
    ExecStatusType s = PQresultStatus(r);
    if (s != PGRES_COMMAND_OK && s != PGRES_TUPLES_OK) {
        fprintf(stderr, "ltest: %s: %s", sql, PQresultErrorMessage(r));
        exit(1);
    }
    PQclear(r);
}

/* The capx account id of participant i: acct_ + 16 base32 letters. */
static void ltest_owner(int i, char out[32])
{
    snprintf(out, 32, "acct_");
    for (int k = 0; k < 16; k++)
        out[5 + k] = (char)('a' + (int)(((uint64_t)i >> (4 * (15 - k))) & 15));
    out[21] = 0;
}

/* Participants 0..n-1: an accounts row and the two ledger accounts each. */
static void ltest_participants(PGconn *c, int n)
{
    char sql[256];
    snprintf(sql, sizeof sql,
             "INSERT INTO accounts (id, name, roles) SELECT 'acct_' || translate(lpad(to_hex(g), "
             "16, '0'), '0123456789abcdef', 'abcdefghijklmnop'), 'p' || g, '{buyer,provider}' "
             "FROM generate_series(0, %d) g",
             n - 1);
    ltest_must(c, sql);
    ltest_must(c, "SELECT count(ledger_open_participant(id)) FROM accounts");
}

#endif
