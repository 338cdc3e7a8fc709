/*
 * migrate.h — schema migrations carried inside the binaries.
 *
 * schema/NNN_name.sql files are embedded at build time (schema/embed.cmake). `migrate`
 * applies the missing ones in order, each in its own transaction, and records each in
 * schema_migrations; a second run does nothing. An advisory lock keeps two migrators
 * apart. `check` tells a starting capxd whether the database has every migration it needs.
 * These calls block: they are for capx-admin and for capxd before its loop starts.
 */
#ifndef CAPX_SCHEMA_MIGRATE_H
#define CAPX_SCHEMA_MIGRATE_H

#include <stddef.h>
#include <libpq-fe.h>

#include "common/capx.h"

struct schema_migration {
    int version;      /* NNN of the file name */
    const char *name; /* file name without .sql */
    const char *sql;  /* the file's text */
};

extern const struct schema_migration schema_migrations[];
extern const int schema_migration_count;

/* Highest version this build knows. */
int schema_latest_version(void);

/* Apply missing migrations. *applied gets how many ran. 0 ok, -1 with err. */
MUSTCHECK int schema_migrate(PGconn *conn, int *applied, char *err, size_t errlen);

/* 0 when every known migration is applied; -1 with err naming the first missing one. */
MUSTCHECK int schema_check(PGconn *conn, char *err, size_t errlen);

#endif
