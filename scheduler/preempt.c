/*
 * preempt.c — cheapest set of spot jobs to preempt; see preempt.h.
 */
#include <stdlib.h>
#include <string.h>

#include "scheduler/gang.h"
#include "scheduler/preempt.h"

#define GANG_MAX_EXACT 12 /* spot jobs per node enumerated for a gang */

struct victim {
    uint64_t id;                /* job id */
    int64_t cost;               /* GPU milli it holds (all nodes) */
    const struct place_job *pj; /* its record */
};

static int cmp_victim(const void *x, const void *y)
{
    const struct victim *a = x, *b = y;
    if (a->cost != b->cost)
        return a->cost < b->cost ? -1 : 1;
    return a->id < b->id ? -1 : a->id > b->id;
}

/* Gives back to node copy `t` (index `node`) what pj holds there. */
static void release(struct cluster_node *t, uint32_t node, const struct place_job *pj)
{
    for (uint32_t a = 0; a < pj->nalloc; a++) {
        const struct cluster_alloc *al = &pj->allocs[a];
        if (al->node != node)
            continue;
        for (int g = 0; g < t->ngpu; g++)
            if ((al->gpu_mask >> g) & 1u)
                t->gpu_free[g] += al->milli;
        t->cpu_free += al->cpu;
        t->mem_free += al->mem;
    }
}

/* Spot jobs on `node`, cheapest first, at most `max`. Returns the count. */
static size_t node_victims(struct place *p, uint32_t node, struct victim **out, size_t max)
{
    size_t total = place_node_jobs(p, node, NULL, 0);
    uint64_t *ids = xmalloc((total ? total : 1) * sizeof(*ids));
    size_t n = place_node_jobs(p, node, ids, total);
    struct victim *v = xmalloc((n ? n : 1) * sizeof(*v));
    size_t m = 0;
    for (size_t i = 0; i < n; i++) {
        const struct place_job *pj = place_lookup(p, ids[i]);
        CAPX_ASSERT(pj != NULL);
        if (pj->spec.prio != JOB_SPOT)
            continue;
        v[m++] = (struct victim){ids[i], job_gpu_milli(&pj->spec), pj};
    }
    qsort(v, m, sizeof(*v), cmp_victim);
    free(ids);
    *out = v;
    return m < max ? m : max;
}

/* Search state for one node and a non-gang job. */
struct search {
    const struct cluster_node *base; /* the node as it stands */
    uint32_t node;                   /* its index */
    const struct job_spec *job;      /* what must fit */
    const struct victim *v;          /* candidates, cheapest first */
    size_t m;                        /* number of candidates */
    uint32_t cur, best;              /* bitsets over v: current, best found */
    int64_t best_cost;               /* INT64_MAX: none yet */
    int best_count;
};

static int fits_without(const struct search *s, uint32_t set)
{
    struct cluster_node t = *s->base;
    for (size_t i = 0; i < s->m; i++)
        if ((set >> i) & 1u)
            release(&t, s->node, s->v[i].pj);
    return place_node_fits(&t, s->job);
}

static void dfs(struct search *s, size_t from, int64_t cost, int count)
{
    if (cost > s->best_cost || (cost == s->best_cost && count >= s->best_count))
        return;
    if (fits_without(s, s->cur)) {
        s->best_cost = cost;
        s->best_count = count;
        s->best = s->cur;
        return; /* adding victims only costs more */
    }
    for (size_t i = from; i < s->m; i++) {
        s->cur |= 1u << i;
        dfs(s, i + 1, cost + s->v[i].cost, count + 1);
        s->cur &= ~(1u << i);
    }
}

static int cmp_u64(const void *x, const void *y)
{
    uint64_t a = *(const uint64_t *)x, b = *(const uint64_t *)y;
    return a < b ? -1 : a > b;
}

/* Sorts, removes duplicates and sums the cost of the victims in ids. */
static size_t finish(struct place *p, uint64_t *ids, size_t n, int64_t *cost)
{
    qsort(ids, n, sizeof(*ids), cmp_u64);
    size_t m = 0;
    *cost = 0;
    for (size_t i = 0; i < n; i++) {
        if (m > 0 && ids[m - 1] == ids[i])
            continue;
        ids[m++] = ids[i];
        *cost += job_gpu_milli(&place_lookup(p, ids[i])->spec);
    }
    return m;
}

static int plan_single(struct place *p, const struct job_spec *j, uint64_t **victims,
                       size_t *nvictims, int64_t *cost)
{
    const struct cluster *c = place_cluster(p);
    int64_t best_cost = INT64_MAX;
    int best_count = 0;
    uint64_t *best_ids = NULL;
    size_t best_n = 0;
    for (uint32_t i = 0; i < c->nnodes; i++) {
        const struct cluster_node *n = &c->nodes[i];
        if (!cluster_node_usable(n) || !job_accepts_model(j, n->model))
            continue;
        struct victim *v;
        size_t m = node_victims(p, i, &v, PREEMPT_MAX_EXACT);
        struct search s = {n, i, j, v, m, 0, 0, best_cost, best_count};
        if (best_cost == INT64_MAX)
            s.best_count = 0;
        /* strictly better than the best so far only */
        if (fits_without(&s, m ? (uint32_t)((1ull << m) - 1) : 0)) {
            dfs(&s, 0, 0, 0);
            if (s.best_cost < best_cost ||
                (s.best_cost == best_cost && s.best_count < best_count)) {
                best_cost = s.best_cost;
                best_count = s.best_count;
                free(best_ids);
                best_ids = xmalloc((m ? m : 1) * sizeof(*best_ids));
                best_n = 0;
                for (size_t k = 0; k < m; k++)
                    if ((s.best >> k) & 1u)
                        best_ids[best_n++] = v[k].id;
            }
        }
        free(v);
    }
    if (best_cost == INT64_MAX)
        return -1;
    *nvictims = finish(p, best_ids, best_n, cost);
    *victims = best_ids;
    return 0;
}

/* Per node for a gang: cheapest victim set giving room for k GPUs, k = 0..K. */
struct node_opts {
    int kmax;         /* most GPUs the node can give the gang */
    int64_t *cost;    /* [kmax + 1] */
    int *count;       /* [kmax + 1] victims */
    uint32_t *set;    /* [kmax + 1] bitset over v */
    struct victim *v; /* candidates */
    size_t m;
};

static void gang_node_opts(struct place *p, uint32_t i, const struct job_spec *j,
                           struct node_opts *o)
{
    const struct cluster_node *n = &place_cluster(p)->nodes[i];
    memset(o, 0, sizeof(*o));
    o->m = node_victims(p, i, &o->v, GANG_MAX_EXACT);
    o->kmax = n->ngpu;
    o->cost = xmalloc(((size_t)o->kmax + 1) * sizeof(*o->cost));
    o->count = xmalloc(((size_t)o->kmax + 1) * sizeof(*o->count));
    o->set = xmalloc(((size_t)o->kmax + 1) * sizeof(*o->set));
    for (int k = 0; k <= o->kmax; k++) {
        o->cost[k] = INT64_MAX;
        o->count[k] = 0;
        o->set[k] = 0;
    }
    for (uint32_t set = 0; set < (1u << o->m); set++) {
        struct cluster_node t = *n;
        int64_t cost = 0;
        int count = 0;
        for (size_t k = 0; k < o->m; k++) {
            if ((set >> k) & 1u) {
                release(&t, i, o->v[k].pj);
                cost += o->v[k].cost;
                count++;
            }
        }
        int cap = gang_node_capacity(&t, j);
        if (cost < o->cost[cap] || (cost == o->cost[cap] && count < o->count[cap])) {
            o->cost[cap] = cost;
            o->count[cap] = count;
            o->set[cap] = set;
        }
    }
    /* room for k also gives room for fewer: take the cheapest from above */
    for (int k = o->kmax - 1; k >= 0; k--) {
        if (o->cost[k + 1] < o->cost[k] ||
            (o->cost[k + 1] == o->cost[k] && o->count[k + 1] < o->count[k])) {
            o->cost[k] = o->cost[k + 1];
            o->count[k] = o->count[k + 1];
            o->set[k] = o->set[k + 1];
        }
    }
    while (o->kmax > 0 && o->cost[o->kmax] == INT64_MAX)
        o->kmax--;
}

static int plan_gang(struct place *p, const struct job_spec *j, uint64_t **victims,
                     size_t *nvictims, int64_t *cost)
{
    const struct cluster *c = place_cluster(p);
    uint32_t nn = c->nnodes;
    int need = j->gpus;
    int ret = -1;
    struct node_opts *o = xcalloc(nn ? nn : 1, sizeof(*o));
    size_t w = (size_t)need + 1;
    int64_t *dp = xmalloc(w * sizeof(*dp));
    int *dpc = xmalloc(w * sizeof(*dpc));
    int *pick = xcalloc((size_t)(nn ? nn : 1) * w, sizeof(*pick)); /* k chosen at node i for t */
    int64_t *ndp = xmalloc(w * sizeof(*ndp));
    int *ndpc = xmalloc(w * sizeof(*ndpc));
    uint64_t *ids = NULL;
    for (size_t t = 0; t < w; t++) {
        dp[t] = t == 0 ? 0 : INT64_MAX;
        dpc[t] = 0;
    }
    for (uint32_t i = 0; i < nn; i++) {
        gang_node_opts(p, i, j, &o[i]);
        for (size_t t = 0; t < w; t++) {
            ndp[t] = dp[t];
            ndpc[t] = dpc[t];
            pick[(size_t)i * w + t] = 0;
        }
        for (size_t t = 0; t < w; t++) {
            if (dp[t] == INT64_MAX)
                continue;
            for (int k = 1; k <= o[i].kmax; k++) {
                size_t to = t + (size_t)k > (size_t)need ? (size_t)need : t + (size_t)k;
                int64_t cst = dp[t] + o[i].cost[k];
                int cnt = dpc[t] + o[i].count[k];
                if (cst < ndp[to] || (cst == ndp[to] && cnt < ndpc[to])) {
                    ndp[to] = cst;
                    ndpc[to] = cnt;
                    pick[(size_t)i * w + to] = k * (int)w + (int)t + 1; /* encode k and from */
                }
            }
        }
        memcpy(dp, ndp, w * sizeof(*dp));
        memcpy(dpc, ndpc, w * sizeof(*dpc));
    }
    if (dp[need] == INT64_MAX)
        goto done;
    /* walk back */
    size_t nids = 0, capids = 16;
    ids = xmalloc(capids * sizeof(*ids));
    size_t t = (size_t)need;
    for (uint32_t i = nn; i-- > 0;) {
        int e = pick[(size_t)i * w + t];
        if (e == 0)
            continue; /* node i took nothing for this total */
        int k = (e - 1) / (int)w;
        size_t from = (size_t)((e - 1) % (int)w);
        uint32_t set = o[i].set[k];
        for (size_t q = 0; q < o[i].m; q++) {
            if ((set >> q) & 1u) {
                if (nids == capids) {
                    capids *= 2;
                    ids = xrealloc(ids, capids * sizeof(*ids));
                }
                ids[nids++] = o[i].v[q].id;
            }
        }
        t = from;
    }
    CAPX_ASSERT(t == 0);
    *nvictims = finish(p, ids, nids, cost);
    *victims = ids;
    ids = NULL;
    ret = 0;
done:
    free(ids);
    for (uint32_t i = 0; i < nn; i++) {
        free(o[i].v);
        free(o[i].cost);
        free(o[i].count);
        free(o[i].set);
    }
    free(o);
    free(dp);
    free(dpc);
    free(ndp);
    free(ndpc);
    free(pick);
    return ret;
}

int preempt_plan(struct place *p, const struct job_spec *j, uint64_t **victims, size_t *nvictims,
                 int64_t *cost_milli)
{
    char err[64];
    *victims = NULL;
    *nvictims = 0;
    *cost_milli = 0;
    if (job_validate(j, err, sizeof(err)) < 0 || j->prio != JOB_RESERVATION)
        return -1;
    if (place_fits(p, j))
        return 0;
    int rc = j->gang ? plan_gang(p, j, victims, nvictims, cost_milli)
                     : plan_single(p, j, victims, nvictims, cost_milli);
    if (rc == 0 && *nvictims == 0) {
        free(*victims);
        *victims = NULL;
    }
    return rc;
}
