/*
 * sim.c — capx-sim: drives the scheduler library offline.
 *
 *   capx-sim trace --nodes NODES.csv --pods PODS.csv [--policy P]
 *                  (--seed S | --seeds A-B) [--inflate 1.3]
 *
 * `trace` reproduces the published evaluation of FGD (ATC '23) on Alibaba's
 * GPU cluster trace 2023 (see bench/data/alibaba-gpu-2023/README.md):
 *   1. the nodes in a random order drawn from the seed (that order is also the
 *      tie-break order);
 *   2. the pods sorted by name, shuffled with the seed, then pods sampled with
 *      replacement from the list appended until the next one would push the
 *      total GPU request past `inflate` × capacity;
 *   3. each pod gets one placement attempt, in that order; nothing leaves;
 *   4. after every pod, arrived = Σ GPU milli submitted, allocated = Σ placed;
 *      records are binned by round(100 × arrived / capacity) and the
 *      allocation ratio averaged per bin.
 * The target workload for fgd and capx is the pod list itself. Prints one JSON
 * object. The random generator is splitmix64 (the published numbers used
 * another, so single seeds differ; means over 10 seeds are comparable).
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "bench/sim/market.h"
#include "bench/sim/trace.h"
#include "scheduler/place.h"

#define MAX_BIN 400
static const int report_bins[] = {80, 90, 100, 110, 120, 130};
#define NREPORT ((int)ARRAY_LEN(report_bins))

struct rng {
    uint64_t s;
};

static uint64_t rng_next(struct rng *r)
{
    uint64_t z = (r->s += UINT64_C(0x9e3779b97f4a7c15));
    z = (z ^ (z >> 30)) * UINT64_C(0xbf58476d1ce4e5b9);
    z = (z ^ (z >> 27)) * UINT64_C(0x94d049bb133111eb);
    return z ^ (z >> 31);
}

/* Uniform in [0, n), without modulo bias. */
static uint64_t rng_below(struct rng *r, uint64_t n)
{
    uint64_t lim = UINT64_MAX - UINT64_MAX % n;
    for (;;) {
        uint64_t x = rng_next(r);
        if (x < lim)
            return x % n;
    }
}

struct run_result {
    size_t pods, failed;
    double pct[NREPORT]; /* NAN when the bin is empty */
    double seconds;      /* placement time only */
};

static int cmp_pod_name(const void *a, const void *b)
{
    return strcmp(((const struct trace_pod *)a)->name, ((const struct trace_pod *)b)->name);
}

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* One seed. `models` is the template cluster holding the model table. */
static int run_seed(const struct cluster *models, const struct trace_node *nodes, size_t nnodes,
                    const struct trace_pod *sorted, size_t npods, enum place_policy pol,
                    const struct place_params *pp, uint64_t seed, double inflate,
                    struct run_result *res)
{
    int ret = -1;
    struct cluster c;
    struct place *p = NULL;
    size_t *order = NULL;
    struct job_spec *jobs = NULL, *work = NULL;
    double sum[MAX_BIN + 1] = {0};
    size_t cnt[MAX_BIN + 1] = {0};
    char err[256];
    struct rng r = {seed};

    cluster_init(&c);
    memcpy(c.models, models->models, sizeof(c.models));
    c.nmodels = models->nmodels;
    /* 1. nodes in the seed's order (Fisher–Yates) */
    order = xmalloc(nnodes * sizeof(*order));
    for (size_t i = 0; i < nnodes; i++)
        order[i] = i;
    for (size_t i = nnodes; i > 1; i--) {
        size_t k = (size_t)rng_below(&r, i);
        size_t t = order[i - 1];
        order[i - 1] = order[k];
        order[k] = t;
    }
    for (size_t i = 0; i < nnodes; i++) {
        const struct trace_node *t = &nodes[order[i]];
        struct cluster_node_spec s = {t->model, t->ngpu, 0, 0, t->cpu, t->mem};
        if (cluster_add_node(&c, &s, err, sizeof(err)) < 0) {
            fprintf(stderr, "capx-sim: node %s: %s\n", t->name, err);
            goto done;
        }
    }
    int64_t capacity = c.gpu_milli_total;
    if (capacity <= 0) {
        fprintf(stderr, "capx-sim: the cluster has no GPUs\n");
        goto done;
    }
    /* 2. pods: sorted (given), shuffled, inflated */
    size_t cap = npods * 2 + 16, n = npods;
    jobs = xmalloc(cap * sizeof(*jobs));
    for (size_t i = 0; i < npods; i++)
        jobs[i] = sorted[i].spec;
    for (size_t i = npods; i > 1; i--) {
        size_t k = (size_t)rng_below(&r, i);
        struct job_spec t = jobs[i - 1];
        jobs[i - 1] = jobs[k];
        jobs[k] = t;
    }
    int64_t total = 0;
    for (size_t i = 0; i < n; i++)
        total += job_gpu_milli(&jobs[i]);
    double limit = inflate * (double)capacity;
    for (;;) {
        const struct job_spec *s = &sorted[rng_below(&r, npods)].spec;
        if ((double)(total + job_gpu_milli(s)) > limit)
            break;
        if (n == cap) {
            cap *= 2;
            jobs = xrealloc(jobs, cap * sizeof(*jobs));
        }
        jobs[n++] = *s;
        total += job_gpu_milli(s);
    }
    for (size_t i = 0; i < n; i++)
        jobs[i].id = i;
    /* the target workload: the pod list as published */
    work = xmalloc(npods * sizeof(*work));
    for (size_t i = 0; i < npods; i++)
        work[i] = sorted[i].spec;
    p = place_new(&c, pol);
    place_set_params(p, pp);
    if (place_set_workload(p, work, npods) < 0)
        goto done;
    /* 3–4. one attempt each */
    int64_t arrived = 0, allocated = 0;
    size_t failed = 0;
    double t0 = now();
    for (size_t i = 0; i < n; i++) {
        int64_t m = job_gpu_milli(&jobs[i]);
        arrived += m;
        if (place_job(p, &jobs[i], err, sizeof(err)) == 0)
            allocated += m;
        else
            failed++;
        long bin = lround(100.0 * (double)arrived / (double)capacity);
        if (bin >= 0 && bin <= MAX_BIN) {
            sum[bin] += (double)allocated / (double)capacity;
            cnt[bin]++;
        }
    }
    res->seconds = now() - t0;
    CAPX_ASSERT(cluster_gpu_milli_used(&c) == allocated);
    res->pods = n;
    res->failed = failed;
    for (int b = 0; b < NREPORT; b++) {
        int k = report_bins[b];
        res->pct[b] = cnt[k] ? 100.0 * sum[k] / (double)cnt[k] : NAN;
    }
    ret = 0;
done:
    place_free(p);
    cluster_free(&c);
    free(work);
    free(jobs);
    free(order);
    return ret;
}

static void print_num(double x)
{
    if (isnan(x))
        printf("null");
    else
        printf("%.2f", x);
}

static void print_bins(const double *v)
{
    printf("{");
    for (int b = 0; b < NREPORT; b++) {
        printf("%s\"%d\": ", b ? ", " : "", report_bins[b]);
        print_num(v[b]);
    }
    printf("}");
}

static int usage(void)
{
    fprintf(stderr, "usage: capx-sim trace --nodes NODES.csv --pods PODS.csv "
                    "[--policy first-fit|best-fit|fgd|capx] (--seed S | --seeds A-B) "
                    "[--inflate R] [--param NAME=VALUE ...]\n"
                    "  --param tunes the capx policy (names as in scheduler/place.h "
                    "struct place_params)\n");
    return 2;
}

static int parse_u64(const char *s, uint64_t *out)
{
    char *end;
    if (!*s || *s == '-')
        return -1;
    unsigned long long v = strtoull(s, &end, 10);
    if (*end)
        return -1;
    *out = v;
    return 0;
}

static int cmd_trace(int argc, char **argv)
{
    const char *nodes_path = NULL, *pods_path = NULL;
    enum place_policy pol = PLACE_DEFAULT_POLICY;
    uint64_t s0 = 0, s1 = 0;
    int have_seed = 0;
    double inflate = 1.3;
    struct place_params pp;
    int ret = 1;
    char err[512];
    char *ntext = NULL, *ptext = NULL;
    size_t nlen, plen, nnodes = 0, npods = 0;
    struct trace_node *nodes = NULL;
    struct trace_pod *pods = NULL;
    struct cluster models;
    cluster_init(&models);
    place_params_default(&pp);

    for (int i = 0; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!v)
            return usage();
        if (strcmp(a, "--nodes") == 0) {
            nodes_path = v;
        } else if (strcmp(a, "--pods") == 0) {
            pods_path = v;
        } else if (strcmp(a, "--policy") == 0) {
            if (place_policy_parse(v, &pol) < 0) {
                fprintf(stderr, "capx-sim: unknown policy '%s'\n", v);
                return 2;
            }
        } else if (strcmp(a, "--seed") == 0) {
            if (have_seed || parse_u64(v, &s0) < 0)
                return usage();
            s1 = s0;
            have_seed = 1;
        } else if (strcmp(a, "--seeds") == 0) {
            const char *dash = strchr(v, '-');
            char lo[32];
            if (have_seed || !dash || (size_t)(dash - v) >= sizeof(lo))
                return usage();
            memcpy(lo, v, (size_t)(dash - v));
            lo[dash - v] = '\0';
            if (parse_u64(lo, &s0) < 0 || parse_u64(dash + 1, &s1) < 0 || s1 < s0 || s1 - s0 > 1000)
                return usage();
            have_seed = 2;
        } else if (strcmp(a, "--param") == 0) {
            const char *eq = strchr(v, '=');
            char name[64], *end;
            if (!eq || (size_t)(eq - v) >= sizeof(name))
                return usage();
            memcpy(name, v, (size_t)(eq - v));
            name[eq - v] = '\0';
            double x = strtod(eq + 1, &end);
            if (end == eq + 1 || *end || place_params_set(&pp, name, x) < 0) {
                fprintf(stderr, "capx-sim: bad --param '%s'\n", v);
                return 2;
            }
        } else if (strcmp(a, "--inflate") == 0) {
            char *end;
            inflate = strtod(v, &end);
            if (*end || !(inflate >= 0.1 && inflate <= 10))
                return usage();
        } else {
            return usage();
        }
        i++;
    }
    if (!nodes_path || !pods_path || !have_seed)
        return usage();

    if (trace_read_file(nodes_path, &ntext, &nlen, err, sizeof(err)) < 0 ||
        trace_read_file(pods_path, &ptext, &plen, err, sizeof(err)) < 0) {
        fprintf(stderr, "capx-sim: %s\n", err);
        goto done;
    }
    if (trace_parse_nodes(ntext, nlen, &models, &nodes, &nnodes, err, sizeof(err)) < 0) {
        fprintf(stderr, "capx-sim: %s: %s\n", nodes_path, err);
        goto done;
    }
    if (trace_parse_pods(ptext, plen, &models, &pods, &npods, err, sizeof(err)) < 0) {
        fprintf(stderr, "capx-sim: %s: %s\n", pods_path, err);
        goto done;
    }
    qsort(pods, npods, sizeof(*pods), cmp_pod_name);

    size_t nseeds = (size_t)(s1 - s0 + 1), total_pods = 0;
    double secs = 0;
    double(*pct)[NREPORT] = xcalloc(nseeds, sizeof(*pct));
    struct run_result r = {0};
    for (uint64_t s = s0; s <= s1; s++) {
        if (run_seed(&models, nodes, nnodes, pods, npods, pol, &pp, s, inflate, &r) < 0) {
            free(pct);
            goto done;
        }
        memcpy(pct[s - s0], r.pct, sizeof(r.pct));
        total_pods += r.pods;
        secs += r.seconds;
    }
    double dps = secs > 0 ? (double)total_pods / secs : 0;
    if (have_seed == 1) {
        printf("{\"policy\": \"%s\", \"seed\": %llu, \"pods\": %zu, \"failed\": %zu, "
               "\"alloc_pct\": ",
               place_policy_name(pol), (unsigned long long)s0, r.pods, r.failed);
        print_bins(r.pct);
        printf(", \"decisions_per_s\": %.0f}\n", dps);
    } else {
        double mean[NREPORT], sd[NREPORT];
        for (int b = 0; b < NREPORT; b++) {
            double m = 0, q = 0;
            size_t k = 0;
            for (size_t i = 0; i < nseeds; i++)
                if (!isnan(pct[i][b])) {
                    m += pct[i][b];
                    k++;
                }
            m = k ? m / (double)k : NAN;
            for (size_t i = 0; i < nseeds; i++)
                if (!isnan(pct[i][b]))
                    q += (pct[i][b] - m) * (pct[i][b] - m);
            mean[b] = m;
            sd[b] = k ? sqrt(q / (double)k) : NAN;
        }
        printf("{\"policy\": \"%s\", \"seeds\": [", place_policy_name(pol));
        for (uint64_t s = s0; s <= s1; s++)
            printf("%s%llu", s == s0 ? "" : ", ", (unsigned long long)s);
        printf("], \"alloc_pct_mean\": ");
        print_bins(mean);
        printf(", \"alloc_pct_std\": ");
        print_bins(sd);
        printf(", \"decisions_per_s\": %.0f}\n", dps);
    }
    free(pct);
    ret = 0;
done:
    trace_pods_free(pods, npods);
    trace_nodes_free(nodes, nnodes);
    cluster_free(&models);
    free(ptext);
    free(ntext);
    return ret;
}

int main(int argc, char **argv)
{
    if (argc >= 2 && strcmp(argv[1], "trace") == 0)
        return cmd_trace(argc - 2, argv + 2);
    if (argc >= 2 && strcmp(argv[1], "market") == 0)
        return msim_main(argc - 2, argv + 2);
    return usage();
}
