/*
 * db.h — an asynchronous PostgreSQL connection pool on capxd's libevent loop.
 *
 * A job is a list of statements sent in pipeline mode followed by one Sync, so the whole
 * job is ONE implicit transaction: either every statement commits or none does, and the
 * job's callback runs only after the server's answer to the Sync (i.e. after COMMIT is
 * durable). Serialization failures and deadlocks (SQLSTATE 40001, 40P01) are retried up to
 * three times. Connections are opened with PQconnectStart/PQconnectPoll, never blocking
 * the loop, and reopened with exponential backoff when the database goes away; meanwhile
 * db_pool_ready() is false and submissions fail fast (the caller answers 503).
 */
#ifndef CAPX_SERVER_DB_H
#define CAPX_SERVER_DB_H

#include <stddef.h>

#include <event2/event.h>
#include <libpq-fe.h>

#include "common/capx.h"

struct db_pool;
struct db_job;

/* Called once per job, after COMMIT (ok) or failure. Must not free the job. */
typedef void (*db_job_cb)(struct db_job *job, void *arg);

struct db_job {
    /* Results, valid inside the callback. */
    int ok;             /* 1: every statement ran and the transaction committed */
    char err[256];      /* first error message when !ok */
    char sqlstate[6];   /* its SQLSTATE ("" if none, "08006" for a lost connection) */
    PGresult **results; /* one per statement that returned a result */
    int nresults;
    /* Private. */
    struct db_stmt *stmts;
    int nstmts, capstmts;
    db_job_cb cb;
    void *arg;
    int retries;
    struct db_job *next;
};

struct db_pool_stats {
    int size;      /* configured connections */
    int up;        /* connected */
    int busy;      /* running a job */
    int queued;    /* jobs waiting */
    long failures; /* connection failures so far */
};

struct db_pool *db_pool_new(struct event_base *base, const char *conninfo, int size, int queue_max);
void db_pool_free(struct db_pool *p);
int db_pool_ready(const struct db_pool *p);
void db_pool_stats(const struct db_pool *p, struct db_pool_stats *out);

struct db_job *db_job_new(db_job_cb cb, void *arg);
/* Appends a statement; sql and values are copied. values[i] NULL is SQL NULL. */
void db_job_add(struct db_job *j, const char *sql, int nparams, const char *const *values);
/* Queues the job. 0 ok (callback will run), -1 when the pool is down or the queue full
   (the job is untouched and still the caller's). */
MUSTCHECK int db_submit(struct db_pool *p, struct db_job *j);
/* Frees a job (after its callback, or one never submitted). */
void db_job_free(struct db_job *j);

/* Blocking helpers for loading at start-up and rebuild (not for serving): a query whose rows
   are wanted (NULL with the first line of the error in err otherwise), and an int64 column
   (0 when NULL). */
PGresult *db_rows(PGconn *c, const char *sql, char *err, size_t errlen);
int64_t db_i64(const PGresult *r, int row, int col);

#endif
