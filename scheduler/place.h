/*
 * place.h — the placer: puts jobs on a cluster under a policy, takes them off
 * again, survives node and GPU failures, and keeps the record of who holds what.
 *
 * How it works: a non-gang job lands on one node. Every node that can host it
 * gets a score from the policy; the highest score wins and ties go to the
 * earliest node in the cluster's order (its index): that is the fixed tie-break
 * order. Policies:
 *   first-fit  every fitting node scores the same: the earliest fitting node.
 *   best-fit   the published simulator's best-fit: least CPU and GPU left over
 *              (both normalised, weighted half and half, truncated to 0..100).
 *   fgd        Fragmentation Gradient Descent (ATC '23): the node and GPU where
 *              the fragmentation measure of frag.h grows least, scored
 *              int(100 × sigmoid(-Δfrag / 1000)) as published.
 *   capx       ours (the default): see place.c and docs/scheduler.md.
 * Inside a node a share of a GPU goes to the fullest GPU that fits (fgd: the
 * GPU that grows fragmentation least), whole GPUs are taken inside one NVLink
 * island when possible. Gangs go through gang.h whatever the policy.
 *
 * Scores depend only on the node's own state and the job's shape, so they are
 * cached per (job shape, node) and recomputed only when the node's version
 * changes; a decision is then one pass over the nodes comparing cached values.
 *
 * Pure C: no I/O.
 */
#ifndef CAPX_SCHEDULER_PLACE_H
#define CAPX_SCHEDULER_PLACE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/capx.h"
#include "scheduler/cluster.h"
#include "scheduler/frag.h"
#include "scheduler/job.h"

enum place_policy {
    PLACE_FIRST_FIT = 0,
    PLACE_BEST_FIT = 1,
    PLACE_FGD = 2,
    PLACE_CAPX = 3,
};
#define PLACE_DEFAULT_POLICY PLACE_CAPX

/* Tuning of the capx policy; place_params_default gives the published defaults. */
struct place_params {
    int quantize;        /* 1: score int(100 × sigmoid(gain / scale)), near-ties to node order */
    double scale;        /* GPU milli of gain that moves the quantised score by ~25 */
    double cpu_strand;   /* weight of GPU milli stranded for lack of CPU */
    double mem_strand;   /* weight of GPU milli stranded for lack of memory */
    double cpu_ratio;    /* scale on the workload's CPU per GPU milli */
    double mem_ratio;    /* scale on the workload's memory per GPU milli */
    double fresh_gpu;    /* cost, in GPU milli, of opening a fresh GPU for a share */
    double leftover;     /* weight of the milli a share leaves free on its GPU */
    double hole_w;       /* weight of the expected waste of the hole a share leaves */
    double hole_exp;     /* a hole is refilled with chance P(a typical share fits)^hole_exp */
    double hole_iters;   /* rounds learning the hole table from the workload (0: analytic) */
    double hole_streams; /* packings per round */
    double hole_k;       /* pseudo counts pulling a learned hole value towards the analytic one */
    double hole_horizon; /* shares per packing, in clusters' worth of the workload */
};

/* A placed job: its spec and what it holds, one entry per node it touches. */
struct place_job {
    struct job_spec spec;         /* as submitted */
    uint32_t nalloc;              /* entries in allocs */
    struct cluster_alloc *allocs; /* owned by the placer */
};

struct place; /* opaque */

/* Name of a policy ("first-fit", "best-fit", "fgd", "capx") and back. */
const char *place_policy_name(enum place_policy p);
MUSTCHECK int place_policy_parse(const char *name, enum place_policy *out);

/* A placer over cluster c (which it changes, and which must outlive it). */
struct place *place_new(struct cluster *c, enum place_policy policy);
void place_free(struct place *p);

/* The target workload for fgd and capx (FGD's "typical pods"): a sample of
 * jobs, e.g. recent history. Without one, fgd and capx fall back to best-fit
 * packing. capx learns its hole table here by packing the sample's shares, over
 * as many shares as come with the cluster's current GPU capacity (add the nodes
 * first). 0, or -1 if n is 0. */
MUSTCHECK int place_set_workload(struct place *p, const struct job_spec *jobs, size_t n);

void place_params_default(struct place_params *pp);
/* Sets one parameter by name (as in struct place_params); -1 if unknown or out of range. */
MUSTCHECK int place_params_set(struct place_params *pp, const char *name, double value);
/* Applies capx tuning to a placer (set it before place_set_workload: the
 * ratios are read there). */
void place_set_params(struct place *p, const struct place_params *pp);

/* Places job j now. 0 placed; -1 not placed with the reason in err (invalid
 * spec, duplicate id, or "does not fit"). */
MUSTCHECK int place_job(struct place *p, const struct job_spec *j, char *err, size_t errlen);

/* Whether j could be placed now (changes nothing). */
bool place_fits(struct place *p, const struct job_spec *j);

/* Whether non-gang job j fits node n as the node stands (ignoring gangs). */
bool place_node_fits(const struct cluster_node *n, const struct job_spec *j);

/* The placed job with this id, or NULL. Valid until the next change. */
const struct place_job *place_lookup(const struct place *p, uint64_t id);

/* Removes a placed job, giving back exactly what it held. 0, or -1 if unknown. */
MUSTCHECK int place_remove(struct place *p, uint64_t id);

/* Marks a node (or one GPU) failed and removes every job that touched it
 * (a gang entirely). The removed jobs' specs, ascending by id, are returned in
 * *evicted (xmalloc'd, caller frees; NULL when none) for re-placement. */
MUSTCHECK int place_node_fail(struct place *p, uint32_t node, struct job_spec **evicted, size_t *n);
MUSTCHECK int place_gpu_fail(struct place *p, uint32_t node, int gpu, struct job_spec **evicted,
                             size_t *n);
/* Draining: nothing new lands on the node; what runs stays. */
void place_node_drain(struct place *p, uint32_t node);
/* Back in service (node and all its GPUs). */
void place_node_restore(struct place *p, uint32_t node);

/* Ids of jobs holding something on `node`, ascending, up to cap; returns the count. */
size_t place_node_jobs(const struct place *p, uint32_t node, uint64_t *ids, size_t cap);
/* Number of placed jobs. */
size_t place_count(const struct place *p);
/* The cluster the placer works on. */
struct cluster *place_cluster(struct place *p);

#endif
