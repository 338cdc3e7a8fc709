/*
 * capx-admin — the operators' tool.
 *
 * It finds the database the way capxd does (config file, CAPX_* environment, flags), so in
 * an environment made by deploy/dev-up.sh it needs no flags. Commands that only shape the
 * database (migrate, bootstrap) talk to PostgreSQL directly with blocking libpq; anything
 * that moves money goes through capxd's admin API.
 *
 * Exit codes: 0 success, 1 the operation failed (reason on stderr), 2 bad usage.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libpq-fe.h>

#include "common/config.h"
#include "common/ids.h"
#include "schema/migrate.h"

static char *opt_database, *opt_var, *opt_name;
static int64_t opt_pgport;

static const struct cfg_entry admin_cfg[] = {
    {"database", CFG_STR, &opt_database, "", 0, 0,
     "PostgreSQL connection string (default: the cluster of deploy/pg.sh under --var)"},
    {"var", CFG_STR, &opt_var, "var", 0, 0, "state directory of deploy/dev-up.sh"},
    {"pgport", CFG_INT, &opt_pgport, "54329", 1, 65535, "port of the private PostgreSQL"},
    {"name", CFG_STR, &opt_name, "", 0, 0, "account name (bootstrap)"},
};

static const char usage[] =
    "usage: capx-admin COMMAND [flags]\n\n"
    "Commands:\n"
    "  migrate               apply missing schema migrations (a second run does nothing)\n"
    "  schema-check          exit 0 when the schema is current, 1 naming the missing migration\n"
    "  bootstrap --name N    create the first admin account and print its API key\n"
    "\nExit codes: 0 ok, 1 failed (reason on stderr), 2 usage error.";

static PGconn *connect_db(void)
{
    char *ci = opt_database && *opt_database ? xstrdup(opt_database)
                                             : cfg_default_conninfo(opt_var, opt_pgport);
    PGconn *c = PQconnectdb(ci);
    free(ci);
    if (PQstatus(c) != CONNECTION_OK) {
        fprintf(stderr, "capx-admin: cannot connect to the database: %s", PQerrorMessage(c));
        PQfinish(c);
        return NULL;
    }
    return c;
}

static int cmd_migrate(PGconn *c)
{
    char err[1024];
    int applied = 0;
    if (schema_migrate(c, &applied, err, sizeof err) < 0) {
        fprintf(stderr, "capx-admin: %s\n", err);
        return 1;
    }
    printf("migrations applied: %d (schema version %d)\n", applied, schema_latest_version());
    return 0;
}

static int cmd_schema_check(PGconn *c)
{
    char err[1024];
    if (schema_check(c, err, sizeof err) < 0) {
        fprintf(stderr, "capx-admin: %s\n", err);
        return 1;
    }
    printf("schema is current (version %d)\n", schema_latest_version());
    return 0;
}

/* Creates the first admin account; refuses when an admin account exists already. */
static int cmd_bootstrap(PGconn *c)
{
    char acct[64], keyid[64], key[CAPX_KEY_LEN + 1], hashhex[65];
    unsigned char hash[32];
    int rc = 1;
    PGresult *r = NULL;
    if (!opt_name || !*opt_name || strlen(opt_name) > 128) {
        fprintf(stderr, "capx-admin: bootstrap needs --name (1-128 characters)\n");
        return 2;
    }
    capx_id_new("acct_", acct, sizeof acct);
    capx_id_new("key_", keyid, sizeof keyid);
    capx_key_new(key);
    capx_key_hash(key, strlen(key), hash);
    for (int i = 0; i < 32; i++)
        snprintf(hashhex + 2 * i, 3, "%02x", hash[i]);
    r = PQexec(c, "BEGIN; LOCK TABLE accounts IN EXCLUSIVE MODE");
    if (PQresultStatus(r) != PGRES_COMMAND_OK)
        goto fail;
    PQclear(r);
    r = PQexec(c, "SELECT count(*) FROM accounts WHERE 'admin' = ANY (roles)");
    if (PQresultStatus(r) != PGRES_TUPLES_OK)
        goto fail;
    if (atoll(PQgetvalue(r, 0, 0)) > 0) {
        fprintf(stderr, "capx-admin: an admin account exists already; create more through the "
                        "API (POST /v1/accounts)\n");
        PQclear(r);
        r = PQexec(c, "ROLLBACK");
        PQclear(r);
        return 1;
    }
    PQclear(r);
    const char *p1[] = {acct, opt_name};
    r = PQexecParams(c, "INSERT INTO accounts (id, name, roles) VALUES ($1, $2, '{admin}')", 2,
                     NULL, p1, NULL, NULL, 0);
    if (PQresultStatus(r) != PGRES_COMMAND_OK)
        goto fail;
    PQclear(r);
    const char *p2[] = {keyid, acct, hashhex};
    r = PQexecParams(c,
                     "INSERT INTO api_keys (id, account_id, key_hash) "
                     "VALUES ($1, $2, decode($3, 'hex'))",
                     3, NULL, p2, NULL, NULL, 0);
    if (PQresultStatus(r) != PGRES_COMMAND_OK)
        goto fail;
    PQclear(r);
    r = PQexec(c, "COMMIT");
    if (PQresultStatus(r) != PGRES_COMMAND_OK)
        goto fail;
    PQclear(r);
    printf("%s\n", key);
    fprintf(stderr, "admin account %s (%s) created; the key above is shown only once\n", acct,
            opt_name);
    return 0;
fail:
    fprintf(stderr, "capx-admin: bootstrap failed: %s", PQresultErrorMessage(r));
    PQclear(r);
    r = PQexec(c, "ROLLBACK");
    PQclear(r);
    return rc;
}

int main(int argc, char **argv)
{
    char err[1024];
    int nrest = 0, rc = 2;
    int lr = cfg_load(admin_cfg, ARRAY_LEN(admin_cfg), argc, argv, &nrest, stdout, usage, err,
                      sizeof err);
    if (lr == 1)
        return 0;
    if (lr < 0) {
        fprintf(stderr, "capx-admin: %s\n", err);
        return 2;
    }
    if (nrest != 1) {
        fprintf(stderr, "%s\n", usage);
        goto out;
    }
    const char *cmd = argv[0];
    if (strcmp(cmd, "migrate") && strcmp(cmd, "bootstrap") && strcmp(cmd, "schema-check")) {
        fprintf(stderr, "capx-admin: unknown command \"%s\"\n%s\n", cmd, usage);
        goto out;
    }
    PGconn *c = connect_db();
    if (!c) {
        rc = 1;
        goto out;
    }
    if (!strcmp(cmd, "migrate"))
        rc = cmd_migrate(c);
    else if (!strcmp(cmd, "schema-check"))
        rc = cmd_schema_check(c);
    else
        rc = cmd_bootstrap(c);
    PQfinish(c);
out:
    cfg_free(admin_cfg, ARRAY_LEN(admin_cfg));
    return rc;
}
