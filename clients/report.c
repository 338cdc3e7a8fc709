/*
 * report.c — see report.h.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clients/report.h"
#include "clients/table.h"
#include "clients/units.h"
#include "common/timefmt.h"

/* ---- small helpers ---- */

int report_period(const char *prog, const char *from, const char *to, int64_t *f, int64_t *t)
{
    if (!from || !*from || !to || !*to) {
        fprintf(stderr, "%s: missing --%s (an RFC 3339 UTC time, e.g. 2027-01-01T00:00:00Z)\n",
                prog, !from || !*from ? "from" : "to");
        return -1;
    }
    if (capx_time_parse(from, f) < 0) {
        fprintf(stderr, "%s: --from: \"%s\" is not an RFC 3339 UTC time (2027-01-01T00:00:00Z)\n",
                prog, from);
        return -1;
    }
    if (capx_time_parse(to, t) < 0) {
        fprintf(stderr, "%s: --to: \"%s\" is not an RFC 3339 UTC time (2027-01-01T00:00:00Z)\n",
                prog, to);
        return -1;
    }
    if (*t <= *f) {
        fprintf(stderr, "%s: --to (%s) must be after --from (%s)\n", prog, to, from);
        return -1;
    }
    return 0;
}

/* Cells of one row, freed by row_add. */
struct row {
    char *cell[16];
    size_t n;
};

static void put_str(struct row *r, const char *s)
{
    CAPX_ASSERT(r->n < ARRAY_LEN(r->cell));
    r->cell[r->n++] = xstrdup(s ? s : "");
}

static void put_usd(struct row *r, int64_t micros)
{
    char b[UNITS_USD_STRLEN];
    units_format_usd(micros, b);
    put_str(r, b);
}

static void put_num(struct row *r, int64_t v)
{
    char b[32];
    snprintf(b, sizeof b, "%lld", (long long)v);
    put_str(r, b);
}

static void row_add(struct table *t, struct row *r)
{
    CAPX_ASSERT(r->n == t->ncols);
    table_row(t, (const char *const *)r->cell);
    for (size_t i = 0; i < r->n; i++)
        free(r->cell[i]);
    r->n = 0;
}

/* A column list: header (table), key (CSV/JSON) and right alignment. */
struct rcol {
    const char *header, *key;
    int right;
};

static struct table *table_of(const struct rcol *cols, size_t n, enum cli_format fmt)
{
    struct table *t = table_new(n);
    for (size_t i = 0; i < n; i++)
        table_column(t, i, fmt == CLI_CSV ? cols[i].key : cols[i].header, cols[i].right);
    return t;
}

static void print_table(struct table *t, enum cli_format fmt)
{
    if (fmt == CLI_CSV)
        table_print_csv(t, stdout);
    else
        table_print_text(t, stdout);
    table_free(t);
}

/* Checked sum; -1 on overflow. */
static int add(int64_t *acc, int64_t v)
{
    return capx_add_i64(*acc, v, acc);
}

/* ---- report settlement (capxd's report) ---- */

static int64_t jint(json_t *o, const char *k, int *bad)
{
    json_t *v = json_object_get(o, k);
    if (!json_is_integer(v)) {
        *bad = 1;
        return 0;
    }
    return json_integer_value(v);
}

static const char *jstr(json_t *o, const char *k)
{
    const char *s = json_string_value(json_object_get(o, k));
    return s ? s : "";
}

static const struct rcol prov_cols[] = {
    {"PROVIDER", "provider_id", 0},
    {"NAME", "name", 0},
    {"GPU-HOURS", "gpu_hours_delivered", 1},
    {"GROSS $", "gross", 1},
    {"FEES $", "fees", 1},
    {"SLA CREDITS PAID $", "sla_credits_paid", 1},
    {"SLA DEBT $", "sla_debt", 1},
    {"NET $", "net", 1},
    {"PAID OUT $", "paid_out", 1},
};
static const struct rcol buyer_cols[] = {
    {"BUYER", "buyer_id", 0},
    {"NAME", "name", 0},
    {"RESERVED GPU-H", "gpu_hours_reserved", 1},
    {"DELIVERED GPU-H", "gpu_hours_delivered", 1},
    {"CHARGED $", "charged", 1},
    {"REFUNDED $", "refunded", 1},
    {"SLA CREDITS RECEIVED $", "sla_credits_received", 1},
};
static const struct rcol total_cols[] = {
    {"GROSS $", "gross", 1},       {"FEES $", "fees", 1},
    {"REFUNDS $", "refunds", 1},   {"SLA CREDITS $", "sla_credits", 1},
    {"PAID OUT $", "paid_out", 1},
};
static const struct rcol line_cols[] = {
    {"WHAT", "what", 0},
    {"REPORT $", "report", 1},
    {"LEDGER $", "ledger", 1},
    {"DIFFERENCE $", "difference", 1},
};

/* The settlement report as CSV: one row per figure (section, id, name, field, value). */
static void settlement_csv(json_t *rep)
{
    struct table *t = table_new(5);
    static const char *h[] = {"section", "id", "name", "field", "value"};
    for (size_t i = 0; i < 5; i++)
        table_column(t, i, h[i], 0);
    struct {
        const char *section, *list, *idkey;
        const struct rcol *cols;
        size_t n;
    } secs[] = {
        {"provider", "providers", "provider_id", prov_cols, ARRAY_LEN(prov_cols)},
        {"buyer", "buyers", "buyer_id", buyer_cols, ARRAY_LEN(buyer_cols)},
    };
    struct row r = {0};
    for (size_t s = 0; s < ARRAY_LEN(secs); s++) {
        size_t i;
        json_t *o;
        json_array_foreach(json_object_get(rep, secs[s].list), i, o)
        {
            for (size_t c = 2; c < secs[s].n; c++) {
                json_t *v = json_object_get(o, secs[s].cols[c].key);
                put_str(&r, secs[s].section);
                put_str(&r, jstr(o, secs[s].idkey));
                put_str(&r, jstr(o, "name"));
                put_str(&r, secs[s].cols[c].key);
                if (strstr(secs[s].cols[c].header, "$"))
                    put_usd(&r, json_integer_value(v));
                else
                    put_num(&r, json_integer_value(v));
                row_add(t, &r);
            }
        }
    }
    json_t *tot = json_object_get(rep, "totals");
    for (size_t c = 0; c < ARRAY_LEN(total_cols); c++) {
        put_str(&r, "platform");
        put_str(&r, "");
        put_str(&r, "");
        put_str(&r, total_cols[c].key);
        put_usd(&r, json_integer_value(json_object_get(tot, total_cols[c].key)));
        row_add(t, &r);
    }
    size_t i;
    json_t *l;
    json_array_foreach(json_object_get(json_object_get(rep, "ledger_check"), "lines"), i, l)
    {
        for (size_t c = 1; c < ARRAY_LEN(line_cols); c++) {
            put_str(&r, "ledger_check");
            put_str(&r, jstr(l, "what"));
            put_str(&r, "");
            put_str(&r, line_cols[c].key);
            put_usd(&r, json_integer_value(json_object_get(l, line_cols[c].key)));
            row_add(t, &r);
        }
    }
    table_print_csv(t, stdout);
    table_free(t);
}

/* Checks the answer's shape; 0 ok, -1 when it is not the report. */
static int settlement_shape(json_t *rep)
{
    int bad = 0;
    json_t *lc = json_object_get(rep, "ledger_check");
    if (!json_is_array(json_object_get(rep, "providers")) ||
        !json_is_array(json_object_get(rep, "buyers")) ||
        !json_is_object(json_object_get(rep, "totals")) || !json_is_object(lc) ||
        !json_is_boolean(json_object_get(lc, "matches")) ||
        !json_is_array(json_object_get(lc, "lines")))
        return -1;
    size_t i;
    json_t *o;
    json_array_foreach(json_object_get(rep, "providers"), i, o) for (size_t c = 2;
                                                                     c < ARRAY_LEN(prov_cols); c++)
        jint(o, prov_cols[c].key, &bad);
    json_array_foreach(json_object_get(rep, "buyers"), i, o) for (size_t c = 2;
                                                                  c < ARRAY_LEN(buyer_cols); c++)
        jint(o, buyer_cols[c].key, &bad);
    for (size_t c = 0; c < ARRAY_LEN(total_cols); c++)
        jint(json_object_get(rep, "totals"), total_cols[c].key, &bad);
    json_array_foreach(json_object_get(lc, "lines"), i, o) for (size_t c = 1;
                                                                c < ARRAY_LEN(line_cols); c++)
        jint(o, line_cols[c].key, &bad);
    return bad ? -1 : 0;
}

/* Rows of a list section with a TOTAL row of the numeric columns. */
static int settlement_section(json_t *list, const struct rcol *cols, size_t n, const char *idkey)
{
    struct table *t = table_of(cols, n, CLI_TABLE);
    int64_t sum[16] = {0};
    struct row r = {0};
    size_t i;
    json_t *o;
    int bad = 0;
    json_array_foreach(list, i, o)
    {
        put_str(&r, jstr(o, idkey));
        put_str(&r, jstr(o, "name"));
        for (size_t c = 2; c < n; c++) {
            int64_t v = jint(o, cols[c].key, &bad);
            if (add(&sum[c], v) < 0)
                bad = 1;
            if (cols[c].header[strlen(cols[c].header) - 1] == '$')
                put_usd(&r, v);
            else
                put_num(&r, v);
        }
        row_add(t, &r);
    }
    put_str(&r, "TOTAL");
    put_str(&r, "");
    for (size_t c = 2; c < n; c++) {
        if (cols[c].header[strlen(cols[c].header) - 1] == '$')
            put_usd(&r, sum[c]);
        else
            put_num(&r, sum[c]);
    }
    row_add(t, &r);
    print_table(t, CLI_TABLE);
    return bad ? -1 : 0;
}

static int ro_begin(PGconn *db);
static void ro_end(PGconn *db);
static PGresult *query(PGconn *db, const char *what, const char *sql, int n, const char *const *v);
static int64_t col_i64(PGresult *r, int row, int col, int *bad);

/* The ledger's own sums by kind of the posted transfers created in the period (transfers carry
   the market clock, as settlements do), against the report's totals. */
static const char kinds_sql[] =
    "SELECT coalesce(sum(amount) FILTER (WHERE kind IN ('delivery', 'spot_delivery')), 0)::bigint, "
    "coalesce(sum(amount) FILTER (WHERE kind = 'fee'), 0)::bigint, "
    "coalesce(sum(amount) FILTER (WHERE kind = 'refund'), 0)::bigint, "
    "coalesce(sum(amount) FILTER (WHERE kind = 'sla_credit'), 0)::bigint, "
    "coalesce(sum(amount) FILTER (WHERE kind = 'payout'), 0)::bigint FROM ledger_transfers "
    "WHERE flags IN (0, 2) AND created_at >= to_timestamp($1::bigint) "
    "AND created_at < to_timestamp($2::bigint)";

/* Appends the by-kind lines to the report's ledger_check lines. 0 ok, -1 when the database
   could not be read (nothing appended). */
static int ledger_kinds(PGconn *db, int64_t f, int64_t t, json_t *rep)
{
    char fb[32], tb[32];
    snprintf(fb, sizeof fb, "%lld", (long long)f);
    snprintf(tb, sizeof tb, "%lld", (long long)t);
    const char *v[] = {fb, tb};
    if (ro_begin(db) < 0)
        return -1;
    PGresult *r = query(db, "the ledger's transfers", kinds_sql, 2, v);
    ro_end(db);
    if (!r)
        return -1;
    json_t *tot = json_object_get(rep, "totals");
    int bad = 0;
    int64_t gross = jint(tot, "gross", &bad), fees = jint(tot, "fees", &bad);
    const struct {
        const char *what;
        int64_t report;
    } want[] = {
        {"ledger_kinds:delivery+spot_delivery=gross-fees", gross - fees},
        {"ledger_kinds:fee=fees", fees},
        {"ledger_kinds:refund=refunds", jint(tot, "refunds", &bad)},
        {"ledger_kinds:sla_credit=sla_credits", jint(tot, "sla_credits", &bad)},
        {"ledger_kinds:payout=paid_out", jint(tot, "paid_out", &bad)},
    };
    json_t *lc = json_object_get(rep, "ledger_check");
    json_t *lines = json_object_get(lc, "lines");
    for (size_t k = 0; k < ARRAY_LEN(want); k++) {
        int64_t got = col_i64(r, 0, (int)k, &bad);
        json_array_append_new(lines,
                              json_pack("{s:s,s:I,s:I,s:I}", "what", want[k].what, "report",
                                        (json_int_t)want[k].report, "ledger", (json_int_t)got,
                                        "difference", (json_int_t)(want[k].report - got)));
        if (want[k].report != got)
            json_object_set_new(lc, "matches", json_false());
    }
    PQclear(r);
    return bad ? -1 : 0;
}

int report_settlement(struct cli *c, PGconn *db, const char *from, const char *to)
{
    int64_t f, t;
    char path[512], ef[64], et[64];
    if (report_period(c->prog, from, to, &f, &t) < 0)
        return CLI_USAGE;
    cli_escape(from, ef, sizeof ef);
    cli_escape(to, et, sizeof et);
    snprintf(path, sizeof path, "/v1/admin/reports/settlement?from=%s&to=%s", ef, et);
    json_t *rep = NULL;
    int rc = cli_call(c, "GET", path, NULL, NULL, &rep);
    if (rc != CLI_OK)
        return rc;
    if (settlement_shape(rep) < 0) {
        json_decref(rep);
        return cli_fail(c, CLI_SERVER,
                        "the server's settlement report is not the contract's shape");
    }
    if (!db)
        fprintf(stderr,
                "%s: the database cannot be reached: only capxd's own tie to the ledger "
                "is checked\n",
                c->prog);
    else if (ledger_kinds(db, f, t, rep) < 0)
        fprintf(stderr,
                "%s: the ledger's sums by kind could not be read: only capxd's own tie "
                "to the ledger is checked\n",
                c->prog);
    json_t *lc = json_object_get(rep, "ledger_check");
    json_t *lines = json_object_get(lc, "lines");
    int differs = !json_is_true(json_object_get(lc, "matches"));
    size_t i;
    json_t *l;
    json_array_foreach(lines, i, l)
    {
        int bad = 0;
        if (jint(l, "difference", &bad) != 0 || jint(l, "report", &bad) != jint(l, "ledger", &bad))
            differs = 1;
    }
    if (c->format == CLI_JSON) {
        cli_print_json(rep);
    } else if (c->format == CLI_CSV) {
        settlement_csv(rep);
    } else {
        printf("Settlement report, hours settled from %s to %s (market clock)\n\nProviders\n",
               jstr(rep, "from"), jstr(rep, "to"));
        settlement_section(json_object_get(rep, "providers"), prov_cols, ARRAY_LEN(prov_cols),
                           "provider_id");
        printf("\nBuyers\n");
        settlement_section(json_object_get(rep, "buyers"), buyer_cols, ARRAY_LEN(buyer_cols),
                           "buyer_id");
        printf("\nPlatform totals\n");
        struct table *tt = table_of(total_cols, ARRAY_LEN(total_cols), CLI_TABLE);
        struct row r = {0};
        json_t *tot = json_object_get(rep, "totals");
        for (size_t k = 0; k < ARRAY_LEN(total_cols); k++)
            put_usd(&r, json_integer_value(json_object_get(tot, total_cols[k].key)));
        row_add(tt, &r);
        print_table(tt, CLI_TABLE);
        printf("\nAgainst the ledger\n");
        struct table *lt = table_of(line_cols, ARRAY_LEN(line_cols), CLI_TABLE);
        json_array_foreach(lines, i, l)
        {
            put_str(&r, jstr(l, "what"));
            for (size_t k = 1; k < ARRAY_LEN(line_cols); k++)
                put_usd(&r, json_integer_value(json_object_get(l, line_cols[k].key)));
            row_add(lt, &r);
        }
        print_table(lt, CLI_TABLE);
        if (differs)
            printf("\nLEDGER CHECK: the report DIFFERS from the ledger (see DIFFERENCE above)\n");
        else
            printf("\nledger check: the report equals the ledger to the micro-dollar (%zu lines, "
                   "difference 0)\n",
                   json_array_size(lines));
    }
    if (differs) {
        json_array_foreach(lines, i, l)
        {
            int bad = 0;
            int64_t d = jint(l, "difference", &bad);
            if (d != 0) {
                char a[UNITS_USD_STRLEN], b[UNITS_USD_STRLEN], dd[UNITS_USD_STRLEN];
                units_format_usd(jint(l, "report", &bad), a);
                units_format_usd(jint(l, "ledger", &bad), b);
                units_format_usd(d, dd);
                fprintf(stderr, "%s: %s: report %s, ledger %s, difference %s\n", c->prog,
                        jstr(l, "what"), a, b, dd);
            }
        }
        rc = cli_fail(c, CLI_REFUSED, "the settlement report differs from the ledger");
    }
    json_decref(rep);
    return rc;
}

/* ---- payout ---- */

int report_payout(struct cli *c, const char *until, const char *idem)
{
    int64_t u;
    if (!until || !*until)
        return cli_fail(c, CLI_USAGE, "missing --until (an RFC 3339 UTC whole hour, see --help)");
    if (capx_time_parse(until, &u) < 0)
        return cli_fail(c, CLI_USAGE, "--until: \"%s\" is not an RFC 3339 UTC time", until);
    if (u % 3600 != 0)
        return cli_fail(c, CLI_USAGE, "--until: \"%s\" is not a whole hour", until);
    json_t *out = NULL;
    int rc =
        cli_call(c, "POST", "/v1/admin/payouts", json_pack("{s:s}", "until", until), idem, &out);
    if (rc != CLI_OK)
        return rc;
    json_t *list = json_object_get(out, "payouts");
    if (!json_is_array(list)) {
        json_decref(out);
        return cli_fail(c, CLI_SERVER, "the server's payout answer has no payouts list");
    }
    int64_t total = 0;
    size_t i, paid = 0, already = 0;
    json_t *o;
    int bad = 0;
    json_array_foreach(list, i, o)
    {
        int64_t a = jint(o, "amount", &bad);
        if (add(&total, a) < 0)
            bad = 1;
        paid += a > 0;
        already += json_is_true(json_object_get(o, "already_paid"));
    }
    if (bad) {
        json_decref(out);
        return cli_fail(c, CLI_SERVER, "the server's payout answer lacks amounts");
    }
    if (c->format == CLI_JSON) {
        cli_print_json(out);
    } else {
        static const struct rcol cols[] = {
            {"PROVIDER", "provider_id", 0},
            {"AMOUNT $", "amount", 1},
            {"TRANSFER", "transfer_id", 0},
            {"ALREADY PAID", "already_paid", 0},
        };
        struct table *t = table_of(cols, ARRAY_LEN(cols), c->format);
        struct row r = {0};
        json_array_foreach(list, i, o)
        {
            put_str(&r, jstr(o, "provider_id"));
            put_usd(&r, json_integer_value(json_object_get(o, "amount")));
            put_str(&r, json_is_string(json_object_get(o, "transfer_id"))
                            ? jstr(o, "transfer_id")
                            : (c->format == CLI_CSV ? "" : "-"));
            put_str(&r, json_is_true(json_object_get(o, "already_paid")) ? "yes" : "no");
            row_add(t, &r);
        }
        print_table(t, c->format);
    }
    if (c->format == CLI_TABLE) {
        char b[UNITS_USD_STRLEN];
        units_format_usd(total, b);
        fprintf(stderr,
                "%s: payouts until %s: %s dollars in %zu transfer%s; %zu provider%s already paid "
                "for this period\n",
                c->prog, until, b, paid, paid == 1 ? "" : "s", already, already == 1 ? "" : "s");
    }
    json_decref(out);
    return CLI_OK;
}

/* ---- reports read from the database ---- */

/* Starts the read-only snapshot. 0 ok, -1 after printing why. */
static int ro_begin(PGconn *db)
{
    PGresult *r = PQexec(db, "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY");
    int ok = PQresultStatus(r) == PGRES_COMMAND_OK;
    if (!ok)
        fprintf(stderr, "capx-admin: cannot start a read-only transaction: %s",
                PQresultErrorMessage(r));
    PQclear(r);
    return ok ? 0 : -1;
}

static void ro_end(PGconn *db)
{
    PQclear(PQexec(db, "ROLLBACK"));
}

static PGresult *query(PGconn *db, const char *what, const char *sql, int n, const char *const *v)
{
    PGresult *r = PQexecParams(db, sql, n, NULL, v, NULL, NULL, 0);
    if (PQresultStatus(r) != PGRES_TUPLES_OK) {
        fprintf(stderr, "capx-admin: reading %s failed: %s", what, PQresultErrorMessage(r));
        PQclear(r);
        return NULL;
    }
    return r;
}

/* An int64 column; -1 (and *bad) when it is not one. */
static int64_t col_i64(PGresult *r, int row, int col, int *bad)
{
    if (PQgetisnull(r, row, col))
        return 0;
    const char *s = PQgetvalue(r, row, col);
    char *end;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (errno || end == s || *end) {
        *bad = 1;
        return 0;
    }
    return (int64_t)v;
}

/* Recomputed per ledger account from the transfers created by $1 (NULL: all); a hold counts
   as pending while no post or void of it is in that set. Maintained totals beside. */
static const char trial_sql[] =
    "WITH t AS (SELECT id, debit_account, credit_account, amount, flags, pending_id "
    "FROM ledger_transfers WHERE $1::bigint IS NULL OR created_at <= to_timestamp($1::bigint)), "
    "eff AS (SELECT t.debit_account AS acct, "
    "CASE WHEN t.flags = 1 AND r.id IS NULL THEN t.amount ELSE 0 END AS dpend, "
    "CASE WHEN t.flags IN (0, 2) THEN t.amount ELSE 0 END AS dpost, "
    "0::bigint AS cpend, 0::bigint AS cpost FROM t LEFT JOIN t r ON r.pending_id = t.id "
    "UNION ALL SELECT t.credit_account, 0, 0, "
    "CASE WHEN t.flags = 1 AND r.id IS NULL THEN t.amount ELSE 0 END, "
    "CASE WHEN t.flags IN (0, 2) THEN t.amount ELSE 0 END "
    "FROM t LEFT JOIN t r ON r.pending_id = t.id), "
    "re AS (SELECT acct, sum(dpend) AS dpend, sum(dpost) AS dpost, sum(cpend) AS cpend, "
    "sum(cpost) AS cpost FROM eff GROUP BY acct) "
    "SELECT coalesce(a.id, re.acct), coalesce(a.kind, '?'), coalesce(o.name, ''), "
    "coalesce(re.dpost, 0)::bigint, coalesce(re.cpost, 0)::bigint, coalesce(re.dpend, 0)::bigint, "
    "coalesce(re.cpend, 0)::bigint, a.debits_posted, a.credits_posted, a.debits_pending, "
    "a.credits_pending, a.id IS NULL "
    "FROM ledger_accounts a FULL JOIN re ON re.acct = a.id LEFT JOIN accounts o ON o.id = a.owner "
    "ORDER BY CASE a.kind WHEN 'world' THEN 0 WHEN 'fees' THEN 1 ELSE 2 END, o.name, 1";

static const struct rcol tb_cols[] = {
    {"LEDGER ACCOUNT", "account", 0},
    {"OWNER", "owner_name", 0},
    {"KIND", "kind", 0},
    {"DEBITS POSTED $", "debits_posted", 1},
    {"CREDITS POSTED $", "credits_posted", 1},
    {"DEBITS PENDING $", "debits_pending", 1},
    {"CREDITS PENDING $", "credits_pending", 1},
    {"DEBIT BALANCE $", "debit_balance", 1},
    {"CREDIT BALANCE $", "credit_balance", 1},
};

int report_trial_balance(PGconn *db, enum cli_format fmt, const char *at)
{
    int64_t at_t = 0;
    char atbuf[32];
    if (at && capx_time_parse(at, &at_t) < 0) {
        fprintf(stderr, "capx-admin: --at: \"%s\" is not an RFC 3339 UTC time\n", at);
        return CLI_USAGE;
    }
    snprintf(atbuf, sizeof atbuf, "%lld", (long long)at_t);
    if (ro_begin(db) < 0)
        return CLI_REFUSED;
    const char *v[] = {at ? atbuf : NULL};
    PGresult *r = query(db, "the ledger", trial_sql, 1, v);
    ro_end(db);
    if (!r)
        return CLI_REFUSED;
    int n = PQntuples(r), bad = 0, mismatches = 0;
    int64_t tot[6] = {0}; /* dpost, cpost, dpend, cpend, debit balances, credit balances */
    struct table *t = table_of(tb_cols, ARRAY_LEN(tb_cols), fmt);
    json_t *accts = json_array();
    struct row row = {0};
    for (int i = 0; i < n; i++) {
        int64_t x[4];
        for (int k = 0; k < 4; k++)
            x[k] = col_i64(r, i, 3 + k, &bad);
        int64_t bal = x[1] - x[0]; /* credits less debits posted: no overflow (both >= 0) */
        int64_t dbal = bal < 0 ? -bal : 0, cbal = bal > 0 ? bal : 0;
        for (int k = 0; k < 4; k++)
            if (add(&tot[k], x[k]) < 0)
                bad = 1;
        if (add(&tot[4], dbal) < 0 || add(&tot[5], cbal) < 0)
            bad = 1;
        const char *id = PQgetvalue(r, i, 0);
        if (!at) {
            /* The maintained totals must equal the transfers. */
            int unknown = !strcmp(PQgetvalue(r, i, 11), "t");
            int differ = unknown;
            for (int k = 0; k < 4 && !unknown; k++)
                differ |= col_i64(r, i, 7 + k, &bad) != x[k];
            if (differ) {
                mismatches++;
                fprintf(stderr,
                        "capx-admin: ledger account %s: %s (maintained debits posted %s, credits "
                        "posted %s, debits pending %s, credits pending %s)\n",
                        id,
                        unknown ? "transfers name an account that does not exist"
                                : "its maintained totals differ from its transfers",
                        PQgetvalue(r, i, 7), PQgetvalue(r, i, 8), PQgetvalue(r, i, 9),
                        PQgetvalue(r, i, 10));
            }
        }
        if (fmt == CLI_JSON) {
            json_array_append_new(
                accts, json_pack("{s:s,s:s,s:s,s:I,s:I,s:I,s:I,s:I}", "account", id, "kind",
                                 PQgetvalue(r, i, 1), "owner_name", PQgetvalue(r, i, 2),
                                 "debits_posted", (json_int_t)x[0], "credits_posted",
                                 (json_int_t)x[1], "debits_pending", (json_int_t)x[2],
                                 "credits_pending", (json_int_t)x[3], "balance", (json_int_t)bal));
        } else {
            put_str(&row, id);
            put_str(&row, PQgetvalue(r, i, 2));
            put_str(&row, PQgetvalue(r, i, 1));
            for (int k = 0; k < 4; k++)
                put_usd(&row, x[k]);
            put_usd(&row, dbal);
            put_usd(&row, cbal);
            row_add(t, &row);
        }
    }
    PQclear(r);
    if (bad) {
        table_free(t);
        json_decref(accts);
        fprintf(stderr, "capx-admin: a ledger total is not a 64-bit integer (or their sum "
                        "overflows)\n");
        return CLI_REFUSED;
    }
    int balanced = tot[0] == tot[1] && tot[2] == tot[3] && tot[4] == tot[5];
    char when[CAPX_TIME_STRLEN] = "";
    if (at)
        capx_time_format(at_t, when);
    if (fmt == CLI_JSON) {
        table_free(t);
        json_t *o = json_pack(
            "{s:s?,s:o,s:{s:I,s:I,s:I,s:I,s:I,s:I},s:b,s:b}", "at", at ? when : NULL, "accounts",
            accts, "totals", "debits_posted", (json_int_t)tot[0], "credits_posted",
            (json_int_t)tot[1], "debits_pending", (json_int_t)tot[2], "credits_pending",
            (json_int_t)tot[3], "debit_balances", (json_int_t)tot[4], "credit_balances",
            (json_int_t)tot[5], "balanced", balanced, "matches_maintained_totals", mismatches == 0);
        cli_print_json(o);
        json_decref(o);
    } else {
        json_decref(accts);
        put_str(&row, "TOTAL");
        put_str(&row, "");
        put_str(&row, "");
        for (int k = 0; k < 6; k++)
            put_usd(&row, tot[k]);
        row_add(t, &row);
        if (fmt == CLI_TABLE)
            printf("Trial balance %s%s\n\n", at ? "at " : "(every transfer", at ? when : ")");
        print_table(t, fmt);
        if (fmt == CLI_TABLE) {
            char dp[UNITS_USD_STRLEN], cp[UNITS_USD_STRLEN], dn[UNITS_USD_STRLEN],
                cn[UNITS_USD_STRLEN];
            units_format_usd(tot[0], dp);
            units_format_usd(tot[1], cp);
            units_format_usd(tot[2], dn);
            units_format_usd(tot[3], cn);
            if (balanced)
                printf("\nbalanced: debits posted = credits posted = %s; debits pending = "
                       "credits pending = %s\n",
                       dp, dn);
            else
                printf("\nNOT BALANCED: debits posted %s, credits posted %s; debits pending %s, "
                       "credits pending %s\n",
                       dp, cp, dn, cn);
        }
    }
    if (!balanced) {
        fprintf(stderr, "capx-admin: the trial balance does not balance\n");
        return CLI_REFUSED;
    }
    if (mismatches) {
        fprintf(stderr, "capx-admin: %d ledger account%s differ%s from the transfers\n", mismatches,
                mismatches == 1 ? "" : "s", mismatches == 1 ? "s" : "");
        return CLI_REFUSED;
    }
    return CLI_OK;
}

/* Reservations per market and hour of trade (contracts made in the period), and per market
   over the whole period (hour NULL). */
static const char market_res_sql[] =
    "WITH c AS (SELECT p.gpu_model, p.region, "
    "(floor(extract(epoch FROM c.created_at) / 3600) * 3600)::bigint AS h, "
    "c.gpus::bigint * (extract(epoch FROM c.end_at - c.start_at)::bigint / 3600) AS gh, "
    "c.amount, c.price FROM contracts c JOIN pools p ON p.id = c.pool_id "
    "WHERE c.created_at >= to_timestamp($1::bigint) AND c.created_at < to_timestamp($2::bigint)) "
    "SELECT gpu_model, region, h, count(*), sum(gh)::bigint, sum(amount)::bigint, "
    "round(sum(amount)::numeric / nullif(sum(gh), 0))::bigint, min(price), max(price) "
    "FROM c GROUP BY GROUPING SETS ((gpu_model, region, h), (gpu_model, region)) "
    "ORDER BY gpu_model, region, h NULLS LAST";

/* Spot charges per market and metered hour (from the spot settlements), and per market. */
static const char market_spot_sql[] =
    "WITH s AS (SELECT o.gpu_model, coalesce(o.region, '*') AS region, "
    "extract(epoch FROM s.hours_from)::bigint AS h, o.gpus::bigint AS gpus, s.gross "
    "FROM settlements s JOIN orders o ON o.id = s.ref WHERE s.kind = 'spot' "
    "AND s.hours_from >= to_timestamp($1::bigint) AND s.hours_from < to_timestamp($2::bigint)) "
    "SELECT gpu_model, region, h, count(*), sum(gpus)::bigint, sum(gross)::bigint, "
    "round(sum(gross)::numeric / nullif(sum(gpus), 0))::bigint, "
    "min(round(gross::numeric / gpus))::bigint, max(round(gross::numeric / gpus))::bigint "
    "FROM s GROUP BY GROUPING SETS ((gpu_model, region, h), (gpu_model, region)) "
    "ORDER BY gpu_model, region, h NULLS LAST";

static const struct rcol mres_cols[] = {
    {"GPU MODEL", "gpu_model", 0}, {"REGION", "region", 0},       {"TRADE HOUR", "hour", 0},
    {"CONTRACTS", "contracts", 1}, {"GPU-HOURS", "gpu_hours", 1}, {"NOTIONAL $", "notional", 1},
    {"VWAP $/GPU-HR", "vwap", 1},  {"LOW $/GPU-HR", "low", 1},    {"HIGH $/GPU-HR", "high", 1},
};
static const struct rcol mspot_cols[] = {
    {"GPU MODEL", "gpu_model", 0},     {"REGION", "region", 0},
    {"METERED HOUR", "hour", 0},       {"BIDS", "bids", 1},
    {"BID GPUS", "gpus", 1},           {"CHARGED $", "charged", 1},
    {"PAID $/GPU-HR", "avg_price", 1}, {"LOW $/GPU-HR", "low", 1},
    {"HIGH $/GPU-HR", "high", 1},
};

/* Rows of a market query into a table or a JSON array. -1 when a value is not an integer. */
static int market_rows(PGresult *r, const struct rcol *cols, enum cli_format fmt, struct table *t,
                       json_t *arr, const char *section)
{
    int bad = 0;
    struct row row = {0};
    for (int i = 0; i < PQntuples(r); i++) {
        int all = PQgetisnull(r, i, 2);
        int64_t h = col_i64(r, i, 2, &bad), x[6];
        for (int k = 0; k < 6; k++)
            x[k] = col_i64(r, i, 3 + k, &bad);
        char hb[CAPX_TIME_STRLEN];
        capx_time_format(h, hb);
        if (fmt == CLI_JSON) {
            json_t *o = json_pack("{s:s,s:s,s:o}", "gpu_model", PQgetvalue(r, i, 0), "region",
                                  PQgetvalue(r, i, 1), "hour", all ? json_null() : json_string(hb));
            for (int k = 0; k < 6; k++)
                json_object_set_new(o, cols[3 + k].key, json_integer(x[k]));
            json_array_append_new(arr, o);
            continue;
        }
        if (fmt == CLI_CSV)
            put_str(&row, section);
        put_str(&row, PQgetvalue(r, i, 0));
        put_str(&row, PQgetvalue(r, i, 1));
        put_str(&row, all ? (fmt == CLI_CSV ? "" : "ALL") : hb);
        put_num(&row, x[0]);
        put_num(&row, x[1]);
        for (int k = 2; k < 6; k++)
            put_usd(&row, x[k]);
        row_add(t, &row);
    }
    return bad ? -1 : 0;
}

int report_market(PGconn *db, enum cli_format fmt, const char *from, const char *to)
{
    int64_t f, t;
    if (report_period("capx-admin", from, to, &f, &t) < 0)
        return CLI_USAGE;
    char fb[32], tb[32];
    snprintf(fb, sizeof fb, "%lld", (long long)f);
    snprintf(tb, sizeof tb, "%lld", (long long)t);
    const char *v[] = {fb, tb};
    if (ro_begin(db) < 0)
        return CLI_REFUSED;
    PGresult *res = query(db, "the contracts", market_res_sql, 2, v);
    PGresult *spot = res ? query(db, "the spot settlements", market_spot_sql, 2, v) : NULL;
    ro_end(db);
    if (!res || !spot) {
        PQclear(res);
        return CLI_REFUSED;
    }
    int rc = CLI_OK;
    if (fmt == CLI_JSON) {
        json_t *a = json_array(), *b = json_array();
        if (market_rows(res, mres_cols, fmt, NULL, a, NULL) < 0 ||
            market_rows(spot, mspot_cols, fmt, NULL, b, NULL) < 0) {
            rc = CLI_REFUSED;
        } else {
            char fs[CAPX_TIME_STRLEN], ts[CAPX_TIME_STRLEN];
            capx_time_format(f, fs);
            capx_time_format(t, ts);
            json_t *o =
                json_pack("{s:s,s:s,s:O,s:O}", "from", fs, "to", ts, "reservations", a, "spot", b);
            cli_print_json(o);
            json_decref(o);
        }
        json_decref(a);
        json_decref(b);
    } else if (fmt == CLI_CSV) {
        /* One CSV: a section column, then the reservation columns; spot rows reuse them
           (contracts = bids, gpu_hours = bid GPUs, notional = charged, vwap = price paid). */
        static const struct rcol csv_cols[] = {
            {"", "section", 0}, {"", "gpu_model", 0}, {"", "region", 0},
            {"", "hour", 0},    {"", "count", 0},     {"", "gpu_hours_or_gpus", 0},
            {"", "amount", 0},  {"", "price", 0},     {"", "low", 0},
            {"", "high", 0},
        };
        struct table *tt = table_of(csv_cols, ARRAY_LEN(csv_cols), CLI_CSV);
        if (market_rows(res, mres_cols, fmt, tt, NULL, "reservation") < 0 ||
            market_rows(spot, mspot_cols, fmt, tt, NULL, "spot") < 0)
            rc = CLI_REFUSED;
        print_table(tt, CLI_CSV);
    } else {
        char fs[CAPX_TIME_STRLEN], ts[CAPX_TIME_STRLEN];
        capx_time_format(f, fs);
        capx_time_format(t, ts);
        printf("Market report from %s to %s (market clock)\n\nReservations: contracts by hour "
               "of trade (VWAP = notional / GPU-hours, to the micro-dollar)\n",
               fs, ts);
        struct table *a = table_of(mres_cols, ARRAY_LEN(mres_cols), fmt);
        if (market_rows(res, mres_cols, fmt, a, NULL, NULL) < 0)
            rc = CLI_REFUSED;
        if (PQntuples(res))
            print_table(a, fmt);
        else {
            table_free(a);
            printf("(no contracts made in the period)\n");
        }
        printf("\nSpot: charges by metered hour (price paid = charged / bid GPUs: the clearing "
               "price for bids that ran the whole hour)\n");
        struct table *b = table_of(mspot_cols, ARRAY_LEN(mspot_cols), fmt);
        if (market_rows(spot, mspot_cols, fmt, b, NULL, NULL) < 0)
            rc = CLI_REFUSED;
        if (PQntuples(spot))
            print_table(b, fmt);
        else {
            table_free(b);
            printf("(no spot hours settled in the period)\n");
        }
    }
    PQclear(res);
    PQclear(spot);
    if (rc != CLI_OK)
        fprintf(stderr, "capx-admin: a figure of the market report is not a 64-bit integer\n");
    return rc;
}
