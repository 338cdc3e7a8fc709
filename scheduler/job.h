/*
 * job.h — what a job asks of the hardware: GPUs (whole, or a share of one GPU in
 * milli), CPU, memory, which GPU models it accepts, whether it is a gang
 * (all-or-nothing, may span nodes, whole GPUs) and its priority class.
 *
 * How it works: a job is a plain value. A non-gang job lands on one node: its
 * `gpus` GPUs each lose `gpu_milli` (gpu_milli < 1000 only when gpus is 1). A gang
 * takes `gpus` whole GPUs anywhere in the pool; its CPU and memory are spread
 * per GPU: each GPU brings ceil(cpu_milli / gpus) and ceil(mem_mib / gpus) with
 * it onto its node (job_gang_share).
 *
 * Pure C: no I/O.
 */
#ifndef CAPX_SCHEDULER_JOB_H
#define CAPX_SCHEDULER_JOB_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/capx.h"

#define JOB_MAX_GPUS  4096               /* GPUs one gang may ask for */
#define JOB_MAX_CPU   (INT64_C(1) << 40) /* sanity bound, milli-cores */
#define JOB_MAX_MEM   (INT64_C(1) << 40) /* sanity bound, MiB */
#define JOB_ANY_MODEL 0u                 /* models mask meaning "any model" */

/* Priority classes: a reservation may preempt spot work, never the reverse. */
enum job_class {
    JOB_RESERVATION = 0,
    JOB_SPOT = 1,
};

struct job_spec {
    uint64_t id;       /* unique per placer; the caller's handle for removal */
    uint64_t owner;    /* the contract or spot order the job belongs to */
    int32_t gpus;      /* GPUs wanted: 0 (CPU only) .. JOB_MAX_GPUS */
    int32_t gpu_milli; /* share of each GPU, 1..1000; below 1000 only when gpus == 1 */
    int64_t cpu_milli; /* CPU milli-cores (for a gang: the whole gang's) */
    int64_t mem_mib;   /* memory MiB (for a gang: the whole gang's) */
    uint32_t models;   /* bit i set: GPU model id i accepted; 0: any model */
    bool gang;         /* all-or-nothing over whole GPUs, may span nodes */
    uint8_t prio;      /* enum job_class */
};

/* 0 if the spec is well formed, else -1 and the reason in err. */
MUSTCHECK int job_validate(const struct job_spec *j, char *err, size_t errlen);

/* GPU-milli the job holds once placed: gpus × gpu_milli (gangs: gpus × 1000). */
static inline int64_t job_gpu_milli(const struct job_spec *j)
{
    return (int64_t)j->gpus * (j->gang ? 1000 : j->gpu_milli);
}

/* What each GPU of a gang brings with it onto its node. */
static inline void job_gang_share(const struct job_spec *j, int64_t *cpu, int64_t *mem)
{
    CAPX_ASSERT(j->gpus > 0);
    *cpu = (j->cpu_milli + j->gpus - 1) / j->gpus;
    *mem = (j->mem_mib + j->gpus - 1) / j->gpus;
}

/* Whether the job accepts GPU model id `model` (-1: a CPU-only node). */
static inline bool job_accepts_model(const struct job_spec *j, int model)
{
    if (j->gpus == 0)
        return true;
    if (model < 0)
        return false;
    return j->models == JOB_ANY_MODEL || (j->models >> model) & 1u;
}

#endif
