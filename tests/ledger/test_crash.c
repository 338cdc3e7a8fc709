/*
 * test_crash.c — kill -9 the PostgreSQL server in the middle of a stream of batches, start
 * it again: every batch the client saw committed is there whole, the batch in flight is
 * there whole or not at all, and nothing after it is there even in part; the recompute
 * still equals the maintained totals. Needs the cluster's state directory and port
 * (CAPX_TEST_VAR, CAPX_TEST_PGPORT) and the repository root (argv[1]) for deploy/pg.sh,
 * and restarts the cluster before it ends so that later tests still have it.
 */
#include <pthread.h>
#include <time.h>

#include "tests/test.h"
#include "tests/ledger/ltest.h"

#define PEOPLE     20
#define MAXBATCHES 100000

static char pgsh[1024];
static int nsent[MAXBATCHES];      /* transfers in batch i */
static bool committed[MAXBATCHES]; /* the client saw batch i commit */

static void sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

static void *killer(void *arg)
{
    char cmd[1100];
    sleep_ms(*(long *)arg);
    snprintf(cmd, sizeof cmd, "%s kill9 >/dev/null 2>&1", pgsh);
    if (system(cmd) != 0)
        fprintf(stderr, "crash: kill9 failed\n");
    return NULL;
}

int main(int argc, char **argv)
{
    struct ltest_db db;
    char err[512], owner[32], cash[PEOPLE][64], esc[PEOPLE][64], id[48], cmd[1100];
    const char *var = getenv("CAPX_TEST_VAR"), *port = getenv("CAPX_TEST_PGPORT");
    if (argc < 2 || !var || !*var || !port || !*port) {
        fprintf(stderr, "ledger.crash: needs CAPX_TEST_VAR and CAPX_TEST_PGPORT (the cluster "
                        "tests/run.sh started) and the repository root as argument\n");
        return 1;
    }
    snprintf(pgsh, sizeof pgsh, "%s/deploy/pg.sh", argv[1]);
    setenv("CAPX_VAR", var, 1);
    setenv("CAPX_PGPORT", port, 1);

    ltest_db_create(&db, "crash");
    PGconn *c = ltest_connect(&db, db.name);
    if (!c)
        return 1;
    ltest_participants(c, PEOPLE);
    struct ledger_batch *b = ledger_batch_new();
    enum ledger_result *r = xcalloc(512, sizeof *r);
    for (int i = 0; i < PEOPLE; i++) {
        ltest_owner(i, owner);
        ledger_cash_id(owner, cash[i], sizeof cash[i]);
        ledger_escrow_id(owner, esc[i], sizeof esc[i]);
        snprintf(id, sizeof id, "dep-%d", i);
        struct ledger_transfer t = {.id = id,
                                    .debit_account = LEDGER_WORLD,
                                    .credit_account = cash[i],
                                    .amount = 1000000000000,
                                    .kind = "deposit"};
        ledger_batch_add(b, &t);
    }
    CHECK(ledger_submit(c, b, r, err, sizeof err) == 0);

    /* Stream batches (transfers and holds that always succeed) until the server dies. */
    long delay = 1500;
    pthread_t kt;
    CHECK(pthread_create(&kt, NULL, killer, &delay) == 0);
    unsigned seed = 42;
    int nb = 0, failures = 0;
    while (nb < MAXBATCHES && failures < 3) {
        int n = 1 + (int)(rand_r(&seed) % 400);
        ledger_batch_clear(b);
        for (int j = 0; j < n; j++) {
            int a = (int)(rand_r(&seed) % PEOPLE), d = (int)(rand_r(&seed) % PEOPLE);
            bool hold = rand_r(&seed) % 4 == 0;
            snprintf(id, sizeof id, "c%d-%d", nb, j);
            struct ledger_transfer t = {.id = id,
                                        .debit_account = cash[a],
                                        .credit_account = hold     ? esc[a]
                                                          : a == d ? LEDGER_FEES
                                                                   : cash[d],
                                        .amount = 1 + rand_r(&seed) % 1000,
                                        .kind = hold ? "hold" : "fill",
                                        .flags = hold ? LEDGER_PENDING : LEDGER_POSTED};
            ledger_batch_add(b, &t);
        }
        nsent[nb] = n;
        if (ledger_submit(c, b, r, err, sizeof err) == 0) {
            committed[nb] = true;
            for (int j = 0; j < n; j++)
                CHECK_EQ_I64(r[j], LEDGER_OK);
        } else {
            failures++;
        }
        nb++;
    }
    pthread_join(kt, NULL);
    PQfinish(c);
    int seen = 0;
    for (int i = 0; i < nb; i++)
        seen += committed[i];
    fprintf(stderr, "crash: %d batches sent, %d seen committed before the kill\n", nb, seen);
    CHECK(seen > 5);
    CHECK(failures == 3);

    /* Start the cluster again and wait for it. */
    snprintf(cmd, sizeof cmd, "%s start >/dev/null", pgsh);
    CHECK(system(cmd) == 0);
    for (int k = 0; k < 300 && !(c = ltest_connect(&db, db.name)); k++)
        sleep_ms(100);
    CHECK(c != NULL);
    if (!c)
        return TEST_DONE();

    /* Each batch: whole if seen committed, whole or absent otherwise. */
    int *found = xcalloc((size_t)nb + 1, sizeof *found);
    PGresult *res = PQexec(c, "SELECT substr(split_part(id, '-', 1), 2)::int, count(*) "
                              "FROM ledger_transfers WHERE id LIKE 'c%' GROUP BY 1");
    CHECK(PQresultStatus(res) == PGRES_TUPLES_OK);
    for (int row = 0; row < PQntuples(res); row++) {
        int i = atoi(PQgetvalue(res, row, 0));
        CHECK(i >= 0 && i < nb);
        if (i >= 0 && i < nb)
            found[i] = atoi(PQgetvalue(res, row, 1));
    }
    PQclear(res);
    int whole_unseen = 0;
    for (int i = 0; i < nb; i++) {
        if (committed[i])
            CHECK_EQ_I64(found[i], nsent[i]);
        else
            CHECK(found[i] == 0 || found[i] == nsent[i]);
        whole_unseen += !committed[i] && found[i] == nsent[i];
    }
    fprintf(stderr, "crash: %d batch(es) committed without the client seeing it\n", whole_unseen);
    free(found);

    struct ledger_report rep;
    CHECK(ledger_check(c, &rep, err, sizeof err) == 0);
    CHECK(rep.balanced);
    for (size_t i = 0; i < rep.nviolations; i++)
        fprintf(stderr, "violation: %s %s %s\n", rep.violations[i].code,
                rep.violations[i].account ? rep.violations[i].account : "-",
                rep.violations[i].detail ? rep.violations[i].detail : "");
    ledger_report_free(&rep);
    /* The ledger takes writes again. */
    ledger_batch_clear(b);
    struct ledger_transfer t = {.id = "after",
                                .debit_account = cash[0],
                                .credit_account = cash[1],
                                .amount = 1,
                                .kind = "fill"};
    ledger_batch_add(b, &t);
    CHECK(ledger_submit(c, b, r, err, sizeof err) == 0);
    CHECK_EQ_I64(r[0], LEDGER_OK);
    ledger_batch_free(b);
    free(r);
    PQfinish(c);
    ltest_db_drop(&db);
    return TEST_DONE();
}
