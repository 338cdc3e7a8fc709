/*
 * test_placement.c — scheduler.placement: hand-checked scenarios for gangs
 * (fewest racks, whole nodes first, NVLink islands kept whole), the policies'
 * choices and tie-break order, draining, validation, the FGD measure, and
 * capx's learned hole table.
 */
#include <math.h>

#include "tests/test.h"

#include "scheduler/frag.h"
#include "scheduler/place.h"

static char err[128];

static uint32_t mask_on(struct place *p, uint64_t id, uint32_t node)
{
    const struct place_job *pj = place_lookup(p, id);
    if (!pj)
        return 0;
    for (uint32_t a = 0; a < pj->nalloc; a++)
        if (pj->allocs[a].node == node)
            return pj->allocs[a].gpu_mask;
    return 0;
}

static void gangs(void)
{
    struct cluster c;
    cluster_init(&c);
    int m = cluster_model(&c, "H100", 4);
    /* rack 0: nodes 0, 1; rack 1: nodes 2, 3, 4; 8 GPUs in two islands of 4 */
    int racks[] = {0, 0, 1, 1, 1};
    for (int i = 0; i < 5; i++) {
        struct cluster_node_spec s = {m, 8, 4, racks[i], 128000, 1 << 20};
        CHECK_EQ_I64(cluster_add_node(&c, &s, err, sizeof(err)), i);
    }
    struct place *p = place_new(&c, PLACE_CAPX);
    struct job_spec g = {.id = 1, .gpus = 16, .gang = true, .cpu_milli = 16000, .mem_mib = 1600};
    CHECK(place_job(p, &g, err, sizeof(err)) == 0);
    /* the tightest rack that holds it: rack 0, both nodes whole */
    CHECK_EQ_I64(mask_on(p, 1, 0), 0xff);
    CHECK_EQ_I64(mask_on(p, 1, 1), 0xff);
    CHECK_EQ_I64(place_lookup(p, 1)->nalloc, 2);
    CHECK_EQ_I64(c.nodes[0].cpu_free, 128000 - 8000);
    CHECK_EQ_I64(c.nodes[0].mem_free, (1 << 20) - 800);

    g = (struct job_spec){.id = 2, .gpus = 4, .gang = true};
    CHECK(place_job(p, &g, err, sizeof(err)) == 0);
    CHECK_EQ_I64(mask_on(p, 2, 2), 0x0f); /* one island of the earliest node */
    g.id = 3;
    CHECK(place_job(p, &g, err, sizeof(err)) == 0);
    CHECK_EQ_I64(mask_on(p, 3, 2), 0xf0); /* the tighter node, not a fresh one */
    g = (struct job_spec){.id = 4, .gpus = 12, .gang = true};
    CHECK(place_job(p, &g, err, sizeof(err)) == 0);
    CHECK_EQ_I64(mask_on(p, 4, 3), 0xff); /* whole node first */
    CHECK_EQ_I64(mask_on(p, 4, 4), 0x0f); /* the rest inside one island */
    g = (struct job_spec){.id = 5, .gpus = 5, .gang = true};
    CHECK(place_job(p, &g, err, sizeof(err)) < 0); /* only 4 left */
    CHECK_STR(err, "does not fit");
    g.gpus = 4;
    CHECK(place_job(p, &g, err, sizeof(err)) == 0);

    /* a node failure takes the whole gang off every node */
    struct job_spec *ev = NULL;
    size_t nev = 0;
    CHECK(place_node_fail(p, 3, &ev, &nev) == 0);
    CHECK_EQ_I64(nev, 1);
    if (nev == 1)
        CHECK_EQ_I64(ev[0].id, 4);
    free(ev);
    CHECK_EQ_I64(c.nodes[4].gpu_free[0], 1000);
    CHECK_EQ_I64(c.nodes[4].gpu_free[4], 0); /* job 5 still there */
    /* re-placement: 12 GPUs no longer fit (node 3 failed, 4 free on node 4) */
    g = (struct job_spec){.id = 4, .gpus = 12, .gang = true};
    CHECK(place_job(p, &g, err, sizeof(err)) < 0);
    place_node_restore(p, 3);
    CHECK(place_job(p, &g, err, sizeof(err)) == 0);

    /* spanning racks when no rack suffices */
    CHECK(place_remove(p, 1) == 0);
    CHECK(place_remove(p, 4) == 0);
    g = (struct job_spec){.id = 6, .gpus = 24, .gang = true};
    CHECK(place_job(p, &g, err, sizeof(err)) == 0);
    CHECK_EQ_I64(place_lookup(p, 6)->nalloc, 3); /* three whole nodes over both racks */
    place_free(p);
    cluster_free(&c);
}

static void islands(void)
{
    struct cluster c;
    cluster_init(&c);
    int m = cluster_model(&c, "A100", 4);
    struct cluster_node_spec s = {m, 8, 4, 0, 64000, 65536};
    CHECK(cluster_add_node(&c, &s, err, sizeof(err)) == 0);
    struct place *p = place_new(&c, PLACE_FIRST_FIT);
    struct job_spec a = {.id = 1, .gpus = 1, .gpu_milli = 1000};
    CHECK(place_job(p, &a, err, sizeof(err)) == 0);
    CHECK_EQ_I64(mask_on(p, 1, 0), 0x01);
    struct job_spec b = {.id = 2, .gpus = 4, .gpu_milli = 1000};
    CHECK(place_job(p, &b, err, sizeof(err)) == 0);
    CHECK_EQ_I64(mask_on(p, 2, 0), 0xf0); /* the intact island */
    struct job_spec d = {.id = 3, .gpus = 3, .gpu_milli = 1000};
    CHECK(place_job(p, &d, err, sizeof(err)) == 0);
    CHECK_EQ_I64(mask_on(p, 3, 0), 0x0e);
    place_free(p);
    cluster_free(&c);
}

/* Node 0: one GPU with 1000 free; node 1: one GPU with 600 free. */
static void two_nodes(struct cluster *c, struct place **p, enum place_policy pol)
{
    cluster_init(c);
    int m = cluster_model(c, "T4", 2);
    struct cluster_node_spec s = {m, 1, 0, 0, 32000, 65536};
    CHECK(cluster_add_node(c, &s, err, sizeof(err)) == 0);
    CHECK(cluster_add_node(c, &s, err, sizeof(err)) == 1);
    *p = place_new(c, pol);
    struct job_spec w[4];
    for (int i = 0; i < 4; i++)
        w[i] = (struct job_spec){.gpus = 1, .gpu_milli = 500, .cpu_milli = 1000};
    CHECK(place_set_workload(*p, w, 4) == 0);
    cluster_take(c, 1, 1, 400, 0, 0); /* something outside the placer */
}

static void policies(void)
{
    struct cluster c;
    struct place *p;
    struct job_spec j = {.id = 1, .gpus = 1, .gpu_milli = 500, .cpu_milli = 1000};
    /* first-fit: earliest; best-fit: fullest; fgd: the node whose GPU stays
     * usable for the 500 class; capx: the fullest too, since opening a fresh
     * GPU for a share costs it more than the 100 milli left on node 1 */
    uint32_t expect[] = {0, 1, 0, 1};
    for (int pol = 0; pol < 4; pol++) {
        two_nodes(&c, &p, (enum place_policy)pol);
        CHECK(place_job(p, &j, err, sizeof(err)) == 0);
        CHECK_EQ_I64(place_lookup(p, 1)->allocs[0].node, expect[pol]);
        place_free(p);
        cluster_free(&c);
    }
    /* FGD measure: a 500 class on [1000] is unfragmented, on [100] fully */
    struct frag_workload w;
    struct job_spec s[2] = {{.gpus = 1, .gpu_milli = 500}, {.gpus = 0}};
    CHECK(frag_workload_build(&w, s, 2) == 0);
    CHECK_EQ_I64(w.n, 2);
    int32_t f1[1] = {1000}, f2[1] = {100};
    /* half the workload is CPU-only: all free GPU counts as fragment for it */
    CHECK(fabs(frag_node(&w, 0, 1, f1, 1000) - 500.0) < 1e-9);
    CHECK(fabs(frag_node(&w, 0, 1, f2, 1000) - 100.0) < 1e-9);
    frag_workload_free(&w);

    /* ties go to the earliest node; draining and failed nodes take nothing */
    cluster_init(&c);
    int m = cluster_model(&c, "T4", 2);
    struct cluster_node_spec ns = {m, 2, 0, 0, 32000, 65536};
    for (int i = 0; i < 3; i++)
        CHECK(cluster_add_node(&c, &ns, err, sizeof(err)) == i);
    for (int pol = 0; pol < 4; pol++) {
        p = place_new(&c, (enum place_policy)pol);
        j.id = 5;
        CHECK(place_job(p, &j, err, sizeof(err)) == 0);
        CHECK_EQ_I64(place_lookup(p, 5)->allocs[0].node, 0);
        CHECK(place_remove(p, 5) == 0);
        place_node_drain(p, 0);
        struct job_spec *ev = NULL;
        size_t nev = 0;
        CHECK(place_node_fail(p, 1, &ev, &nev) == 0 && nev == 0 && ev == NULL);
        CHECK(place_job(p, &j, err, sizeof(err)) == 0);
        CHECK_EQ_I64(place_lookup(p, 5)->allocs[0].node, 2);
        CHECK(place_remove(p, 5) == 0);
        place_node_restore(p, 0);
        place_node_restore(p, 1);
        place_free(p);
    }
    cluster_free(&c);
}

/* capx's hole table learned from the workload: with the trace's share mix, a
 * 320-milli share goes beside another 320 (leaving 360, which a 320 closes)
 * rather than beside a 470 (leaving 210, which only the rare 160s fit, and
 * those go beside the many 810s); the analytic table (hole_iters 0) thought a
 * 210 hole likely refilled and chose the 470. 300 other nodes the share may
 * not use give the cluster a realistic size, which sets the learning horizon. */
static void holes(void)
{
    static const int32_t size[] = {810, 470, 320, 650, 230, 460, 590, 160, 550, 220, 370, 1000};
    static const int count[] = {1078, 750, 328, 253, 140, 128, 75, 74, 72, 62, 47, 3911};
    static struct job_spec w[8000];
    size_t n = 0;
    for (size_t k = 0; k < sizeof(size) / sizeof(size[0]); k++)
        for (int i = 0; i < count[k]; i++)
            w[n++] = (struct job_spec){
                .gpus = 1, .gpu_milli = size[k], .cpu_milli = 4000, .mem_mib = 16384};
    for (int learned = 0; learned < 2; learned++) {
        struct cluster c;
        cluster_init(&c);
        int t4 = cluster_model(&c, "T4", 2), g2 = cluster_model(&c, "G2", 2);
        struct cluster_node_spec s = {t4, 1, 0, 0, 64000, 1 << 20};
        CHECK(cluster_add_node(&c, &s, err, sizeof(err)) == 0);
        CHECK(cluster_add_node(&c, &s, err, sizeof(err)) == 1);
        struct cluster_node_spec other = {g2, 8, 0, 0, 96000, 393216};
        for (int i = 0; i < 300; i++)
            CHECK(cluster_add_node(&c, &other, err, sizeof(err)) == 2 + i);
        cluster_take(&c, 0, 1, 470, 0, 0);
        cluster_take(&c, 1, 1, 320, 0, 0);
        struct place *p = place_new(&c, PLACE_CAPX);
        struct place_params pp;
        place_params_default(&pp);
        if (!learned)
            CHECK(place_params_set(&pp, "hole_iters", 0) == 0);
        place_set_params(p, &pp);
        CHECK(place_set_workload(p, w, n) == 0);
        struct job_spec j = {.id = 1,
                             .gpus = 1,
                             .gpu_milli = 320,
                             .cpu_milli = 4000,
                             .mem_mib = 16384,
                             .models = 1u << t4};
        CHECK(place_job(p, &j, err, sizeof(err)) == 0);
        CHECK_EQ_I64(place_lookup(p, 1)->allocs[0].node, learned ? 1 : 0);
        place_free(p);
        cluster_free(&c);
    }
    struct place_params pp;
    place_params_default(&pp);
    CHECK(place_params_set(&pp, "hole_streams", 0) < 0);
    CHECK(place_params_set(&pp, "hole_iters", 101) < 0);
    CHECK(place_params_set(&pp, "hole_horizon", 2) == 0 && pp.hole_horizon == 2);
}

static void validation(void)
{
    struct cluster c;
    cluster_init(&c);
    struct cluster_node_spec bad = {-1, 4, 0, 0, 1000, 1000};
    CHECK(cluster_add_node(&c, &bad, err, sizeof(err)) < 0);
    CHECK(cluster_model(&c, "", 0) < 0);
    CHECK(cluster_model(&c, "bad name", 8) < 0);
    int m = cluster_model(&c, "A10", 3);
    CHECK_EQ_I64(cluster_model(&c, "A10", 3), m);
    struct cluster_node_spec odd = {m, 6, 4, 0, 1000, 1000};
    CHECK(cluster_add_node(&c, &odd, err, sizeof(err)) < 0); /* island must divide */
    struct cluster_node_spec big = {m, 17, 0, 0, 1000, 1000};
    CHECK(cluster_add_node(&c, &big, err, sizeof(err)) < 0);
    struct cluster_node_spec ok = {m, 4, 0, 0, 1000, 1000};
    CHECK(cluster_add_node(&c, &ok, err, sizeof(err)) == 0);
    struct place *p = place_new(&c, PLACE_CAPX);
    struct job_spec js[] = {
        {.id = 1, .gpus = 2, .gpu_milli = 500},           /* share needs gpus 1 */
        {.id = 2, .gpus = 1, .gpu_milli = 0},             /* no milli */
        {.id = 3, .gpus = 0, .gang = true},               /* gang without GPUs */
        {.id = 4, .gpus = 1, .gpu_milli = 1001},          /* > 1000 */
        {.id = 5, .gpus = -1},                            /* negative */
        {.id = 6, .gpus = 1, .gpu_milli = 10, .prio = 7}, /* unknown class */
        {.id = 7, .gpus = 0, .cpu_milli = -5},            /* negative cpu */
        {.id = 8, .gpus = 20, .gpu_milli = 1000},         /* non-gang beyond a node */
    };
    for (size_t i = 0; i < sizeof(js) / sizeof(js[0]); i++) {
        CHECK(place_job(p, &js[i], err, sizeof(err)) < 0);
        CHECK(strcmp(err, "does not fit") != 0);
    }
    CHECK_EQ_I64(place_count(p), 0);
    enum place_policy pol;
    CHECK(place_policy_parse("fgd", &pol) == 0 && pol == PLACE_FGD);
    CHECK(place_policy_parse("worst-fit", &pol) < 0);
    CHECK_STR(place_policy_name(PLACE_CAPX), "capx");
    place_free(p);
    cluster_free(&c);
}

int main(void)
{
    gangs();
    islands();
    policies();
    holes();
    validation();
    return TEST_DONE();
}
