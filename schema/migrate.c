/*
 * migrate.c — applies the embedded migrations with blocking libpq calls.
 * Each migration runs in its own transaction together with the row that records it,
 * so a failed migration leaves nothing behind and is retried whole next time.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "schema/migrate.h"

#define MIGRATE_LOCK_KEY 0x63617078 /* "capx" */

int schema_latest_version(void)
{
    return schema_migration_count ? schema_migrations[schema_migration_count - 1].version : 0;
}

/* Runs sql; 0 when its status is ok, else -1 with the server's message in err. */
static int exec_ok(PGconn *conn, const char *sql, char *err, size_t errlen)
{
    PGresult *r = PQexec(conn, sql);
    ExecStatusType st = PQresultStatus(r);
    int rc = (st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK) ? 0 : -1;
    if (rc < 0)
        snprintf(err, errlen, "%s", PQresultErrorMessage(r));
    PQclear(r);
    return rc;
}

/* Fills done[] (indexed like schema_migrations) from the schema_migrations table. */
static int applied_set(PGconn *conn, char *done, char *err, size_t errlen)
{
    memset(done, 0, (size_t)schema_migration_count);
    PGresult *r = PQexec(conn, "SELECT version FROM schema_migrations");
    if (PQresultStatus(r) != PGRES_TUPLES_OK) {
        snprintf(err, errlen, "%s", PQresultErrorMessage(r));
        PQclear(r);
        return -1;
    }
    for (int row = 0; row < PQntuples(r); row++) {
        int v = atoi(PQgetvalue(r, row, 0));
        for (int i = 0; i < schema_migration_count; i++)
            if (schema_migrations[i].version == v)
                done[i] = 1;
    }
    PQclear(r);
    return 0;
}

int schema_migrate(PGconn *conn, int *applied, char *err, size_t errlen)
{
    char lock[96], unlock[96];
    char *done = xcalloc((size_t)schema_migration_count + 1, 1);
    int rc = -1, locked = 0;
    *applied = 0;
    snprintf(lock, sizeof lock, "SELECT pg_advisory_lock(%d)", MIGRATE_LOCK_KEY);
    snprintf(unlock, sizeof unlock, "SELECT pg_advisory_unlock(%d)", MIGRATE_LOCK_KEY);
    if (exec_ok(conn, "SET client_min_messages = warning", err, errlen) < 0)
        goto done;
    if (exec_ok(conn, lock, err, errlen) < 0)
        goto done;
    locked = 1;
    if (exec_ok(conn,
                "CREATE TABLE IF NOT EXISTS schema_migrations ("
                " version int PRIMARY KEY, name text NOT NULL,"
                " applied_at timestamptz NOT NULL DEFAULT now())",
                err, errlen) < 0)
        goto done;
    if (applied_set(conn, done, err, errlen) < 0)
        goto done;
    for (int i = 0; i < schema_migration_count; i++) {
        const struct schema_migration *m = &schema_migrations[i];
        if (done[i])
            continue;
        char rec[256];
        snprintf(rec, sizeof rec, "INSERT INTO schema_migrations (version, name) VALUES (%d, '%s')",
                 m->version, m->name);
        if (exec_ok(conn, "BEGIN", err, errlen) < 0)
            goto done;
        if (exec_ok(conn, m->sql, err, errlen) < 0 || exec_ok(conn, rec, err, errlen) < 0 ||
            exec_ok(conn, "COMMIT", err, errlen) < 0) {
            char first[512];
            snprintf(first, sizeof first, "%s", err);
            PGresult *r = PQexec(conn, "ROLLBACK");
            PQclear(r);
            snprintf(err, errlen, "migration %s failed: %s", m->name, first);
            goto done;
        }
        (*applied)++;
    }
    rc = 0;
done:
    if (locked) {
        char ignore[8];
        (void)exec_ok(conn, unlock, ignore, sizeof ignore);
    }
    free(done);
    return rc;
}

int schema_check(PGconn *conn, char *err, size_t errlen)
{
    int rc = -1;
    char *done = xcalloc((size_t)schema_migration_count + 1, 1);
    PGresult *r = PQexec(conn, "SELECT to_regclass('schema_migrations') IS NOT NULL");
    if (PQresultStatus(r) != PGRES_TUPLES_OK) {
        snprintf(err, errlen, "%s", PQresultErrorMessage(r));
        PQclear(r);
        goto done;
    }
    int exists = PQgetvalue(r, 0, 0)[0] == 't';
    PQclear(r);
    if (exists && applied_set(conn, done, err, errlen) < 0)
        goto done;
    for (int i = 0; i < schema_migration_count; i++) {
        if (!done[i]) {
            snprintf(err, errlen,
                     "database schema is older than this capxd: migration %s is missing "
                     "(run capx-admin migrate)",
                     schema_migrations[i].name);
            goto done;
        }
    }
    rc = 0;
done:
    free(done);
    return rc;
}
