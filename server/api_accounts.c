/*
 * api_accounts.c — accounts, API keys, deposits, withdrawals, the caller's balance and
 * transfers, and the ledger check. Money moves only here and in the market (capxd is the
 * one writer); every change goes through the turn's transaction (market.h).
 */
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/ids.h"
#include "common/timefmt.h"
#include "server/api.h"
#include "server/log.h"
#include "server/settle.h"

#define MAX_AMOUNT 1000000000000000LL /* 1e9 USD in micro-USD per call */

static json_t *roles_json(unsigned roles)
{
    json_t *a = json_array();
    if (roles & ROLE_BUYER)
        json_array_append_new(a, json_string("buyer"));
    if (roles & ROLE_PROVIDER)
        json_array_append_new(a, json_string("provider"));
    if (roles & ROLE_ADMIN)
        json_array_append_new(a, json_string("admin"));
    return a;
}

static char *roles_pg(unsigned roles)
{
    char buf[64] = "{";
    if (roles & ROLE_BUYER)
        strcat(buf, "buyer,");
    if (roles & ROLE_PROVIDER)
        strcat(buf, "provider,");
    if (roles & ROLE_ADMIN)
        strcat(buf, "admin,");
    buf[strlen(buf) - 1] = '}';
    return xstrdup(buf);
}

/* A new key for acct: memory and SQL; writes the key text into out. */
static void new_key(struct app *app, struct account *a, char *key_id, size_t idlen,
                    char out[CAPX_KEY_LEN + 1])
{
    unsigned char hash[32];
    char hex[65];
    capx_id_new("key_", key_id, idlen);
    capx_key_new(out);
    capx_key_hash(out, strlen(out), hash);
    for (int i = 0; i < 32; i++)
        snprintf(hex + 2 * i, 3, "%02x", hash[i]);
    struct api_key *k = xcalloc(1, sizeof *k);
    snprintf(k->id, sizeof k->id, "%s", key_id);
    k->acct = a;
    hmap_put(&app->keys, hex, k);
    const char *v[] = {key_id, a->id, hex};
    market_sql(app->market,
               "INSERT INTO api_keys (id, account_id, key_hash) VALUES ($1, $2, decode($3, 'hex'))",
               3, v);
}

struct acct_req {
    const char *name;
    json_t *roles;
};

static const struct jfield acct_fields[] = {
    {"name", JF_STR, 1, 1, 128, offsetof(struct acct_req, name), JC_ANY},
    {"roles", JF_STRARR, 1, 1, 3, offsetof(struct acct_req, roles), JC_TOKEN},
};

void h_accounts_create(struct app_req *r)
{
    struct acct_req q = {0};
    uint64_t present;
    if (api_decode(r, acct_fields, ARRAY_LEN(acct_fields), &q, &present) < 0)
        return;
    unsigned roles = 0;
    size_t i;
    json_t *v;
    json_array_foreach(q.roles, i, v)
    {
        const char *s = json_string_value(v);
        unsigned bit = !strcmp(s, "buyer")      ? ROLE_BUYER
                       : !strcmp(s, "provider") ? ROLE_PROVIDER
                       : !strcmp(s, "admin")    ? ROLE_ADMIN
                                                : 0;
        if (!bit || (roles & bit)) {
            app_error(r, 400, "invalid_request", "roles",
                      "roles must be distinct values of buyer, provider, admin");
            return;
        }
        roles |= bit;
    }
    struct market *m = r->app->market;
    char id[40], key_id[40], key[CAPX_KEY_LEN + 1], created[24];
    capx_id_new("acct_", id, sizeof id);
    struct account *a = market_account_new(m, id, q.name, roles);
    char *pgroles = roles_pg(roles);
    snprintf(created, sizeof created, "%lld", (long long)a->created);
    const char *va[] = {id, q.name, pgroles};
    market_sql(m, "INSERT INTO accounts (id, name, roles) VALUES ($1, $2, $3::text[])", 3, va);
    free(pgroles);
    const char *vl[] = {id};
    market_sql(m, LEDGER_SQL_OPEN_PARTICIPANT, 1, vl);
    new_key(r->app, a, key_id, sizeof key_id, key);
    market_reply(m, r, 201,
                 json_pack("{s:s,s:s,s:o,s:s}", "id", id, "name", q.name, "roles",
                           roles_json(roles), "api_key", key));
}

/* Accounts in id order after cursor (an index into that order). */
static int cmp_acct(const void *a, const void *b)
{
    return strcmp((*(struct account *const *)a)->id, (*(struct account *const *)b)->id);
}

void h_accounts_list(struct app_req *r)
{
    int64_t limit;
    uint64_t cursor;
    if (api_page(r, &limit, &cursor) < 0)
        return;
    struct hmap *accts = &r->app->accounts;
    struct account **all = xmalloc((accts->len + 1) * sizeof *all);
    size_t n = 0, it = 0;
    const char *k;
    void *v;
    while (hmap_next(accts, &it, &k, &v))
        all[n++] = v;
    qsort(all, n, sizeof *all, cmp_acct);
    json_t *items = json_array();
    uint64_t next = 0;
    for (uint64_t i = cursor; i < n; i++) {
        if ((int64_t)json_array_size(items) == limit) {
            next = i;
            break;
        }
        json_array_append_new(items, json_pack("{s:s,s:s,s:o}", "id", all[i]->id, "name",
                                               all[i]->name, "roles", roles_json(all[i]->roles)));
    }
    free(all);
    market_reply(r->app->market, r, 200, api_list(items, next));
}

static struct account *path_account(struct app_req *r)
{
    struct account *a = hmap_get(&r->app->accounts, r->params[0]);
    if (!a)
        app_error(r, 404, "not_found", NULL, "no such account");
    return a;
}

void h_keys_create(struct app_req *r)
{
    struct account *a = path_account(r);
    if (!a)
        return;
    char key_id[40], key[CAPX_KEY_LEN + 1];
    new_key(r->app, a, key_id, sizeof key_id, key);
    market_reply(r->app->market, r, 201,
                 json_pack("{s:s,s:s,s:s}", "id", key_id, "account_id", a->id, "api_key", key));
}

void h_keys_revoke(struct app_req *r)
{
    struct hmap *keys = &r->app->keys;
    size_t it = 0;
    const char *hash = NULL;
    void *v;
    struct api_key *found = NULL;
    while (hmap_next(keys, &it, &hash, &v))
        if (!strcmp(((struct api_key *)v)->id, r->params[0])) {
            found = v;
            break;
        }
    if (!found) {
        app_error(r, 404, "not_found", NULL, "no such API key");
        return;
    }
    char h[65];
    snprintf(h, sizeof h, "%s", hash);
    hmap_del(keys, h);
    free(found);
    const char *vals[] = {r->params[0]};
    market_sql(r->app->market, "UPDATE api_keys SET revoked_at = now() WHERE id = $1", 1, vals);
    market_reply(r->app->market, r, 204, NULL);
}

struct amount_req {
    int64_t amount;
};

static const struct jfield amount_fields[] = {
    {"amount", JF_INT, 1, 1, MAX_AMOUNT, offsetof(struct amount_req, amount), 0},
};

static void money(struct app_req *r, int deposit)
{
    struct amount_req q = {0};
    uint64_t present;
    if (api_decode(r, amount_fields, ARRAY_LEN(amount_fields), &q, &present) < 0)
        return;
    struct account *a = path_account(r);
    if (!a)
        return;
    int64_t sum;
    if (deposit &&
        (capx_add_i64(a->available, a->held, &sum) < 0 || capx_add_i64(sum, q.amount, &sum) < 0)) {
        app_error(r, 422, "unprocessable", "amount", "the balance would overflow");
        return;
    }
    if (!deposit && q.amount > a->available) {
        app_error(r, 402, "insufficient_funds", "amount",
                  "the amount exceeds the account's available balance (%lld)",
                  (long long)a->available);
        return;
    }
    char txn[40];
    capx_id_new("txn_", txn, sizeof txn);
    if (deposit)
        market_money_deposit(r->app->market, a, q.amount, txn);
    else
        market_money_withdraw(r->app->market, a, q.amount, txn);
    market_reply(r->app->market, r, 201,
                 json_pack("{s:s,s:s,s:I,s:s}", "id", txn, "account_id", a->id, "amount",
                           (json_int_t)q.amount, "kind", deposit ? "deposit" : "withdrawal"));
}

void h_deposit(struct app_req *r)
{
    money(r, 1);
}

void h_withdraw(struct app_req *r)
{
    money(r, 0);
}

void h_account(struct app_req *r)
{
    struct account *a = r->acct;
    market_reply(r->app->market, r, 200,
                 json_pack("{s:s,s:s,s:o,s:{s:I,s:I}}", "id", a->id, "name", a->name, "roles",
                           roles_json(a->roles), "balance", "available", (json_int_t)a->available,
                           "held", (json_int_t)a->held));
}

static void transfers_done(struct db_job *job, void *arg)
{
    struct app_req *r = arg;
    struct ledger_page page = {0};
    char err[256];
    int64_t limit = r->aux;
    if (!job->ok || job->nresults != 1 ||
        ledger_list_decode(job->results[0], (int)limit, &page, err, sizeof err) < 0) {
        app_error(r, 503, "unavailable", NULL, "the database could not list transfers");
        db_job_free(job);
        return;
    }
    json_t *items = json_array();
    for (size_t i = 0; i < page.n; i++) {
        struct ledger_entry *e = &page.items[i];
        json_array_append_new(items, json_pack("{s:s,s:I,s:s,s:s?,s:s,s:s,s:s}", "id", e->id,
                                               "amount", (json_int_t)e->amount, "kind", e->kind,
                                               "ref", e->ref, "created_at", e->created_at,
                                               "direction", e->out ? "out" : "in", "status",
                                               ledger_status_name(e->status)));
    }
    json_t *o = json_pack("{s:o}", "data", items);
    json_object_set_new(o, "next_cursor",
                        page.next_cursor[0] ? json_string(page.next_cursor) : json_null());
    ledger_page_free(&page);
    db_job_free(job);
    app_reply(r, 200, o);
}

void h_transfers(struct app_req *r)
{
    int64_t limit;
    uint64_t cursor;
    if (api_page(r, &limit, &cursor) < 0)
        return;
    char cash[LEDGER_ACCOUNT_MAX + 1], escrow[LEDGER_ACCOUNT_MAX + 1], arr[160], cur[24], lim[24];
    ledger_cash_id(r->acct->id, cash, sizeof cash);
    ledger_escrow_id(r->acct->id, escrow, sizeof escrow);
    snprintf(arr, sizeof arr, "{\"%s\",\"%s\"}", cash, escrow);
    snprintf(cur, sizeof cur, "%llu", (unsigned long long)cursor);
    snprintf(lim, sizeof lim, "%lld", (long long)limit + 1);
    const char *v[] = {arr, cursor ? cur : "9223372036854775807", lim};
    r->aux = limit;
    struct db_job *j = db_job_new(transfers_done, r);
    db_job_add(j, ledger_sql_list, 3, v);
    if (db_submit(r->app->db, j) < 0) {
        db_job_free(j);
        app_error(r, 503, "unavailable", NULL, "the database cannot be reached");
    }
}

#define HELD_CHECK_SQL                                                                             \
    "WITH bal AS (SELECT owner, sum(CASE WHEN kind = 'cash' THEN debits_pending ELSE "             \
    "credits_posted - debits_posted END) AS held FROM ledger_accounts WHERE owner IS NOT NULL "    \
    "GROUP BY owner), exp AS (SELECT a.id AS owner, coalesce((SELECT sum(o.hold_amount) FROM "     \
    "orders o WHERE o.account_id = a.id), 0) + coalesce((SELECT sum(c.amount - c.settled) FROM "   \
    "contracts c WHERE c.buyer_id = a.id), 0) AS held FROM accounts a) SELECT 'held_mismatch', "   \
    "e.owner, 'held is ' || b.held || ' but open holds and unsettled contracts come to ' || "      \
    "e.held FROM exp e JOIN bal b USING (owner) WHERE b.held <> e.held"

static void check_done(struct db_job *job, void *arg)
{
    struct app_req *r = arg;
    if (!job->ok || job->nresults != 3) {
        app_error(r, 503, "unavailable", NULL, "the database could not run the check: %s",
                  job->err);
        db_job_free(job);
        return;
    }
    PGresult *v = job->results[0], *t = job->results[1];
    json_t *viol = json_array();
    for (int i = 0; i < PQntuples(v); i++)
        json_array_append_new(viol,
                              json_pack("{s:s,s:s?,s:s}", "code", PQgetvalue(v, i, 0), "account",
                                        PQgetisnull(v, i, 1) ? NULL : PQgetvalue(v, i, 1), "detail",
                                        PQgetvalue(v, i, 2)));
    PGresult *h = job->results[2];
    for (int i = 0; i < PQntuples(h); i++)
        json_array_append_new(viol,
                              json_pack("{s:s,s:s,s:s}", "code", PQgetvalue(h, i, 0), "account",
                                        PQgetvalue(h, i, 1), "detail", PQgetvalue(h, i, 2)));
    int64_t debits = strtoll(PQgetvalue(t, 0, 2), NULL, 10);
    int64_t credits = strtoll(PQgetvalue(t, 0, 3), NULL, 10);
    app_reply(r, 200,
              json_pack("{s:b,s:I,s:I,s:I,s:I,s:o}", "balanced",
                        json_array_size(viol) == 0 && debits == credits, "accounts",
                        (json_int_t)strtoll(PQgetvalue(t, 0, 0), NULL, 10), "transfers",
                        (json_int_t)strtoll(PQgetvalue(t, 0, 1), NULL, 10), "total_debits",
                        (json_int_t)debits, "total_credits", (json_int_t)credits, "violations",
                        viol));
    db_job_free(job);
}

void h_ledger_check(struct app_req *r)
{
    struct db_job *j = db_job_new(check_done, r);
    db_job_add(j, "SELECT code, account, detail FROM ledger_check()", 0, NULL);
    db_job_add(j,
               "SELECT (SELECT count(*) FROM ledger_accounts), (SELECT count(*) FROM "
               "ledger_transfers), coalesce(sum(debits_posted), 0), coalesce(sum(credits_posted), "
               "0) FROM ledger_accounts",
               0, NULL);
    /* Invariant 4, in one statement (one snapshot): a participant's held equals its open
       orders' holds plus what its contracts put in escrow and is not yet settled. */
    db_job_add(j, HELD_CHECK_SQL, 0, NULL);
    if (db_submit(r->app->db, j) < 0) {
        db_job_free(j);
        app_error(r, 503, "unavailable", NULL, "the database cannot be reached");
    }
}

struct payout_req {
    int64_t until;
};

static const struct jfield payout_fields[] = {
    {"until", JF_HOUR, 1, 0, 0, offsetof(struct payout_req, until), 0},
};

/* POST /v1/admin/payouts {"until"}: each provider's net earnings for hours ending by `until`
   go to the outside world, one transfer per provider; the same period twice pays nothing. */
void h_payouts(struct app_req *r)
{
    struct payout_req q = {0};
    uint64_t present;
    if (api_decode(r, payout_fields, ARRAY_LEN(payout_fields), &q, &present) < 0)
        return;
    struct market *m = r->app->market;
    if (q.until > market_now(m)) {
        app_error(r, 422, "unprocessable", "until", "until is after the market clock's now");
        return;
    }
    json_t *list = json_array();
    size_t it = 0;
    const char *k;
    void *v;
    while (hmap_next(&r->app->accounts, &it, &k, &v)) {
        struct account *a = v;
        if (!(a->roles & ROLE_PROVIDER))
            continue;
        char id[128];
        int64_t amount = settle_payout(m, a, q.until, id, sizeof id);
        json_array_append_new(list, json_pack("{s:s,s:I,s:s?,s:b}", "provider_id", a->id, "amount",
                                              (json_int_t)(amount > 0 ? amount : 0), "transfer_id",
                                              amount > 0 ? id : NULL, "already_paid", amount < 0));
    }
    char until[CAPX_TIME_STRLEN];
    capx_time_format(q.until, until);
    market_reply(m, r, 201, json_pack("{s:s,s:o}", "until", until, "payouts", list));
}
