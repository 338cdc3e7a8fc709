/*
 * ledger.c — builds ledger_submit() statements and reads their results; the blocking
 * conveniences (own transaction, balances, listing, check) on top.
 *
 * A batch keeps one text buffer per array parameter and appends each transfer to all of
 * them as it is added, so producing the statement is only closing the braces: no copy of
 * the transfers is kept. Array literals use PostgreSQL's text format: every string element
 * double-quoted with `\` and `"` escaped, NULL unquoted.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "ledger/ledger.h"

/* The statement: the casts make the parameters' types explicit, so none are sent. */
static const char submit_sql[] =
    "SELECT idx, result FROM ledger_submit($1::text[], $2::text[], $3::text[], $4::bigint[], "
    "$5::text[], $6::text[], $7::int[], $8::text[], $9::bigint[], $10::int[], $11::bigint)";

enum {
    P_ID,
    P_DEBIT,
    P_CREDIT,
    P_AMOUNT,
    P_KIND,
    P_REF,
    P_FLAGS,
    P_PENDING,
    P_EXPIRES,
    P_CHAIN,
    P_ARRAYS,
    P_TS = P_ARRAYS,
    P_COUNT
};

/* A growable text buffer, always NUL-terminated. */
struct sbuf {
    char *p;
    size_t len, cap;
};

static void sb_reserve(struct sbuf *s, size_t more)
{
    if (s->len + more + 1 <= s->cap)
        return;
    size_t cap = s->cap ? s->cap : 256;
    while (cap < s->len + more + 1)
        cap *= 2;
    s->p = xrealloc(s->p, cap);
    s->cap = cap;
}

static void sb_putc(struct sbuf *s, char c)
{
    sb_reserve(s, 1);
    s->p[s->len++] = c;
    s->p[s->len] = 0;
}

static void sb_puts(struct sbuf *s, const char *str)
{
    size_t n = strlen(str);
    sb_reserve(s, n);
    memcpy(s->p + s->len, str, n + 1);
    s->len += n;
}

/* An array element: a quoted string, or NULL. */
static void sb_elem_str(struct sbuf *s, const char *str)
{
    if (s->len > 1) /* after "{" */
        sb_putc(s, ',');
    if (!str) {
        sb_puts(s, "NULL");
        return;
    }
    sb_reserve(s, 2 * strlen(str) + 2);
    s->p[s->len++] = '"';
    for (const char *c = str; *c; c++) {
        if (*c == '"' || *c == '\\')
            s->p[s->len++] = '\\';
        s->p[s->len++] = *c;
    }
    s->p[s->len++] = '"';
    s->p[s->len] = 0;
}

static void sb_elem_i64(struct sbuf *s, bool null, int64_t v)
{
    char num[24];
    if (null) {
        sb_elem_str(s, NULL);
        return;
    }
    if (s->len > 1)
        sb_putc(s, ',');
    snprintf(num, sizeof num, "%" PRId64, v);
    sb_puts(s, num);
}

struct ledger_batch {
    struct sbuf arr[P_ARRAYS]; /* "{e1,e2,…" — closed by ledger_batch_stmt */
    size_t count;
    int chain;        /* chain id of the open chain, 0 when none */
    bool prev_linked; /* the last transfer added was linked to the next */
    int64_t ts;       /* 0: now() */
    char ts_text[24];
    const char *values[P_COUNT];
};

struct ledger_batch *ledger_batch_new(void)
{
    struct ledger_batch *b = xcalloc(1, sizeof *b);
    ledger_batch_clear(b);
    return b;
}

void ledger_batch_free(struct ledger_batch *b)
{
    if (!b)
        return;
    for (int i = 0; i < P_ARRAYS; i++)
        free(b->arr[i].p);
    free(b);
}

void ledger_batch_clear(struct ledger_batch *b)
{
    for (int i = 0; i < P_ARRAYS; i++) {
        b->arr[i].len = 0;
        sb_putc(&b->arr[i], '{');
    }
    b->count = 0;
    b->chain = 0;
    b->prev_linked = false;
    b->ts = 0;
}

size_t ledger_batch_count(const struct ledger_batch *b)
{
    return b->count;
}

void ledger_batch_set_time(struct ledger_batch *b, int64_t unix_seconds)
{
    b->ts = unix_seconds;
}

size_t ledger_batch_add(struct ledger_batch *b, const struct ledger_transfer *t)
{
    CAPX_ASSERT(b->count < LEDGER_BATCH_MAX);
    bool resolves = t->flags == LEDGER_POST || t->flags == LEDGER_VOID;
    /* Chains: a transfer continues the chain of a linked predecessor; a linked transfer
     * without one opens a chain named by its 1-based index. */
    int chain = 0;
    if (b->prev_linked)
        chain = b->chain;
    else if (t->linked)
        chain = (int)b->count + 1;
    b->chain = t->linked ? chain : 0;
    b->prev_linked = t->linked;

    sb_elem_str(&b->arr[P_ID], t->id);
    sb_elem_str(&b->arr[P_DEBIT], t->debit_account);
    sb_elem_str(&b->arr[P_CREDIT], t->credit_account);
    sb_elem_i64(&b->arr[P_AMOUNT], resolves && t->amount == 0, t->amount);
    sb_elem_str(&b->arr[P_KIND], t->kind);
    sb_elem_str(&b->arr[P_REF], t->ref);
    sb_elem_i64(&b->arr[P_FLAGS], false, t->flags);
    sb_elem_str(&b->arr[P_PENDING], t->pending_id);
    sb_elem_i64(&b->arr[P_EXPIRES], t->expires_at == 0, t->expires_at);
    sb_elem_i64(&b->arr[P_CHAIN], false, chain);
    return b->count++;
}

void ledger_batch_stmt(struct ledger_batch *b, struct ledger_stmt *out)
{
    for (int i = 0; i < P_ARRAYS; i++) {
        /* Close the literal without consuming it: "}" then NUL, length unchanged, so more
         * transfers can still be added (they overwrite the brace). */
        sb_reserve(&b->arr[i], 1);
        b->arr[i].p[b->arr[i].len] = '}';
        b->arr[i].p[b->arr[i].len + 1] = 0;
        b->values[i] = b->arr[i].p;
    }
    if (b->ts) {
        snprintf(b->ts_text, sizeof b->ts_text, "%" PRId64, b->ts);
        b->values[P_TS] = b->ts_text;
    } else {
        b->values[P_TS] = NULL;
    }
    out->sql = submit_sql;
    out->nparams = P_COUNT;
    out->values = b->values;
}

static const char *const result_names[LEDGER_RESULT_COUNT] = {
    "ok",
    "exists",
    "exists_with_different_fields",
    "exceeds_credits",
    "exceeds_debits",
    "pending_not_found",
    "pending_already_resolved",
    "pending_expired",
    "exceeds_pending_amount",
    "debit_account_not_found",
    "credit_account_not_found",
    "accounts_must_be_different",
    "invalid_amount",
    "invalid_fields",
    "pending_accounts_mismatch",
    "linked_event_failed",
    "overflow",
};

const char *ledger_result_name(int r)
{
    return r >= 0 && r < LEDGER_RESULT_COUNT ? result_names[r] : "unknown";
}

bool ledger_result_retryable(const PGresult *res)
{
    const char *st = res ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL;
    return st && (!strcmp(st, "40001") || !strcmp(st, "40P01") || !strcmp(st, "23505"));
}

/* The error of a failed result, one line. */
static void result_error(const PGresult *res, const char *what, char *err, size_t errlen)
{
    const char *msg = res ? PQresultErrorMessage(res) : "no result";
    const char *st = res ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL;
    size_t n = strcspn(msg, "\n");
    snprintf(err, errlen, "%s: %.*s%s%s%s", what, (int)n, *msg ? msg : "failed", st ? " (" : "",
             st ? st : "", st ? ")" : "");
}

int ledger_batch_decode(const struct ledger_batch *b, const PGresult *res,
                        enum ledger_result *results, char *err, size_t errlen)
{
    if (PQresultStatus(res) != PGRES_TUPLES_OK || PQnfields(res) != 2) {
        result_error(res, "ledger batch", err, errlen);
        return -1;
    }
    for (size_t i = 0; i < b->count; i++)
        results[i] = LEDGER_OK;
    for (int row = 0; row < PQntuples(res); row++) {
        long idx = strtol(PQgetvalue(res, row, 0), NULL, 10);
        long r = strtol(PQgetvalue(res, row, 1), NULL, 10);
        if (idx < 1 || (size_t)idx > b->count || r <= 0 || r >= LEDGER_RESULT_COUNT) {
            snprintf(err, errlen, "ledger batch: unexpected result row (%ld, %ld)", idx, r);
            return -1;
        }
        results[idx - 1] = (enum ledger_result)r;
    }
    return 0;
}

/* Name of the batch statement, prepared on a connection by ledger_submit on first use. */
#define SUBMIT_PREPARED "capx_ledger_submit"

/* Runs the batch statement. Outside a transaction block it uses a statement prepared on this
 * connection (prepared on first use: SQLSTATE 26000 says it is not yet), which saves parsing
 * and planning the call each time; inside one, where that first failure would abort the
 * caller's transaction, an unnamed statement. */
static PGresult *run_submit(PGconn *conn, const struct ledger_stmt *st)
{
    if (PQtransactionStatus(conn) != PQTRANS_IDLE)
        return PQexecParams(conn, st->sql, st->nparams, NULL, st->values, NULL, NULL, 0);
    PGresult *res = PQexecPrepared(conn, SUBMIT_PREPARED, st->nparams, st->values, NULL, NULL, 0);
    const char *state = PQresultErrorField(res, PG_DIAG_SQLSTATE);
    if (PQresultStatus(res) == PGRES_FATAL_ERROR && state && !strcmp(state, "26000")) {
        PQclear(res);
        PGresult *prep = PQprepare(conn, SUBMIT_PREPARED, st->sql, st->nparams, NULL);
        bool prepared = PQresultStatus(prep) == PGRES_COMMAND_OK;
        PQclear(prep);
        res = prepared
                  ? PQexecPrepared(conn, SUBMIT_PREPARED, st->nparams, st->values, NULL, NULL, 0)
                  : PQexecParams(conn, st->sql, st->nparams, NULL, st->values, NULL, NULL, 0);
    }
    return res;
}

int ledger_submit(PGconn *conn, struct ledger_batch *b, enum ledger_result *results, char *err,
                  size_t errlen)
{
    struct ledger_stmt st;
    if (b->count == 0)
        return 0;
    ledger_batch_stmt(b, &st);
    for (int attempt = 0;; attempt++) {
        PGresult *res = run_submit(conn, &st);
        int rc = ledger_batch_decode(b, res, results, err, errlen);
        bool again = rc < 0 && ledger_result_retryable(res) && attempt < 20;
        PQclear(res);
        if (!again)
            return rc;
        /* Back off a little, more each time, so two writers stop colliding. */
        struct timespec ts = {0, (long)(1000000L * (1 + attempt) + (rand() % 1000) * 1000L)};
        nanosleep(&ts, NULL);
    }
}

void ledger_cash_id(const char *owner, char *buf, size_t size)
{
    snprintf(buf, size, "%s:cash", owner);
}

void ledger_escrow_id(const char *owner, char *buf, size_t size)
{
    snprintf(buf, size, "%s:escrow", owner);
}

/* One blocking parameterized statement; 0 when it returned tuples or ok. */
static PGresult *exec1(PGconn *conn, const char *sql, int n, const char *const *values,
                       const char *what, char *err, size_t errlen)
{
    PGresult *res = PQexecParams(conn, sql, n, NULL, values, NULL, NULL, 0);
    ExecStatusType s = PQresultStatus(res);
    if (s != PGRES_TUPLES_OK && s != PGRES_COMMAND_OK) {
        result_error(res, what, err, errlen);
        PQclear(res);
        return NULL;
    }
    return res;
}

int ledger_open_participant(PGconn *conn, const char *owner, char *err, size_t errlen)
{
    const char *v[1] = {owner};
    PGresult *res = exec1(conn, LEDGER_SQL_OPEN_PARTICIPANT, 1, v, "open participant", err, errlen);
    if (!res)
        return -1;
    PQclear(res);
    return 0;
}

static int64_t get_i64(const PGresult *res, int row, int col)
{
    return PQgetisnull(res, row, col) ? 0 : strtoll(PQgetvalue(res, row, col), NULL, 10);
}

int ledger_account_get(PGconn *conn, const char *id, struct ledger_account *out, char *err,
                       size_t errlen)
{
    const char *v[1] = {id};
    PGresult *res = exec1(conn,
                          "SELECT id, kind, flags, debits_pending, debits_posted, "
                          "credits_pending, credits_posted FROM ledger_accounts WHERE id = $1",
                          1, v, "ledger account", err, errlen);
    if (!res)
        return -1;
    int rc = 1;
    if (PQntuples(res) == 1) {
        memset(out, 0, sizeof *out);
        snprintf(out->id, sizeof out->id, "%s", PQgetvalue(res, 0, 0));
        snprintf(out->kind, sizeof out->kind, "%s", PQgetvalue(res, 0, 1));
        out->flags = (int)get_i64(res, 0, 2);
        out->debits_pending = get_i64(res, 0, 3);
        out->debits_posted = get_i64(res, 0, 4);
        out->credits_pending = get_i64(res, 0, 5);
        out->credits_posted = get_i64(res, 0, 6);
        rc = 0;
    }
    PQclear(res);
    return rc;
}

int ledger_balance_decode(const PGresult *res, struct ledger_balance *out, char *err, size_t errlen)
{
    if (PQresultStatus(res) != PGRES_TUPLES_OK || PQntuples(res) != 1 || PQnfields(res) != 3) {
        result_error(res, "ledger balance", err, errlen);
        return -1;
    }
    out->available = get_i64(res, 0, 0);
    out->held = get_i64(res, 0, 1);
    return get_i64(res, 0, 2) > 0 ? 0 : 1;
}

int ledger_balance_get(PGconn *conn, const char *owner, struct ledger_balance *out, char *err,
                       size_t errlen)
{
    const char *v[1] = {owner};
    PGresult *res = PQexecParams(conn, LEDGER_SQL_BALANCE, 1, NULL, v, NULL, NULL, 0);
    int rc = ledger_balance_decode(res, out, err, errlen);
    PQclear(res);
    return rc;
}

const char ledger_sql_list[] =
    "SELECT t.seq, t.id, t.amount, t.kind, t.ref, "
    "to_char(t.created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"'), "
    "t.debit_account = ANY ($1::text[]), "
    "CASE WHEN t.flags = 4 OR r.flags = 4 THEN 'voided' WHEN t.flags = 1 AND r.flags IS NULL "
    "THEN 'pending' ELSE 'posted' END, "
    "t.debit_account, t.credit_account, t.flags, t.pending_id "
    "FROM (SELECT DISTINCT ON (s.seq) s.* FROM unnest($1::text[]) a(acct), LATERAL ("
    "(SELECT * FROM ledger_transfers x WHERE x.debit_account = a.acct AND x.seq < $2::bigint "
    "ORDER BY x.seq DESC LIMIT $3::int) UNION ALL "
    "(SELECT * FROM ledger_transfers x WHERE x.credit_account = a.acct AND x.seq < $2::bigint "
    "ORDER BY x.seq DESC LIMIT $3::int)) s ORDER BY s.seq DESC LIMIT $3::int) t "
    "LEFT JOIN ledger_transfers r ON r.pending_id = t.id "
    "ORDER BY t.seq DESC";

static char *dup_or_null(const PGresult *res, int row, int col)
{
    return PQgetisnull(res, row, col) ? NULL : xstrdup(PQgetvalue(res, row, col));
}

int ledger_list_decode(const PGresult *res, int limit, struct ledger_page *page, char *err,
                       size_t errlen)
{
    memset(page, 0, sizeof *page);
    if (PQresultStatus(res) != PGRES_TUPLES_OK || PQnfields(res) != 12) {
        result_error(res, "ledger list", err, errlen);
        return -1;
    }
    int rows = PQntuples(res);
    size_t n = rows > limit ? (size_t)limit : (size_t)rows;
    page->items = xcalloc(n ? n : 1, sizeof *page->items);
    for (size_t i = 0; i < n; i++) {
        struct ledger_entry *e = &page->items[i];
        int row = (int)i;
        e->seq = get_i64(res, row, 0);
        e->id = xstrdup(PQgetvalue(res, row, 1));
        e->amount = get_i64(res, row, 2);
        e->kind = xstrdup(PQgetvalue(res, row, 3));
        e->ref = dup_or_null(res, row, 4);
        snprintf(e->created_at, sizeof e->created_at, "%s", PQgetvalue(res, row, 5));
        e->out = PQgetvalue(res, row, 6)[0] == 't';
        const char *st = PQgetvalue(res, row, 7);
        e->status = !strcmp(st, "pending")  ? LEDGER_STATUS_PENDING
                    : !strcmp(st, "voided") ? LEDGER_STATUS_VOIDED
                                            : LEDGER_STATUS_POSTED;
        e->debit_account = xstrdup(PQgetvalue(res, row, 8));
        e->credit_account = xstrdup(PQgetvalue(res, row, 9));
        e->flags = (int)get_i64(res, row, 10);
        e->pending_id = dup_or_null(res, row, 11);
    }
    page->n = n;
    if (rows > limit && n > 0)
        snprintf(page->next_cursor, sizeof page->next_cursor, "%" PRId64, page->items[n - 1].seq);
    return 0;
}

int ledger_list(PGconn *conn, const char *account, const char *cursor, int limit,
                struct ledger_page *page, char *err, size_t errlen)
{
    char accts[3 * LEDGER_ACCOUNT_MAX + 16], lim[16], cur[24];
    memset(page, 0, sizeof *page);
    if (limit < 1 || limit > 500 || strlen(account) > LEDGER_ACCOUNT_MAX) {
        snprintf(err, errlen, "ledger list: limit must be 1..500 and the account id short");
        return -1;
    }
    if (cursor && *cursor) {
        char *end;
        errno = 0;
        long long c = strtoll(cursor, &end, 10);
        if (errno || *end || c <= 0) {
            snprintf(err, errlen, "ledger list: malformed cursor");
            return -1;
        }
        snprintf(cur, sizeof cur, "%lld", c);
    } else {
        snprintf(cur, sizeof cur, "%" PRId64, INT64_MAX);
    }
    if (strchr(account, ':'))
        snprintf(accts, sizeof accts, "{\"%s\"}", account);
    else
        snprintf(accts, sizeof accts, "{\"%s:cash\",\"%s:escrow\"}", account, account);
    if (strchr(account, '"') || strchr(account, '\\')) {
        snprintf(err, errlen, "ledger list: malformed account id");
        return -1;
    }
    snprintf(lim, sizeof lim, "%d", limit + 1);
    const char *v[3] = {accts, cur, lim};
    PGresult *res = PQexecParams(conn, ledger_sql_list, 3, NULL, v, NULL, NULL, 0);
    int rc = ledger_list_decode(res, limit, page, err, errlen);
    PQclear(res);
    return rc;
}

void ledger_page_free(struct ledger_page *page)
{
    for (size_t i = 0; i < page->n; i++) {
        struct ledger_entry *e = &page->items[i];
        free(e->id);
        free(e->kind);
        free(e->ref);
        free(e->debit_account);
        free(e->credit_account);
        free(e->pending_id);
    }
    free(page->items);
    memset(page, 0, sizeof *page);
}

const char *ledger_status_name(enum ledger_status s)
{
    switch (s) {
    case LEDGER_STATUS_POSTED:
        return "posted";
    case LEDGER_STATUS_PENDING:
        return "pending";
    case LEDGER_STATUS_VOIDED:
        return "voided";
    }
    return "unknown";
}

int ledger_check(PGconn *conn, struct ledger_report *out, char *err, size_t errlen)
{
    PGresult *res = NULL;
    int rc = -1, open = 0;
    memset(out, 0, sizeof *out);
    if (PQtransactionStatus(conn) != PQTRANS_IDLE) {
        snprintf(err, errlen, "ledger check: needs a connection outside any transaction");
        return -1;
    }
    /* One snapshot for the totals and the checks. */
    if (!(res = exec1(conn, "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY", 0, NULL,
                      "ledger check", err, errlen)))
        goto done;
    PQclear(res);
    open = 1;
    if (!(res = exec1(conn,
                      "SELECT (SELECT count(*) FROM ledger_accounts), "
                      "(SELECT count(*) FROM ledger_transfers), "
                      "(SELECT coalesce(sum(debits_posted), 0) FROM ledger_accounts), "
                      "(SELECT coalesce(sum(credits_posted), 0) FROM ledger_accounts)",
                      0, NULL, "ledger check", err, errlen)))
        goto done;
    out->accounts = get_i64(res, 0, 0);
    out->transfers = get_i64(res, 0, 1);
    out->total_debits = get_i64(res, 0, 2);
    out->total_credits = get_i64(res, 0, 3);
    PQclear(res);
    if (!(res = exec1(conn, "SELECT code, account, detail FROM ledger_check()", 0, NULL,
                      "ledger check", err, errlen)))
        goto done;
    out->nviolations = (size_t)PQntuples(res);
    out->violations = xcalloc(out->nviolations ? out->nviolations : 1, sizeof *out->violations);
    for (size_t i = 0; i < out->nviolations; i++) {
        out->violations[i].code = xstrdup(PQgetvalue(res, (int)i, 0));
        out->violations[i].account = dup_or_null(res, (int)i, 1);
        out->violations[i].detail = dup_or_null(res, (int)i, 2);
    }
    PQclear(res);
    out->balanced = out->nviolations == 0;
    rc = 0;
done:
    if (open) {
        res = PQexec(conn, "COMMIT");
        PQclear(res);
    }
    return rc;
}

void ledger_report_free(struct ledger_report *r)
{
    for (size_t i = 0; i < r->nviolations; i++) {
        free(r->violations[i].code);
        free(r->violations[i].account);
        free(r->violations[i].detail);
    }
    free(r->violations);
    memset(r, 0, sizeof *r);
}

int ledger_expire(PGconn *conn, int64_t now, int limit, int *voided, char *err, size_t errlen)
{
    char n[24], l[16];
    snprintf(n, sizeof n, "%" PRId64, now);
    snprintf(l, sizeof l, "%d", limit);
    const char *v[2] = {now ? n : NULL, l};
    PGresult *res = exec1(conn, LEDGER_SQL_EXPIRE, 2, v, "ledger expire", err, errlen);
    if (!res)
        return -1;
    *voided = (int)get_i64(res, 0, 0);
    PQclear(res);
    return 0;
}
