/*
 * frag.h — the fragmentation measure of FGD ("Beware of Fragmentation:
 * Scheduling GPU-Sharing Workloads with Fragmentation Gradient Descent",
 * Weng et al., USENIX ATC '23), over a target workload distribution.
 *
 * How it works: the workload is summarised as its most popular job shapes
 * ("classes": CPU, GPUs, milli per GPU, accepted models) with their frequency,
 * taken most popular first in steps of 10 shapes until they cover 95 % of the
 * jobs (the published configuration), then renormalised. A node's fragmentation
 * for one class is the free GPU milli that class could not use there: all of it
 * if the class cannot run on the node (wrong model, too little CPU, not enough
 * GPUs with enough free milli, or a CPU-only class), otherwise only the free
 * milli of GPUs with less free than the class needs per GPU. The node's
 * fragmentation is the frequency-weighted sum over classes. FGD places a job
 * where this measure grows least.
 *
 * Pure C: no I/O.
 */
#ifndef CAPX_SCHEDULER_FRAG_H
#define CAPX_SCHEDULER_FRAG_H

#include <stddef.h>
#include <stdint.h>

#include "common/capx.h"
#include "scheduler/cluster.h"
#include "scheduler/job.h"

#define FRAG_POPULARITY_PCT 95 /* classes kept until they cover this share of jobs */
#define FRAG_STEP           10 /* classes are added this many at a time */

/* One job shape of the target workload. */
struct frag_class {
    int64_t cpu;     /* CPU milli */
    int32_t milli;   /* milli per GPU (0: CPU only) */
    int32_t gpus;    /* GPUs */
    uint32_t models; /* accepted models mask (0: any) */
    double weight;   /* frequency in the workload, Σ weights = 1 */
};

struct frag_workload {
    struct frag_class *classes; /* most popular first */
    int n;                      /* classes kept */
};

/* Builds the distribution from sample jobs (e.g. the trace). 0, or -1 if n == 0. */
MUSTCHECK int frag_workload_build(struct frag_workload *w, const struct job_spec *jobs, size_t n);
void frag_workload_free(struct frag_workload *w);

/* Fragmentation (in GPU milli, expected over the workload) of a node in the
 * state given: model id, GPU count, free milli per usable GPU (unusable GPUs
 * count as 0) and free CPU milli. */
double frag_node(const struct frag_workload *w, int model, int ngpu, const int32_t *gpu_free,
                 int64_t cpu_free);

#endif
