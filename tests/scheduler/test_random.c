/*
 * test_random.c — scheduler.random: every policy against the brute-force
 * reference on small random clusters, through random sequences of placements,
 * removals, node and GPU failures, drains and restores.
 *
 * After every step: a job is placed exactly when the reference says it fits;
 * what it took is valid (usable node and GPUs, accepted model, whole GPUs for
 * gangs, enough free before); the cluster's counters equal capacity minus what
 * the live jobs hold (so nothing is oversubscribed); removal gives back exactly
 * what was taken; a failure evicts exactly the jobs that touched the node/GPU.
 */
#include "tests/test.h"
#include "tests/scheduler/ref.h"

#include "scheduler/place.h"

#define TRIALS  60
#define STEPS   80
#define MAXLIVE 512

static struct ref_snap_node before[64];

/* The cluster's counters equal capacity minus what the live jobs hold. */
static void check_accounting(struct place *p, const struct cluster *c, const uint64_t *live,
                             size_t nlive)
{
    static struct ref_snap_node used[64];
    memset(used, 0, sizeof(used));
    for (size_t i = 0; i < nlive; i++) {
        const struct place_job *pj = place_lookup(p, live[i]);
        CHECK(pj != NULL);
        if (!pj)
            continue;
        for (uint32_t a = 0; a < pj->nalloc; a++) {
            const struct cluster_alloc *al = &pj->allocs[a];
            for (int g = 0; g < CLUSTER_MAX_GPUS; g++)
                if ((al->gpu_mask >> g) & 1u)
                    used[al->node].gpu_free[g] += al->milli;
            used[al->node].cpu_free += al->cpu;
            used[al->node].mem_free += al->mem;
        }
    }
    CHECK_EQ_I64(place_count(p), nlive);
    for (uint32_t i = 0; i < c->nnodes; i++) {
        const struct cluster_node *n = &c->nodes[i];
        for (int g = 0; g < n->ngpu; g++) {
            CHECK(n->gpu_free[g] >= 0);
            CHECK_EQ_I64(n->gpu_free[g] + used[i].gpu_free[g], 1000);
        }
        CHECK(n->cpu_free >= 0 && n->mem_free >= 0);
        CHECK_EQ_I64(n->cpu_free + used[i].cpu_free, n->cpu_cap);
        CHECK_EQ_I64(n->mem_free + used[i].mem_free, n->mem_cap);
    }
}

/* What job j took (pj) is valid against the cluster as it was (before). */
static void check_alloc(const struct cluster *c, const struct job_spec *j,
                        const struct place_job *pj)
{
    int gpus = 0;
    if (!j->gang)
        CHECK_EQ_I64(pj->nalloc, 1);
    for (uint32_t a = 0; a < pj->nalloc; a++) {
        const struct cluster_alloc *al = &pj->allocs[a];
        CHECK(al->node < c->nnodes);
        const struct cluster_node *n = &c->nodes[al->node];
        CHECK(n->health == CLUSTER_UP);
        CHECK(ref_model_ok(j, n->model));
        CHECK((al->gpu_mask >> n->ngpu) == 0);
        CHECK(before[al->node].cpu_free >= al->cpu);
        CHECK(before[al->node].mem_free >= al->mem);
        int k = __builtin_popcount(al->gpu_mask);
        gpus += k;
        for (int g = 0; g < n->ngpu; g++) {
            if (!((al->gpu_mask >> g) & 1u))
                continue;
            CHECK(n->gpu_health[g] == CLUSTER_UP);
            CHECK(before[al->node].gpu_free[g] >= al->milli);
            if (j->gang)
                CHECK_EQ_I64(before[al->node].gpu_free[g], 1000);
        }
        if (j->gang) {
            int64_t cpu = (j->cpu_milli + j->gpus - 1) / j->gpus;
            int64_t mem = (j->mem_mib + j->gpus - 1) / j->gpus;
            CHECK_EQ_I64(al->milli, 1000);
            CHECK_EQ_I64(al->cpu, cpu * k);
            CHECK_EQ_I64(al->mem, mem * k);
            CHECK(k > 0);
        } else {
            CHECK_EQ_I64(al->milli, j->gpus ? j->gpu_milli : 0);
            CHECK_EQ_I64(al->cpu, j->cpu_milli);
            CHECK_EQ_I64(al->mem, j->mem_mib);
        }
        for (uint32_t b = 0; b < a; b++)
            CHECK(pj->allocs[b].node != al->node);
    }
    CHECK_EQ_I64(gpus, j->gpus);
}

static void drop(uint64_t *live, size_t *nlive, uint64_t id)
{
    for (size_t i = 0; i < *nlive; i++) {
        if (live[i] == id) {
            live[i] = live[--*nlive];
            return;
        }
    }
    CHECK(!"evicted id was not live");
}

/* Ids of live jobs touching node (and GPU, if gpu >= 0), ascending. */
static size_t expected_victims(struct place *p, const uint64_t *live, size_t nlive, uint32_t node,
                               int gpu, uint64_t *out)
{
    size_t n = 0;
    for (size_t i = 0; i < nlive; i++) {
        const struct place_job *pj = place_lookup(p, live[i]);
        bool hit = false;
        for (uint32_t a = 0; a < pj->nalloc; a++)
            if (pj->allocs[a].node == node && (gpu < 0 || ((pj->allocs[a].gpu_mask >> gpu) & 1u)))
                hit = true;
        if (hit)
            out[n++] = live[i];
    }
    for (size_t i = 1; i < n; i++)
        for (size_t k = i; k > 0 && out[k - 1] > out[k]; k--) {
            uint64_t t = out[k];
            out[k] = out[k - 1];
            out[k - 1] = t;
        }
    return n;
}

static void run(enum place_policy pol, uint64_t seed)
{
    struct ref_rng r = {seed};
    struct cluster c;
    uint64_t live[MAXLIVE], exp[MAXLIVE];
    size_t nlive = 0;
    uint64_t next_id = 1;
    char err[128];

    ref_cluster(&r, &c, (int)ref_range(&r, 1, 6));
    struct place *p = place_new(&c, pol);
    struct job_spec sample[40];
    for (int i = 0; i < 40; i++) {
        sample[i] = ref_job(&r, 0);
        sample[i].gang = false;
        if (sample[i].gpus > 1)
            sample[i].gpu_milli = 1000;
    }
    if (ref_range(&r, 0, 3) > 0)
        CHECK(place_set_workload(p, sample, 40) == 0);

    for (int step = 0; step < STEPS; step++) {
        int op = (int)ref_range(&r, 0, 99);
        if (op < 60 && nlive < MAXLIVE) {
            struct job_spec j = ref_job(&r, next_id++);
            ref_snap(&c, before);
            bool fits = ref_fits(&c, &j);
            CHECK(place_fits(p, &j) == fits);
            int rc = place_job(p, &j, err, sizeof(err));
            CHECK((rc == 0) == fits);
            if (rc == 0) {
                const struct place_job *pj = place_lookup(p, j.id);
                CHECK(pj != NULL);
                check_alloc(&c, &j, pj);
                CHECK(place_job(p, &j, err, sizeof(err)) < 0); /* duplicate id */
                live[nlive++] = j.id;
                if (ref_range(&r, 0, 2) == 0) {
                    CHECK(place_remove(p, j.id) == 0);
                    CHECK(ref_snap_equal(&c, before));
                    nlive--;
                }
            } else {
                CHECK(ref_snap_equal(&c, before));
            }
        } else if (op < 85) {
            if (nlive == 0)
                continue;
            size_t k = (size_t)ref_range(&r, 0, (int64_t)nlive - 1);
            uint64_t id = live[k];
            const struct place_job *pj = place_lookup(p, id);
            ref_snap(&c, before);
            for (uint32_t a = 0; a < pj->nalloc; a++) {
                const struct cluster_alloc *al = &pj->allocs[a];
                for (int g = 0; g < CLUSTER_MAX_GPUS; g++)
                    if ((al->gpu_mask >> g) & 1u)
                        before[al->node].gpu_free[g] += al->milli;
                before[al->node].cpu_free += al->cpu;
                before[al->node].mem_free += al->mem;
            }
            CHECK(place_remove(p, id) == 0);
            CHECK(place_remove(p, id) < 0);
            CHECK(place_lookup(p, id) == NULL);
            CHECK(ref_snap_equal(&c, before));
            live[k] = live[--nlive];
        } else if (op < 95) {
            uint32_t node = (uint32_t)ref_range(&r, 0, c.nnodes - 1);
            int gpu = op < 90 || c.nodes[node].ngpu == 0
                          ? -1
                          : (int)ref_range(&r, 0, c.nodes[node].ngpu - 1);
            size_t ne = expected_victims(p, live, nlive, node, gpu, exp);
            struct job_spec *ev = NULL;
            size_t nev = 0;
            int rc = gpu < 0 ? place_node_fail(p, node, &ev, &nev)
                             : place_gpu_fail(p, node, gpu, &ev, &nev);
            CHECK(rc == 0);
            CHECK_EQ_I64(nev, ne);
            for (size_t i = 0; i < nev && i < ne; i++) {
                CHECK_EQ_I64(ev[i].id, exp[i]);
                drop(live, &nlive, ev[i].id);
                CHECK(place_lookup(p, ev[i].id) == NULL);
            }
            free(ev);
            if (gpu < 0)
                CHECK(c.nodes[node].health == CLUSTER_FAILED);
        } else {
            uint32_t node = (uint32_t)ref_range(&r, 0, c.nnodes - 1);
            if (op < 97)
                place_node_drain(p, node);
            else
                place_node_restore(p, node);
        }
        check_accounting(p, &c, live, nlive);
    }
    place_free(p);
    cluster_free(&c);
}

int main(void)
{
    for (int pol = PLACE_FIRST_FIT; pol <= PLACE_CAPX; pol++)
        for (uint64_t t = 0; t < TRIALS; t++)
            run((enum place_policy)pol, t * 1000 + (uint64_t)pol);
    return TEST_DONE();
}
