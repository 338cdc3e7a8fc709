/*
 * frag.c — FGD's target-workload summary and per-node fragmentation.
 * Mirrors the published simulator's definitions; see frag.h.
 */
#include <stdlib.h>
#include <string.h>

#include "scheduler/frag.h"

/* Shape of a job as FGD sees it (memory is not part of it). */
struct shape {
    int64_t cpu;
    int32_t milli;
    int32_t gpus;
    uint32_t models;
    int64_t count;
};

static int shape_key_cmp(const struct shape *a, const struct shape *b)
{
    if (a->cpu != b->cpu)
        return a->cpu < b->cpu ? -1 : 1;
    if (a->milli != b->milli)
        return a->milli < b->milli ? -1 : 1;
    if (a->gpus != b->gpus)
        return a->gpus < b->gpus ? -1 : 1;
    if (a->models != b->models)
        return a->models < b->models ? -1 : 1;
    return 0;
}

static int cmp_key(const void *x, const void *y)
{
    return shape_key_cmp(x, y);
}

/* Most popular first; equal counts: larger shape first (the simulator sorts
 * ascending by (count, cpu, milli, gpus, type) and reverses). */
static int cmp_popular(const void *x, const void *y)
{
    const struct shape *a = x, *b = y;
    if (a->count != b->count)
        return a->count > b->count ? -1 : 1;
    return -shape_key_cmp(a, b);
}

int frag_workload_build(struct frag_workload *w, const struct job_spec *jobs, size_t n)
{
    memset(w, 0, sizeof(*w));
    if (n == 0)
        return -1;
    struct shape *s = xcalloc(n, sizeof(*s));
    for (size_t i = 0; i < n; i++) {
        const struct job_spec *j = &jobs[i];
        s[i].cpu = j->cpu_milli;
        s[i].gpus = j->gpus;
        s[i].milli = j->gpus == 0 ? 0 : (j->gang ? CLUSTER_GPU_MILLI : j->gpu_milli);
        s[i].models = j->models;
        s[i].count = 1;
    }
    qsort(s, n, sizeof(*s), cmp_key);
    size_t m = 0;
    for (size_t i = 0; i < n; i++) {
        if (m > 0 && shape_key_cmp(&s[m - 1], &s[i]) == 0)
            s[m - 1].count++;
        else
            s[m++] = s[i];
    }
    qsort(s, m, sizeof(*s), cmp_popular);
    double want = (double)FRAG_POPULARITY_PCT * (double)n / 100.0, cum = 0;
    size_t k = 0;
    while (cum < want && k < m) {
        size_t stop = k + FRAG_STEP;
        for (; k < stop && k < m; k++)
            cum += (double)s[k].count;
    }
    w->classes = xcalloc(k, sizeof(*w->classes));
    w->n = (int)k;
    for (size_t i = 0; i < k; i++) {
        w->classes[i].cpu = s[i].cpu;
        w->classes[i].milli = s[i].milli;
        w->classes[i].gpus = s[i].gpus;
        w->classes[i].models = s[i].models;
        w->classes[i].weight = (double)s[i].count / cum;
    }
    free(s);
    return 0;
}

void frag_workload_free(struct frag_workload *w)
{
    free(w->classes);
    memset(w, 0, sizeof(*w));
}

double frag_node(const struct frag_workload *w, int model, int ngpu, const int32_t *gpu_free,
                 int64_t cpu_free)
{
    /* free milli sorted descending, with running sums: for a class needing m
     * per GPU, the GPUs with at least m free are a prefix */
    int32_t v[CLUSTER_MAX_GPUS];
    int64_t sum[CLUSTER_MAX_GPUS + 1];
    int n = 0;
    for (int g = 0; g < ngpu; g++) {
        if (gpu_free[g] <= 0)
            continue;
        int k = n++;
        while (k > 0 && v[k - 1] < gpu_free[g]) {
            v[k] = v[k - 1];
            k--;
        }
        v[k] = gpu_free[g];
    }
    sum[0] = 0;
    for (int k = 0; k < n; k++)
        sum[k + 1] = sum[k] + v[k];
    int64_t total = sum[n];
    if (total == 0)
        return 0;
    double f = 0;
    for (int i = 0; i < w->n; i++) {
        const struct frag_class *c = &w->classes[i];
        int64_t frag = total;
        int accessible = c->models == 0 || (model >= 0 && ((c->models >> model) & 1u));
        if (c->milli > 0 && accessible && cpu_free >= c->cpu) {
            int fit = 0;
            while (fit < n && v[fit] >= c->milli)
                fit++;
            if (fit >= c->gpus)
                frag = total - sum[fit];
        }
        f += c->weight * (double)frag;
    }
    return f;
}
