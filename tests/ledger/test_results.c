/*
 * test_results.c — every result code of ledger_submit and every state change of a hold
 * (pending → posted in full or in part, → voided, → expired), checked against the
 * maintained totals; both the fast (set-based) and the sequential path; a batch appended to
 * a caller's pipelined transaction; balances as the API shows them; listing with cursors;
 * the check, on a sound ledger and on one tampered with by a superuser.
 */
#include "tests/test.h"
#include "tests/ledger/ltest.h"

static PGconn *conn;
static char A[32], B[32], Acash[64], Aesc[64], Bcash[64], Besc[64];

/* Submits one transfer in its own transaction; returns its result. */
static enum ledger_result sub1(const struct ledger_transfer *t)
{
    struct ledger_batch *b = ledger_batch_new();
    enum ledger_result r = LEDGER_RESULT_COUNT;
    char err[512];
    ledger_batch_add(b, t);
    if (ledger_submit(conn, b, &r, err, sizeof err) < 0)
        fprintf(stderr, "submit: %s\n", err);
    ledger_batch_free(b);
    return r;
}

static struct ledger_transfer xfer(const char *id, const char *dr, const char *cr, int64_t amount,
                                   const char *kind)
{
    struct ledger_transfer t = {
        .id = id, .debit_account = dr, .credit_account = cr, .amount = amount, .kind = kind};
    return t;
}

static struct ledger_transfer hold(const char *id, const char *dr, const char *cr, int64_t amount)
{
    struct ledger_transfer t = xfer(id, dr, cr, amount, "hold");
    t.flags = LEDGER_PENDING;
    return t;
}

static struct ledger_transfer resolve(const char *id, int flags, const char *pending,
                                      int64_t amount)
{
    struct ledger_transfer t = {.id = id,
                                .amount = amount,
                                .flags = flags,
                                .pending_id = pending,
                                .kind = flags == LEDGER_POST ? "fill" : "release"};
    return t;
}

static struct ledger_account account_of(const char *id)
{
    struct ledger_account a;
    char err[256];
    memset(&a, 0, sizeof a);
    CHECK(ledger_account_get(conn, id, &a, err, sizeof err) == 0);
    return a;
}

#define CHECK_TOTALS(id, dpend, dpost, cpend, cpost)                                               \
    do {                                                                                           \
        struct ledger_account a_ = account_of(id);                                                 \
        CHECK_EQ_I64(a_.debits_pending, dpend);                                                    \
        CHECK_EQ_I64(a_.debits_posted, dpost);                                                     \
        CHECK_EQ_I64(a_.credits_pending, cpend);                                                   \
        CHECK_EQ_I64(a_.credits_posted, cpost);                                                    \
    } while (0)

static void check_clean(void)
{
    struct ledger_report rep;
    char err[256];
    CHECK(ledger_check(conn, &rep, err, sizeof err) == 0);
    CHECK(rep.balanced);
    for (size_t i = 0; i < rep.nviolations; i++)
        fprintf(stderr, "violation: %s %s %s\n", rep.violations[i].code,
                rep.violations[i].account ? rep.violations[i].account : "-",
                rep.violations[i].detail ? rep.violations[i].detail : "");
    CHECK_EQ_I64(rep.total_debits, rep.total_credits);
    ledger_report_free(&rep);
}

static void test_plain(void)
{
    struct ledger_transfer t = xfer("dep1", LEDGER_WORLD, Acash, 1000, "deposit");
    CHECK_EQ_I64(sub1(&t), LEDGER_OK);
    CHECK_TOTALS(Acash, 0, 0, 0, 1000);
    CHECK_TOTALS(LEDGER_WORLD, 0, 1000, 0, 0);
    /* The same id again: exists; with other content: exists_with_different_fields. */
    CHECK_EQ_I64(sub1(&t), LEDGER_EXISTS);
    t.amount = 999;
    CHECK_EQ_I64(sub1(&t), LEDGER_EXISTS_WITH_DIFFERENT_FIELDS);
    t = xfer("dep1", LEDGER_WORLD, Bcash, 1000, "deposit");
    CHECK_EQ_I64(sub1(&t), LEDGER_EXISTS_WITH_DIFFERENT_FIELDS);
    CHECK_TOTALS(Acash, 0, 0, 0, 1000);

    t = xfer("pay1", Acash, Bcash, 1001, "fill");
    CHECK_EQ_I64(sub1(&t), LEDGER_EXCEEDS_CREDITS);
    t.amount = 400;
    CHECK_EQ_I64(sub1(&t), LEDGER_OK);
    CHECK_TOTALS(Acash, 0, 400, 0, 1000);
    CHECK_TOTALS(Bcash, 0, 0, 0, 400);

    t = xfer("bad1", "acct_zzzzzzzzzzzzzzzz:cash", Bcash, 1, "fill");
    CHECK_EQ_I64(sub1(&t), LEDGER_DEBIT_ACCOUNT_NOT_FOUND);
    t = xfer("bad2", Acash, "nobody:cash", 1, "fill");
    CHECK_EQ_I64(sub1(&t), LEDGER_CREDIT_ACCOUNT_NOT_FOUND);
    t = xfer("bad3", Acash, Acash, 1, "fill");
    CHECK_EQ_I64(sub1(&t), LEDGER_ACCOUNTS_MUST_BE_DIFFERENT);
    t = xfer("bad4", Acash, Bcash, 0, "fill");
    CHECK_EQ_I64(sub1(&t), LEDGER_INVALID_AMOUNT);
    t = xfer("bad5", Acash, Bcash, -5, "fill");
    CHECK_EQ_I64(sub1(&t), LEDGER_INVALID_AMOUNT);
    t = xfer("bad6", Acash, Bcash, 1, "Fill!");
    CHECK_EQ_I64(sub1(&t), LEDGER_INVALID_FIELDS);
    t = xfer("bad7", Acash, Bcash, 1, "fill");
    t.expires_at = 2000000000; /* expiry on a transfer that is not a hold */
    CHECK_EQ_I64(sub1(&t), LEDGER_INVALID_FIELDS);
    t = xfer("", Acash, Bcash, 1, "fill");
    CHECK_EQ_I64(sub1(&t), LEDGER_INVALID_FIELDS);
    t = xfer("bad8", Acash, NULL, 1, "fill");
    CHECK_EQ_I64(sub1(&t), LEDGER_INVALID_FIELDS);
    t = xfer("bad9 \"quoted\" \\ {odd}, id", Acash, Bcash, 1, "fill");
    CHECK_EQ_I64(sub1(&t), LEDGER_OK); /* any text id round-trips through the array literal */
    CHECK_EQ_I64(sub1(&t), LEDGER_EXISTS);
    /* Overflow: capx:world's debits cannot pass INT64_MAX. */
    t = xfer("big", LEDGER_WORLD, Bcash, INT64_MAX, "deposit");
    CHECK_EQ_I64(sub1(&t), LEDGER_OVERFLOW);
    CHECK_TOTALS(Acash, 0, 401, 0, 1000);
    CHECK_TOTALS(Bcash, 0, 0, 0, 401);
}

static void test_holds(void)
{
    struct ledger_transfer t;
    /* A has 599 available. Hold 300 (pending, cash → escrow). */
    t = hold("h1", Acash, Aesc, 300);
    t.ref = "ord_1";
    CHECK_EQ_I64(sub1(&t), LEDGER_OK);
    CHECK_TOTALS(Acash, 300, 401, 0, 1000);
    CHECK_TOTALS(Aesc, 0, 0, 300, 0);
    struct ledger_balance bal;
    char err[256];
    CHECK(ledger_balance_get(conn, A, &bal, err, sizeof err) == 0);
    CHECK_EQ_I64(bal.available, 299);
    CHECK_EQ_I64(bal.held, 300);
    /* Holds count against available: 300 more does not fit. */
    t = hold("h2", Acash, Aesc, 300);
    CHECK_EQ_I64(sub1(&t), LEDGER_EXCEEDS_CREDITS);
    t.amount = 200;
    CHECK_EQ_I64(sub1(&t), LEDGER_OK);
    CHECK_TOTALS(Acash, 500, 401, 0, 1000);

    /* Posts and voids: not found, not pending, wrong accounts, too much. */
    t = resolve("p0", LEDGER_POST, "nope", 0);
    CHECK_EQ_I64(sub1(&t), LEDGER_PENDING_NOT_FOUND);
    t = resolve("p0", LEDGER_POST, "pay1", 0);
    CHECK_EQ_I64(sub1(&t), LEDGER_PENDING_NOT_FOUND);
    t = resolve("p0", LEDGER_POST, "h1", 0);
    t.debit_account = Bcash;
    CHECK_EQ_I64(sub1(&t), LEDGER_PENDING_ACCOUNTS_MISMATCH);
    t = resolve("p0", LEDGER_POST, "h1", 301);
    CHECK_EQ_I64(sub1(&t), LEDGER_EXCEEDS_PENDING_AMOUNT);
    t = resolve("p0", LEDGER_VOID, "h1", 299);
    CHECK_EQ_I64(sub1(&t), LEDGER_EXCEEDS_PENDING_AMOUNT);
    t = resolve("p0", LEDGER_POST, NULL, 0);
    CHECK_EQ_I64(sub1(&t), LEDGER_INVALID_FIELDS);
    t = hold("p0", Acash, Aesc, 10);
    t.pending_id = "h1";
    CHECK_EQ_I64(sub1(&t), LEDGER_INVALID_FIELDS);
    CHECK_TOTALS(Acash, 500, 401, 0, 1000);

    /* Partial post: 120 of h1's 300 posted, 180 released. */
    t = resolve("p1", LEDGER_POST, "h1", 120);
    t.debit_account = Acash; /* naming the hold's own accounts is allowed */
    CHECK_EQ_I64(sub1(&t), LEDGER_OK);
    CHECK_TOTALS(Acash, 200, 521, 0, 1000);
    CHECK_TOTALS(Aesc, 0, 0, 200, 120);
    CHECK(ledger_balance_get(conn, A, &bal, err, sizeof err) == 0);
    CHECK_EQ_I64(bal.available, 279); /* 1000 - 401 - 120 - 200 */
    CHECK_EQ_I64(bal.held, 320);      /* 200 pending + 120 in escrow */
    /* Exactly once: a second post or a void of h1 is refused; the retry of p1 is exists. */
    CHECK_EQ_I64(sub1(&t), LEDGER_EXISTS);
    t = resolve("p1b", LEDGER_POST, "h1", 0);
    CHECK_EQ_I64(sub1(&t), LEDGER_PENDING_ALREADY_RESOLVED);
    t = resolve("v1", LEDGER_VOID, "h1", 0);
    CHECK_EQ_I64(sub1(&t), LEDGER_PENDING_ALREADY_RESOLVED);

    /* Void: h2's 200 released in full. */
    t = resolve("v2", LEDGER_VOID, "h2", 0);
    CHECK_EQ_I64(sub1(&t), LEDGER_OK);
    CHECK_TOTALS(Acash, 0, 521, 0, 1000);
    CHECK_TOTALS(Aesc, 0, 0, 0, 120);
    t = resolve("p2", LEDGER_POST, "h2", 0);
    CHECK_EQ_I64(sub1(&t), LEDGER_PENDING_ALREADY_RESOLVED);

    /* Full post (amount 0 = all of it). */
    t = hold("h3", Acash, Aesc, 50);
    CHECK_EQ_I64(sub1(&t), LEDGER_OK);
    t = resolve("p3", LEDGER_POST, "h3", 0);
    CHECK_EQ_I64(sub1(&t), LEDGER_OK);
    CHECK_TOTALS(Acash, 0, 571, 0, 1000);
    CHECK_TOTALS(Aesc, 0, 0, 0, 170);

    /* Expiry: a hold that expired cannot be posted, can be voided, and ledger_expire voids it. */
    struct ledger_batch *b = ledger_batch_new();
    enum ledger_result r[4];
    t = hold("h4", Acash, Aesc, 10);
    t.expires_at = 1900000000;
    ledger_batch_add(b, &t);
    t = hold("h5", Acash, Aesc, 20);
    t.expires_at = 1900000100;
    ledger_batch_add(b, &t);
    ledger_batch_set_time(b, 1800000000);
    CHECK(ledger_submit(conn, b, r, err, sizeof err) == 0);
    CHECK_EQ_I64(r[0], LEDGER_OK);
    CHECK_EQ_I64(r[1], LEDGER_OK);
    CHECK_TOTALS(Acash, 30, 571, 0, 1000);
    ledger_batch_clear(b);
    t = resolve("p4", LEDGER_POST, "h4", 0);
    ledger_batch_add(b, &t);
    ledger_batch_set_time(b, 1900000000); /* expired at this instant */
    CHECK(ledger_submit(conn, b, r, err, sizeof err) == 0);
    CHECK_EQ_I64(r[0], LEDGER_PENDING_EXPIRED);
    int voided = -1;
    CHECK(ledger_expire(conn, 1900000050, 100, &voided, err, sizeof err) == 0);
    CHECK_EQ_I64(voided, 1); /* h4 only; h5 expires later */
    CHECK_TOTALS(Acash, 20, 571, 0, 1000);
    ledger_batch_clear(b);
    t = resolve("v5", LEDGER_VOID, "h5", 0);
    ledger_batch_add(b, &t);
    ledger_batch_set_time(b, 1999999999); /* voiding an expired hold is fine */
    CHECK(ledger_submit(conn, b, r, err, sizeof err) == 0);
    CHECK_EQ_I64(r[0], LEDGER_OK);
    CHECK_TOTALS(Acash, 0, 571, 0, 1000);
    CHECK(ledger_expire(conn, 1999999999, 100, &voided, err, sizeof err) == 0);
    CHECK_EQ_I64(voided, 0);
    ledger_batch_free(b);
    check_clean();
}

static void test_batches(void)
{
    struct ledger_batch *b = ledger_batch_new();
    enum ledger_result r[8];
    char err[256];
    struct ledger_transfer t;
    /* A fast-path batch: all ok. A has 429 available. */
    t = xfer("f1", Acash, Bcash, 10, "fill");
    ledger_batch_add(b, &t);
    t = xfer("f2", Bcash, Acash, 5, "fill");
    ledger_batch_add(b, &t);
    t = hold("f3", Acash, Aesc, 100);
    ledger_batch_add(b, &t);
    CHECK(ledger_submit(conn, b, r, err, sizeof err) == 0);
    for (int i = 0; i < 3; i++)
        CHECK_EQ_I64(r[i], LEDGER_OK);
    CHECK_TOTALS(Acash, 100, 581, 0, 1005);
    /* The same batch again: every one exists, nothing changes. */
    CHECK(ledger_submit(conn, b, r, err, sizeof err) == 0);
    for (int i = 0; i < 3; i++)
        CHECK_EQ_I64(r[i], LEDGER_EXISTS);
    CHECK_TOTALS(Acash, 100, 581, 0, 1005);

    /* A malformed kind in a batch: left to the table's CHECK by the fast path, named by the
     * sequential one; the rest of the batch still applies. */
    ledger_batch_clear(b);
    t = hold("k1", Acash, Aesc, 1);
    ledger_batch_add(b, &t);
    t = xfer("k2", Acash, Bcash, 1, "Bad Kind");
    ledger_batch_add(b, &t);
    CHECK(ledger_submit(conn, b, r, err, sizeof err) == 0);
    CHECK_EQ_I64(r[0], LEDGER_OK);
    CHECK_EQ_I64(r[1], LEDGER_INVALID_FIELDS);
    t = resolve("k3", LEDGER_VOID, "k1", 0); /* released again, for the totals below */
    CHECK_EQ_I64(sub1(&t), LEDGER_OK);

    /* Holds resolved in the batch that creates them, on the fast path: a partial post and a
     * void; then the same batch again (all exist). */
    ledger_batch_clear(b);
    t = hold("ib1", Acash, Aesc, 40);
    ledger_batch_add(b, &t);
    t = resolve("ib2", LEDGER_POST, "ib1", 15);
    ledger_batch_add(b, &t);
    t = hold("ib3", Acash, Aesc, 7);
    ledger_batch_add(b, &t);
    t = resolve("ib4", LEDGER_VOID, "ib3", 0);
    ledger_batch_add(b, &t);
    t = xfer("ib5", Aesc, Acash, 15, "refund"); /* and the 15 back out of escrow */
    ledger_batch_add(b, &t);
    struct ledger_account esc0 = account_of(Aesc);
    CHECK(ledger_submit(conn, b, r, err, sizeof err) == 0);
    for (int i = 0; i < 5; i++)
        CHECK_EQ_I64(r[i], LEDGER_OK);
    CHECK_TOTALS(Acash, 100, 581 + 15, 0, 1005 + 15);
    CHECK_TOTALS(Aesc, 0, esc0.debits_posted + 15, esc0.credits_pending, esc0.credits_posted + 15);
    CHECK(ledger_submit(conn, b, r, err, sizeof err) == 0);
    for (int i = 0; i < 5; i++)
        CHECK_EQ_I64(r[i], LEDGER_EXISTS);
    /* A post before the hold it names is not found (batch order). */
    ledger_batch_clear(b);
    t = resolve("ib6", LEDGER_POST, "ib7", 0);
    ledger_batch_add(b, &t);
    t = hold("ib7", Acash, Aesc, 3);
    ledger_batch_add(b, &t);
    t = resolve("ib8", LEDGER_VOID, "ib7", 0);
    ledger_batch_add(b, &t);
    CHECK(ledger_submit(conn, b, r, err, sizeof err) == 0);
    CHECK_EQ_I64(r[0], LEDGER_PENDING_NOT_FOUND);
    CHECK_EQ_I64(r[1], LEDGER_OK);
    CHECK_EQ_I64(r[2], LEDGER_OK);
    CHECK_TOTALS(Acash, 100, 596, 0, 1020);

    /* In batch order: B (401 + 10 - 5 = 406) pays 400, then cannot pay 10 more, then is
     * paid 20 and can pay 20 — each judged on the balances after the ones before it. */
    ledger_batch_clear(b);
    t = xfer("s1", Bcash, Acash, 400, "fill");
    ledger_batch_add(b, &t);
    t = xfer("s2", Bcash, Acash, 10, "fill");
    ledger_batch_add(b, &t);
    t = xfer("s3", Acash, Bcash, 20, "fill");
    ledger_batch_add(b, &t);
    t = xfer("s4", Bcash, Acash, 20, "fill");
    ledger_batch_add(b, &t);
    /* A hold posted in the batch that creates it, and a duplicate id. */
    t = hold("s5", Acash, Aesc, 30);
    ledger_batch_add(b, &t);
    t = resolve("s6", LEDGER_POST, "s5", 25);
    ledger_batch_add(b, &t);
    t = xfer("s1", Bcash, Acash, 400, "fill");
    ledger_batch_add(b, &t);
    t = resolve("s7", LEDGER_VOID, "s5", 0);
    ledger_batch_add(b, &t);
    CHECK(ledger_submit(conn, b, r, err, sizeof err) == 0);
    CHECK_EQ_I64(r[0], LEDGER_OK);
    CHECK_EQ_I64(r[1], LEDGER_EXCEEDS_CREDITS);
    CHECK_EQ_I64(r[2], LEDGER_OK);
    CHECK_EQ_I64(r[3], LEDGER_OK);
    CHECK_EQ_I64(r[4], LEDGER_OK);
    CHECK_EQ_I64(r[5], LEDGER_OK);
    CHECK_EQ_I64(r[6], LEDGER_EXISTS);
    CHECK_EQ_I64(r[7], LEDGER_PENDING_ALREADY_RESOLVED);
    CHECK_TOTALS(Bcash, 0, 5 + 400 + 20, 0, 401 + 10 + 20);
    CHECK_TOTALS(Acash, 100, 596 + 20 + 25, 0, 1020 + 400 + 20);

    /* Linked: a chain fails whole; a transfer outside it is unaffected. */
    ledger_batch_clear(b);
    t = xfer("l1", Acash, Bcash, 1, "fill");
    t.linked = true;
    ledger_batch_add(b, &t);
    t = xfer("l2", Bcash, Acash, 1000000, "fill"); /* fails: the chain fails */
    t.linked = true;
    ledger_batch_add(b, &t);
    t = xfer("l3", Acash, Bcash, 2, "fill"); /* last of the chain */
    ledger_batch_add(b, &t);
    t = xfer("l4", Acash, Bcash, 3, "fill"); /* on its own */
    ledger_batch_add(b, &t);
    CHECK(ledger_submit(conn, b, r, err, sizeof err) == 0);
    CHECK_EQ_I64(r[0], LEDGER_LINKED_EVENT_FAILED);
    CHECK_EQ_I64(r[1], LEDGER_EXCEEDS_CREDITS);
    CHECK_EQ_I64(r[2], LEDGER_LINKED_EVENT_FAILED);
    CHECK_EQ_I64(r[3], LEDGER_OK);
    CHECK_TOTALS(Bcash, 0, 425, 0, 434);
    /* A chain that succeeds, then its exact retry: exists for each. */
    ledger_batch_clear(b);
    t = xfer("m1", Acash, Bcash, 1, "fill");
    t.linked = true;
    ledger_batch_add(b, &t);
    t = xfer("m2", Bcash, Acash, 1, "fill");
    ledger_batch_add(b, &t);
    CHECK(ledger_submit(conn, b, r, err, sizeof err) == 0);
    CHECK_EQ_I64(r[0], LEDGER_OK);
    CHECK_EQ_I64(r[1], LEDGER_OK);
    CHECK(ledger_submit(conn, b, r, err, sizeof err) == 0);
    CHECK_EQ_I64(r[0], LEDGER_EXISTS);
    CHECK_EQ_I64(r[1], LEDGER_EXISTS);
    /* A chain where one was applied before and one is new: the chain fails. */
    ledger_batch_clear(b);
    t = xfer("m1", Acash, Bcash, 1, "fill");
    t.linked = true;
    ledger_batch_add(b, &t);
    t = xfer("m3", Bcash, Acash, 1, "fill");
    ledger_batch_add(b, &t);
    CHECK(ledger_submit(conn, b, r, err, sizeof err) == 0);
    CHECK_EQ_I64(r[0], LEDGER_EXISTS);
    CHECK_EQ_I64(r[1], LEDGER_LINKED_EVENT_FAILED);
    ledger_batch_free(b);
    check_clean();
}

/* The server's way: BEGIN, other statements, the batch, COMMIT, one Sync, in pipeline mode;
 * a refused transfer does not abort the transaction. */
static void test_pipeline(void)
{
    struct ledger_batch *b = ledger_batch_new();
    struct ledger_stmt st;
    enum ledger_result r[2];
    char err[256];
    struct ledger_transfer t = xfer("pp1", Acash, Bcash, 7, "fill");
    ledger_batch_add(b, &t);
    t = xfer("pp2", Acash, Bcash, 100000000, "fill");
    ledger_batch_add(b, &t);
    ledger_batch_stmt(b, &st);
    CHECK(PQenterPipelineMode(conn) == 1);
    CHECK(PQsendQueryParams(conn, "BEGIN", 0, NULL, NULL, NULL, NULL, 0) == 1);
    CHECK(PQsendQueryParams(conn, "CREATE TEMP TABLE side (x int)", 0, NULL, NULL, NULL, NULL, 0));
    CHECK(PQsendQueryParams(conn, st.sql, st.nparams, NULL, st.values, NULL, NULL, 0) == 1);
    CHECK(PQsendQueryParams(conn, "INSERT INTO side VALUES (1)", 0, NULL, NULL, NULL, NULL, 0));
    CHECK(PQsendQueryParams(conn, "COMMIT", 0, NULL, NULL, NULL, NULL, 0) == 1);
    CHECK(PQpipelineSync(conn) == 1);
    int decoded = 0, ok_cmds = 0;
    for (int q = 0; q < 5; q++) {
        PGresult *res;
        while ((res = PQgetResult(conn)) != NULL) {
            if (q == 2) {
                CHECK(ledger_batch_decode(b, res, r, err, sizeof err) == 0);
                decoded = 1;
            } else if (PQresultStatus(res) == PGRES_COMMAND_OK) {
                ok_cmds++;
            }
            PQclear(res);
        }
    }
    PGresult *sync = PQgetResult(conn);
    CHECK(PQresultStatus(sync) == PGRES_PIPELINE_SYNC);
    PQclear(sync);
    CHECK(PQexitPipelineMode(conn) == 1);
    CHECK(decoded);
    CHECK_EQ_I64(ok_cmds, 4);
    CHECK_EQ_I64(r[0], LEDGER_OK);
    CHECK_EQ_I64(r[1], LEDGER_EXCEEDS_CREDITS);
    PGresult *res = PQexec(conn, "SELECT count(*) FROM side");
    CHECK_STR(PQgetvalue(res, 0, 0), "1");
    PQclear(res);
    /* A batch whose transaction is rolled back leaves nothing. */
    ledger_batch_clear(b);
    t = xfer("rb1", Acash, Bcash, 1, "fill");
    ledger_batch_add(b, &t);
    ledger_batch_stmt(b, &st);
    ltest_must(conn, "BEGIN");
    res = PQexecParams(conn, st.sql, st.nparams, NULL, st.values, NULL, NULL, 0);
    CHECK(ledger_batch_decode(b, res, r, err, sizeof err) == 0);
    CHECK_EQ_I64(r[0], LEDGER_OK);
    PQclear(res);
    ltest_must(conn, "ROLLBACK");
    struct ledger_page pg;
    CHECK(ledger_list(conn, Acash, NULL, 500, &pg, err, sizeof err) == 0);
    for (size_t i = 0; i < pg.n; i++)
        CHECK(strcmp(pg.items[i].id, "rb1") != 0);
    ledger_page_free(&pg);
    /* A malformed call fails as a whole with an error the decoder reports. */
    const char *bad[11] = {"{a}", "{}", "{}", "{}", "{}", "{}", "{}", "{}", "{}", "{}", NULL};
    res = PQexecParams(conn, st.sql, 11, NULL, bad, NULL, NULL, 0);
    CHECK(ledger_batch_decode(b, res, r, err, sizeof err) == -1);
    CHECK(strstr(err, "arrays") != NULL);
    PQclear(res);
    ledger_batch_free(b);
}

static void test_list(void)
{
    struct ledger_page pg;
    char err[256], cursor[32] = "";
    int total = 0, pages = 0;
    int64_t last = INT64_MAX;
    /* B's cash, 3 per page, newest first, until the cursor runs out. */
    do {
        CHECK(ledger_list(conn, Bcash, cursor, 3, &pg, err, sizeof err) == 0);
        for (size_t i = 0; i < pg.n; i++) {
            CHECK(pg.items[i].seq < last);
            last = pg.items[i].seq;
            CHECK(strcmp(pg.items[i].debit_account, Bcash) == 0 ||
                  strcmp(pg.items[i].credit_account, Bcash) == 0);
            CHECK(pg.items[i].out == (strcmp(pg.items[i].debit_account, Bcash) == 0));
            CHECK(strlen(pg.items[i].created_at) == 20);
        }
        total += (int)pg.n;
        pages++;
        snprintf(cursor, sizeof cursor, "%s", pg.next_cursor);
        ledger_page_free(&pg);
    } while (*cursor && pages < 100);
    PGresult *res = PQexec(conn, "SELECT count(*) FROM ledger_transfers WHERE debit_account = "
                                 "'acct_aaaaaaaaaaaaaaab:cash' OR credit_account = "
                                 "'acct_aaaaaaaaaaaaaaab:cash'");
    CHECK_EQ_I64(total, atoi(PQgetvalue(res, 0, 0)));
    CHECK(total > 6);
    PQclear(res);
    /* By owner: both accounts; statuses of holds. */
    CHECK(ledger_list(conn, A, NULL, 500, &pg, err, sizeof err) == 0);
    int seen = 0;
    for (size_t i = 0; i < pg.n; i++) {
        const struct ledger_entry *e = &pg.items[i];
        if (!strcmp(e->id, "h1")) {
            CHECK_EQ_I64(e->status, LEDGER_STATUS_POSTED);
            CHECK_STR(e->ref, "ord_1");
            CHECK(e->out);
            seen++;
        } else if (!strcmp(e->id, "h2") || !strcmp(e->id, "v2")) {
            CHECK_EQ_I64(e->status, LEDGER_STATUS_VOIDED);
            seen++;
        } else if (!strcmp(e->id, "f3")) {
            CHECK_EQ_I64(e->status, LEDGER_STATUS_PENDING);
            seen++;
        } else if (!strcmp(e->id, "dep1")) {
            CHECK(!e->out);
            CHECK_EQ_I64(e->status, LEDGER_STATUS_POSTED);
            seen++;
        }
    }
    CHECK_EQ_I64(seen, 5);
    ledger_page_free(&pg);
    CHECK(ledger_list(conn, A, "x1", 5, &pg, err, sizeof err) == -1);
    CHECK(ledger_list(conn, A, NULL, 0, &pg, err, sizeof err) == -1);
}

/* Two writers racing for one hold and one id: the second waits on the first's row locks and,
 * once it commits, reports pending_already_resolved / exists instead of failing. */
static void test_race(const struct ltest_db *db)
{
    PGconn *other = ltest_connect(db, db->name);
    struct ledger_batch *b1 = ledger_batch_new(), *b2 = ledger_batch_new();
    struct ledger_stmt s1, s2;
    enum ledger_result r1[2], r2[2];
    char err[256];
    struct ledger_transfer t;
    char hid[32], pid1[32], pid2[32], xid[32];
    for (int round = 0; round < 2; round++) {
        /* round 0: one transfer each (the simple path); round 1: two each (the set-based path,
         * which validates before it waits, then finds the id taken and goes sequential) */
        snprintf(hid, sizeof hid, "race-h%d", round);
        snprintf(pid1, sizeof pid1, "race-p%d", round);
        snprintf(pid2, sizeof pid2, "race-v%d", round);
        snprintf(xid, sizeof xid, "race-x%d", round);
        t = hold(hid, Acash, Aesc, 5);
        CHECK_EQ_I64(sub1(&t), LEDGER_OK);
        ledger_batch_clear(b1);
        ledger_batch_clear(b2);
        t = resolve(pid1, LEDGER_POST, hid, 0);
        ledger_batch_add(b1, &t);
        t = resolve(pid2, LEDGER_VOID, hid, 0);
        ledger_batch_add(b2, &t);
        if (round == 1) {
            t = xfer(xid, Acash, Bcash, 1, "fill");
            ledger_batch_add(b1, &t);
            ledger_batch_add(b2, &t);
        }
        ledger_batch_stmt(b1, &s1);
        ledger_batch_stmt(b2, &s2);
        ltest_must(conn, "BEGIN");
        PGresult *res = PQexecParams(conn, s1.sql, s1.nparams, NULL, s1.values, NULL, NULL, 0);
        CHECK(ledger_batch_decode(b1, res, r1, err, sizeof err) == 0);
        PQclear(res);
        CHECK(PQsendQueryParams(other, s2.sql, s2.nparams, NULL, s2.values, NULL, NULL, 0) == 1);
        usleep(200000); /* let it reach the row locks and wait there */
        ltest_must(conn, "COMMIT");
        res = PQgetResult(other);
        CHECK(ledger_batch_decode(b2, res, r2, err, sizeof err) == 0);
        if (PQresultStatus(res) != PGRES_TUPLES_OK)
            fprintf(stderr, "race: %s\n", err);
        PQclear(res);
        while ((res = PQgetResult(other)) != NULL)
            PQclear(res);
        CHECK_EQ_I64(r1[0], LEDGER_OK);
        CHECK_EQ_I64(r2[0], LEDGER_PENDING_ALREADY_RESOLVED);
        if (round == 1) {
            CHECK_EQ_I64(r1[1], LEDGER_OK);
            CHECK_EQ_I64(r2[1], LEDGER_EXISTS);
        }
    }
    /* Hold race-h1 was posted, race-x1 moved 1 once: A's cash paid 5 + 1. */
    ledger_batch_free(b1);
    ledger_batch_free(b2);
    PQfinish(other);
}

/* The database refuses edits; a superuser who goes around it is caught by the check. */
static void test_tamper(void)
{
    PGresult *res = PQexec(conn, "UPDATE ledger_transfers SET amount = 1 WHERE id = 'dep1'");
    CHECK(PQresultStatus(res) == PGRES_FATAL_ERROR);
    PQclear(res);
    res = PQexec(conn, "DELETE FROM ledger_transfers WHERE id = 'dep1'");
    CHECK(PQresultStatus(res) == PGRES_FATAL_ERROR);
    PQclear(res);
    res = PQexec(conn, "TRUNCATE ledger_transfers");
    CHECK(PQresultStatus(res) == PGRES_FATAL_ERROR);
    PQclear(res);
    res = PQexec(conn, "UPDATE ledger_accounts SET debits_posted = 0, credits_posted = 0 "
                       "WHERE id = 'acct_aaaaaaaaaaaaaaaa:cash'");
    CHECK(PQresultStatus(res) == PGRES_FATAL_ERROR); /* 100 pending > 0 credits */
    PQclear(res);
    /* A refused check constraint: a negative total. */
    res = PQexec(conn, "UPDATE ledger_accounts SET credits_pending = -1 WHERE id = 'capx:fees'");
    CHECK(PQresultStatus(res) == PGRES_FATAL_ERROR);
    PQclear(res);

    /* Malformed accounts are refused: a cash account that may go negative, an id that is not
     * derived from its owner, an unknown kind. */
    static const char *const bad_accounts[] = {
        "UPDATE ledger_accounts SET flags = 0 WHERE id = 'acct_aaaaaaaaaaaaaaaa:cash'",
        "INSERT INTO ledger_accounts (id, kind, owner, flags) VALUES "
        "('acct_aaaaaaaaaaaaaaaa:other', 'cash', 'acct_aaaaaaaaaaaaaaaa', 1)",
        "INSERT INTO ledger_accounts (id, kind, owner, flags) VALUES ('capx:bank', 'bank', NULL, "
        "0)",
        "INSERT INTO ledger_accounts (id, kind, owner, flags) VALUES ('capx:cash', 'cash', NULL, "
        "1)",
    };
    for (size_t i = 0; i < ARRAY_LEN(bad_accounts); i++) {
        res = PQexec(conn, bad_accounts[i]);
        CHECK(PQresultStatus(res) == PGRES_FATAL_ERROR);
        CHECK_STR(PQresultErrorField(res, PG_DIAG_SQLSTATE), "23514");
        PQclear(res);
    }

    /* exceeds_debits: make the world account refuse to credit more than it debited. */
    ltest_must(conn, "UPDATE ledger_accounts SET flags = 2 WHERE id = 'capx:world'");
    struct ledger_transfer t = xfer("wd1", Bcash, LEDGER_WORLD, 5000, "withdrawal");
    CHECK_EQ_I64(sub1(&t), LEDGER_EXCEEDS_CREDITS);
    ltest_must(conn, "UPDATE ledger_accounts SET flags = 2, debits_posted = 0 WHERE id = "
                     "'capx:world'");
    t = xfer("wd2", Bcash, LEDGER_WORLD, 5, "withdrawal");
    CHECK_EQ_I64(sub1(&t), LEDGER_EXCEEDS_DEBITS);

    struct ledger_report rep;
    char err[256];
    ltest_must(conn, "ALTER TABLE ledger_transfers DISABLE TRIGGER ledger_transfers_no_update");
    ltest_must(conn, "UPDATE ledger_transfers SET amount = amount + 1 WHERE id = 'pay1'");
    CHECK(ledger_check(conn, &rep, err, sizeof err) == 0);
    CHECK(!rep.balanced);
    int mutable = 0, mismatch = 0, unbalanced = 0, equation = 0;
    for (size_t i = 0; i < rep.nviolations; i++) {
        const char *c = rep.violations[i].code;
        mutable += !strcmp(c, "transfers_mutable");
        mismatch += !strcmp(c, "recompute_mismatch");
        unbalanced += !strcmp(c, "unbalanced");
        equation += !strcmp(c, "participant_equation");
    }
    CHECK_EQ_I64(mutable, 1);
    CHECK(mismatch >= 3); /* world (edited above), A's and B's cash */
    CHECK_EQ_I64(unbalanced, 1);
    CHECK(equation >= 1);
    ledger_report_free(&rep);
}

int main(void)
{
    struct ltest_db db;
    ltest_db_create(&db, "results");
    conn = ltest_connect(&db, db.name);
    if (!conn)
        return 1;
    ltest_participants(conn, 2);
    ltest_owner(0, A);
    ltest_owner(1, B);
    ledger_cash_id(A, Acash, sizeof Acash);
    ledger_escrow_id(A, Aesc, sizeof Aesc);
    ledger_cash_id(B, Bcash, sizeof Bcash);
    ledger_escrow_id(B, Besc, sizeof Besc);
    CHECK_STR(Acash, "acct_aaaaaaaaaaaaaaaa:cash");
    char err[256];
    CHECK(ledger_open_participant(conn, A, err, sizeof err) == 0); /* idempotent */
    for (int r = 0; r < LEDGER_RESULT_COUNT; r++)
        CHECK(strcmp(ledger_result_name(r), "unknown") != 0);
    test_plain();
    test_holds();
    test_batches();
    test_pipeline();
    test_list();
    test_race(&db);
    check_clean();
    test_tamper();
    PQfinish(conn);
    ltest_db_drop(&db);
    return TEST_DONE();
}
