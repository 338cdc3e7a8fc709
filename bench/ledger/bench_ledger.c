/*
 * bench_ledger.c — durable ledger transfers per second on a private cluster.
 *
 * usage: bench_ledger CONNINFO [SECONDS_PER_RUN]
 *
 * Sets up 10,000 participants (10 % of them hot: 90 % of picks), each with a large deposit,
 * then for each batch size (1 with 8 concurrent clients, as pgbench runs; 10 … 8,000 with
 * one client, as capxd's single writer does) and each mode —
 *   own:      the batch is its own transaction (ledger_submit: one round trip),
 *   appended: BEGIN; an INSERT of the caller's; the batch; COMMIT — pipelined, one Sync,
 *             as capxd's group commit sends it —
 * submits random batches (70 % transfers, 20 % holds, 10 % posts or voids of earlier holds)
 * for SECONDS_PER_RUN, counting the transfers acknowledged ok, and batch latency. After the
 * two modes of each size, ledger_check() recomputes everything; a violation fails the run.
 * It also measures the alternative the design rejected: a pipeline of 1,000 one-transfer
 * statements. Prints a table, then `RESULT size tps p99_ms` lines for run.sh.
 */
#include <inttypes.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "ledger/ledger.h"
#include "schema/migrate.h"

#define ACCOUNTS 10000
#define HOT      1000
#define MAXHOLDS 8192

static const char *conninfo;
static double seconds = 5.0;

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static PGconn *connect_db(void)
{
    PGconn *c = PQconnectdb(conninfo);
    if (PQstatus(c) != CONNECTION_OK)
        capx_fatal("bench: cannot connect: %s", PQerrorMessage(c));
    PGresult *r = PQexec(c, "SET client_min_messages = warning");
    PQclear(r);
    return c;
}

static void must(PGconn *c, const char *sql)
{
    PGresult *r = PQexec(c, sql);
    if (PQresultStatus(r) != PGRES_COMMAND_OK && PQresultStatus(r) != PGRES_TUPLES_OK)
        capx_fatal("bench: %s: %s", sql, PQresultErrorMessage(r));
    PQclear(r);
}

static void owner_of(int i, char out[32])
{
    snprintf(out, 32, "acct_");
    for (int k = 0; k < 16; k++)
        out[5 + k] = (char)('a' + (int)(((uint64_t)i >> (4 * (15 - k))) & 15));
    out[21] = 0;
}

/* CPU seconds (user + system) the server process `pid` has used so far, from /proc (the
 * cluster runs on this machine); -1 when unreadable. Under contention from other work on the
 * machine, CPU per transfer is steadier than transfers per second. */
static double backend_cpu(int pid)
{
    char path[64], buf[1024];
    snprintf(path, sizeof path, "/proc/%d/stat", pid);
    FILE *f = fopen(path, "r");
    if (!f)
        return -1;
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = 0;
    char *p = strrchr(buf, ')'); /* the command name may hold spaces */
    unsigned long long ut = 0, st = 0;
    if (!p || sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu", &ut, &st) != 2)
        return -1;
    return (double)(ut + st) / (double)sysconf(_SC_CLK_TCK);
}

static int backend_pid(PGconn *c)
{
    PGresult *r = PQexec(c, "SELECT pg_backend_pid()");
    int pid = PQresultStatus(r) == PGRES_TUPLES_OK ? atoi(PQgetvalue(r, 0, 0)) : 0;
    PQclear(r);
    return pid;
}

enum mode { OWN, APPENDED, PIPELINE1 };
static const char *mode_name[] = {"own", "appended", "pipeline-1s"};

struct client {
    pthread_t thread;
    int no, run, batch;
    enum mode mode;
    double deadline;
    unsigned seed;
    char holds[MAXHOLDS][40]; /* acknowledged, unresolved holds of this client */
    int nholds;
    long seq, ok, refused, errors;
    double cpu; /* server CPU seconds this client's backend used */
    double *lat;
    size_t nlat, caplat;
};

static int pick(unsigned *seed)
{
    return rand_r(seed) % 10 < 9 ? (int)(rand_r(seed) % HOT) : (int)(rand_r(seed) % ACCOUNTS);
}

/* Sends BEGIN; INSERT; batch; COMMIT as one pipeline with one Sync and reads it all. */
static int run_appended(PGconn *c, struct ledger_batch *b, enum ledger_result *res, long id)
{
    struct ledger_stmt st;
    char err[512], val[32];
    int rc = 0;
    ledger_batch_stmt(b, &st);
    snprintf(val, sizeof val, "%ld", id);
    const char *v[1] = {val};
    if (PQenterPipelineMode(c) != 1)
        return -1;
    PQsendQueryParams(c, "BEGIN", 0, NULL, NULL, NULL, NULL, 0);
    PQsendQueryParams(c, "INSERT INTO bench_side (n) VALUES ($1::bigint)", 1, NULL, v, NULL, NULL,
                      0);
    PQsendQueryParams(c, st.sql, st.nparams, NULL, st.values, NULL, NULL, 0);
    PQsendQueryParams(c, "COMMIT", 0, NULL, NULL, NULL, NULL, 0);
    PQpipelineSync(c);
    for (int q = 0; q < 4; q++) {
        PGresult *r;
        while ((r = PQgetResult(c)) != NULL) {
            if (q == 2) {
                if (ledger_batch_decode(b, r, res, err, sizeof err) < 0) {
                    fprintf(stderr, "bench: %s\n", err);
                    rc = -1;
                }
            } else if (PQresultStatus(r) != PGRES_COMMAND_OK) {
                fprintf(stderr, "bench: %s", PQresultErrorMessage(r));
                rc = -1;
            }
            PQclear(r);
        }
    }
    PGresult *s = PQgetResult(c);
    if (PQresultStatus(s) != PGRES_PIPELINE_SYNC)
        rc = -1;
    PQclear(s);
    PQexitPipelineMode(c);
    return rc;
}

/* The rejected alternative: one statement per transfer, all in one pipeline and transaction. */
static int run_pipeline1(PGconn *c, struct ledger_batch **singles, int n, enum ledger_result *res)
{
    char err[512];
    int rc = 0;
    if (PQenterPipelineMode(c) != 1)
        return -1;
    PQsendQueryParams(c, "BEGIN", 0, NULL, NULL, NULL, NULL, 0);
    for (int i = 0; i < n; i++) {
        struct ledger_stmt st;
        ledger_batch_stmt(singles[i], &st);
        PQsendQueryParams(c, st.sql, st.nparams, NULL, st.values, NULL, NULL, 0);
    }
    PQsendQueryParams(c, "COMMIT", 0, NULL, NULL, NULL, NULL, 0);
    PQpipelineSync(c);
    for (int q = 0; q < n + 2; q++) {
        PGresult *r;
        while ((r = PQgetResult(c)) != NULL) {
            if (q >= 1 && q <= n) {
                if (ledger_batch_decode(singles[q - 1], r, &res[q - 1], err, sizeof err) < 0)
                    rc = -1;
            } else if (PQresultStatus(r) != PGRES_COMMAND_OK) {
                rc = -1;
            }
            PQclear(r);
        }
    }
    PGresult *s = PQgetResult(c);
    PQclear(s);
    PQexitPipelineMode(c);
    return rc;
}

static void *client_main(void *arg)
{
    struct client *cl = arg;
    PGconn *c = connect_db();
    struct ledger_batch *b = ledger_batch_new();
    struct ledger_batch **singles = NULL;
    enum ledger_result *res = xcalloc((size_t)cl->batch, sizeof *res);
    char(*ids)[40] = xcalloc((size_t)cl->batch, sizeof *ids);
    char(*dr)[64] = xcalloc((size_t)cl->batch, sizeof *dr);
    char(*cr)[64] = xcalloc((size_t)cl->batch, sizeof *cr);
    char(*pend)[40] = xcalloc((size_t)cl->batch, sizeof *pend);
    int *flags = xcalloc((size_t)cl->batch, sizeof *flags);
    char err[512], owner[32];
    int pid = backend_pid(c);
    double cpu0 = backend_cpu(pid);
    if (cl->mode == PIPELINE1) {
        singles = xcalloc((size_t)cl->batch, sizeof *singles);
        for (int i = 0; i < cl->batch; i++)
            singles[i] = ledger_batch_new();
    }
    while (now_s() < cl->deadline) {
        ledger_batch_clear(b);
        for (int i = 0; i < cl->batch; i++) {
            int k = (int)(rand_r(&cl->seed) % 100), a = pick(&cl->seed), d = pick(&cl->seed);
            struct ledger_transfer t = {.kind = "fill", .amount = 1 + rand_r(&cl->seed) % 100000};
            snprintf(ids[i], sizeof ids[i], "%x.r%dc%d-%ld", (unsigned)getpid(), cl->run, cl->no,
                     cl->seq++);
            t.id = ids[i];
            owner_of(a, owner);
            ledger_cash_id(owner, dr[i], sizeof dr[i]);
            if (d == a)
                d = (d + 1) % ACCOUNTS;
            owner_of(d, owner);
            ledger_cash_id(owner, cr[i], sizeof cr[i]);
            flags[i] = LEDGER_POSTED;
            if (k >= 70 && k < 90) {
                owner_of(a, owner);
                ledger_escrow_id(owner, cr[i], sizeof cr[i]);
                flags[i] = LEDGER_PENDING;
                t.kind = "hold";
            } else if (k >= 90 && cl->nholds > 0) {
                snprintf(pend[i], sizeof pend[i], "%s", cl->holds[--cl->nholds]);
                flags[i] = k < 95 ? LEDGER_POST : LEDGER_VOID;
                t.pending_id = pend[i];
                t.amount = 0;
                t.kind = flags[i] == LEDGER_POST ? "fill" : "release";
            }
            if (flags[i] < LEDGER_POST) {
                t.debit_account = dr[i];
                t.credit_account = cr[i];
            }
            t.flags = flags[i];
            if (cl->mode == PIPELINE1) {
                ledger_batch_clear(singles[i]);
                ledger_batch_add(singles[i], &t);
            } else {
                ledger_batch_add(b, &t);
            }
        }
        double t0 = now_s();
        int rc = cl->mode == OWN        ? ledger_submit(c, b, res, err, sizeof err)
                 : cl->mode == APPENDED ? run_appended(c, b, res, cl->seq)
                                        : run_pipeline1(c, singles, cl->batch, res);
        double dt = now_s() - t0;
        if (rc < 0) {
            cl->errors++;
            if (cl->mode == OWN)
                fprintf(stderr, "bench: %s\n", err);
            continue;
        }
        if (cl->nlat == cl->caplat) {
            cl->caplat = cl->caplat ? 2 * cl->caplat : 4096;
            cl->lat = xrealloc(cl->lat, cl->caplat * sizeof *cl->lat);
        }
        cl->lat[cl->nlat++] = dt;
        for (int i = 0; i < cl->batch; i++) {
            if (res[i] != LEDGER_OK) {
                if (getenv("LEDGER_BENCH_DEBUG"))
                    fprintf(stderr, "refused %s: %s (flags %d)\n", ids[i],
                            ledger_result_name(res[i]), flags[i]);
                cl->refused++;
                continue;
            }
            cl->ok++;
            if (flags[i] == LEDGER_PENDING && cl->nholds < MAXHOLDS)
                snprintf(cl->holds[cl->nholds++], sizeof cl->holds[0], "%s", ids[i]);
        }
    }
    double cpu1 = backend_cpu(pid);
    cl->cpu = cpu0 >= 0 && cpu1 >= 0 ? cpu1 - cpu0 : -1;
    if (singles) {
        for (int i = 0; i < cl->batch; i++)
            ledger_batch_free(singles[i]);
        free(singles);
    }
    free(res);
    free(ids);
    free(dr);
    free(cr);
    free(pend);
    free(flags);
    ledger_batch_free(b);
    PQfinish(c);
    return NULL;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

struct outcome {
    double tps, p50_ms, p99_ms;
    double cpu_us; /* server CPU per acknowledged transfer, microseconds (-1 unknown) */
    long refused, errors;
};

static int run_no;

static struct outcome run(int batch, int clients, enum mode mode, double secs)
{
    struct client *cl = xcalloc((size_t)clients, sizeof *cl);
    double start = now_s();
    run_no++;
    for (int i = 0; i < clients; i++) {
        cl[i].no = i;
        cl[i].run = run_no;
        cl[i].batch = batch;
        cl[i].mode = mode;
        cl[i].seed = (unsigned)(run_no * 1000 + i + 1);
        cl[i].deadline = start + secs;
        if (pthread_create(&cl[i].thread, NULL, client_main, &cl[i]) != 0)
            capx_fatal("bench: pthread_create");
    }
    long ok = 0;
    size_t nlat = 0;
    double cpu = 0;
    struct outcome o = {0};
    for (int i = 0; i < clients; i++) {
        pthread_join(cl[i].thread, NULL);
        ok += cl[i].ok;
        cpu = cpu < 0 || cl[i].cpu < 0 ? -1 : cpu + cl[i].cpu;
        o.refused += cl[i].refused;
        o.errors += cl[i].errors;
        nlat += cl[i].nlat;
    }
    double elapsed = now_s() - start;
    double *lat = xcalloc(nlat + 1, sizeof *lat);
    size_t k = 0;
    for (int i = 0; i < clients; i++) {
        memcpy(lat + k, cl[i].lat, cl[i].nlat * sizeof *lat);
        k += cl[i].nlat;
        free(cl[i].lat);
    }
    qsort(lat, nlat, sizeof *lat, cmp_double);
    o.tps = ok / elapsed;
    o.cpu_us = cpu >= 0 && ok > 0 ? cpu * 1e6 / ok : -1;
    o.p50_ms = nlat ? lat[nlat / 2] * 1000 : 0;
    o.p99_ms = nlat ? lat[(size_t)floor((double)(nlat - 1) * 0.99)] * 1000 : 0;
    free(lat);
    free(cl);
    return o;
}

/* ledger_check on the whole ledger: true when nothing is violated. */
static bool invariants(PGconn *c, double *secs)
{
    struct ledger_report rep;
    char err[512];
    double t0 = now_s();
    if (ledger_check(c, &rep, err, sizeof err) < 0) {
        fprintf(stderr, "bench: check failed: %s\n", err);
        return false;
    }
    *secs = now_s() - t0;
    for (size_t i = 0; i < rep.nviolations && i < 10; i++)
        fprintf(stderr, "violation: %s %s %s\n", rep.violations[i].code,
                rep.violations[i].account ? rep.violations[i].account : "-",
                rep.violations[i].detail ? rep.violations[i].detail : "");
    bool ok = rep.balanced && rep.total_debits == rep.total_credits;
    ledger_report_free(&rep);
    return ok;
}

static void setup(PGconn *c)
{
    char err[512], sql[512];
    int applied;
    if (schema_migrate(c, &applied, err, sizeof err) < 0)
        capx_fatal("bench: migrate: %s", err);
    snprintf(sql, sizeof sql,
             "INSERT INTO accounts (id, name, roles) SELECT 'acct_' || translate(lpad(to_hex(g), "
             "16, '0'), '0123456789abcdef', 'abcdefghijklmnop'), 'p' || g, '{buyer,provider}' "
             "FROM generate_series(0, %d) g ON CONFLICT DO NOTHING",
             ACCOUNTS - 1);
    must(c, sql);
    must(c, "SELECT count(ledger_open_participant(id)) FROM accounts");
    must(c, "CREATE TABLE IF NOT EXISTS bench_side (n bigint, at timestamptz DEFAULT now())");
    struct ledger_batch *b = ledger_batch_new();
    enum ledger_result *r = xcalloc(ACCOUNTS, sizeof *r);
    char id[32], cash[64], owner[32];
    for (int i = 0; i < ACCOUNTS; i++) {
        owner_of(i, owner);
        ledger_cash_id(owner, cash, sizeof cash);
        snprintf(id, sizeof id, "seed-%d", i);
        struct ledger_transfer t = {
            .id = id,
            .debit_account = LEDGER_WORLD,
            .credit_account = cash,
            .amount = 10000000000000, /* 10M USD each; all of them fit in an int64 */
            .kind = "deposit"};
        ledger_batch_add(b, &t);
    }
    if (ledger_submit(c, b, r, err, sizeof err) < 0)
        capx_fatal("bench: deposits: %s", err);
    ledger_batch_free(b);
    free(r);
    must(c, "ANALYZE");
}

int main(int argc, char **argv)
{
    static const int sizes[] = {1, 10, 100, 1000, 8000};
    struct outcome own[5], app[5];
    bool inv_ok = true;
    if (argc < 2) {
        fprintf(stderr, "usage: bench_ledger CONNINFO [SECONDS_PER_RUN]\n");
        return 2;
    }
    conninfo = argv[1];
    if (argc > 2)
        seconds = atof(argv[2]);
    PGconn *c = connect_db();
    setup(c);
    printf("%-7s %-12s %7s %12s %9s %9s %8s %8s %s\n", "batch", "mode", "clients", "transfers/s",
           "p50_ms", "p99_ms", "cpu_us", "refused", "invariants (check time)");
    const char *only = getenv("LEDGER_BENCH_ONLY"); /* one batch size, for profiling */
    for (int s = 0; s < 5; s++) {
        int clients = sizes[s] == 1 ? 8 : 1;
        if (only && atoi(only) != sizes[s]) {
            own[s] = app[s] = (struct outcome){0};
            continue;
        }
        own[s] = run(sizes[s], clients, OWN, seconds);
        app[s] = run(sizes[s], clients, APPENDED, seconds);
        double ct = 0;
        bool ok = invariants(c, &ct) && own[s].errors == 0 && app[s].errors == 0;
        inv_ok &= ok;
        for (int m = 0; m < 2; m++) {
            struct outcome *o = m ? &app[s] : &own[s];
            printf("%-7d %-12s %7d %12.0f %9.2f %9.2f %8.1f %8ld %s", sizes[s], mode_name[m],
                   clients, o->tps, o->p50_ms, o->p99_ms, o->cpu_us, o->refused,
                   m ? (ok ? "ok" : "VIOLATED") : "");
            if (m)
                printf(" (%.1f s)", ct);
            printf("\n");
        }
        fflush(stdout);
    }
    /* The alternative: one statement per transfer in one pipeline. */
    struct outcome p1 = run(1000, 1, PIPELINE1, seconds);
    double ct = 0;
    bool ok = invariants(c, &ct) && p1.errors == 0;
    inv_ok &= ok;
    printf("%-7d %-12s %7d %12.0f %9.2f %9.2f %8.1f %8ld %s (%.1f s)\n", 1000, mode_name[PIPELINE1],
           1, p1.tps, p1.p50_ms, p1.p99_ms, p1.cpu_us, p1.refused, ok ? "ok" : "VIOLATED", ct);
    PGresult *r = PQexec(c, "SELECT count(*), pg_size_pretty(pg_total_relation_size("
                            "'ledger_transfers')) FROM ledger_transfers");
    printf("ledger_transfers: %s rows, %s\n", PQgetvalue(r, 0, 0), PQgetvalue(r, 0, 1));
    PQclear(r);
    for (int s = 0; s < 5; s++)
        printf("RESULT %d %.0f %.2f %.0f %.2f\n", sizes[s], own[s].tps, own[s].p99_ms, app[s].tps,
               app[s].p99_ms);
    printf("RESULT invariants %s\n", inv_ok ? "true" : "false");
    PQfinish(c);
    return inv_ok ? 0 : 1;
}
