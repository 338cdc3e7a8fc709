/*
 * test_bank.c — the bank test, as Jepsen runs it on ledgers: 8 connections at once make
 * random batches of transfers, holds, posts and voids among 50 participants for a bounded
 * time (CAPX_BANK_SECONDS, default 8), retrying batches with the same ids (some of them
 * after "losing" the first answer). Afterwards: the total is conserved, no balance is
 * negative, every acknowledged transfer is there exactly once and nothing else is, a retry
 * never applied anything twice, and the recompute (ledger_check) equals the maintained totals.
 */
#include <pthread.h>
#include <time.h>

#include "tests/test.h"
#include "tests/ledger/ltest.h"

#define THREADS  8
#define PEOPLE   50
#define DEPOSIT  1000000
#define MAXBATCH 16
#define MAXHOLDS 64

static struct ltest_db db;
static double deadline;

struct hold {
    char id[32];
    int64_t amount;
};

struct worker {
    int no;
    pthread_t thread;
    unsigned seed;
    char **acked; /* ids acknowledged by ok (or by exists after a lost answer) */
    size_t nacked, capacked;
    struct hold holds[MAXHOLDS]; /* acknowledged holds not yet resolved */
    int nholds;
    long batches, retries, lost, errors, bad;
};

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static void ack(struct worker *w, const char *id)
{
    if (w->nacked == w->capacked) {
        w->capacked = w->capacked ? 2 * w->capacked : 1024;
        w->acked = xrealloc(w->acked, w->capacked * sizeof *w->acked);
    }
    w->acked[w->nacked++] = xstrdup(id);
}

/* What a batch entry was, to act on its result. */
struct entry {
    char id[32];
    char dr[64], cr[64];
    char pending[32];
    int flags;
    int64_t amount;
    int hold_slot; /* for a post/void: which of w->holds it resolves */
    bool acked;
};

static void *run(void *arg)
{
    struct worker *w = arg;
    PGconn *c = ltest_connect(&db, db.name);
    struct ledger_batch *b = ledger_batch_new();
    struct entry e[MAXBATCH];
    enum ledger_result r[MAXBATCH];
    char err[512], owner[32];
    long seq = 0;
    if (!c) {
        w->errors++;
        return NULL;
    }
    while (now_s() < deadline) {
        int n = 1 + rand_r(&w->seed) % MAXBATCH;
        bool resolving[MAXHOLDS] = {false};
        ledger_batch_clear(b);
        for (int i = 0; i < n; i++) {
            struct entry *x = &e[i];
            int a = rand_r(&w->seed) % PEOPLE, bb = rand_r(&w->seed) % PEOPLE;
            int kind = rand_r(&w->seed) % 100;
            memset(x, 0, sizeof *x);
            x->hold_slot = -1;
            snprintf(x->id, sizeof x->id, "w%d-%ld", w->no, seq++);
            ltest_owner(a, owner);
            ledger_cash_id(owner, x->dr, sizeof x->dr);
            ltest_owner(bb, owner);
            ledger_cash_id(owner, x->cr, sizeof x->cr);
            x->amount = 1 + rand_r(&w->seed) % 60000;
            int slot = -1;
            if (kind >= 65 && kind < 90 && w->nholds > 0) {
                slot = rand_r(&w->seed) % w->nholds;
                if (resolving[slot]) /* one resolution per hold per batch: a plain one instead */
                    slot = -1, kind = 0;
            }
            if (kind < 45 || (kind >= 65 && kind < 90 && slot < 0)) {
                if (a == bb)
                    snprintf(x->cr, sizeof x->cr, "%s", LEDGER_FEES);
            } else if (kind < 65) { /* a hold: cash to own escrow */
                ltest_owner(a, owner);
                ledger_escrow_id(owner, x->cr, sizeof x->cr);
                x->flags = LEDGER_PENDING;
            } else if (kind < 90) { /* post (part of) or void one of ours */
                resolving[slot] = true;
                x->hold_slot = slot;
                snprintf(x->pending, sizeof x->pending, "%s", w->holds[slot].id);
                x->flags = kind < 80 ? LEDGER_POST : LEDGER_VOID;
                x->amount = x->flags == LEDGER_POST && kind % 2
                                ? 1 + rand_r(&w->seed) % w->holds[slot].amount
                                : 0;
                x->dr[0] = x->cr[0] = 0;
            } else { /* paid out of escrow to someone's cash */
                ltest_owner(a, owner);
                ledger_escrow_id(owner, x->dr, sizeof x->dr);
                if (a == bb)
                    snprintf(x->cr, sizeof x->cr, "%s", LEDGER_FEES);
                x->amount = 1 + rand_r(&w->seed) % 5000;
            }
        }
        int m = n;
        for (int i = 0; i < m; i++) {
            struct ledger_transfer t = {.id = e[i].id,
                                        .debit_account = e[i].dr[0] ? e[i].dr : NULL,
                                        .credit_account = e[i].cr[0] ? e[i].cr : NULL,
                                        .amount = e[i].amount,
                                        .kind = e[i].flags == LEDGER_PENDING ? "hold" : "fill",
                                        .flags = e[i].flags,
                                        .pending_id = e[i].pending[0] ? e[i].pending : NULL,
                                        .linked = (i % 5 == 3) && i + 1 < m};
            ledger_batch_add(b, &t);
        }
        /* Sometimes the first answer is "lost": submitted, committed, never read. */
        bool lose = rand_r(&w->seed) % 10 == 0;
        int attempts = lose ? 2 : 1 + (rand_r(&w->seed) % 5 == 0);
        for (int k = 0; k < attempts; k++) {
            if (ledger_submit(c, b, r, err, sizeof err) < 0) {
                fprintf(stderr, "worker %d: %s\n", w->no, err);
                w->errors++;
                break;
            }
            if (lose && k == 0) {
                w->lost++;
                continue;
            }
            if (k > 0)
                w->retries++;
            for (int i = 0; i < m; i++) {
                struct entry *x = &e[i];
                if (x->acked) { /* answered ok before: a retry must say exists */
                    if (r[i] != LEDGER_EXISTS) {
                        fprintf(stderr, "worker %d: retry of %s gave %s\n", w->no, x->id,
                                ledger_result_name(r[i]));
                        w->bad++;
                    }
                    continue;
                }
                if (r[i] == LEDGER_OK || (r[i] == LEDGER_EXISTS && lose)) {
                    x->acked = true;
                    ack(w, x->id);
                    if (x->flags == LEDGER_PENDING && w->nholds < MAXHOLDS) {
                        _Static_assert(sizeof w->holds[0].id == sizeof x->id, "id sizes");
                        memcpy(w->holds[w->nholds].id, x->id, sizeof x->id);
                        w->holds[w->nholds++].amount = x->amount;
                    }
                } else if (r[i] != LEDGER_EXCEEDS_CREDITS && r[i] != LEDGER_LINKED_EVENT_FAILED) {
                    fprintf(stderr, "worker %d: %s gave %s\n", w->no, x->id,
                            ledger_result_name(r[i]));
                    w->bad++;
                }
            }
        }
        /* Forget the holds this batch resolved (highest slot first keeps indexes valid). */
        for (int s = MAXHOLDS - 1; s >= 0; s--) {
            bool gone = false;
            for (int i = 0; i < m; i++)
                gone |= e[i].hold_slot == s && e[i].acked;
            if (gone)
                w->holds[s] = w->holds[--w->nholds];
        }
        w->batches++;
    }
    ledger_batch_free(b);
    PQfinish(c);
    return NULL;
}

static int64_t one_i64(PGconn *c, const char *sql)
{
    PGresult *res = PQexec(c, sql);
    int64_t v = PQresultStatus(res) == PGRES_TUPLES_OK && PQntuples(res) == 1
                    ? strtoll(PQgetvalue(res, 0, 0), NULL, 10)
                    : -999;
    if (v == -999)
        fprintf(stderr, "%s: %s", sql, PQresultErrorMessage(res));
    PQclear(res);
    return v;
}

int main(void)
{
    struct worker w[THREADS];
    char err[512];
    const char *secs = getenv("CAPX_BANK_SECONDS");
    ltest_db_create(&db, "bank");
    PGconn *c = ltest_connect(&db, db.name);
    if (!c)
        return 1;
    ltest_participants(c, PEOPLE);
    /* Everyone gets the same deposit. */
    struct ledger_batch *b = ledger_batch_new();
    enum ledger_result r[PEOPLE];
    char ids[PEOPLE][32], cash[PEOPLE][64], owner[32];
    for (int i = 0; i < PEOPLE; i++) {
        ltest_owner(i, owner);
        ledger_cash_id(owner, cash[i], sizeof cash[i]);
        snprintf(ids[i], sizeof ids[i], "dep-%d", i);
        struct ledger_transfer t = {.id = ids[i],
                                    .debit_account = LEDGER_WORLD,
                                    .credit_account = cash[i],
                                    .amount = DEPOSIT,
                                    .kind = "deposit"};
        ledger_batch_add(b, &t);
    }
    CHECK(ledger_submit(c, b, r, err, sizeof err) == 0);
    for (int i = 0; i < PEOPLE; i++)
        CHECK_EQ_I64(r[i], LEDGER_OK);
    ledger_batch_free(b);

    deadline = now_s() + (secs ? atof(secs) : 8.0);
    memset(w, 0, sizeof w);
    for (int i = 0; i < THREADS; i++) {
        w[i].no = i;
        w[i].seed = 12345u + (unsigned)i * 7919u;
        CHECK(pthread_create(&w[i].thread, NULL, run, &w[i]) == 0);
    }
    long batches = 0, retries = 0, lost = 0, errors = 0, bad = 0;
    size_t acked = 0;
    for (int i = 0; i < THREADS; i++) {
        pthread_join(w[i].thread, NULL);
        batches += w[i].batches;
        retries += w[i].retries;
        lost += w[i].lost;
        errors += w[i].errors;
        bad += w[i].bad;
        acked += w[i].nacked;
    }
    fprintf(stderr,
            "bank: %ld batches, %zu acknowledged transfers, %ld retries, %ld lost answers\n",
            batches, acked, retries, lost);
    CHECK_EQ_I64(errors, 0);
    CHECK_EQ_I64(bad, 0);
    CHECK(batches > 100);

    /* The total is conserved: what the world paid in is all inside, nothing made or lost. */
    CHECK_EQ_I64(one_i64(c, "SELECT sum(credits_posted - debits_posted) FROM ledger_accounts "
                            "WHERE id <> 'capx:world'"),
                 (int64_t)PEOPLE * DEPOSIT);
    CHECK_EQ_I64(one_i64(c, "SELECT debits_posted - credits_posted FROM ledger_accounts "
                            "WHERE id = 'capx:world'"),
                 (int64_t)PEOPLE * DEPOSIT);
    /* No negative balance anywhere. */
    CHECK_EQ_I64(one_i64(c, "SELECT count(*) FROM ledger_accounts WHERE id <> 'capx:world' AND "
                            "(credits_posted - debits_posted - debits_pending < 0 OR "
                            "debits_pending < 0 OR credits_pending < 0)"),
                 0);
    for (int i = 0; i < PEOPLE; i++) {
        struct ledger_balance bal;
        ltest_owner(i, owner);
        CHECK(ledger_balance_get(c, owner, &bal, err, sizeof err) == 0);
        CHECK(bal.available >= 0 && bal.held >= 0);
    }
    /* Every acknowledged transfer is there once, and nothing else is. */
    struct sbuf_ {
        char *p;
        size_t len;
    } arr = {xmalloc(acked * 24 + 16), 0};
    arr.p[arr.len++] = '{';
    for (int i = 0; i < THREADS; i++)
        for (size_t k = 0; k < w[i].nacked; k++)
            arr.len +=
                (size_t)sprintf(arr.p + arr.len, "%s%s", arr.len > 1 ? "," : "", w[i].acked[k]);
    arr.p[arr.len++] = '}';
    arr.p[arr.len] = 0;
    const char *v[1] = {arr.p};
    PGresult *res = PQexecParams(c, "SELECT count(*) FROM ledger_transfers WHERE id = ANY ($1)", 1,
                                 NULL, v, NULL, NULL, 0);
    CHECK_EQ_I64(strtoll(PQgetvalue(res, 0, 0), NULL, 10), (int64_t)acked);
    PQclear(res);
    CHECK_EQ_I64(one_i64(c, "SELECT count(*) FROM ledger_transfers"), (int64_t)acked + PEOPLE);
    free(arr.p);
    for (int i = 0; i < THREADS; i++) {
        for (size_t k = 0; k < w[i].nacked; k++)
            free(w[i].acked[k]);
        free(w[i].acked);
    }
    /* The recompute equals the maintained totals, and every invariant holds. */
    struct ledger_report rep;
    CHECK(ledger_check(c, &rep, err, sizeof err) == 0);
    CHECK(rep.balanced);
    for (size_t i = 0; i < rep.nviolations; i++)
        fprintf(stderr, "violation: %s %s %s\n", rep.violations[i].code,
                rep.violations[i].account ? rep.violations[i].account : "-",
                rep.violations[i].detail ? rep.violations[i].detail : "");
    CHECK_EQ_I64(rep.transfers, (int64_t)acked + PEOPLE);
    ledger_report_free(&rep);
    PQfinish(c);
    ltest_db_drop(&db);
    return TEST_DONE();
}
