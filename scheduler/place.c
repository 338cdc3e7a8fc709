/*
 * place.c — the placer: policies, the job table, removal and failures.
 *
 * Jobs live in a slab of records (stable indices, a free list) found by id
 * through an open-addressing hash (linear probing, backward-shift deletion).
 * Each node keeps the list of records that hold something on it, so a failure
 * or a preemption plan finds its jobs without a scan.
 *
 * Scoring: score(node, job shape) depends only on the node's state, so it is
 * cached per job shape in an array indexed by node, tagged with the node's
 * version; a decision is a pass over the nodes that recomputes only what a
 * change made stale. The fragmentation of each node's current state is cached
 * the same way.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "scheduler/gang.h"
#include "scheduler/place.h"

#define NO_REC     UINT32_MAX
#define MAX_SHAPES 4096 /* job shapes with a score cache; others are scored uncached */
#define NOT_FIT    (-INFINITY)
#define BF_MAX_CPU 128000.0 /* best-fit normalisation, as in the published simulator */
#define BF_MAX_GPU 8000.0

#define HOLE_MAX_HORIZON 1000000 /* shares per packing when learning capx's hole table */

struct rec {
    struct place_job pj; /* what the caller sees */
    uint32_t next_free;  /* free-list link when not live */
    bool live;           /* holds a job */
};

/* Per-node list of records holding something there. */
struct idvec {
    uint32_t *v;
    uint32_t n, cap;
};

/* One cached score: valid while the node's version + 1 equals tag. */
struct score_ent {
    uint32_t tag;  /* node version + 1; 0 = empty */
    uint32_t mask; /* GPUs the job would take */
    double score;  /* NOT_FIT if it does not fit */
};

/* A job shape with its per-node score cache. */
struct shape {
    int64_t cpu, mem;
    int32_t gpus, milli;
    uint32_t models;
    struct score_ent *ent; /* [ent_n], lazily grown to the node count */
    uint32_t ent_n;
};

struct place {
    struct cluster *c;
    enum place_policy policy;
    struct frag_workload w;             /* target workload (fgd, capx) */
    bool have_w;                        /* w is set */
    double cpu_per_milli;               /* the workload's GPU jobs: CPU milli per GPU milli */
    double mem_per_milli;               /* the same for memory MiB */
    struct place_params pp;             /* capx tuning */
    double hole[CLUSTER_GPU_MILLI + 1]; /* expected waste of a GPU left with h milli free */
    int32_t *shares;                    /* milli of each share in the workload (hole table) */
    size_t nshares;                     /* entries in shares */
    double sample_gpu;                  /* Σ GPU milli of the workload */
    struct rec *recs;                   /* job records */
    uint32_t nrecs, caprecs, free_head;
    uint32_t *hash;          /* slots hold record index + 1; 0 = empty */
    uint32_t hcap, hcount;   /* power of two; live entries */
    struct idvec *node_jobs; /* [node_jobs_n] */
    uint32_t node_jobs_n;
    struct shape *shapes; /* score caches by job shape */
    uint32_t nshapes;
    uint32_t *shape_hash;          /* shape index + 1; size 2 × MAX_SHAPES */
    double *frag_now;              /* fragmentation of each node's current state */
    uint32_t *frag_tag;            /* node version + 1 when frag_now was computed */
    uint32_t frag_n;               /* entries in frag_now/frag_tag */
    struct cluster_alloc *scratch; /* gang choices, [scratch_n] */
    uint32_t scratch_n;
    size_t live; /* placed jobs */
};

static const char *policy_names[] = {"first-fit", "best-fit", "fgd", "capx"};

const char *place_policy_name(enum place_policy p)
{
    return (unsigned)p < ARRAY_LEN(policy_names) ? policy_names[p] : "?";
}

int place_policy_parse(const char *name, enum place_policy *out)
{
    for (size_t i = 0; i < ARRAY_LEN(policy_names); i++) {
        if (strcmp(name, policy_names[i]) == 0) {
            *out = (enum place_policy)i;
            return 0;
        }
    }
    return -1;
}

static void set_err(char *err, size_t errlen, const char *msg)
{
    if (err && errlen) {
        size_t n = strlen(msg);
        if (n >= errlen)
            n = errlen - 1;
        memcpy(err, msg, n);
        err[n] = '\0';
    }
}

struct place *place_new(struct cluster *c, enum place_policy policy)
{
    struct place *p = xcalloc(1, sizeof(*p));
    p->c = c;
    p->policy = policy;
    p->free_head = NO_REC;
    p->hcap = 64;
    p->hash = xcalloc(p->hcap, sizeof(*p->hash));
    p->shape_hash = xcalloc(2 * MAX_SHAPES, sizeof(*p->shape_hash));
    p->shapes = xcalloc(MAX_SHAPES, sizeof(*p->shapes));
    place_params_default(&p->pp);
    return p;
}

void place_free(struct place *p)
{
    if (!p)
        return;
    for (uint32_t i = 0; i < p->nrecs; i++)
        free(p->recs[i].pj.allocs);
    free(p->recs);
    free(p->hash);
    for (uint32_t i = 0; i < p->node_jobs_n; i++)
        free(p->node_jobs[i].v);
    free(p->node_jobs);
    for (uint32_t i = 0; i < p->nshapes; i++)
        free(p->shapes[i].ent);
    free(p->shapes);
    free(p->shape_hash);
    free(p->frag_now);
    free(p->frag_tag);
    free(p->scratch);
    free(p->shares);
    if (p->have_w) {
        frag_workload_free(&p->w);
    }
    free(p);
}

/* The analytic hole table: hole[h] is the GPU milli expected to be wasted in
 * the end on a GPU left with h milli free. Each time, with probability P(a
 * typical share fits in h)^hole_exp (the chance the hole is refilled at all:
 * small holes wait for rare small shares), a share drawn from the workload's
 * shares that fit goes in; else the h milli are wasted. A whole free GPU is not
 * a hole (whole-GPU jobs use it). */
static void hole_analytic(struct place *p)
{
    double all = 0;
    for (int c = 0; c < p->w.n; c++)
        if (p->w.classes[c].gpus == 1 && p->w.classes[c].milli < CLUSTER_GPU_MILLI)
            all += p->w.classes[c].weight;
    for (int h = 0; h <= CLUSTER_GPU_MILLI; h++) {
        double fits = 0, refill = 0;
        for (int c = 0; c < p->w.n; c++) {
            const struct frag_class *k = &p->w.classes[c];
            if (k->gpus == 1 && k->milli > 0 && k->milli < CLUSTER_GPU_MILLI && k->milli <= h) {
                fits += k->weight;
                refill += k->weight * p->hole[h - k->milli];
            }
        }
        double q = all > 0 ? pow(fits / all, p->pp.hole_exp) : 0;
        p->hole[h] = fits > 0 ? (1 - q) * h + q * refill / fits : h;
    }
    p->hole[CLUSTER_GPU_MILLI] = 0;
}

static uint64_t splitmix64(uint64_t *s)
{
    uint64_t z = (*s += UINT64_C(0x9e3779b97f4a7c15));
    z = (z ^ (z >> 30)) * UINT64_C(0xbf58476d1ce4e5b9);
    z = (z ^ (z >> 27)) * UINT64_C(0x94d049bb133111eb);
    return z ^ (z >> 31);
}

/* Learns the hole table by packing the workload's own shares (averaged
 * policy iteration). One packing: `horizon` shares drawn from the workload
 * arrive one by one, each going to the open GPU where the current table says it
 * saves most (hole[f] - hole[f - m]), or to a fresh GPU (-hole[1000 - m], less
 * fresh_gpu / hole_w), ties to the fullest. When the packing ends, every GPU
 * that passed through h free contributes the free milli it ended with to h's
 * mean. hole_iters rounds of hole_streams packings each; after every round the
 * table becomes the mean over all packings so far, shrunk towards the analytic
 * table by hole_k pseudo counts (so h values rarely or never seen keep about
 * their analytic value). The table thus learns, for instance, that a 190-milli
 * hole beside an 810-milli share almost always stays (160-milli shares are too
 * few for them), and that a 530-milli hole is soon closed by a 470. */
static void hole_learn(struct place *p, size_t horizon)
{
    enum { G = CLUSTER_GPU_MILLI, WORDS = (G + 64) / 64 };
    double *H = p->hole, H0[G + 1], sum[G + 1] = {0}, cnt[G + 1] = {0};
    uint32_t head[G + 1];                               /* open GPUs by free milli: list heads */
    uint32_t *next = xmalloc(horizon * sizeof(*next));  /* list links */
    int32_t *gap = xmalloc(horizon * sizeof(*gap));     /* free milli of GPU b */
    uint32_t *tgpu = xmalloc(horizon * sizeof(*tgpu));  /* GPU share t went to */
    int32_t *tfree = xmalloc(horizon * sizeof(*tfree)); /* its free milli after */
    double fresh = p->pp.fresh_gpu / p->pp.hole_w;
    memcpy(H0, H, sizeof(H0));
    int iters = (int)p->pp.hole_iters, streams = (int)p->pp.hole_streams;
    for (int it = 0; it < iters; it++) {
        for (int st = 0; st < streams; st++) {
            uint64_t rng = UINT64_C(0x63617078686f6c65) + (uint64_t)(it * streams + st);
            uint64_t occ[WORDS] = {0}; /* bit f: some open GPU has f free */
            uint32_t ngpu = 0;
            for (int f = 0; f <= G; f++)
                head[f] = NO_REC;
            for (size_t t = 0; t < horizon; t++) {
                int32_t m = p->shares[splitmix64(&rng) % p->nshares];
                int best_f = -1;
                double best = -H[G - m] - fresh;
                for (int w = m / 64; w < WORDS; w++) {
                    uint64_t bits = occ[w];
                    if (w == m / 64)
                        bits &= ~UINT64_C(0) << (m % 64);
                    for (; bits; bits &= bits - 1) {
                        int f = w * 64 + __builtin_ctzll(bits);
                        double g = H[f] - H[f - m];
                        if (g > best || (best_f < 0 && g == best)) {
                            best = g;
                            best_f = f;
                        }
                    }
                }
                uint32_t b;
                if (best_f < 0) {
                    b = ngpu++;
                    gap[b] = G - m;
                } else {
                    b = head[best_f];
                    head[best_f] = next[b];
                    if (head[best_f] == NO_REC)
                        occ[best_f / 64] &= ~(UINT64_C(1) << (best_f % 64));
                    gap[b] -= m;
                }
                if (gap[b] > 0) {
                    next[b] = head[gap[b]];
                    head[gap[b]] = b;
                    occ[gap[b] / 64] |= UINT64_C(1) << (gap[b] % 64);
                }
                tgpu[t] = b;
                tfree[t] = gap[b];
            }
            for (size_t t = 0; t < horizon; t++) {
                if (tfree[t] > 0) {
                    sum[tfree[t]] += gap[tgpu[t]];
                    cnt[tfree[t]] += 1;
                }
            }
        }
        for (int h = 1; h < G; h++)
            if (cnt[h] + p->pp.hole_k > 0)
                H[h] = (sum[h] + p->pp.hole_k * H0[h]) / (cnt[h] + p->pp.hole_k);
    }
    free(next);
    free(gap);
    free(tgpu);
    free(tfree);
}

/* hole[h]: the GPU milli expected to be wasted in the end on a GPU left with h
 * milli free: the analytic table, then (hole_iters > 0) the one learned from
 * packing the workload's shares. A packing is as long as the shares that come
 * with one cluster's worth of the workload's GPU milli (the workload's share
 * count x cluster capacity / the workload's GPU milli; without nodes yet, the
 * workload's share count), times hole_horizon. */
static void hole_table(struct place *p)
{
    hole_analytic(p);
    if (p->pp.hole_iters < 1 || p->nshares == 0 || !(p->pp.hole_w > 0))
        return;
    double cap = (double)p->c->gpu_milli_total, n = (double)p->nshares;
    double len = p->pp.hole_horizon * (cap > 0 && p->sample_gpu > 0 ? n * cap / p->sample_gpu : n);
    hole_learn(p, len < 1 ? 1 : len > HOLE_MAX_HORIZON ? HOLE_MAX_HORIZON : (size_t)len);
}

int place_set_workload(struct place *p, const struct job_spec *jobs, size_t n)
{
    struct frag_workload w;
    if (frag_workload_build(&w, jobs, n) < 0)
        return -1;
    if (p->have_w)
        frag_workload_free(&p->w);
    p->w = w;
    p->have_w = true;
    /* what GPU work brings along per GPU milli (CPU-only jobs bring no GPU) */
    double cpu = 0, mem = 0, gpu = 0;
    for (size_t i = 0; i < n; i++) {
        if (jobs[i].gpus == 0)
            continue;
        cpu += (double)jobs[i].cpu_milli;
        mem += (double)jobs[i].mem_mib;
        gpu += (double)job_gpu_milli(&jobs[i]);
    }
    p->cpu_per_milli = gpu > 0 && cpu > 0 ? cpu / gpu : 1;
    p->mem_per_milli = gpu > 0 && mem > 0 ? mem / gpu : 1;
    free(p->shares);
    p->shares = xmalloc((n ? n : 1) * sizeof(*p->shares));
    p->nshares = 0;
    for (size_t i = 0; i < n; i++)
        if (jobs[i].gpus == 1 && !jobs[i].gang && jobs[i].gpu_milli > 0 &&
            jobs[i].gpu_milli < CLUSTER_GPU_MILLI)
            p->shares[p->nshares++] = jobs[i].gpu_milli;
    p->sample_gpu = gpu;
    hole_table(p);
    /* every cached score was computed against the old workload */
    for (uint32_t i = 0; i < p->nshapes; i++)
        memset(p->shapes[i].ent, 0, p->shapes[i].ent_n * sizeof(*p->shapes[i].ent));
    if (p->frag_tag)
        memset(p->frag_tag, 0, p->frag_n * sizeof(*p->frag_tag));
    return 0;
}

void place_params_default(struct place_params *pp)
{
    pp->quantize = 1;
    pp->scale = 1400.0;
    pp->cpu_strand = 3.0;
    pp->mem_strand = 1.5;
    pp->cpu_ratio = 0.8;
    pp->mem_ratio = 0.8;
    pp->fresh_gpu = 500.0;
    pp->leftover = 0.0;
    pp->hole_w = 3.0;
    pp->hole_exp = 0.2;
    pp->hole_iters = 20;
    pp->hole_streams = 16;
    pp->hole_k = 20;
    pp->hole_horizon = 1.0;
}

/* The parameter table: name, offset, bounds. */
static const struct {
    const char *name;
    size_t off;
    double min, max;
} param_table[] = {
    {"cpu_strand", offsetof(struct place_params, cpu_strand), 0, 1000},
    {"mem_strand", offsetof(struct place_params, mem_strand), 0, 1000},
    {"cpu_ratio", offsetof(struct place_params, cpu_ratio), 0.01, 100},
    {"mem_ratio", offsetof(struct place_params, mem_ratio), 0.01, 100},
    {"fresh_gpu", offsetof(struct place_params, fresh_gpu), 0, 1e6},
    {"leftover", offsetof(struct place_params, leftover), 0, 1000},
    {"scale", offsetof(struct place_params, scale), 1, 1e9},
    {"hole_w", offsetof(struct place_params, hole_w), 0, 1000},
    {"hole_exp", offsetof(struct place_params, hole_exp), 0, 100},
    {"hole_iters", offsetof(struct place_params, hole_iters), 0, 100},
    {"hole_streams", offsetof(struct place_params, hole_streams), 1, 1000},
    {"hole_k", offsetof(struct place_params, hole_k), 0, 1e9},
    {"hole_horizon", offsetof(struct place_params, hole_horizon), 0.001, 100},
};

int place_params_set(struct place_params *pp, const char *name, double value)
{
    if (strcmp(name, "quantize") == 0) {
        if (value != 0 && value != 1)
            return -1;
        pp->quantize = (int)value;
        return 0;
    }
    for (size_t i = 0; i < ARRAY_LEN(param_table); i++) {
        if (strcmp(name, param_table[i].name) == 0) {
            if (!(value >= param_table[i].min && value <= param_table[i].max))
                return -1;
            *(double *)((char *)pp + param_table[i].off) = value;
            return 0;
        }
    }
    return -1;
}

void place_set_params(struct place *p, const struct place_params *pp)
{
    p->pp = *pp;
    if (p->have_w)
        hole_table(p);
    for (uint32_t i = 0; i < p->nshapes; i++)
        memset(p->shapes[i].ent, 0, p->shapes[i].ent_n * sizeof(*p->shapes[i].ent));
}

struct cluster *place_cluster(struct place *p)
{
    return p->c;
}

size_t place_count(const struct place *p)
{
    return p->live;
}

/* ---- job table ---------------------------------------------------------- */

static uint32_t hash_u64(uint64_t x)
{
    x ^= x >> 33;
    x *= UINT64_C(0xff51afd7ed558ccd);
    x ^= x >> 33;
    x *= UINT64_C(0xc4ceb9fe1a85ec53);
    x ^= x >> 33;
    return (uint32_t)x;
}

static uint32_t find_slot(const struct place *p, uint64_t id)
{
    uint32_t m = p->hcap - 1;
    for (uint32_t s = hash_u64(id) & m;; s = (s + 1) & m) {
        if (p->hash[s] == 0 || p->recs[p->hash[s] - 1].pj.spec.id == id)
            return s;
    }
}

static void hash_grow(struct place *p)
{
    uint32_t *old = p->hash, oldcap = p->hcap;
    p->hcap *= 2;
    p->hash = xcalloc(p->hcap, sizeof(*p->hash));
    for (uint32_t i = 0; i < oldcap; i++)
        if (old[i])
            p->hash[find_slot(p, p->recs[old[i] - 1].pj.spec.id)] = old[i];
    free(old);
}

static void hash_del(struct place *p, uint32_t s)
{
    uint32_t m = p->hcap - 1;
    p->hash[s] = 0;
    for (uint32_t i = (s + 1) & m; p->hash[i]; i = (i + 1) & m) {
        uint32_t home = hash_u64(p->recs[p->hash[i] - 1].pj.spec.id) & m;
        /* move entry i back to s if s lies cyclically in [home, i) */
        if (((i - home) & m) >= ((i - s) & m)) {
            p->hash[s] = p->hash[i];
            p->hash[i] = 0;
            s = i;
        }
    }
    p->hcount--;
}

static struct rec *rec_get(const struct place *p, uint64_t id)
{
    uint32_t s = find_slot(p, id);
    return p->hash[s] ? &p->recs[p->hash[s] - 1] : NULL;
}

const struct place_job *place_lookup(const struct place *p, uint64_t id)
{
    struct rec *r = rec_get(p, id);
    return r ? &r->pj : NULL;
}

static void node_jobs_sync(struct place *p)
{
    if (p->node_jobs_n < p->c->nnodes) {
        p->node_jobs = xrealloc(p->node_jobs, p->c->nnodes * sizeof(*p->node_jobs));
        memset(p->node_jobs + p->node_jobs_n, 0,
               (p->c->nnodes - p->node_jobs_n) * sizeof(*p->node_jobs));
        p->node_jobs_n = p->c->nnodes;
    }
}

static void idvec_push(struct idvec *v, uint32_t x)
{
    if (v->n == v->cap) {
        v->cap = v->cap ? v->cap * 2 : 4;
        v->v = xrealloc(v->v, v->cap * sizeof(*v->v));
    }
    v->v[v->n++] = x;
}

static void idvec_del(struct idvec *v, uint32_t x)
{
    for (uint32_t i = 0; i < v->n; i++) {
        if (v->v[i] == x) {
            v->v[i] = v->v[--v->n];
            return;
        }
    }
    CAPX_ASSERT(!"record missing from its node's list");
}

/* Records the job as holding allocs[0..n) and takes that capacity. */
static void commit(struct place *p, const struct job_spec *j, const struct cluster_alloc *allocs,
                   uint32_t n)
{
    uint32_t idx;
    if (p->free_head != NO_REC) {
        idx = p->free_head;
        p->free_head = p->recs[idx].next_free;
    } else {
        if (p->nrecs == p->caprecs) {
            p->caprecs = p->caprecs ? p->caprecs * 2 : 64;
            p->recs = xrealloc(p->recs, p->caprecs * sizeof(*p->recs));
        }
        idx = p->nrecs++;
        p->recs[idx].pj.allocs = NULL;
    }
    struct rec *r = &p->recs[idx];
    r->live = true;
    r->pj.spec = *j;
    r->pj.nalloc = n;
    r->pj.allocs = xrealloc(r->pj.allocs, (n ? n : 1) * sizeof(*r->pj.allocs));
    if (n)
        memcpy(r->pj.allocs, allocs, n * sizeof(*allocs));
    if ((p->hcount + 1) * 2 > p->hcap)
        hash_grow(p);
    uint32_t s = find_slot(p, j->id);
    CAPX_ASSERT(p->hash[s] == 0);
    p->hash[s] = idx + 1;
    p->hcount++;
    node_jobs_sync(p);
    for (uint32_t i = 0; i < n; i++) {
        cluster_take_alloc(p->c, &allocs[i]);
        idvec_push(&p->node_jobs[allocs[i].node], idx);
    }
    p->live++;
}

int place_remove(struct place *p, uint64_t id)
{
    uint32_t s = find_slot(p, id);
    if (p->hash[s] == 0)
        return -1;
    uint32_t idx = p->hash[s] - 1;
    struct rec *r = &p->recs[idx];
    for (uint32_t i = 0; i < r->pj.nalloc; i++) {
        cluster_give_alloc(p->c, &r->pj.allocs[i]);
        idvec_del(&p->node_jobs[r->pj.allocs[i].node], idx);
    }
    hash_del(p, s);
    r->live = false;
    r->pj.nalloc = 0;
    r->next_free = p->free_head;
    p->free_head = idx;
    p->live--;
    return 0;
}

static int cmp_u64(const void *x, const void *y)
{
    uint64_t a = *(const uint64_t *)x, b = *(const uint64_t *)y;
    return a < b ? -1 : a > b;
}

size_t place_node_jobs(const struct place *p, uint32_t node, uint64_t *ids, size_t cap)
{
    if (node >= p->node_jobs_n)
        return 0;
    const struct idvec *v = &p->node_jobs[node];
    /* a job may hold several entries on one node only if it is listed once per
     * alloc; gangs take one alloc per node, so each id appears once */
    uint64_t *all = xmalloc((v->n ? v->n : 1) * sizeof(*all));
    for (uint32_t i = 0; i < v->n; i++)
        all[i] = p->recs[v->v[i]].pj.spec.id;
    qsort(all, v->n, sizeof(*all), cmp_u64);
    size_t n = v->n < cap ? v->n : cap;
    if (n)
        memcpy(ids, all, n * sizeof(*ids));
    free(all);
    return v->n;
}

/* Removes jobs on `node` (only those using `gpu` if gpu >= 0). */
static int evict(struct place *p, uint32_t node, int gpu, struct job_spec **evicted, size_t *nout)
{
    *evicted = NULL;
    *nout = 0;
    node_jobs_sync(p);
    const struct idvec *v = &p->node_jobs[node];
    uint64_t *ids = xmalloc((v->n ? v->n : 1) * sizeof(*ids));
    size_t n = 0;
    for (uint32_t i = 0; i < v->n; i++) {
        const struct place_job *pj = &p->recs[v->v[i]].pj;
        bool hit = gpu < 0;
        for (uint32_t a = 0; !hit && a < pj->nalloc; a++)
            if (pj->allocs[a].node == node && (pj->allocs[a].gpu_mask >> gpu) & 1u)
                hit = true;
        if (hit)
            ids[n++] = pj->spec.id;
    }
    qsort(ids, n, sizeof(*ids), cmp_u64);
    if (n) {
        *evicted = xmalloc(n * sizeof(**evicted));
        for (size_t i = 0; i < n; i++) {
            (*evicted)[i] = rec_get(p, ids[i])->pj.spec;
            int rc = place_remove(p, ids[i]);
            CAPX_ASSERT(rc == 0);
        }
    }
    *nout = n;
    free(ids);
    return 0;
}

int place_node_fail(struct place *p, uint32_t node, struct job_spec **evicted, size_t *n)
{
    *evicted = NULL;
    *n = 0;
    if (node >= p->c->nnodes)
        return -1;
    cluster_set_node_health(p->c, node, CLUSTER_FAILED);
    return evict(p, node, -1, evicted, n);
}

int place_gpu_fail(struct place *p, uint32_t node, int gpu, struct job_spec **evicted, size_t *n)
{
    *evicted = NULL;
    *n = 0;
    if (node >= p->c->nnodes || gpu < 0 || gpu >= p->c->nodes[node].ngpu)
        return -1;
    cluster_set_gpu_health(p->c, node, gpu, CLUSTER_FAILED);
    return evict(p, node, gpu, evicted, n);
}

void place_node_drain(struct place *p, uint32_t node)
{
    cluster_set_node_health(p->c, node, CLUSTER_DRAINING);
}

void place_node_restore(struct place *p, uint32_t node)
{
    cluster_set_node_health(p->c, node, CLUSTER_UP);
    for (int g = 0; g < p->c->nodes[node].ngpu; g++)
        cluster_set_gpu_health(p->c, node, g, CLUSTER_UP);
}

/* ---- fitting and scoring ------------------------------------------------ */

bool place_node_fits(const struct cluster_node *n, const struct job_spec *j)
{
    if (!cluster_node_usable(n) || !job_accepts_model(j, n->model))
        return false;
    if (n->cpu_free < j->cpu_milli || n->mem_free < j->mem_mib)
        return false;
    if (j->gpus == 0)
        return true;
    int fit = 0;
    for (int g = 0; g < n->ngpu; g++)
        if (cluster_gpu_usable(n, g) && n->gpu_free[g] >= j->gpu_milli)
            fit++;
    return fit >= j->gpus;
}

/* The GPUs a non-gang job takes on a node where it fits: a share goes to the
 * fullest GPU that holds it (lowest index on ties); whole GPUs via gang_pick_gpus
 * (one NVLink island when possible). */
static uint32_t default_mask(const struct cluster_node *n, const struct job_spec *j)
{
    if (j->gpus == 0)
        return 0;
    if (j->gpu_milli < CLUSTER_GPU_MILLI) {
        int best = -1;
        for (int g = 0; g < n->ngpu; g++)
            if (cluster_gpu_usable(n, g) && n->gpu_free[g] >= j->gpu_milli &&
                (best < 0 || n->gpu_free[g] < n->gpu_free[best]))
                best = g;
        CAPX_ASSERT(best >= 0);
        return 1u << best;
    }
    uint32_t m = gang_pick_gpus(n, j->gpus);
    CAPX_ASSERT(__builtin_popcount(m) == j->gpus);
    return m;
}

/* Free milli per GPU as the fragmentation measure sees it (unusable GPUs: 0). */
static void usable_free(const struct cluster_node *n, int32_t *out)
{
    for (int g = 0; g < n->ngpu; g++)
        out[g] = cluster_gpu_usable(n, g) ? n->gpu_free[g] : 0;
}

static double node_frag_now(struct place *p, uint32_t i)
{
    if (p->frag_n < p->c->nnodes) {
        p->frag_now = xrealloc(p->frag_now, p->c->nnodes * sizeof(*p->frag_now));
        p->frag_tag = xrealloc(p->frag_tag, p->c->nnodes * sizeof(*p->frag_tag));
        memset(p->frag_tag + p->frag_n, 0, (p->c->nnodes - p->frag_n) * sizeof(*p->frag_tag));
        p->frag_n = p->c->nnodes;
    }
    const struct cluster_node *n = &p->c->nodes[i];
    if (p->frag_tag[i] != n->version + 1) {
        int32_t f[CLUSTER_MAX_GPUS];
        usable_free(n, f);
        p->frag_now[i] = frag_node(&p->w, n->model, n->ngpu, f, n->cpu_free);
        p->frag_tag[i] = n->version + 1;
    }
    return p->frag_now[i];
}

/* Fragmentation of node n after j takes `mask` (and its CPU). */
static double frag_after(struct place *p, const struct cluster_node *n, const struct job_spec *j,
                         uint32_t mask)
{
    int32_t f[CLUSTER_MAX_GPUS];
    usable_free(n, f);
    for (int g = 0; g < n->ngpu; g++)
        if ((mask >> g) & 1u)
            f[g] -= j->gpu_milli;
    return frag_node(&p->w, n->model, n->ngpu, f, n->cpu_free - j->cpu_milli);
}

/* Whether an earlier usable GPU of n has the same free milli as GPU g: the
 * fragmentation after placing on either is the same, and the earlier one wins
 * ties, so g need not be tried. */
static bool same_as_earlier(const struct cluster_node *n, int g)
{
    for (int k = 0; k < g; k++)
        if (cluster_gpu_usable(n, k) && n->gpu_free[k] == n->gpu_free[g])
            return true;
    return false;
}

static double sigmoid(double x)
{
    return 1.0 / (1.0 + exp(-x));
}

static int64_t node_gpu_free_total(const struct cluster_node *n)
{
    int64_t t = 0;
    for (int g = 0; g < n->ngpu; g++)
        if (cluster_gpu_usable(n, g))
            t += n->gpu_free[g];
    return t;
}

static double best_fit_score(const struct cluster_node *n, const struct job_spec *j)
{
    double left = (double)(n->cpu_free - j->cpu_milli) / BF_MAX_CPU * 0.5 +
                  (double)(node_gpu_free_total(n) - job_gpu_milli(j)) / BF_MAX_GPU * 0.5;
    return (double)(int64_t)((1.0 - left) * 100.0);
}

/* FGD as published: for a share of a GPU every GPU that holds it is tried in
 * index order and the first best integer score wins. */
static double fgd_score(struct place *p, uint32_t i, const struct job_spec *j, uint32_t *mask)
{
    const struct cluster_node *n = &p->c->nodes[i];
    double before = node_frag_now(p, i);
    if (j->gpus == 1 && j->gpu_milli < CLUSTER_GPU_MILLI) {
        double best = NOT_FIT;
        for (int g = 0; g < n->ngpu; g++) {
            if (!cluster_gpu_usable(n, g) || n->gpu_free[g] < j->gpu_milli || same_as_earlier(n, g))
                continue;
            double after = frag_after(p, n, j, 1u << g);
            double s = (double)(int64_t)(sigmoid((before - after) / 1000.0) * 100.0);
            if (s > best) {
                best = s;
                *mask = 1u << g;
            }
        }
        return best;
    }
    *mask = default_mask(n, j);
    double after = frag_after(p, n, j, *mask);
    return (double)(int64_t)(sigmoid((before - after) / 1000.0) * 100.0);
}

/* GPU milli of a node state that the CPU (memory) left could not feed if the
 * rest of the node were filled with typical GPU work, which brings cpu_ratio ×
 * the workload's CPU per GPU milli (memory likewise) with each GPU milli. */
static double stranded(const struct place *p, int64_t gfree, int64_t cpu_free, int64_t mem_free)
{
    double s = 0;
    double r_cpu = p->cpu_per_milli * p->pp.cpu_ratio, r_mem = p->mem_per_milli * p->pp.mem_ratio;
    double by_cpu = (double)cpu_free / r_cpu, by_mem = (double)mem_free / r_mem;
    if ((double)gfree > by_cpu)
        s += p->pp.cpu_strand * ((double)gfree - by_cpu);
    if ((double)gfree > by_mem)
        s += p->pp.mem_strand * ((double)gfree - by_mem);
    return s;
}

/* capx's gain (higher is better) of j taking `mask` on node n: the fall in
 * FGD's fragmentation, plus the fall in GPU stranded for lack of CPU or memory,
 * and for a share: plus the fall in its GPU's expected hole waste, less the
 * cost of opening a fresh GPU and of the milli it leaves on its GPU. */
static double capx_gain(struct place *p, const struct cluster_node *n, const struct job_spec *j,
                        double frag_before, uint32_t mask)
{
    int64_t gfree = node_gpu_free_total(n);
    int64_t take = (int64_t)__builtin_popcount(mask) * j->gpu_milli;
    double gain = frag_before - frag_after(p, n, j, mask);
    gain += stranded(p, gfree, n->cpu_free, n->mem_free) -
            stranded(p, gfree - take, n->cpu_free - j->cpu_milli, n->mem_free - j->mem_mib);
    if (j->gpus == 1 && j->gpu_milli < CLUSTER_GPU_MILLI) {
        int g = __builtin_ctz(mask);
        gain -= p->pp.leftover * (double)(n->gpu_free[g] - j->gpu_milli);
        gain += p->pp.hole_w * (p->hole[n->gpu_free[g]] - p->hole[n->gpu_free[g] - j->gpu_milli]);
        if (n->gpu_free[g] == CLUSTER_GPU_MILLI)
            gain -= p->pp.fresh_gpu;
    }
    return gain;
}

/* capx: see docs/scheduler.md. Inside the node, the GPU with the highest exact
 * gain (fullest on ties); across nodes the gain is quantised like FGD's score
 * so that near-equal nodes go to the earliest one, which packs. */
static double capx_score(struct place *p, uint32_t i, const struct job_spec *j, uint32_t *mask)
{
    const struct cluster_node *n = &p->c->nodes[i];
    double before = node_frag_now(p, i), gain;
    if (j->gpus == 1 && j->gpu_milli < CLUSTER_GPU_MILLI) {
        int best_g = -1;
        gain = NOT_FIT;
        for (int g = 0; g < n->ngpu; g++) {
            if (!cluster_gpu_usable(n, g) || n->gpu_free[g] < j->gpu_milli || same_as_earlier(n, g))
                continue;
            double s = capx_gain(p, n, j, before, 1u << g);
            if (best_g < 0 || s > gain || (s == gain && n->gpu_free[g] < n->gpu_free[best_g])) {
                gain = s;
                best_g = g;
            }
        }
        *mask = 1u << best_g;
    } else {
        *mask = default_mask(n, j);
        gain = capx_gain(p, n, j, before, *mask);
    }
    if (p->pp.quantize)
        return (double)(int64_t)(sigmoid(gain / p->pp.scale) * 100.0);
    return gain;
}

/* Score of non-gang job j on node i (NOT_FIT if it does not fit) and its GPUs. */
static double score_node(struct place *p, uint32_t i, const struct job_spec *j, uint32_t *mask)
{
    const struct cluster_node *n = &p->c->nodes[i];
    *mask = 0;
    if (!place_node_fits(n, j))
        return NOT_FIT;
    enum place_policy pol = p->policy;
    if ((pol == PLACE_FGD || pol == PLACE_CAPX) && !p->have_w)
        pol = PLACE_BEST_FIT;
    switch (pol) {
    case PLACE_FIRST_FIT:
        *mask = default_mask(n, j);
        return 0;
    case PLACE_BEST_FIT:
        *mask = default_mask(n, j);
        return best_fit_score(n, j);
    case PLACE_FGD:
        return fgd_score(p, i, j, mask);
    case PLACE_CAPX:
        return capx_score(p, i, j, mask);
    }
    return NOT_FIT;
}

static uint32_t shape_hash(const struct job_spec *j)
{
    uint64_t h = (uint64_t)j->cpu_milli * 31 + (uint64_t)j->mem_mib;
    h = h * 31 + (uint64_t)j->gpus;
    h = h * 31 + (uint64_t)j->gpu_milli;
    h = h * 31 + j->models;
    return hash_u64(h);
}

/* The score cache of j's shape, or NULL when the table is full. */
static struct shape *shape_of(struct place *p, const struct job_spec *j)
{
    uint32_t m = 2 * MAX_SHAPES - 1;
    for (uint32_t s = shape_hash(j) & m;; s = (s + 1) & m) {
        if (p->shape_hash[s] == 0) {
            if (p->nshapes >= MAX_SHAPES)
                return NULL;
            struct shape *sh = &p->shapes[p->nshapes];
            sh->cpu = j->cpu_milli;
            sh->mem = j->mem_mib;
            sh->gpus = j->gpus;
            sh->milli = j->gpu_milli;
            sh->models = j->models;
            p->shape_hash[s] = ++p->nshapes;
            return sh;
        }
        struct shape *sh = &p->shapes[p->shape_hash[s] - 1];
        if (sh->cpu == j->cpu_milli && sh->mem == j->mem_mib && sh->gpus == j->gpus &&
            sh->milli == j->gpu_milli && sh->models == j->models)
            return sh;
    }
}

/* Best node for non-gang job j: -1 if none. */
static int choose_node(struct place *p, const struct job_spec *j, uint32_t *mask_out)
{
    struct shape *sh = shape_of(p, j);
    uint32_t nn = p->c->nnodes;
    if (sh && sh->ent_n < nn) {
        sh->ent = xrealloc(sh->ent, nn * sizeof(*sh->ent));
        memset(sh->ent + sh->ent_n, 0, (nn - sh->ent_n) * sizeof(*sh->ent));
        sh->ent_n = nn;
    }
    int best = -1;
    double best_s = NOT_FIT;
    uint32_t best_m = 0;
    const uint32_t *ver = p->c->versions;
    for (uint32_t i = 0; i < nn; i++) {
        double s;
        uint32_t m;
        if (sh) {
            struct score_ent *e = &sh->ent[i];
            if (e->tag != ver[i] + 1) {
                e->score = score_node(p, i, j, &e->mask);
                e->tag = ver[i] + 1;
            }
            s = e->score;
            m = e->mask;
        } else {
            s = score_node(p, i, j, &m);
        }
        if (s > best_s) {
            best_s = s;
            best = (int)i;
            best_m = m;
        }
    }
    *mask_out = best_m;
    return best;
}

static int plan(struct place *p, const struct job_spec *j, uint32_t *nalloc)
{
    if (p->scratch_n < p->c->nnodes + 1) {
        p->scratch_n = p->c->nnodes + 1;
        p->scratch = xrealloc(p->scratch, p->scratch_n * sizeof(*p->scratch));
    }
    if (j->gang)
        return gang_choose(p->c, j, p->scratch, nalloc);
    uint32_t mask;
    int node = choose_node(p, j, &mask);
    if (node < 0)
        return -1;
    p->scratch[0] = (struct cluster_alloc){(uint32_t)node, mask, j->gpus ? j->gpu_milli : 0,
                                           j->cpu_milli, j->mem_mib};
    *nalloc = 1;
    return 0;
}

bool place_fits(struct place *p, const struct job_spec *j)
{
    uint32_t n;
    char err[8];
    if (job_validate(j, err, sizeof(err)) < 0)
        return false;
    return plan(p, j, &n) == 0;
}

int place_job(struct place *p, const struct job_spec *j, char *err, size_t errlen)
{
    if (job_validate(j, err, errlen) < 0)
        return -1;
    if (rec_get(p, j->id)) {
        set_err(err, errlen, "a job with this id is already placed");
        return -1;
    }
    uint32_t n;
    if (plan(p, j, &n) < 0) {
        set_err(err, errlen, "does not fit");
        return -1;
    }
    struct job_spec spec = *j;
    if (spec.gang)
        spec.gpu_milli = CLUSTER_GPU_MILLI;
    commit(p, &spec, p->scratch, n);
    return 0;
}
