/*
 * db.c — see db.h. The loop in on_readable follows libpq's pipeline rules: consume input,
 * then take results while the connection is not busy; NULL separates the results of two
 * statements; PGRES_PIPELINE_ABORTED marks statements skipped after an error; the job ends
 * at PGRES_PIPELINE_SYNC. Every connection keeps a read event while idle so a server that
 * goes away is noticed at once, not at the next job.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "server/db.h"
#include "server/log.h"

struct db_stmt {
    char *sql;
    int nparams;
    char **values;
};

enum conn_state { C_DOWN, C_CONNECTING, C_IDLE, C_BUSY };

struct db_conn {
    struct db_pool *pool;
    int idx;
    PGconn *pg;
    enum conn_state state;
    struct event *ev;    /* socket readiness */
    int ev_fd, ev_what;  /* what ev is registered for */
    struct event *timer; /* backoff or connect deadline */
    int backoff_ms;
    struct db_job *job;
    int failed; /* the current job saw an error */
};

struct db_pool {
    struct event_base *base;
    char *conninfo;
    int size, queue_max;
    struct db_conn *conns;
    struct db_job *qhead, *qtail;
    int queued;
    long failures;
};

static void conn_start(struct db_conn *c);
static void conn_dispatch(struct db_pool *p);

/* ---- jobs ---- */

struct db_job *db_job_new(db_job_cb cb, void *arg)
{
    struct db_job *j = xcalloc(1, sizeof *j);
    j->cb = cb;
    j->arg = arg;
    return j;
}

void db_job_add(struct db_job *j, const char *sql, int nparams, const char *const *values)
{
    if (j->nstmts == j->capstmts) {
        j->capstmts = j->capstmts ? j->capstmts * 2 : 8;
        j->stmts = xrealloc(j->stmts, sizeof *j->stmts * (size_t)j->capstmts);
    }
    struct db_stmt *s = &j->stmts[j->nstmts++];
    s->sql = xstrdup(sql);
    s->nparams = nparams;
    s->values = nparams ? xcalloc((size_t)nparams, sizeof(char *)) : NULL;
    for (int i = 0; i < nparams; i++)
        s->values[i] = values[i] ? xstrdup(values[i]) : NULL;
}

static void clear_results(struct db_job *j)
{
    for (int i = 0; i < j->nresults; i++)
        PQclear(j->results[i]);
    free(j->results);
    j->results = NULL;
    j->nresults = 0;
    j->ok = 0;
    j->err[0] = '\0';
    j->sqlstate[0] = '\0';
}

void db_job_free(struct db_job *j)
{
    if (!j)
        return;
    clear_results(j);
    for (int i = 0; i < j->nstmts; i++) {
        for (int k = 0; k < j->stmts[i].nparams; k++)
            free(j->stmts[i].values[k]);
        free(j->stmts[i].values);
        free(j->stmts[i].sql);
    }
    free(j->stmts);
    free(j);
}

static void finish_job(struct db_job *j)
{
    j->cb(j, j->arg);
}

/* ---- pool ---- */

int db_pool_ready(const struct db_pool *p)
{
    for (int i = 0; i < p->size; i++)
        if (p->conns[i].state == C_IDLE || p->conns[i].state == C_BUSY)
            return 1;
    return 0;
}

void db_pool_stats(const struct db_pool *p, struct db_pool_stats *out)
{
    memset(out, 0, sizeof *out);
    out->size = p->size;
    out->queued = p->queued;
    out->failures = p->failures;
    for (int i = 0; i < p->size; i++) {
        if (p->conns[i].state == C_IDLE || p->conns[i].state == C_BUSY)
            out->up++;
        if (p->conns[i].state == C_BUSY)
            out->busy++;
    }
}

int db_submit(struct db_pool *p, struct db_job *j)
{
    if (!db_pool_ready(p) || p->queued >= p->queue_max)
        return -1;
    j->next = NULL;
    if (p->qtail)
        p->qtail->next = j;
    else
        p->qhead = j;
    p->qtail = j;
    p->queued++;
    conn_dispatch(p);
    return 0;
}

static void requeue_front(struct db_pool *p, struct db_job *j)
{
    j->next = p->qhead;
    p->qhead = j;
    if (!p->qtail)
        p->qtail = j;
    p->queued++;
}

/* Fails every queued job (the pool lost its last connection). */
static void fail_queue(struct db_pool *p, const char *why)
{
    while (p->qhead) {
        struct db_job *j = p->qhead;
        p->qhead = j->next;
        if (!p->qhead)
            p->qtail = NULL;
        p->queued--;
        clear_results(j);
        snprintf(j->err, sizeof j->err, "%s", why);
        snprintf(j->sqlstate, sizeof j->sqlstate, "08006");
        finish_job(j);
    }
}

/* ---- connections ---- */

static void set_event(struct db_conn *c, int what);

static void conn_down(struct db_conn *c, const char *reason)
{
    struct db_pool *p = c->pool;
    char why[256]; /* reason may point into the PGconn freed below */
    snprintf(why, sizeof why, "%s", reason);
    why[strcspn(why, "\n")] = '\0';
    if (c->state != C_DOWN)
        log_warn("msg=\"database connection lost\" conn=db%d reason=\"%s\"", c->idx, why);
    p->failures++;
    if (c->ev) {
        event_free(c->ev);
        c->ev = NULL;
    }
    c->ev_fd = -1;
    c->ev_what = 0;
    if (c->pg) {
        PQfinish(c->pg);
        c->pg = NULL;
    }
    c->state = C_DOWN;
    struct db_job *j = c->job;
    c->job = NULL;
    if (j) {
        clear_results(j);
        snprintf(j->err, sizeof j->err, "database connection lost: %.200s", why);
        snprintf(j->sqlstate, sizeof j->sqlstate, "08006");
        finish_job(j);
    }
    if (!db_pool_ready(p))
        fail_queue(p, "database unavailable");
    c->backoff_ms = c->backoff_ms ? c->backoff_ms * 2 : 100;
    if (c->backoff_ms > 5000)
        c->backoff_ms = 5000;
    struct timeval tv = {c->backoff_ms / 1000, (c->backoff_ms % 1000) * 1000};
    evtimer_add(c->timer, &tv);
}

static void notice_cb(void *arg, const char *msg)
{
    struct db_conn *c = arg;
    log_debug("msg=\"database notice\" conn=db%d notice=\"%.*s\"", c->idx, (int)strcspn(msg, "\n"),
              msg);
}

static void send_job(struct db_conn *c)
{
    struct db_job *j = c->job;
    c->failed = 0;
    for (int i = 0; i < j->nstmts; i++) {
        struct db_stmt *s = &j->stmts[i];
        if (!PQsendQueryParams(c->pg, s->sql, s->nparams, NULL, (const char *const *)s->values,
                               NULL, NULL, 0)) {
            conn_down(c, PQerrorMessage(c->pg));
            return;
        }
    }
    if (!PQpipelineSync(c->pg)) {
        conn_down(c, PQerrorMessage(c->pg));
        return;
    }
    int f = PQflush(c->pg);
    if (f < 0) {
        conn_down(c, PQerrorMessage(c->pg));
        return;
    }
    set_event(c, EV_READ | (f == 1 ? EV_WRITE : 0));
}

static void conn_dispatch(struct db_pool *p)
{
    for (int i = 0; i < p->size && p->qhead; i++) {
        struct db_conn *c = &p->conns[i];
        if (c->state != C_IDLE)
            continue;
        struct db_job *j = p->qhead;
        p->qhead = j->next;
        if (!p->qhead)
            p->qtail = NULL;
        p->queued--;
        j->next = NULL;
        c->job = j;
        c->state = C_BUSY;
        send_job(c);
    }
}

static void job_done(struct db_conn *c)
{
    struct db_job *j = c->job;
    c->job = NULL;
    c->state = C_IDLE;
    set_event(c, EV_READ);
    if (!j->ok && (!strcmp(j->sqlstate, "40001") || !strcmp(j->sqlstate, "40P01")) &&
        j->retries < 3) {
        j->retries++;
        log_info("msg=\"retrying transaction\" sqlstate=%s attempt=%d", j->sqlstate, j->retries);
        clear_results(j);
        requeue_front(c->pool, j);
    } else {
        finish_job(j);
    }
    conn_dispatch(c->pool);
}

static void on_readable(struct db_conn *c)
{
    if (!PQconsumeInput(c->pg)) {
        conn_down(c, PQerrorMessage(c->pg));
        return;
    }
    if (c->state == C_IDLE) {
        /* Nothing expected: drain stray results (e.g. the server's termination notice). */
        PGresult *r;
        while (!PQisBusy(c->pg) && (r = PQgetResult(c->pg)) != NULL)
            PQclear(r);
        if (PQstatus(c->pg) == CONNECTION_BAD)
            conn_down(c, "server closed the connection");
        return;
    }
    struct db_job *j = c->job;
    while (c->job && !PQisBusy(c->pg)) {
        PGresult *r = PQgetResult(c->pg);
        if (!r) {
            if (PQstatus(c->pg) == CONNECTION_BAD) {
                conn_down(c, PQerrorMessage(c->pg));
                return;
            }
            continue; /* end of one statement's results */
        }
        switch (PQresultStatus(r)) {
        case PGRES_PIPELINE_SYNC:
            PQclear(r);
            j->ok = !c->failed;
            job_done(c);
            return;
        case PGRES_PIPELINE_ABORTED:
            c->failed = 1;
            PQclear(r);
            break;
        case PGRES_FATAL_ERROR:
        case PGRES_NONFATAL_ERROR:
        case PGRES_BAD_RESPONSE:
            if (!c->failed) {
                const char *st = PQresultErrorField(r, PG_DIAG_SQLSTATE);
                snprintf(j->err, sizeof j->err, "%s", PQresultErrorMessage(r));
                j->err[strcspn(j->err, "\n")] = '\0';
                snprintf(j->sqlstate, sizeof j->sqlstate, "%s", st ? st : "");
            }
            c->failed = 1;
            PQclear(r);
            break;
        default:
            j->results = xrealloc(j->results, sizeof(PGresult *) * (size_t)(j->nresults + 1));
            j->results[j->nresults++] = r;
            break;
        }
    }
    if (PQstatus(c->pg) == CONNECTION_BAD)
        conn_down(c, PQerrorMessage(c->pg));
}

static void on_socket(evutil_socket_t fd, short what, void *arg);

static void set_event(struct db_conn *c, int what)
{
    int fd = PQsocket(c->pg);
    if (c->ev && c->ev_fd == fd && c->ev_what == what)
        return;
    if (c->ev)
        event_free(c->ev);
    c->ev = event_new(c->pool->base, fd, (short)(what | EV_PERSIST), on_socket, c);
    c->ev_fd = fd;
    c->ev_what = what;
    event_add(c->ev, NULL);
}

static void connected(struct db_conn *c)
{
    evtimer_del(c->timer);
    if (PQsetnonblocking(c->pg, 1) != 0 || !PQenterPipelineMode(c->pg)) {
        conn_down(c, "cannot enter non-blocking pipeline mode");
        return;
    }
    PQsetNoticeProcessor(c->pg, notice_cb, c);
    c->state = C_IDLE;
    c->backoff_ms = 0;
    log_info("msg=\"database connected\" conn=db%d", c->idx);
    set_event(c, EV_READ);
    conn_dispatch(c->pool);
}

static void poll_connect(struct db_conn *c)
{
    switch (PQconnectPoll(c->pg)) {
    case PGRES_POLLING_OK:
        connected(c);
        break;
    case PGRES_POLLING_READING:
        set_event(c, EV_READ);
        break;
    case PGRES_POLLING_WRITING:
        set_event(c, EV_WRITE);
        break;
    default:
        conn_down(c, PQerrorMessage(c->pg));
        break;
    }
}

static void on_socket(evutil_socket_t fd, short what, void *arg)
{
    struct db_conn *c = arg;
    UNUSED(fd);
    if (c->state == C_CONNECTING) {
        poll_connect(c);
        return;
    }
    if (what & EV_WRITE) {
        int f = PQflush(c->pg);
        if (f < 0) {
            conn_down(c, PQerrorMessage(c->pg));
            return;
        }
        if (f == 0)
            set_event(c, EV_READ);
    }
    if (what & EV_READ)
        on_readable(c);
}

static void on_timer(evutil_socket_t fd, short what, void *arg)
{
    struct db_conn *c = arg;
    UNUSED(fd);
    UNUSED(what);
    if (c->state == C_CONNECTING) {
        conn_down(c, "connect timed out");
        return;
    }
    if (c->state == C_DOWN)
        conn_start(c);
}

static void conn_start(struct db_conn *c)
{
    c->pg = PQconnectStart(c->pool->conninfo);
    if (!c->pg || PQstatus(c->pg) == CONNECTION_BAD) {
        conn_down(c, c->pg ? PQerrorMessage(c->pg) : "out of memory");
        return;
    }
    c->state = C_CONNECTING;
    struct timeval tv = {5, 0};
    evtimer_add(c->timer, &tv);
    set_event(c, EV_WRITE);
}

struct db_pool *db_pool_new(struct event_base *base, const char *conninfo, int size, int queue_max)
{
    struct db_pool *p = xcalloc(1, sizeof *p);
    p->base = base;
    p->conninfo = xstrdup(conninfo);
    p->size = size;
    p->queue_max = queue_max;
    p->conns = xcalloc((size_t)size, sizeof *p->conns);
    for (int i = 0; i < size; i++) {
        struct db_conn *c = &p->conns[i];
        c->pool = p;
        c->idx = i;
        c->ev_fd = -1;
        c->state = C_DOWN;
        c->timer = evtimer_new(base, on_timer, c);
        conn_start(c);
    }
    return p;
}

void db_pool_free(struct db_pool *p)
{
    if (!p)
        return;
    for (int i = 0; i < p->size; i++) {
        struct db_conn *c = &p->conns[i];
        if (c->job) {
            struct db_job *j = c->job;
            c->job = NULL;
            clear_results(j);
            snprintf(j->err, sizeof j->err, "shutting down");
            finish_job(j);
        }
        if (c->ev)
            event_free(c->ev);
        evtimer_del(c->timer);
        event_free(c->timer);
        if (c->pg)
            PQfinish(c->pg);
    }
    fail_queue(p, "shutting down");
    free(p->conns);
    free(p->conninfo);
    free(p);
}

PGresult *db_rows(PGconn *c, const char *sql, char *err, size_t errlen)
{
    PGresult *r = PQexec(c, sql);
    if (PQresultStatus(r) != PGRES_TUPLES_OK) {
        snprintf(err, errlen, "%s", PQresultErrorMessage(r));
        err[strcspn(err, "\n")] = '\0';
        PQclear(r);
        return NULL;
    }
    return r;
}

int64_t db_i64(const PGresult *r, int row, int col)
{
    return PQgetisnull(r, row, col) ? 0 : strtoll(PQgetvalue(r, row, col), NULL, 10);
}
