/*
 * gang.h — where an all-or-nothing job of N whole GPUs goes.
 *
 * How it works, in this order of preference:
 *   1. as few racks as possible: if one rack can host the gang, the rack that
 *      can host it with the least room to spare (lowest rack id on ties);
 *      otherwise racks by most room first until the gang fits;
 *   2. inside those racks, whole free nodes first (largest first, then node
 *      order), as long as a whole node is not more than what is left to place;
 *   3. the rest on the node that hosts it with the least room to spare,
 *      preferring a node where it fits inside one NVLink island; only if no
 *      node can host the rest does it spread, largest room first.
 * Inside a node, GPUs are taken from one NVLink island when the count fits one
 * (the island with the fewest free GPUs that suffices), else whole islands
 * first. Each GPU brings its share of the gang's CPU and memory (job.h).
 *
 * Pure C: no I/O.
 */
#ifndef CAPX_SCHEDULER_GANG_H
#define CAPX_SCHEDULER_GANG_H

#include <stdint.h>

#include "common/capx.h"
#include "scheduler/cluster.h"
#include "scheduler/job.h"

/* GPUs of gang job j that node n could host now (0 if the node is unusable or
 * the model is not accepted). */
int gang_node_capacity(const struct cluster_node *n, const struct job_spec *j);

/* The usable GPUs of node n that no job holds any of, as a mask. */
uint32_t gang_free_mask(const struct cluster_node *n);

/* The node of [first, last) with the most such GPUs (the lowest index on ties), with their
 * count in *nfree; -1 when none has any. */
int gang_most_free_node(const struct cluster *c, uint32_t first, uint32_t last, int *nfree);

/* Picks `k` fully free usable GPUs of node n, NVLink-island aware; returns the
 * mask, or 0 if the node has fewer than k. */
uint32_t gang_pick_gpus(const struct cluster_node *n, int k);

/* Chooses the allocation of gang j. `out` has room for c->nnodes entries.
 * 0 and *nout set, or -1 if the gang cannot be hosted now. Changes nothing. */
MUSTCHECK int gang_choose(const struct cluster *c, const struct job_spec *j,
                          struct cluster_alloc *out, uint32_t *nout);

#endif
