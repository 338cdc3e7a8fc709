/*
 * ref.h — the brute-force reference the scheduler tests compare against:
 * small random clusters and jobs, an independent "does it fit anywhere" check,
 * and a snapshot of a cluster's capacity counters.
 *
 * Written separately from scheduler/ on purpose: it shares no fitting code
 * with the placer, so a bug in one does not hide in the other.
 */
#ifndef CAPX_TESTS_SCHEDULER_REF_H
#define CAPX_TESTS_SCHEDULER_REF_H

#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#include "scheduler/cluster.h"
#include "scheduler/job.h"

struct ref_rng {
    uint64_t s;
};

static inline uint64_t ref_next(struct ref_rng *r)
{
    uint64_t z = (r->s += UINT64_C(0x9e3779b97f4a7c15));
    z = (z ^ (z >> 30)) * UINT64_C(0xbf58476d1ce4e5b9);
    z = (z ^ (z >> 27)) * UINT64_C(0x94d049bb133111eb);
    return z ^ (z >> 31);
}

/* Uniform in [lo, hi]. */
static inline int64_t ref_range(struct ref_rng *r, int64_t lo, int64_t hi)
{
    return lo + (int64_t)(ref_next(r) % (uint64_t)(hi - lo + 1));
}

/* A cluster of n nodes over 2 models and up to 3 racks. */
static inline void ref_cluster(struct ref_rng *r, struct cluster *c, int n)
{
    cluster_init(c);
    int m0 = cluster_model(c, "A100", 4), m1 = cluster_model(c, "T4", 2);
    static const int sizes[] = {1, 2, 4, 8, 8, 16};
    for (int i = 0; i < n; i++) {
        int ngpu = sizes[ref_range(r, 0, 5)];
        int island = ngpu >= 4 && ref_range(r, 0, 1) ? ngpu / 2 : 0;
        struct cluster_node_spec s = {ref_range(r, 0, 1) ? m0 : m1,
                                      ngpu,
                                      island,
                                      (int)ref_range(r, 0, 2),
                                      ref_range(r, 4, 64) * 1000,
                                      ref_range(r, 16, 512) * 1024};
        int rc = cluster_add_node(c, &s, NULL, 0);
        (void)rc;
    }
}

/* A random job: CPU-only, a share, whole GPUs on one node, or a gang. */
static inline struct job_spec ref_job(struct ref_rng *r, uint64_t id)
{
    struct job_spec j;
    memset(&j, 0, sizeof(j));
    j.id = id;
    j.owner = id % 7;
    j.prio = ref_range(r, 0, 1) ? JOB_SPOT : JOB_RESERVATION;
    j.cpu_milli = ref_range(r, 0, 16) * 1000;
    j.mem_mib = ref_range(r, 0, 64) * 1024;
    j.models = (uint32_t)ref_range(r, 0, 3); /* 0 any, 1 A100, 2 T4, 3 both */
    switch (ref_range(r, 0, 5)) {
    case 0:
        j.gpus = 0;
        break;
    case 1:
    case 2:
        j.gpus = 1;
        j.gpu_milli = (int32_t)ref_range(r, 1, 10) * 100;
        break;
    case 3:
    case 4:
        j.gpus = (int32_t)ref_range(r, 1, 8);
        j.gpu_milli = 1000;
        break;
    default:
        j.gang = true;
        j.gpus = (int32_t)ref_range(r, 1, 24);
        j.gpu_milli = 1000;
        j.cpu_milli *= 2;
        break;
    }
    return j;
}

static inline bool ref_model_ok(const struct job_spec *j, int model)
{
    if (j->gpus == 0)
        return true;
    return j->models == 0 || (model >= 0 && (j->models >> model) & 1u);
}

/* GPUs of gang j that node n can host. */
static inline int ref_gang_room(const struct cluster_node *n, const struct job_spec *j)
{
    if (n->health != CLUSTER_UP || !ref_model_ok(j, n->model))
        return 0;
    int64_t cpu = (j->cpu_milli + j->gpus - 1) / j->gpus,
            mem = (j->mem_mib + j->gpus - 1) / j->gpus;
    int k = 0;
    for (int g = 0; g < n->ngpu; g++)
        if (n->gpu_health[g] == CLUSTER_UP && n->gpu_free[g] == 1000)
            k++;
    while (k > 0 && (cpu * k > n->cpu_free || mem * k > n->mem_free))
        k--;
    return k;
}

static inline bool ref_fits_node(const struct cluster_node *n, const struct job_spec *j)
{
    if (n->health != CLUSTER_UP || !ref_model_ok(j, n->model))
        return false;
    if (n->cpu_free < j->cpu_milli || n->mem_free < j->mem_mib)
        return false;
    int k = 0;
    for (int g = 0; g < n->ngpu; g++)
        if (n->gpu_health[g] == CLUSTER_UP && n->gpu_free[g] >= j->gpu_milli)
            k++;
    return k >= j->gpus;
}

/* Whether j fits anywhere in c as it stands. */
static inline bool ref_fits(const struct cluster *c, const struct job_spec *j)
{
    if (j->gang) {
        int64_t room = 0;
        for (uint32_t i = 0; i < c->nnodes; i++)
            room += ref_gang_room(&c->nodes[i], j);
        return room >= j->gpus;
    }
    for (uint32_t i = 0; i < c->nnodes; i++)
        if (ref_fits_node(&c->nodes[i], j))
            return true;
    return false;
}

/* Capacity counters of one node, for before/after comparisons. */
struct ref_snap_node {
    int32_t gpu_free[CLUSTER_MAX_GPUS];
    int64_t cpu_free, mem_free;
};

static inline void ref_snap(const struct cluster *c, struct ref_snap_node *s)
{
    for (uint32_t i = 0; i < c->nnodes; i++) {
        memcpy(s[i].gpu_free, c->nodes[i].gpu_free, sizeof(s[i].gpu_free));
        s[i].cpu_free = c->nodes[i].cpu_free;
        s[i].mem_free = c->nodes[i].mem_free;
    }
}

static inline bool ref_snap_equal(const struct cluster *c, const struct ref_snap_node *s)
{
    for (uint32_t i = 0; i < c->nnodes; i++) {
        if (memcmp(s[i].gpu_free, c->nodes[i].gpu_free, sizeof(s[i].gpu_free)) != 0 ||
            s[i].cpu_free != c->nodes[i].cpu_free || s[i].mem_free != c->nodes[i].mem_free)
            return false;
    }
    return true;
}

#endif
