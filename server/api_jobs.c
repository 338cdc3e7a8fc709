/*
 * api_jobs.c — buyers' jobs inside their contracts, and the operators' failure drills.
 *
 * Checks in the contract's order: fields (400), the path object (404: unknown, or not the
 * caller's: only a contract's buyer sees its jobs), the market (422: more GPUs than the
 * contract, a single-node job larger than a node), state (409: the contract is not active,
 * everything is busy and "queue": false, the job has ended). The scheduler (sched.c) does
 * the work and writes it in the turn; answers go out after COMMIT like every market answer.
 */
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "server/api.h"
#include "server/sched.h"

static struct market *mk(struct app_req *r)
{
    return r->app->market;
}

/* The caller's contract by path id, or NULL after answering 404. */
static struct contract *buyer_contract(struct app_req *r)
{
    struct obj *o = market_get(mk(r), r->params[0]);
    if (!o || o->type != OBJ_CONTRACT || ((struct contract *)o)->buyer != r->acct) {
        app_error(r, 404, "not_found", NULL, "no such contract");
        return NULL;
    }
    return (struct contract *)o;
}

static struct sjob *buyer_job(struct app_req *r)
{
    struct sjob *j = sched_job(mk(r), r->params[0]);
    if (!j || sched_job_contract(j)->buyer != r->acct) {
        app_error(r, 404, "not_found", NULL, "no such job");
        return NULL;
    }
    return j;
}

struct job_req {
    int64_t gpus, hours;
    int gang, queue;
};

static const struct jfield job_fields[] = {
    {"gpus", JF_INT, 1, 1, 100000, offsetof(struct job_req, gpus), 0},
    {"gang", JF_BOOL, 0, 0, 0, offsetof(struct job_req, gang), 0},
    {"hours", JF_INT, 0, 1, 8784, offsetof(struct job_req, hours), 0},
    {"queue", JF_BOOL, 0, 0, 0, offsetof(struct job_req, queue), 0},
};

void h_jobs_create(struct app_req *r)
{
    struct job_req q = {.gang = 1, .queue = 1};
    uint64_t present;
    if (api_decode(r, job_fields, ARRAY_LEN(job_fields), &q, &present) < 0)
        return;
    struct contract *c = buyer_contract(r);
    if (!c)
        return;
    if (q.gpus > c->gpus) {
        app_error(r, 422, "unprocessable", "gpus", "the contract has %lld GPUs",
                  (long long)c->gpus);
        return;
    }
    if (!q.gang && q.gpus > c->pool->gpus_per_node) {
        app_error(r, 422, "unprocessable", "gpus",
                  "a job that is not a gang runs on one node of %lld GPUs",
                  (long long)c->pool->gpus_per_node);
        return;
    }
    if (strcmp(c->status, "active") != 0) {
        app_error(r, 409, "conflict", NULL, "the contract is %s; jobs run only while it is active",
                  c->status);
        return;
    }
    struct sjob *j = NULL;
    if (sched_job_submit(mk(r), c, q.gpus, q.gang, q.hours, q.queue, &j) < 0) {
        app_error(r, 409, "conflict", NULL,
                  "the contract's GPUs are busy and the job asked not to queue");
        return;
    }
    market_reply(mk(r), r, 201, sched_job_json(j));
}

void h_jobs_list(struct app_req *r)
{
    int64_t limit;
    uint64_t cursor;
    if (api_page(r, &limit, &cursor) < 0)
        return;
    struct contract *c = buyer_contract(r);
    if (!c)
        return;
    json_t *items = json_array();
    uint64_t next = 0, cur = cursor;
    struct sjob *j;
    while ((j = sched_job_next(mk(r), c, &cur)) != NULL) {
        if ((int64_t)json_array_size(items) == limit) {
            next = cursor;
            break;
        }
        json_array_append_new(items, sched_job_json(j));
        cursor = cur;
    }
    market_reply(mk(r), r, 200, api_list(items, next));
}

void h_jobs_get(struct app_req *r)
{
    struct sjob *j = buyer_job(r);
    if (j)
        market_reply(mk(r), r, 200, sched_job_json(j));
}

void h_jobs_stop(struct app_req *r)
{
    struct sjob *j = buyer_job(r);
    if (!j)
        return;
    if (sched_job_stop(mk(r), j) < 0) {
        app_error(r, 409, "conflict", NULL, "the job has already ended");
        return;
    }
    market_reply(mk(r), r, 200, sched_job_json(j));
}

/* ---- failure drills (admin) ---- */

/* Pool, node and GPU from the path; -1 after answering 404. */
static int hw_target(struct app_req *r, int with_gpu, struct pool **p, int64_t *node, int *gpu)
{
    struct obj *o = market_get(mk(r), r->params[0]);
    char *end;
    long long n = strtoll(r->params[1], &end, 10);
    int bad = !o || o->type != OBJ_POOL || *end || end == r->params[1] || n < 0;
    long long g = -1;
    if (!bad && with_gpu) {
        g = strtoll(r->params[2], &end, 10);
        bad = *end || end == r->params[2] || g < 0;
    }
    if (!bad) {
        *p = (struct pool *)o;
        bad = n >= (*p)->nodes || g >= (*p)->gpus_per_node;
    }
    if (bad) {
        app_error(r, 404, "not_found", NULL, "no such pool, node or GPU");
        return -1;
    }
    *node = n;
    *gpu = (int)g;
    return 0;
}

static void health(struct app_req *r, int with_gpu, int fail)
{
    struct pool *p;
    int64_t node;
    int gpu;
    if (hw_target(r, with_gpu, &p, &node, &gpu) < 0)
        return;
    if (sched_set_health(mk(r), p, node, gpu, fail) < 0) {
        app_error(r, 409, "conflict", NULL, fail ? "it has failed already" : "it has not failed");
        return;
    }
    json_t *j = pool_json(p);
    market_reply(mk(r), r, 200, j);
}

void h_node_fail(struct app_req *r)
{
    health(r, 0, 1);
}

void h_node_repair(struct app_req *r)
{
    health(r, 0, 0);
}

void h_gpu_fail(struct app_req *r)
{
    health(r, 1, 1);
}

void h_gpu_repair(struct app_req *r)
{
    health(r, 1, 0);
}
