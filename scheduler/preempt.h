/*
 * preempt.h — which spot jobs to preempt so that a higher-priority job fits,
 * choosing the fewest GPUs-worth of preemption.
 *
 * How it works: GPUs-worth of a victim is the GPU milli it holds (gpus × milli).
 * A non-gang job lands on one node, so the best plan is the cheapest over nodes
 * of the cheapest set of that node's spot jobs whose removal lets the job fit
 * there: found exactly by a depth-first search over the node's spot jobs
 * (cheapest first, pruned by the best cost so far). For a gang, each node's
 * cheapest cost to make room for k of its GPUs is found the same way, and a
 * knapsack over nodes picks the cheapest total reaching the gang's size.
 * Ties: lower cost, then fewer victims, then the earliest node, then victims
 * in ascending id order. A node with more than PREEMPT_MAX_EXACT spot jobs is
 * searched over its PREEMPT_MAX_EXACT cheapest ones only.
 *
 * The plan only names victims: the caller removes them (place_remove) and then
 * places the job. Pure C: no I/O.
 */
#ifndef CAPX_SCHEDULER_PREEMPT_H
#define CAPX_SCHEDULER_PREEMPT_H

#include <stddef.h>
#include <stdint.h>

#include "common/capx.h"
#include "scheduler/place.h"

#define PREEMPT_MAX_EXACT 20 /* spot jobs per node searched exactly */

/* A plan for job j (which must be a reservation): 0 with the victims' ids in
 * *victims (xmalloc'd, ascending, NULL when none are needed), their count and
 * total GPU milli; -1 if even preempting every spot job would not make room. */
MUSTCHECK int preempt_plan(struct place *p, const struct job_spec *j, uint64_t **victims,
                           size_t *nvictims, int64_t *cost_milli);

#endif
