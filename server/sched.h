/*
 * sched.h — the scheduler inside the market: where contracts, buyers' jobs and running spot
 * bids hold GPUs on their pool's (simulated) hardware, node and GPU failures, and the GPU-hours
 * contracts lose to them.
 *
 * How it works: every pool has a cluster (scheduler/cluster.h) of `nodes` nodes of
 * `gpus_per_node` GPUs in racks of `nodes_per_rack`. A contract that becomes active takes
 * whole GPUs of it through gang_choose (fewest racks, whole nodes first); GPUs a failure takes
 * away are re-placed on healthy unsold GPUs (same rack first), or counted as lost for every
 * hour they stay missing. A buyer's job is placed on its contract's own GPUs (a cluster built
 * from the contract's GPUs for the decision: gangs with gang_choose, single-node jobs on the
 * fullest node that holds them) or queued; queued jobs start, first come first served, when
 * room frees. A running spot bid is placed on the pool's unsold GPUs (at most its spot offer's
 * size) and then on idle GPUs of lending contracts; when a contract starts, a holder's job
 * needs lent GPUs or a failure takes GPUs, the engine is told the new spot supply
 * (engine_spot_reclaim) and preempts by its own priority; spot placements are then re-made.
 *
 * Every change is written in the market's turn (market_sql) as it happens, so it is durable
 * before any answer leaves; sched_load rebuilds everything from the database at the end of
 * market_load. All entry points take the market clock's time of the work being done.
 */
#ifndef CAPX_SERVER_SCHED_H
#define CAPX_SERVER_SCHED_H

#include <stdint.h>

#include <jansson.h>
#include <libpq-fe.h>

#include "server/market.h"

struct sched;

/* Settings of the seeded failure process (capxd settings sched_mtbf_h, sched_repair_h,
   sched_seed; mtbf 0: off). Set once at start, before market_load. */
void sched_configure(int64_t mtbf_h, int64_t repair_h, int64_t seed);

/* The scheduler state of a market (one per process: views reach it without the market). */
struct sched *sched_new(struct market *m);
void sched_free(struct sched *s);
/* Rebuilds from the database (called at the end of load_market). 0 ok, -1 with err. */
MUSTCHECK int sched_load(struct market *m, PGconn *c, char *err, size_t errlen);

/* Hooks the market calls. */
void sched_pool_added(struct market *m, struct pool *p);
/* A contract turned active at t (placed at the end of the hour's work, sched_hour). */
void sched_contract_started(struct market *m, struct contract *c, int64_t t);
/* A contract completed (or was cancelled) at t: its GPUs and jobs end. */
void sched_contract_ended(struct market *m, struct contract *c, int64_t t);
/* A spot bid won a round (placed by sched_round_done). */
void sched_spot_won(struct market *m, struct order *o);
/* A spot bid stopped running (preempted, cancelled, stopped): its GPUs are free. */
void sched_spot_stopped(struct market *m, struct order *o);
/* Start of minute t: jobs whose hours ran out complete, queued jobs start where room is. */
void sched_minute(struct market *m, int64_t t);
/* When the next running job's hours run out (INT64_MAX: none): a clock advance that skips
   idle minutes must still stop at that minute. */
int64_t sched_next_due(struct market *m);
/* After the spot round of t: running bids get their GPUs. */
void sched_round_done(struct market *m, int64_t t);
/* End of the hour work at t: repairs and failures due, contracts starting placed, spot
   supply reclaimed, lost GPUs recorded for the hour starting at t. */
void sched_hour(struct market *m, int64_t t);
/* Spot supply of a pool for the round at t: unsold healthy GPUs free for spot (GPUs of
   contracts starting within the preemption notice excluded) and GPUs lent by idle holders. */
void sched_spot_supply(struct market *m, struct pool *p, int64_t t, int32_t *idle, int32_t *lent);

/* Where a running spot bid's GPUs are, for paying lenders: up to cap (host, GPUs) pairs, host
   NULL for the pool's unsold GPUs, a contract for GPUs its holder lends. Returns the count. */
int sched_spot_hosts(struct market *m, const struct order *o, struct contract **hosts,
                     int64_t *gpus, int cap);

/* Views: add the scheduler's fields to a pool's or a contract's JSON. */
void sched_pool_json(const struct pool *p, json_t *j);
void sched_contract_json(const struct contract *c, json_t *j);

/* Route handlers (api_jobs.c). */
void h_jobs_create(struct app_req *r);
void h_jobs_list(struct app_req *r);
void h_jobs_get(struct app_req *r);
void h_jobs_stop(struct app_req *r);
void h_node_fail(struct app_req *r);
void h_node_repair(struct app_req *r);
void h_gpu_fail(struct app_req *r);
void h_gpu_repair(struct app_req *r);

/* ---- for api_jobs.c ---- */

struct sjob;
/* The job with this id, or NULL. */
struct sjob *sched_job(struct market *m, const char *id);
struct contract *sched_job_contract(const struct sjob *j);
json_t *sched_job_json(const struct sjob *j);
/* Jobs of a contract in creation order after `cursor` (a job seq; 0: from the start). */
struct sjob *sched_job_next(struct market *m, const struct contract *c, uint64_t *cursor);
/* Submits a job to an active contract at now. 0 running or queued; -1: it does not fit now and
   queue is 0 (nothing changed). */
int sched_job_submit(struct market *m, struct contract *c, int64_t gpus, int gang, int64_t hours,
                     int queue, struct sjob **out);
/* Stops a running or queued job. -1 if it has already ended. */
int sched_job_stop(struct market *m, struct sjob *j);
/* Fails (fail=1) or repairs a node (gpu -1) or one GPU. -1 if it is already in that state. */
int sched_set_health(struct market *m, struct pool *p, int64_t node, int gpu, int fail);

#endif
