/*
 * test_preempt.c — scheduler.preempt: the preemption plan is minimal.
 *
 * Small random clusters are filled with spot and reservation jobs; for a
 * reservation job that does not fit, preempt_plan's choice is compared with a
 * brute force over every subset of the spot jobs: same lowest GPUs-worth, same
 * fewest victims on that cost, a plan exactly when one exists, and after
 * removing the victims the job really fits.
 */
#include <stdlib.h>

#include "tests/test.h"
#include "tests/scheduler/ref.h"

#include "scheduler/place.h"
#include "scheduler/preempt.h"

#define TRIALS  400
#define MAXSPOT 12

static void run(uint64_t seed, enum place_policy pol)
{
    struct ref_rng r = {seed};
    struct cluster c, tmp;
    char err[128];
    uint64_t spot[MAXSPOT];
    int nspot = 0;
    uint64_t id = 1;

    ref_cluster(&r, &c, (int)ref_range(&r, 1, 4));
    struct place *p = place_new(&c, pol);
    /* fill: spot jobs are never gangs (see preempt.h on gangs spanning nodes) */
    for (int i = 0; i < 60; i++) {
        struct job_spec j = ref_job(&r, id++);
        if (j.prio == JOB_SPOT && (j.gang || nspot >= MAXSPOT))
            continue;
        if (place_job(p, &j, err, sizeof(err)) == 0 && j.prio == JOB_SPOT)
            spot[nspot++] = j.id;
    }
    struct job_spec t;
    int found = 0;
    for (int k = 0; k < 30 && !found; k++) {
        t = ref_job(&r, id++);
        t.prio = JOB_RESERVATION;
        found = !ref_fits(&c, &t);
    }
    if (!found)
        goto done;

    /* brute force */
    int64_t best = INT64_MAX;
    int best_n = 0;
    cluster_init(&tmp);
    tmp.nodes = xmalloc(c.nnodes * sizeof(*tmp.nodes));
    tmp.nnodes = tmp.cap = c.nnodes;
    for (uint32_t set = 0; set < (1u << nspot); set++) {
        memcpy(tmp.nodes, c.nodes, c.nnodes * sizeof(*tmp.nodes));
        int64_t cost = 0;
        int n = 0;
        for (int v = 0; v < nspot; v++) {
            if (!((set >> v) & 1u))
                continue;
            const struct place_job *pj = place_lookup(p, spot[v]);
            cost += job_gpu_milli(&pj->spec);
            n++;
            for (uint32_t a = 0; a < pj->nalloc; a++) {
                struct cluster_node *nd = &tmp.nodes[pj->allocs[a].node];
                for (int g = 0; g < nd->ngpu; g++)
                    if ((pj->allocs[a].gpu_mask >> g) & 1u)
                        nd->gpu_free[g] += pj->allocs[a].milli;
                nd->cpu_free += pj->allocs[a].cpu;
                nd->mem_free += pj->allocs[a].mem;
            }
        }
        if ((cost < best || (cost == best && n < best_n)) && ref_fits(&tmp, &t)) {
            best = cost;
            best_n = n;
        }
    }
    cluster_free(&tmp);

    uint64_t *victims = NULL;
    size_t nv = 0;
    int64_t cost = -1;
    int rc = preempt_plan(p, &t, &victims, &nv, &cost);
    CHECK((rc == 0) == (best != INT64_MAX));
    if (rc == 0 && best != INT64_MAX) {
        CHECK_EQ_I64(cost, best);
        CHECK_EQ_I64(nv, best_n);
        int64_t sum = 0;
        for (size_t i = 0; i < nv; i++) {
            const struct place_job *pj = place_lookup(p, victims[i]);
            CHECK(pj != NULL && pj->spec.prio == JOB_SPOT);
            if (i > 0)
                CHECK(victims[i - 1] < victims[i]);
            sum += job_gpu_milli(&pj->spec);
            CHECK(place_remove(p, victims[i]) == 0);
        }
        CHECK_EQ_I64(sum, cost);
        CHECK(place_job(p, &t, err, sizeof(err)) == 0);
    }
    free(victims);
done:
    place_free(p);
    cluster_free(&c);
}

int main(void)
{
    for (uint64_t s = 0; s < TRIALS; s++)
        run(s + 7, (enum place_policy)(s % 4));

    /* a spot job cannot preempt, and a job that fits needs no victims */
    struct cluster c;
    cluster_init(&c);
    int m = cluster_model(&c, "H100", 4);
    struct cluster_node_spec ns = {m, 8, 4, 0, 64000, 512 * 1024};
    CHECK(cluster_add_node(&c, &ns, NULL, 0) == 0);
    struct place *p = place_new(&c, PLACE_CAPX);
    struct job_spec j = {.id = 1, .gpus = 2, .gpu_milli = 1000, .prio = JOB_RESERVATION};
    uint64_t *v = NULL;
    size_t nv = 9;
    int64_t cost = -1;
    CHECK(preempt_plan(p, &j, &v, &nv, &cost) == 0);
    CHECK(v == NULL && nv == 0 && cost == 0);
    j.prio = JOB_SPOT;
    CHECK(preempt_plan(p, &j, &v, &nv, &cost) < 0);
    /* fill with spot: a 1-GPU share, 3 whole; a reservation for 8 must take all */
    struct job_spec s1 = {.id = 10, .gpus = 1, .gpu_milli = 300, .prio = JOB_SPOT};
    struct job_spec s2 = {.id = 11, .gpus = 3, .gpu_milli = 1000, .prio = JOB_SPOT};
    struct job_spec s3 = {.id = 12, .gpus = 4, .gpu_milli = 1000, .prio = JOB_SPOT};
    char err[64];
    CHECK(place_job(p, &s1, err, sizeof(err)) == 0);
    CHECK(place_job(p, &s2, err, sizeof(err)) == 0);
    CHECK(place_job(p, &s3, err, sizeof(err)) == 0);
    struct job_spec big = {.id = 20, .gpus = 1, .gpu_milli = 1000, .prio = JOB_RESERVATION};
    CHECK(preempt_plan(p, &big, &v, &nv, &cost) == 0);
    /* cheapest: the 300-milli share (its GPU is otherwise free) */
    CHECK_EQ_I64(nv, 1);
    CHECK_EQ_I64(cost, 300);
    if (nv == 1)
        CHECK_EQ_I64(v[0], 10);
    free(v);
    place_free(p);
    cluster_free(&c);
    return TEST_DONE();
}
