/*
 * capx-admin — the operators' tool.
 *
 * It finds the database and the server the way capxd does (config file, CAPX_* environment,
 * flags: one table, common/config.h), so in an environment made by deploy/dev-up.sh (same
 * CAPX_VAR, CAPX_PORT) it needs no flags. Commands that only shape the database (migrate,
 * schema-check, bootstrap) talk to PostgreSQL directly with blocking libpq. Everything that
 * touches accounts, keys or money goes through capxd's admin API over HTTPS (clients/cli.c):
 * capxd is the one writer of the ledger, so no money ever moves by SQL from here. The server
 * defaults to https://127.0.0.1:PORT, its certificate to VAR/tls/cert.pem and the admin key to
 * the contents of VAR/admin.key; --url, --cacert and --api-key (or CAPX_URL, ...) override.
 *
 * Exit codes: 0 success; 1 the operation failed or the server refused it (reason on stderr),
 * or check found a violation; 2 bad usage; 3 cannot reach capxd or TLS failed; 4 capxd
 * failed (5xx).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <libpq-fe.h>

#include "clients/cli.h"
#include "clients/report.h"
#include "clients/units.h"
#include "common/config.h"
#include "common/ids.h"
#include "common/timefmt.h"
#include "schema/migrate.h"

static char *opt_database, *opt_var, *opt_name, *opt_url, *opt_api_key, *opt_cacert, *opt_format;
static int64_t opt_pgport, opt_port, opt_timeout;

static const struct cfg_entry admin_cfg[] = {
    {"database", CFG_STR, &opt_database, "", 0, 0,
     "PostgreSQL connection string (default: the cluster of deploy/pg.sh under --var)"},
    {"var", CFG_STR, &opt_var, "var", 0, 0, "state directory of deploy/dev-up.sh"},
    {"pgport", CFG_INT, &opt_pgport, "54329", 1, 65535, "port of the private PostgreSQL"},
    {"name", CFG_STR, &opt_name, "", 0, 0, "account name (bootstrap, accounts create)"},
    {"port", CFG_INT, &opt_port, "8443", 1, 65535, "HTTPS port of capxd (for the default --url)"},
    {"url", CFG_STR, &opt_url, "", 0, 0, "capxd's URL (default https://127.0.0.1:PORT)"},
    {"api_key", CFG_STR, &opt_api_key, "", 0, 0,
     "admin API key (default: the contents of VAR/admin.key)"},
    {"cacert", CFG_STR, &opt_cacert, "", 0, 0,
     "PEM file of CAs to trust (default VAR/tls/cert.pem when it exists, else the system's)"},
    {"format", CFG_STR, &opt_format, "table", 0, 0, "output: table, csv or json"},
    {"timeout", CFG_INT, &opt_timeout, "30", 1, 3600, "seconds to wait for each network step"},
};

/* Each API command's own flags. */
static const char *f_account, *f_amount, *f_roles, *f_idem, *f_limit, *f_cursor, *f_all;
static const char *f_from, *f_to, *f_until, *f_at;

#define FLAG_IDEM                                                                                  \
    {                                                                                              \
        "idempotency-key", 0, &f_idem,                                                             \
            "retry an earlier attempt with its key (default: a fresh random key)"                  \
    }
static const struct cli_flag fl_list[] = {
    {"limit", 0, &f_limit, "results per page, 1-500 (default 100)"},
    {"cursor", 0, &f_cursor, "start after this cursor (from an earlier page)"},
    {"all", 1, &f_all, "follow next_cursor to the end"},
};
static const struct cli_flag fl_acct_create[] = {
    {"roles", 0, &f_roles, "comma-separated roles: buyer, provider, admin (required)"},
    FLAG_IDEM,
};
static const struct cli_flag fl_key_create[] = {
    {"account", 0, &f_account, "account id (required)"},
    FLAG_IDEM,
};
static const struct cli_flag fl_idem[] = {FLAG_IDEM};
static const struct cli_flag fl_money[] = {
    {"account", 0, &f_account, "account id (required)"},
    {"amount", 0, &f_amount, "dollars, exact to 6 decimals: 5000.00 (required)"},
    FLAG_IDEM,
};

static const struct cli_flag fl_period[] = {
    {"from", 0, &f_from, "start of the period, RFC 3339 UTC: 2027-01-01T00:00:00Z (required)"},
    {"to", 0, &f_to, "end of the period (excluded), after --from (required)"},
};
static const struct cli_flag fl_payout[] = {
    {"until", 0, &f_until,
     "pay earnings of hours ending at or before this whole hour, RFC 3339 UTC (required; "
     "not after the market clock's now)"},
    FLAG_IDEM,
};
static const struct cli_flag fl_at[] = {
    {"at", 0, &f_at, "only transfers created at or before this time, RFC 3339 UTC (default: all)"},
};

static const char usage_tail[] =
    "\n\nAmounts are dollars (5000.00; at most 6 decimals, converted exactly). Commands that "
    "create\nor move something carry an Idempotency-Key; after a failure rerun with "
    "--idempotency-key KEY\n(printed) to retry safely. Reports print money in dollars exactly "
    "(from integer\nmicro-USD); `report trial-balance` and `report market` read the database in a "
    "read-only\ntransaction, everything else goes through capxd.\n\nExit codes: 0 ok; 1 failed or "
    "refused (reason on stderr), check found a violation,\nthe settlement report differs from the "
    "ledger or the trial balance does not balance;\n2 usage error (bad flags, dates, --to not "
    "after --from); 3 cannot reach capxd, TLS\nfailed or cannot reach the database; 4 capxd "
    "failed (5xx).";

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

/* ---- commands through capxd's admin API ---- */

static const struct cli_col acct_cols[] = {
    {"ID", "id", CK_STR, 0},
    {"NAME", "name", CK_STR, 0},
    {"ROLES", "roles", CK_LIST, 0},
};
static const struct cli_col acct_new_cols[] = {
    {"ID", "id", CK_STR, 0},
    {"NAME", "name", CK_STR, 0},
    {"ROLES", "roles", CK_LIST, 0},
    {"API KEY", "api_key", CK_STR, 0},
};
static const struct cli_col key_cols[] = {
    {"ID", "id", CK_STR, 0},
    {"ACCOUNT", "account_id", CK_STR, 0},
    {"API KEY", "api_key", CK_STR, 0},
};
static const struct cli_col money_cols[] = {
    {"ID", "id", CK_STR, 0},
    {"ACCOUNT", "account_id", CK_STR, 0},
    {"KIND", "kind", CK_STR, 0},
    {"AMOUNT $", "amount", CK_USD, 0},
};
static const struct cli_col check_cols[] = {
    {"BALANCED", "balanced", CK_STR, 0},
    {"ACCOUNTS", "accounts", CK_NUM, 0},
    {"TRANSFERS", "transfers", CK_NUM, 0},
    {"TOTAL DEBITS $", "total_debits", CK_USD, 0},
    {"TOTAL CREDITS $", "total_credits", CK_USD, 0},
};
static const struct cli_col violation_cols[] = {
    {"CODE", "code", CK_STR, 0},
    {"ACCOUNT", "account", CK_STR, 0},
    {"DETAIL", "detail", CK_STR, 0},
};

static int accounts_list(struct cli *c, char **args)
{
    UNUSED(args);
    json_t *out = NULL;
    int rc = cli_list(c, "/v1/accounts", "", f_limit, f_cursor, cli_switch_on(f_all), &out);
    if (rc == CLI_OK)
        cli_print_list(c, out, acct_cols, ARRAY_LEN(acct_cols));
    json_decref(out);
    return rc;
}

static int accounts_create(struct cli *c, char **args)
{
    UNUSED(args);
    if (cli_need(c, opt_name, "name") < 0 || cli_need(c, f_roles, "roles") < 0)
        return CLI_USAGE;
    json_t *roles = json_array();
    const char *p = f_roles;
    while (*p) {
        size_t n = strcspn(p, ",");
        if (n == 0) {
            json_decref(roles);
            return cli_fail(c, CLI_USAGE, "--roles: an empty role in \"%s\"", f_roles);
        }
        json_array_append_new(roles, json_stringn(p, n));
        p += n;
        if (*p == ',' && !*++p) {
            json_decref(roles);
            return cli_fail(c, CLI_USAGE, "--roles: an empty role in \"%s\"", f_roles);
        }
    }
    json_t *b = json_pack("{s:s,s:o}", "name", opt_name, "roles", roles);
    int rc = cli_post(c, "/v1/accounts", b, f_idem, acct_new_cols, ARRAY_LEN(acct_new_cols));
    if (rc == CLI_OK && c->format == CLI_TABLE)
        fprintf(stderr, "capx-admin: the API key above is shown only once\n");
    return rc;
}

static int keys_create(struct cli *c, char **args)
{
    UNUSED(args);
    char path[512], esc[256];
    if (cli_need(c, f_account, "account") < 0)
        return CLI_USAGE;
    cli_escape(f_account, esc, sizeof esc);
    snprintf(path, sizeof path, "/v1/accounts/%s/api-keys", esc);
    return cli_post(c, path, NULL, f_idem, key_cols, ARRAY_LEN(key_cols));
}

static int keys_revoke(struct cli *c, char **args)
{
    char path[512], esc[256], kb[64];
    json_t *out = NULL;
    cli_escape(args[0], esc, sizeof esc);
    snprintf(path, sizeof path, "/v1/api-keys/%s", esc);
    int rc = cli_call(c, "DELETE", path, NULL, cli_idem(f_idem, kb, sizeof kb), &out);
    json_decref(out);
    if (rc != CLI_OK)
        return rc;
    json_t *done = json_pack("{s:s,s:b}", "id", args[0], "revoked", 1);
    const struct cli_col cols[] = {{"ID", "id", CK_STR, 0}, {"REVOKED", "revoked", CK_STR, 0}};
    cli_print_one(c, done, cols, ARRAY_LEN(cols));
    json_decref(done);
    return rc;
}

static int money(struct cli *c, const char *what)
{
    char path[512], esc[256], err[256];
    int64_t amount;
    if (cli_need(c, f_account, "account") < 0 || cli_need(c, f_amount, "amount") < 0)
        return CLI_USAGE;
    if (units_parse_usd(f_amount, UNITS_AMOUNT, &amount, err, sizeof err) < 0)
        return cli_fail(c, CLI_USAGE, "--amount: %s", err);
    cli_escape(f_account, esc, sizeof esc);
    snprintf(path, sizeof path, "/v1/accounts/%s/%s", esc, what);
    return cli_post(c, path, json_pack("{s:I}", "amount", (json_int_t)amount), f_idem, money_cols,
                    ARRAY_LEN(money_cols));
}

static int deposit(struct cli *c, char **args)
{
    UNUSED(args);
    return money(c, "deposits");
}

static int withdraw(struct cli *c, char **args)
{
    UNUSED(args);
    return money(c, "withdrawals");
}

/* The ledger's invariants, recomputed by capxd; exit 1 on any violation. */
static int check(struct cli *c, char **args)
{
    UNUSED(args);
    json_t *out = NULL;
    int rc = cli_call(c, "GET", "/v1/admin/ledger/check", NULL, NULL, &out);
    if (rc != CLI_OK)
        return rc;
    json_t *viol = json_object_get(out, "violations");
    size_t nv = json_array_size(viol);
    int balanced = json_is_true(json_object_get(out, "balanced"));
    if (c->format == CLI_JSON) {
        cli_print_json(out);
    } else {
        json_t *list = json_pack("{s:O}", "data", viol ? viol : json_array());
        if (c->format == CLI_TABLE) {
            cli_print_one(c, out, check_cols, ARRAY_LEN(check_cols));
            if (nv)
                printf("\nViolations:\n");
        }
        if (nv || c->format == CLI_CSV)
            cli_print_list(c, list, violation_cols, ARRAY_LEN(violation_cols));
        json_decref(list);
    }
    if (!json_is_array(viol) || !json_is_boolean(json_object_get(out, "balanced"))) {
        rc = cli_fail(c, CLI_SERVER, "the check's answer lacks balanced or violations");
    } else if (nv || !balanced) {
        rc = cli_fail(c, CLI_REFUSED, "the ledger check found %zu violation%s%s", nv,
                      nv == 1 ? "" : "s", balanced ? "" : " and debits differ from credits");
    } else if (c->format == CLI_TABLE) {
        fprintf(stderr, "capx-admin: the ledger is balanced; no violations\n");
    }
    json_decref(out);
    return rc;
}

static int payout(struct cli *c, char **args)
{
    UNUSED(args);
    char kb[64];
    return report_payout(c, f_until, cli_idem(f_idem, kb, sizeof kb));
}

static int settlement(struct cli *c, char **args)
{
    UNUSED(args);
    int64_t t1, t2;
    if (report_period(c->prog, f_from, f_to, &t1, &t2) < 0)
        return CLI_USAGE;
    /* The database only for the extra tie by kind; the report itself comes from capxd. */
    char *ci = opt_database && *opt_database ? xstrdup(opt_database)
                                             : cfg_default_conninfo(opt_var, opt_pgport);
    PGconn *db = PQconnectdb(ci);
    free(ci);
    if (PQstatus(db) != CONNECTION_OK) {
        PQfinish(db);
        db = NULL;
    }
    int rc = report_settlement(c, db, f_from, f_to);
    if (db)
        PQfinish(db);
    return rc;
}

/* ---- reports read from the database (read-only) ---- */

static int trial_balance(PGconn *db, enum cli_format fmt)
{
    return report_trial_balance(db, fmt, f_at && *f_at ? f_at : NULL);
}

static int market_report(PGconn *db, enum cli_format fmt)
{
    return report_market(db, fmt, f_from, f_to);
}

/* ---- dispatch ---- */

enum runs_on { DB, API, DB_REPORT };

struct command {
    const char *noun, *verb; /* verb NULL for one-word commands */
    const char *args;        /* positional arguments after the command, for usage */
    int nargs;
    const char *summary;
    const struct cli_flag *flags;
    size_t nflags;
    enum runs_on on;
    int (*api)(struct cli *c, char **args);
    int (*db)(PGconn *c);
    int (*report)(PGconn *c, enum cli_format fmt);
};

#define FLAGS(t) t, ARRAY_LEN(t)
static const struct command commands[] = {
    {"migrate", NULL, "", 0, "apply missing schema migrations (a second run does nothing)", NULL, 0,
     DB, NULL, cmd_migrate, NULL},
    {"schema-check", NULL, "", 0,
     "exit 0 when the schema is current, 1 naming the missing migration", NULL, 0, DB, NULL,
     cmd_schema_check, NULL},
    {"bootstrap", NULL, "", 0, "create the first admin account (--name N) and print its API key",
     NULL, 0, DB, NULL, cmd_bootstrap, NULL},
    {"accounts", "list", "", 0, "every account", FLAGS(fl_list), API, accounts_list, NULL, NULL},
    {"accounts", "create", "", 0, "an account (--name N --roles buyer,provider); prints its key",
     FLAGS(fl_acct_create), API, accounts_create, NULL, NULL},
    {"keys", "create", "", 0, "another API key for --account ID", FLAGS(fl_key_create), API,
     keys_create, NULL, NULL},
    {"keys", "revoke", "KEY_ID", 1, "revoke a key (it gets 401 from then on)", FLAGS(fl_idem), API,
     keys_revoke, NULL, NULL},
    {"deposit", NULL, "", 0, "money in: --account ID --amount 5000.00", FLAGS(fl_money), API,
     deposit, NULL, NULL},
    {"withdraw", NULL, "", 0, "money out, at most the available balance", FLAGS(fl_money), API,
     withdraw, NULL, NULL},
    {"check", NULL, "", 0, "the ledger invariants; exit 1 on any violation", NULL, 0, API, check,
     NULL, NULL},
    {"payout", NULL, "", 0, "pay providers' settled earnings up to --until T out (once per period)",
     FLAGS(fl_payout), API, payout, NULL, NULL},
    {"report", "settlement", "", 0,
     "--from T --to T: providers, buyers, platform; tied to the ledger", FLAGS(fl_period), API,
     settlement, NULL, NULL},
    {"report", "trial-balance", "", 0,
     "[--at T] every ledger account's debits, credits, balance; must balance", FLAGS(fl_at),
     DB_REPORT, NULL, NULL, trial_balance},
    {"report", "market", "", 0, "--from T --to T: volume, VWAP per market and hour, spot prices",
     FLAGS(fl_period), DB_REPORT, NULL, NULL, market_report},
};

static char *global_usage(void)
{
    size_t cap = 8192, len = 0;
    char *s = xmalloc(cap);
    len = cli_appendf(s, cap, len,
                      "usage: capx-admin COMMAND [ARGS] [flags]\n\n"
                      "Commands:");
    for (size_t i = 0; i < ARRAY_LEN(commands); i++) {
        char left[64];
        snprintf(left, sizeof left, "%s%s%s %s", commands[i].noun, commands[i].verb ? " " : "",
                 commands[i].verb ? commands[i].verb : "", commands[i].args);
        len = cli_appendf(s, cap, len, "\n  %-26s %s", left, commands[i].summary);
    }
    snprintf(s + len, cap - len, "\n\n`capx-admin COMMAND --help` lists a command's flags.%s",
             usage_tail);
    return s;
}

static char *command_usage(const struct command *cmd)
{
    char head[1024];
    snprintf(head, sizeof head, "usage: capx-admin %s%s%s%s%s [flags]\n\n%s.%s", cmd->noun,
             cmd->verb ? " " : "", cmd->verb ? cmd->verb : "", cmd->args[0] ? " " : "", cmd->args,
             cmd->summary, usage_tail);
    return cli_usage(head, cmd->flags, cmd->nflags);
}

/* Reads the admin key from path into buf (trimmed). 0 ok, -1 when absent or unreadable. */
static int read_key_file(const char *path, char *buf, size_t size)
{
    FILE *f = fopen(path, "r");
    if (!f)
        return -1;
    size_t n = fread(buf, 1, size - 1, f);
    fclose(f);
    buf[n] = '\0';
    while (n && (buf[n - 1] == '\n' || buf[n - 1] == '\r' || buf[n - 1] == ' '))
        buf[--n] = '\0';
    return n ? 0 : -1;
}

/* The API connection from the settings, with dev-up.sh's defaults under the state directory. */
static int api_setup(struct cli *c, char *url, size_t urllen, char *cacert, size_t calen, char *key,
                     size_t keylen)
{
    char *var = cfg_state_dir(opt_var);
    struct stat st;
    if (opt_url && *opt_url)
        snprintf(url, urllen, "%s", opt_url);
    else
        snprintf(url, urllen, "https://127.0.0.1:%lld", (long long)opt_port);
    cacert[0] = '\0';
    if (opt_cacert && *opt_cacert)
        snprintf(cacert, calen, "%s", opt_cacert);
    else {
        snprintf(cacert, calen, "%s/tls/cert.pem", var);
        if (stat(cacert, &st) < 0)
            cacert[0] = '\0';
    }
    int rc = CLI_OK;
    if (opt_api_key && *opt_api_key) {
        snprintf(key, keylen, "%s", opt_api_key);
    } else {
        char path[4200];
        snprintf(path, sizeof path, "%s/admin.key", var);
        if (read_key_file(path, key, keylen) < 0) {
            fprintf(stderr,
                    "capx-admin: no admin key: give --api-key or CAPX_API_KEY, or run "
                    "where %s exists (CAPX_VAR)\n",
                    path);
            rc = CLI_USAGE;
        }
    }
    free(var);
    if (rc == CLI_OK)
        rc = cli_init(c, "capx-admin", url, cacert, key, opt_format, opt_timeout);
    return rc;
}

static int is_switch_flag(const char *a)
{
    const char *name = a + 2;
    size_t len = strcspn(name, "=");
    if (name[len] == '=' || !strcmp(a, "--help"))
        return 1;
    for (size_t i = 0; i < ARRAY_LEN(commands); i++)
        for (size_t j = 0; j < commands[i].nflags; j++)
            if (commands[i].flags[j].is_switch && strlen(commands[i].flags[j].name) == len &&
                !strncmp(commands[i].flags[j].name, name, len))
                return 1;
    return 0;
}

int main(int argc, char **argv)
{
    char err[1024];
    int nrest = 0, rc = CLI_USAGE, help = 0, nwords = 0;
    const char *words[2] = {NULL, NULL};
    char *usage = NULL;

    /* COMMAND (and VERB): the first words that are neither flags nor flag values. */
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--help") || !strcmp(a, "-h"))
            help = 1;
        if (!strncmp(a, "--", 2) && a[2]) {
            if (!is_switch_flag(a))
                i++;
            continue;
        }
        if (a[0] == '-' && a[1])
            continue;
        if (nwords < 2)
            words[nwords++] = a;
    }
    const struct command *cmd = NULL;
    for (size_t i = 0; words[0] && i < ARRAY_LEN(commands); i++)
        if (!strcmp(commands[i].noun, words[0]) &&
            (!commands[i].verb || (words[1] && !strcmp(commands[i].verb, words[1]))))
            cmd = &commands[i];
    if (!cmd) {
        usage = global_usage();
        if (help) {
            cfg_help(admin_cfg, ARRAY_LEN(admin_cfg), stdout, usage);
            rc = CLI_OK;
        } else if (words[0]) {
            fprintf(stderr, "capx-admin: unknown command \"%s%s%s\"\n%s\n", words[0],
                    words[1] ? " " : "", words[1] ? words[1] : "", usage);
        } else {
            fprintf(stderr, "%s\n", usage);
        }
        free(usage);
        return rc;
    }
    usage = command_usage(cmd);
    if (cli_take_flags(cmd->flags, cmd->nflags, &argc, argv, err, sizeof err) < 0 && !help) {
        fprintf(stderr, "capx-admin: %s\n", err);
        goto out;
    }
    const char *cfile = help ? NULL : cli_config_arg(argc, argv);
    if (cfile && cli_config_private("capx-admin", cfile, 1) < 0)
        goto out;
    int lr = cfg_load(admin_cfg, ARRAY_LEN(admin_cfg), argc, argv, &nrest, stdout, usage, err,
                      sizeof err);
    if (lr == 1) {
        rc = CLI_OK;
        goto out;
    }
    if (lr < 0) {
        fprintf(stderr, "capx-admin: %s\n", err);
        goto out;
    }
    int skip = cmd->verb ? 2 : 1;
    if (nrest != skip + cmd->nargs) {
        fprintf(stderr, "capx-admin: %s%s%s takes %s%s (see --help)\n", cmd->noun,
                cmd->verb ? " " : "", cmd->verb ? cmd->verb : "",
                cmd->nargs ? "the argument " : "no arguments", cmd->args);
        goto out;
    }
    if (cmd->on == DB) {
        PGconn *c = connect_db();
        if (!c) {
            rc = CLI_UNREACHABLE;
            goto out;
        }
        rc = cmd->db(c);
        PQfinish(c);
    } else if (cmd->on == DB_REPORT) {
        enum cli_format fmt = CLI_TABLE;
        if (opt_format && !strcmp(opt_format, "csv"))
            fmt = CLI_CSV;
        else if (opt_format && !strcmp(opt_format, "json"))
            fmt = CLI_JSON;
        else if (opt_format && *opt_format && strcmp(opt_format, "table") != 0) {
            fprintf(stderr, "capx-admin: --format must be table, csv or json, got \"%s\"\n",
                    opt_format);
            goto out;
        }
        int64_t t1, t2;
        if (cmd->report == market_report && report_period("capx-admin", f_from, f_to, &t1, &t2) < 0)
            goto out;
        if (cmd->report == trial_balance && f_at && *f_at && capx_time_parse(f_at, &t1) < 0) {
            fprintf(stderr, "capx-admin: --at: \"%s\" is not an RFC 3339 UTC time\n", f_at);
            goto out;
        }
        PGconn *c = connect_db();
        if (!c) {
            rc = CLI_UNREACHABLE;
            goto out;
        }
        rc = cmd->report(c, fmt);
        PQfinish(c);
    } else {
        struct cli c;
        char url[1024], cacert[4200], key[512];
        rc = api_setup(&c, url, sizeof url, cacert, sizeof cacert, key, sizeof key);
        if (rc == CLI_OK)
            rc = cmd->api(&c, argv + skip);
    }
out:
    free(usage);
    cfg_free(admin_cfg, ARRAY_LEN(admin_cfg));
    return rc;
}
