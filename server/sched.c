/*
 * sched.c — see sched.h: pools as clusters, contracts placed at their start, buyers' jobs on
 * their contract's GPUs, spot bids on unsold and lent GPUs, failures, re-placement and the
 * lost-GPU-hour record, all written in the market's turn and rebuilt from the database.
 *
 * Ownership: the pool's cluster counts what contracts and spot bids on unsold GPUs hold
 * (cluster_take/give). Jobs and spot bids on lent GPUs live inside a contract's GPUs: they are
 * recorded per node (`struct piece`) and checked against the contract's pieces; the cluster a
 * job is placed with is built from them for that one decision (small: a contract's nodes).
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/ids.h"
#include "common/timefmt.h"
#include "scheduler/cluster.h"
#include "scheduler/gang.h"
#include "scheduler/job.h"
#include "server/db.h"
#include "server/log.h"
#include "server/sched.h"

#define HOUR 3600

/* GPUs held on one node of the pool. */
struct piece {
    int32_t node;
    uint32_t mask;
    struct sctr *host; /* spot on lent GPUs: the lending contract; else NULL */
};

struct pieces {
    struct piece *v;
    int n, cap;
};

struct spool;

/* A contract as the scheduler sees it. */
struct sctr {
    struct contract *c;
    struct spool *sp;
    int active;         /* holds GPUs (placed at its start) */
    int pending;        /* turned active, to be placed at the end of the hour work */
    struct pieces pl;   /* its GPUs */
    int64_t missing;    /* GPUs lost to failures and not re-placed */
    struct sjob **jobs; /* in creation order */
    int njobs, capjobs;
    struct {
        int64_t hour, gpus;
    } * loss;
    int nloss, caploss;
    int dirty;
};

/* A buyer's job. */
struct sjob {
    char id[32];
    uint64_t seq;
    struct sctr *sc;
    int64_t gpus, hours; /* hours 0: until stopped or the contract ends */
    int gang;
    const char *status; /* running, queued, completed, stopped, failed */
    char reason[128];
    int64_t created, started, ended; /* -1: not yet */
    struct pieces pl;
    int dirty;
};

/* A running spot bid's GPUs. */
struct sspot {
    struct order *o;
    struct spool *sp;
    struct pieces pl;
    int dirty;
};

struct hfail {
    int32_t node, gpu;            /* gpu -1: the node */
    int64_t failed_at, repair_at; /* repair_at 0: by an operator */
};

struct spool {
    struct pool *p;
    struct cluster c;
    struct sctr **act; /* active contracts, by contract num */
    int nact, capact;
    struct sspot **spot; /* running spot bids, by order num */
    int nspot, capspot;
    struct hfail *fails;
    int nfails, capfails;
    int64_t free_cache; /* pool_unsold_free, valid while cache_ok */
    int cache_ok;       /* cleared by everything that moves the cluster's GPUs */
};

struct sched {
    struct market *m;
    struct hmap pools, ctrs, jobs, spots; /* by id */
    uint64_t next_seq;
    void **dirty; /* objects to write: tagged pointers (kind in the low bits) */
    int ndirty, capdirty;
    uint64_t rng;
    int64_t last_hour;
    int rng_dirty;
};

static struct {
    int64_t mtbf_h, repair_h, seed;
} cfg = {0, 24, 1};

/* The one market's scheduler: views (pool_json, contract_json) reach it through this. */
static struct sched *the;

void sched_configure(int64_t mtbf_h, int64_t repair_h, int64_t seed)
{
    cfg.mtbf_h = mtbf_h;
    cfg.repair_h = repair_h;
    cfg.seed = seed;
}

/* ---- small helpers ---- */

static int popc(uint32_t x)
{
    return __builtin_popcount(x);
}

static void pieces_add(struct pieces *p, int32_t node, uint32_t mask, struct sctr *host)
{
    for (int i = 0; i < p->n; i++)
        if (p->v[i].node == node && p->v[i].host == host) {
            CAPX_ASSERT((p->v[i].mask & mask) == 0);
            p->v[i].mask |= mask;
            return;
        }
    if (p->n == p->cap) {
        p->cap = p->cap ? p->cap * 2 : 4;
        p->v = xrealloc(p->v, (size_t)p->cap * sizeof *p->v);
    }
    p->v[p->n++] = (struct piece){node, mask, host};
}

static int64_t pieces_gpus(const struct pieces *p)
{
    int64_t n = 0;
    for (int i = 0; i < p->n; i++)
        n += popc(p->v[i].mask);
    return n;
}

static uint32_t pieces_mask(const struct pieces *p, int32_t node)
{
    uint32_t m = 0;
    for (int i = 0; i < p->n; i++)
        if (p->v[i].node == node)
            m |= p->v[i].mask;
    return m;
}

static int piece_cmp(const void *a, const void *b)
{
    const struct piece *x = a, *y = b;
    return (x->node > y->node) - (x->node < y->node);
}

/* [{"node", "gpus", "gpu_ids"}] by node (a holder's pieces on one node are merged). */
static json_t *pieces_json(const struct pieces *in)
{
    json_t *a = json_array();
    struct pieces tmp = {0}, *p = &tmp;
    for (int i = 0; i < in->n; i++)
        pieces_add(&tmp, in->v[i].node, in->v[i].mask, NULL);
    if (tmp.n > 1)
        qsort(tmp.v, (size_t)tmp.n, sizeof *tmp.v, piece_cmp);
    for (int i = 0; i < p->n; i++) {
        json_t *ids = json_array();
        for (int g = 0; g < 16; g++)
            if (p->v[i].mask & (1u << g))
                json_array_append_new(ids, json_integer(g));
        json_array_append_new(a, json_pack("{s:i,s:i,s:o}", "node", (int)p->v[i].node, "gpus",
                                           popc(p->v[i].mask), "gpu_ids", ids));
    }
    free(tmp.v);
    return a;
}

static json_t *ts(int64_t t)
{
    char b[CAPX_TIME_STRLEN];
    if (t < 0)
        return json_null();
    capx_time_format(t, b);
    return json_string(b);
}

static void fmt(char *b, int64_t v)
{
    snprintf(b, 24, "%" PRId64, v);
}

static uint32_t node_usable_mask(const struct cluster_node *n)
{
    uint32_t m = 0;
    for (int g = 0; g < n->ngpu; g++)
        if (cluster_gpu_usable(n, g))
            m |= 1u << g;
    return m;
}

/* The pool's cluster counts one holder per GPU taken, so that pieces can be split and merged
   freely (a failure gives back one GPU of a piece that was taken whole). */
static void take_mask(struct cluster *c, uint32_t node, uint32_t mask)
{
    for (int g = 0; mask >> g; g++)
        if (mask & (1u << g))
            cluster_take(c, node, 1u << g, CLUSTER_GPU_MILLI, 0, 0);
}

static void give_mask(struct cluster *c, uint32_t node, uint32_t mask)
{
    for (int g = 0; mask >> g; g++)
        if (mask & (1u << g))
            cluster_give(c, node, 1u << g, CLUSTER_GPU_MILLI, 0, 0);
}

/* ---- dirty objects, written at the end of each entry point ---- */

enum { D_CTR = 1, D_JOB = 2, D_SPOT = 3 };

static void mark(struct sched *s, void *obj, int kind, int *flag)
{
    if (*flag)
        return;
    *flag = 1;
    if (s->ndirty == s->capdirty) {
        s->capdirty = s->capdirty ? s->capdirty * 2 : 32;
        s->dirty = xrealloc(s->dirty, (size_t)s->capdirty * sizeof *s->dirty);
    }
    s->dirty[s->ndirty++] = (void *)((uintptr_t)obj | (uintptr_t)kind);
}

static void mark_ctr(struct sched *s, struct sctr *c)
{
    mark(s, c, D_CTR, &c->dirty);
}
static void mark_job(struct sched *s, struct sjob *j)
{
    mark(s, j, D_JOB, &j->dirty);
}
static void mark_spot(struct sched *s, struct sspot *x)
{
    mark(s, x, D_SPOT, &x->dirty);
}

static void write_pieces(struct market *m, const char *holder, const char *pool,
                         const struct pieces *p)
{
    const char *v[] = {holder};
    market_sql(m, "DELETE FROM placements WHERE holder_id = $1", 1, v);
    if (p->n == 0)
        return;
    size_t cap = (size_t)p->n * 48 + 8;
    char *nodes = xmalloc(cap), *masks = xmalloc(cap), *hosts = xmalloc(cap);
    size_t a = 0, b = 0, c = 0;
    a += (size_t)snprintf(nodes + a, cap - a, "{");
    b += (size_t)snprintf(masks + b, cap - b, "{");
    c += (size_t)snprintf(hosts + c, cap - c, "{");
    for (int i = 0; i < p->n; i++) {
        const char *sep = i ? "," : "";
        a += (size_t)snprintf(nodes + a, cap - a, "%s%d", sep, (int)p->v[i].node);
        b += (size_t)snprintf(masks + b, cap - b, "%s%u", sep, p->v[i].mask);
        c += (size_t)snprintf(hosts + c, cap - c, "%s%s", sep,
                              p->v[i].host ? p->v[i].host->c->o.id : "NULL");
    }
    snprintf(nodes + a, cap - a, "}");
    snprintf(masks + b, cap - b, "}");
    snprintf(hosts + c, cap - c, "}");
    const char *w[] = {holder, pool, nodes, masks, hosts};
    market_sql(m,
               "INSERT INTO placements (holder_id, pool_id, node, gpu_mask, host) SELECT $1, $2, "
               "n, g, h FROM unnest($3::int[], $4::int[], $5::text[]) AS u(n, g, h)",
               5, w);
    free(nodes);
    free(masks);
    free(hosts);
}

static void write_job(struct market *m, struct sjob *j)
{
    char seq[24], gpus[24], hours[24], cr[24], st[24], en[24];
    fmt(seq, (int64_t)j->seq);
    fmt(gpus, j->gpus);
    fmt(hours, j->hours);
    fmt(cr, j->created);
    fmt(st, j->started);
    fmt(en, j->ended);
    const char *v[] = {j->id,
                       seq,
                       j->sc->c->o.id,
                       j->sc->c->buyer->id,
                       gpus,
                       j->gang ? "t" : "f",
                       j->hours ? hours : NULL,
                       j->status,
                       j->reason[0] ? j->reason : NULL,
                       cr,
                       j->started >= 0 ? st : NULL,
                       j->ended >= 0 ? en : NULL};
    market_sql(m,
               "INSERT INTO jobs (id, seq, contract_id, account_id, gpus, gang, hours, status, "
               "reason, created_at, started_at, ended_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, "
               "$9, to_timestamp($10), to_timestamp($11), to_timestamp($12)) ON CONFLICT (id) DO "
               "UPDATE SET status = EXCLUDED.status, reason = EXCLUDED.reason, started_at = "
               "EXCLUDED.started_at, ended_at = EXCLUDED.ended_at",
               12, v);
    write_pieces(m, j->id, j->sc->sp->p->o.id, &j->pl);
}

static void write_losses(struct market *m, struct sctr *c)
{
    for (int i = 0; i < c->nloss; i++) {
        char h[24], g[24];
        fmt(h, c->loss[i].hour);
        fmt(g, c->loss[i].gpus);
        const char *v[] = {c->c->o.id, h, g};
        market_sql(m,
                   "INSERT INTO contract_losses (contract_id, hour, gpus) VALUES ($1, "
                   "to_timestamp($2), $3) ON CONFLICT (contract_id, hour) DO UPDATE SET gpus = "
                   "EXCLUDED.gpus",
                   3, v);
    }
}

static void flush_writes(struct sched *s)
{
    struct market *m = s->m;
    for (int i = 0; i < s->ndirty; i++) {
        uintptr_t t = (uintptr_t)s->dirty[i];
        int kind = (int)(t & 3);
        void *o = (void *)(t & ~(uintptr_t)3);
        if (kind == D_CTR) {
            struct sctr *c = o;
            c->dirty = 0;
            write_pieces(m, c->c->o.id, c->sp->p->o.id, &c->pl);
            write_losses(m, c);
        } else if (kind == D_JOB) {
            struct sjob *j = o;
            j->dirty = 0;
            write_job(m, j);
        } else {
            struct sspot *x = o;
            x->dirty = 0;
            write_pieces(m, x->o->o.id, x->sp->p->o.id, &x->pl);
            if (x->pl.n == 0 && strcmp(x->o->status, "running") != 0) {
                hmap_del(&s->spots, x->o->o.id);
                struct spool *sp = x->sp;
                for (int k = 0; k < sp->nspot; k++)
                    if (sp->spot[k] == x) {
                        memmove(sp->spot + k, sp->spot + k + 1,
                                (size_t)(sp->nspot - k - 1) * sizeof *sp->spot);
                        sp->nspot--;
                        break;
                    }
                free(x->pl.v);
                free(x);
            }
        }
    }
    s->ndirty = 0;
    if (s->rng_dirty) {
        char r[24], h[24];
        fmt(r, (int64_t)s->rng);
        fmt(h, s->last_hour);
        const char *v[] = {r, h};
        market_sql(m,
                   "INSERT INTO sched_state (one, rng, last_hour) VALUES (true, $1, $2) ON "
                   "CONFLICT (one) DO UPDATE SET rng = EXCLUDED.rng, last_hour = "
                   "EXCLUDED.last_hour",
                   2, v);
        s->rng_dirty = 0;
    }
}

/* ---- state ---- */

struct sched *sched_new(struct market *m)
{
    struct sched *s = xcalloc(1, sizeof *s);
    s->m = m;
    hmap_init(&s->pools);
    hmap_init(&s->ctrs);
    hmap_init(&s->jobs);
    hmap_init(&s->spots);
    s->next_seq = 1;
    s->rng = (uint64_t)cfg.seed * 0x9E3779B97F4A7C15ull + 1;
    s->last_hour = -1;
    the = s;
    return s;
}

void sched_free(struct sched *s)
{
    if (!s)
        return;
    size_t i = 0;
    const char *k;
    void *v;
    while (hmap_next(&s->pools, &i, &k, &v)) {
        struct spool *sp = v;
        cluster_free(&sp->c);
        free(sp->act);
        free(sp->spot);
        free(sp->fails);
        free(sp);
    }
    i = 0;
    while (hmap_next(&s->ctrs, &i, &k, &v)) {
        struct sctr *c = v;
        free(c->pl.v);
        free(c->jobs);
        free(c->loss);
        free(c);
    }
    i = 0;
    while (hmap_next(&s->jobs, &i, &k, &v)) {
        struct sjob *j = v;
        free(j->pl.v);
        free(j);
    }
    i = 0;
    while (hmap_next(&s->spots, &i, &k, &v)) {
        struct sspot *x = v;
        free(x->pl.v);
        free(x);
    }
    hmap_free(&s->pools);
    hmap_free(&s->ctrs);
    hmap_free(&s->jobs);
    hmap_free(&s->spots);
    free(s->dirty);
    if (the == s)
        the = NULL;
    free(s);
}

static struct sched *S(struct market *m)
{
    UNUSED(m);
    CAPX_ASSERT(the);
    return the;
}

static struct spool *spool_of(struct sched *s, struct pool *p)
{
    struct spool *sp = hmap_get(&s->pools, p->o.id);
    if (sp)
        return sp;
    sp = xcalloc(1, sizeof *sp);
    sp->p = p;
    cluster_init(&sp->c);
    int model = cluster_model(&sp->c, "gpu", 3);
    CAPX_ASSERT(model == 0);
    char err[128];
    for (int64_t i = 0; i < p->nodes; i++) {
        struct cluster_node_spec ns = {model,
                                       (int)p->gpus_per_node,
                                       0,
                                       (int)(i / p->nodes_per_rack),
                                       INT64_C(1) << 30,
                                       INT64_C(1) << 30};
        if (cluster_add_node(&sp->c, &ns, err, sizeof err) < 0)
            capx_fatal("pool %s: %s", p->o.id, err);
    }
    hmap_put(&s->pools, p->o.id, sp);
    return sp;
}

static struct sctr *sctr_of(struct sched *s, struct contract *c)
{
    struct sctr *sc = hmap_get(&s->ctrs, c->o.id);
    if (sc)
        return sc;
    sc = xcalloc(1, sizeof *sc);
    sc->c = c;
    sc->sp = spool_of(s, c->pool);
    hmap_put(&s->ctrs, c->o.id, sc);
    return sc;
}

static struct sspot *sspot_of(struct sched *s, struct order *o, struct pool *p)
{
    struct sspot *x = hmap_get(&s->spots, o->o.id);
    if (x)
        return x;
    x = xcalloc(1, sizeof *x);
    x->o = o;
    x->sp = spool_of(s, p);
    hmap_put(&s->spots, o->o.id, x);
    struct spool *sp = x->sp;
    if (sp->nspot == sp->capspot) {
        sp->capspot = sp->capspot ? sp->capspot * 2 : 8;
        sp->spot = xrealloc(sp->spot, (size_t)sp->capspot * sizeof *sp->spot);
    }
    int k = sp->nspot;
    while (k > 0 && sp->spot[k - 1]->o->o.num > o->o.num) {
        sp->spot[k] = sp->spot[k - 1];
        k--;
    }
    sp->spot[k] = x;
    sp->nspot++;
    return x;
}

static void act_add(struct spool *sp, struct sctr *c)
{
    for (int i = 0; i < sp->nact; i++)
        if (sp->act[i] == c)
            return;
    if (sp->nact == sp->capact) {
        sp->capact = sp->capact ? sp->capact * 2 : 8;
        sp->act = xrealloc(sp->act, (size_t)sp->capact * sizeof *sp->act);
    }
    int k = sp->nact;
    while (k > 0 && sp->act[k - 1]->c->o.num > c->c->o.num) {
        sp->act[k] = sp->act[k - 1];
        k--;
    }
    sp->act[k] = c;
    sp->nact++;
}

static void act_del(struct spool *sp, struct sctr *c)
{
    for (int i = 0; i < sp->nact; i++)
        if (sp->act[i] == c) {
            memmove(sp->act + i, sp->act + i + 1, (size_t)(sp->nact - i - 1) * sizeof *sp->act);
            sp->nact--;
            return;
        }
}

static int lending(const struct sctr *c)
{
    return c->active && c->c->order->lend_idle;
}

/* GPUs of the contract its running jobs use on a node. */
static uint32_t jobs_mask(const struct sctr *c, int32_t node)
{
    uint32_t m = 0;
    for (int i = 0; i < c->njobs; i++)
        if (c->jobs[i]->status[0] == 'r')
            m |= pieces_mask(&c->jobs[i]->pl, node);
    return m;
}

/* GPUs of the contract spot bids use on a node (lent). */
static uint32_t lent_mask(const struct sctr *c, int32_t node)
{
    uint32_t m = 0;
    for (int i = 0; i < c->sp->nspot; i++) {
        const struct pieces *p = &c->sp->spot[i]->pl;
        for (int k = 0; k < p->n; k++)
            if (p->v[k].host == c && p->v[k].node == node)
                m |= p->v[k].mask;
    }
    return m;
}

static int64_t jobs_gpus(const struct sctr *c)
{
    int64_t n = 0;
    for (int i = 0; i < c->njobs; i++)
        if (c->jobs[i]->status[0] == 'r')
            n += pieces_gpus(&c->jobs[i]->pl);
    return n;
}

/* ---- losses ---- */

static void record_loss(struct sched *s, struct sctr *c, int64_t hour, int64_t gpus)
{
    if (gpus <= 0)
        return;
    if (gpus > c->c->gpus)
        gpus = c->c->gpus;
    for (int i = 0; i < c->nloss; i++)
        if (c->loss[i].hour == hour) {
            if (c->loss[i].gpus >= gpus)
                return;
            market_contract_loss(c->c, hour, gpus - c->loss[i].gpus); /* for settlement */
            c->loss[i].gpus = gpus;
            mark_ctr(s, c);
            return;
        }
    if (c->nloss == c->caploss) {
        c->caploss = c->caploss ? c->caploss * 2 : 8;
        c->loss = xrealloc(c->loss, (size_t)c->caploss * sizeof *c->loss);
    }
    market_contract_loss(c->c, hour, gpus); /* settlement refunds it */
    c->loss[c->nloss].hour = hour;
    c->loss[c->nloss].gpus = gpus;
    c->nloss++;
    mark_ctr(s, c);
}

/* ---- taking GPUs of the pool ---- */

/* Takes up to k free usable GPUs of the pool for `out`: nodes of rack `rack` first (most free
   first) when rack >= 0, then fewest racks and whole nodes first (gang_choose). Returns the
   number taken. */
static int64_t take_gpus(struct spool *sp, int64_t k, int rack, struct pieces *out)
{
    struct cluster *c = &sp->c;
    sp->cache_ok = 0;
    int64_t got = 0;
    if (rack >= 0) {
        uint32_t first = (uint32_t)(rack * sp->p->nodes_per_rack);
        uint32_t last = first + (uint32_t)sp->p->nodes_per_rack;
        while (got < k) {
            int bestn, best = gang_most_free_node(c, first, last, &bestn);
            if (best < 0)
                break;
            int want = (int)(k - got < bestn ? k - got : bestn);
            uint32_t mask = gang_pick_gpus(&c->nodes[best], want);
            if (!mask)
                break;
            take_mask(c, (uint32_t)best, mask);
            pieces_add(out, best, mask, NULL);
            got += popc(mask);
        }
    }
    struct cluster_alloc *al = xmalloc((size_t)c->nnodes * sizeof *al);
    while (got < k) {
        int64_t avail = 0;
        for (uint32_t i = 0; i < c->nnodes; i++)
            avail += popc(gang_free_mask(&c->nodes[i]));
        int64_t want = k - got < avail ? k - got : avail;
        if (want > JOB_MAX_GPUS)
            want = JOB_MAX_GPUS;
        if (want <= 0)
            break;
        struct job_spec j = {.id = 1,
                             .gpus = (int32_t)want,
                             .gpu_milli = CLUSTER_GPU_MILLI,
                             .gang = true,
                             .prio = JOB_RESERVATION};
        uint32_t n = 0;
        if (gang_choose(c, &j, al, &n) < 0)
            break;
        for (uint32_t i = 0; i < n; i++) {
            take_mask(c, al[i].node, al[i].gpu_mask);
            pieces_add(out, (int32_t)al[i].node, al[i].gpu_mask, NULL);
            got += popc(al[i].gpu_mask);
        }
    }
    free(al);
    return got;
}

static void give_pieces(struct spool *sp, struct pieces *p)
{
    sp->cache_ok = 0;
    for (int i = 0; i < p->n; i++)
        if (!p->v[i].host)
            give_mask(&sp->c, (uint32_t)p->v[i].node, p->v[i].mask);
    p->n = 0;
}

/* Drops every spot placement on the pool's unsold GPUs (they are re-made by sync_spot). */
static void strip_spot(struct sched *s, struct spool *sp)
{
    sp->cache_ok = 0;
    for (int i = 0; i < sp->nspot; i++) {
        struct sspot *x = sp->spot[i];
        int changed = 0;
        for (int k = 0; k < x->pl.n;) {
            if (!x->pl.v[k].host) {
                give_mask(&sp->c, (uint32_t)x->pl.v[k].node, x->pl.v[k].mask);
                x->pl.v[k] = x->pl.v[--x->pl.n];
                changed = 1;
            } else {
                k++;
            }
        }
        if (changed)
            mark_spot(s, x);
    }
}

/* ---- a contract's own GPUs as a cluster, for one decision ---- */

struct sub {
    struct cluster c;
    int32_t *pool_node; /* sub node -> pool node */
};

/* The contract's healthy GPUs, less what its running jobs hold (and lent spot, if asked). */
static void sub_build(struct sub *u, const struct sctr *sc, int with_spot)
{
    const struct spool *sp = sc->sp;
    cluster_init(&u->c);
    int model = cluster_model(&u->c, "gpu", 3);
    CAPX_ASSERT(model == 0);
    u->pool_node = xmalloc((size_t)(sc->pl.n ? sc->pl.n : 1) * sizeof *u->pool_node);
    char err[128];
    for (int i = 0; i < sc->pl.n; i++) {
        const struct cluster_node *pn = &sp->c.nodes[sc->pl.v[i].node];
        struct cluster_node_spec ns = {model,    pn->ngpu,         0,
                                       pn->rack, INT64_C(1) << 30, INT64_C(1) << 30};
        int idx = cluster_add_node(&u->c, &ns, err, sizeof err);
        CAPX_ASSERT(idx == i);
        u->pool_node[i] = sc->pl.v[i].node;
        uint32_t own = sc->pl.v[i].mask & node_usable_mask(pn);
        uint32_t busy = jobs_mask(sc, sc->pl.v[i].node);
        if (with_spot)
            busy |= lent_mask(sc, sc->pl.v[i].node);
        uint32_t all = (pn->ngpu >= 32) ? 0xffffffffu : ((1u << pn->ngpu) - 1);
        uint32_t take = (all & ~own) | (busy & own);
        if (take)
            cluster_take(&u->c, (uint32_t)i, take, CLUSTER_GPU_MILLI, 0, 0);
    }
}

static void sub_free(struct sub *u)
{
    cluster_free(&u->c);
    free(u->pool_node);
}

static int64_t sub_free_gpus(const struct sub *u)
{
    int64_t n = 0;
    for (uint32_t i = 0; i < u->c.nnodes; i++)
        n += popc(gang_free_mask(&u->c.nodes[i]));
    return n;
}

/* Chooses k GPUs in the sub-cluster: a gang (anywhere, fewest racks, packed) or one node (the
   fullest that holds it). 0 with out filled (pool nodes), -1 if it does not fit. */
static int sub_choose(struct sub *u, int64_t k, int gang, struct sctr *host, struct pieces *out)
{
    if (k <= 0)
        return 0;
    if (!gang) {
        int best = -1, bestf = 1 << 30;
        for (uint32_t i = 0; i < u->c.nnodes; i++) {
            int f = popc(gang_free_mask(&u->c.nodes[i]));
            if (f >= k && f < bestf) {
                best = (int)i;
                bestf = f;
            }
        }
        if (best < 0)
            return -1;
        uint32_t mask = gang_pick_gpus(&u->c.nodes[best], (int)k);
        if (!mask)
            return -1;
        cluster_take(&u->c, (uint32_t)best, mask, CLUSTER_GPU_MILLI, 0, 0);
        pieces_add(out, u->pool_node[best], mask, host);
        return 0;
    }
    if (sub_free_gpus(u) < k)
        return -1;
    struct cluster_alloc *al = xmalloc((size_t)(u->c.nnodes ? u->c.nnodes : 1) * sizeof *al);
    int rc = 0;
    int64_t left = k;
    while (left > 0) {
        int64_t want = left > JOB_MAX_GPUS ? JOB_MAX_GPUS : left;
        struct job_spec j = {.id = 1,
                             .gpus = (int32_t)want,
                             .gpu_milli = CLUSTER_GPU_MILLI,
                             .gang = true,
                             .prio = JOB_RESERVATION};
        uint32_t n = 0;
        if (gang_choose(&u->c, &j, al, &n) < 0) {
            rc = -1;
            break;
        }
        for (uint32_t i = 0; i < n; i++) {
            cluster_take(&u->c, al[i].node, al[i].gpu_mask, CLUSTER_GPU_MILLI, 0, 0);
            pieces_add(out, u->pool_node[al[i].node], al[i].gpu_mask, host);
            left -= popc(al[i].gpu_mask);
        }
    }
    free(al);
    return rc;
}

/* ---- spot ---- */

/* Unsold healthy GPUs of the pool not held by a contract (spot on them counts as free). */
static int64_t pool_unsold_free(struct spool *sp)
{
    if (sp->cache_ok)
        return sp->free_cache;
    int64_t n = 0;
    for (uint32_t i = 0; i < sp->c.nnodes; i++)
        n += popc(gang_free_mask(&sp->c.nodes[i]));
    for (int i = 0; i < sp->nspot; i++)
        for (int k = 0; k < sp->spot[i]->pl.n; k++)
            if (!sp->spot[i]->pl.v[k].host)
                n += popc(sp->spot[i]->pl.v[k].mask &
                          node_usable_mask(&sp->c.nodes[sp->spot[i]->pl.v[k].node]));
    sp->free_cache = n;
    sp->cache_ok = 1;
    return n;
}

static int64_t ctr_lent(const struct sctr *c)
{
    if (!lending(c))
        return 0;
    int64_t own = 0;
    for (int i = 0; i < c->pl.n; i++)
        own += popc(c->pl.v[i].mask & node_usable_mask(&c->sp->c.nodes[c->pl.v[i].node]));
    int64_t l = own - jobs_gpus(c);
    return l > 0 ? l : 0;
}

void sched_spot_supply(struct market *m, struct pool *p, int64_t t, int32_t *idle, int32_t *lent)
{
    struct sched *s = S(m);
    struct spool *sp = spool_of(s, p);
    int64_t notice = market_app(m)->cfg.preempt_notice_s;
    int64_t free = pool_unsold_free(sp), l = 0;
    for (int i = 0; i < sp->nact; i++) {
        free -= sp->act[i]->missing;
        l += ctr_lent(sp->act[i]);
    }
    /* Contracts starting within the notice (or placed at the end of this hour's work). */
    uint64_t cur = 0;
    struct obj *o;
    while ((o = market_next(m, OBJ_CONTRACT, &cur)) != NULL) {
        struct contract *c = (struct contract *)o;
        if (c->pool != p || strcmp(c->status, "cancelled") == 0 || c->end <= t)
            continue;
        struct sctr *sc = hmap_get(&s->ctrs, c->o.id);
        if (sc && sc->active && !sc->pending)
            continue;
        if (c->start <= t + notice)
            free -= c->gpus;
    }
    *idle = (int32_t)(free > 0 ? free : 0);
    *lent = (int32_t)l;
}

/* The engine learns the pool's spot supply now; it preempts by its own priority. */
static void reclaim(struct sched *s, struct spool *sp, int64_t t)
{
    struct market *m = s->m;
    if (!sp->p->spot_offer)
        return;
    int32_t idle, lent;
    sched_spot_supply(m, sp->p, t, &idle, &lent);
    int64_t cap = sp->p->spot_offer->gpus;
    int64_t avail = (idle < cap ? idle : cap) + lent;
    if (engine_spot_reclaim(market_engine(m), t, sp->p->o.num, (int32_t)avail) == 0)
        market_apply_events(m);
}

/* Re-makes spot placements of the pool: pieces no longer valid go, running bids get the rest
   of their GPUs on unsold GPUs (up to the spot offer) and then on lent ones. */
static void sync_spot(struct sched *s, struct spool *sp)
{
    sp->cache_ok = 0;
    /* 1. Invalid pieces. */
    for (int i = 0; i < sp->nspot; i++) {
        struct sspot *x = sp->spot[i];
        int running = !strcmp(x->o->status, "running") && x->o->running_pool == sp->p;
        int changed = 0;
        for (int k = 0; k < x->pl.n;) {
            struct piece *pc = &x->pl.v[k];
            const struct cluster_node *n = &sp->c.nodes[pc->node];
            int ok = running && (pc->mask & ~node_usable_mask(n)) == 0;
            if (ok && pc->host)
                ok = lending(pc->host) && (pc->mask & ~pieces_mask(&pc->host->pl, pc->node)) == 0 &&
                     (pc->mask & jobs_mask(pc->host, pc->node)) == 0;
            if (ok) {
                k++;
                continue;
            }
            if (!pc->host)
                give_mask(&sp->c, (uint32_t)pc->node, pc->mask);
            *pc = x->pl.v[--x->pl.n];
            changed = 1;
        }
        if (changed || !running)
            mark_spot(s, x);
    }
    /* 2. Missing GPUs of running bids. */
    int64_t budget = 0;
    if (sp->p->spot_offer) {
        budget = sp->p->spot_offer->gpus;
        for (int i = 0; i < sp->nspot; i++)
            for (int k = 0; k < sp->spot[i]->pl.n; k++)
                if (!sp->spot[i]->pl.v[k].host)
                    budget -= popc(sp->spot[i]->pl.v[k].mask);
    }
    for (int i = 0; i < sp->nspot; i++) {
        struct sspot *x = sp->spot[i];
        if (strcmp(x->o->status, "running") || x->o->running_pool != sp->p)
            continue;
        int64_t need = x->o->gpus - pieces_gpus(&x->pl);
        if (need <= 0)
            continue;
        int64_t k = need < budget ? need : budget;
        if (k > 0) {
            int64_t got = take_gpus(sp, k, -1, &x->pl);
            budget -= got;
            need -= got;
        }
        for (int a = 0; a < sp->nact && need > 0; a++) {
            struct sctr *host = sp->act[a];
            if (!lending(host))
                continue;
            struct sub u;
            sub_build(&u, host, 1);
            int64_t f = sub_free_gpus(&u);
            int64_t want = need < f ? need : f;
            if (want > 0 && sub_choose(&u, want, 1, host, &x->pl) == 0)
                need -= want;
            sub_free(&u);
        }
        if (need > 0)
            log_warn("msg=\"spot bid short of GPUs\" order=%s pool=%s gpus=%" PRId64, x->o->o.id,
                     sp->p->o.id, need);
        mark_spot(s, x);
    }
}

/* ---- jobs ---- */

static void job_end(struct sched *s, struct sjob *j, const char *status, int64_t t,
                    const char *reason)
{
    j->status = status;
    j->ended = t;
    if (reason)
        snprintf(j->reason, sizeof j->reason, "%s", reason);
    j->pl.n = 0;
    mark_job(s, j);
}

/* Places a job on its contract's GPUs, taking lent GPUs if it must (their spot bids are then
   re-placed or preempted). 0 placed, -1 it does not fit. */
static int job_place(struct sched *s, struct sjob *j, int64_t t, int settle)
{
    struct sctr *c = j->sc;
    struct pieces pl = {0};
    struct sub u;
    sub_build(&u, c, 1);
    int rc = sub_choose(&u, j->gpus, j->gang, NULL, &pl);
    sub_free(&u);
    int took_lent = 0;
    if (rc < 0) {
        pl.n = 0;
        sub_build(&u, c, 0);
        rc = sub_choose(&u, j->gpus, j->gang, NULL, &pl);
        sub_free(&u);
        took_lent = rc == 0;
    }
    if (rc < 0) {
        free(pl.v);
        return -1;
    }
    free(j->pl.v);
    j->pl = pl;
    j->status = "running";
    j->started = t;
    mark_job(s, j);
    if (settle && (took_lent || lending(c))) {
        reclaim(s, c->sp, t);
        sync_spot(s, c->sp);
    }
    return 0;
}

/* Starts queued jobs of a contract that fit now, first come first served (a job that does not
   fit does not block smaller ones behind it). */
static void start_queued(struct sched *s, struct sctr *c, int64_t t, int settle)
{
    for (int i = 0; i < c->njobs; i++) {
        struct sjob *j = c->jobs[i];
        if (!strcmp(j->status, "queued"))
            (void)job_place(s, j, t, settle);
    }
}

/* Jobs whose hours ran out by t complete at their own end time. */
static void expire_jobs(struct sched *s, struct sctr *c, int64_t t)
{
    int freed = 0;
    for (int i = 0; i < c->njobs; i++) {
        struct sjob *j = c->jobs[i];
        if (!strcmp(j->status, "running") && j->hours && j->started + j->hours * HOUR <= t) {
            job_end(s, j, "completed", j->started + j->hours * HOUR, NULL);
            freed = 1;
        }
    }
    if (freed) {
        start_queued(s, c, t, 1);
        if (lending(c))
            sync_spot(s, c->sp); /* spot supply grows at the next round */
    }
}

/* ---- contracts ---- */

/* Gives a contract the GPUs it lacks (after a failure, a repair or at its start). */
static void fill_contract(struct sched *s, struct sctr *c, int64_t want, int rack)
{
    if (want <= 0)
        return;
    int64_t got = take_gpus(c->sp, want, rack, &c->pl);
    c->missing = c->c->gpus - pieces_gpus(&c->pl);
    if (c->missing < 0)
        c->missing = 0;
    UNUSED(got);
    mark_ctr(s, c);
}

static void place_contract(struct sched *s, struct sctr *c, int64_t t)
{
    struct spool *sp = c->sp;
    c->pending = 0;
    strip_spot(s, sp);
    fill_contract(s, c, c->c->gpus - pieces_gpus(&c->pl), -1);
    if (c->missing > 0) {
        log_warn("msg=\"contract short of healthy GPUs at its start\" contract=%s missing=%" PRId64,
                 c->c->o.id, c->missing);
        record_loss(s, c, t / HOUR * HOUR, c->missing);
    }
    mark_ctr(s, c);
}

void sched_contract_started(struct market *m, struct contract *c, int64_t t)
{
    struct sched *s = S(m);
    struct sctr *sc = sctr_of(s, c);
    UNUSED(t);
    if (sc->active)
        return;
    sc->active = 1;
    sc->pending = 1;
    act_add(sc->sp, sc);
}

void sched_contract_ended(struct market *m, struct contract *c, int64_t t)
{
    struct sched *s = S(m);
    struct sctr *sc = hmap_get(&s->ctrs, c->o.id);
    if (!sc)
        return;
    for (int i = 0; i < sc->njobs; i++) {
        struct sjob *j = sc->jobs[i];
        if (!strcmp(j->status, "running"))
            job_end(s, j, "completed", c->end < t ? c->end : t, "the contract ended");
        else if (!strcmp(j->status, "queued"))
            job_end(s, j, "stopped", c->end < t ? c->end : t, "the contract ended first");
    }
    if (sc->active) {
        give_pieces(sc->sp, &sc->pl);
        sc->active = 0;
        sc->pending = 0;
        sc->missing = 0;
        act_del(sc->sp, sc);
        mark_ctr(s, sc);
        reclaim(s, sc->sp, t); /* its lent GPUs are no longer spot supply */
        sync_spot(s, sc->sp);
    }
    flush_writes(s);
}

/* ---- failures ---- */

static struct hfail *find_fail(struct spool *sp, int32_t node, int32_t gpu)
{
    for (int i = 0; i < sp->nfails; i++)
        if (sp->fails[i].node == node && sp->fails[i].gpu == gpu)
            return &sp->fails[i];
    return NULL;
}

static void write_fail(struct market *m, struct spool *sp, const struct hfail *f, int add)
{
    char node[24], gpu[24], fa[24], ra[24];
    fmt(node, f->node);
    fmt(gpu, f->gpu);
    fmt(fa, f->failed_at);
    fmt(ra, f->repair_at);
    if (add) {
        const char *v[] = {sp->p->o.id, node, gpu, fa, f->repair_at ? ra : NULL};
        market_sql(m,
                   "INSERT INTO node_health (pool_id, node, gpu, failed_at, repair_at) VALUES "
                   "($1, $2, $3, to_timestamp($4), to_timestamp($5)) ON CONFLICT DO NOTHING",
                   5, v);
    } else {
        const char *v[] = {sp->p->o.id, node, gpu};
        market_sql(m, "DELETE FROM node_health WHERE pool_id = $1 AND node = $2 AND gpu = $3", 3,
                   v);
    }
}

/* Everything placed on GPUs `mask` of `node` (which just failed) comes off; contracts are
   re-placed on healthy unsold GPUs of the pool (same rack first), jobs on their contract's
   GPUs, or marked failed. */
static void evict(struct sched *s, struct spool *sp, int32_t node, uint32_t mask, int64_t t,
                  const char *what)
{
    int rack = sp->c.nodes[node].rack;
    char reason[128];
    sp->cache_ok = 0;
    snprintf(reason, sizeof reason, "%s failed", what);
    strip_spot(s, sp);
    for (int a = 0; a < sp->nact; a++) {
        struct sctr *c = sp->act[a];
        uint32_t hit = pieces_mask(&c->pl, node) & mask;
        if (!hit)
            continue;
        /* Jobs on the failed GPUs come off first. */
        struct sjob **evicted = xmalloc((size_t)(c->njobs ? c->njobs : 1) * sizeof *evicted);
        int nev = 0;
        for (int i = 0; i < c->njobs; i++) {
            struct sjob *j = c->jobs[i];
            if (!strcmp(j->status, "running") && (pieces_mask(&j->pl, node) & hit)) {
                j->pl.n = 0;
                j->status = "queued"; /* provisional: re-placed below or failed */
                evicted[nev++] = j;
            }
        }
        for (int k = 0; k < c->pl.n; k++)
            if (c->pl.v[k].node == node) {
                give_mask(&sp->c, (uint32_t)node, c->pl.v[k].mask & hit);
                c->pl.v[k].mask &= ~hit;
                if (!c->pl.v[k].mask)
                    c->pl.v[k--] = c->pl.v[--c->pl.n];
            }
        fill_contract(s, c, popc(hit), rack);
        if (c->missing > 0)
            record_loss(s, c, t / HOUR * HOUR, c->missing);
        for (int i = 0; i < nev; i++) {
            int64_t started = evicted[i]->started;
            if (job_place(s, evicted[i], t, 0) < 0)
                job_end(s, evicted[i], "failed", t, reason);
            else
                evicted[i]->started = started; /* its hours still count from its start */
        }
        free(evicted);
        mark_ctr(s, c);
    }
    reclaim(s, sp, t);
    sync_spot(s, sp);
}

/* Contracts of the pool that lack GPUs take them back where room is. */
static void refill(struct sched *s, struct spool *sp, int64_t t)
{
    int any = 0;
    for (int a = 0; a < sp->nact; a++)
        if (sp->act[a]->missing > 0)
            any = 1;
    if (!any)
        return;
    strip_spot(s, sp);
    for (int a = 0; a < sp->nact; a++) {
        struct sctr *c = sp->act[a];
        if (c->missing > 0) {
            fill_contract(s, c, c->missing, -1);
            start_queued(s, c, t, 0);
        }
    }
    reclaim(s, sp, t);
    sync_spot(s, sp);
}

static int set_health(struct sched *s, struct spool *sp, int32_t node, int32_t gpu, int fail,
                      int64_t t, int64_t repair_at)
{
    struct market *m = s->m;
    struct cluster_node *n = &sp->c.nodes[node];
    sp->cache_ok = 0;
    if (fail) {
        if (find_fail(sp, node, gpu))
            return -1;
        if (gpu >= 0 && n->health != CLUSTER_UP)
            return -1; /* the whole node is down already */
        if (sp->nfails == sp->capfails) {
            sp->capfails = sp->capfails ? sp->capfails * 2 : 8;
            sp->fails = xrealloc(sp->fails, (size_t)sp->capfails * sizeof *sp->fails);
        }
        struct hfail *f = &sp->fails[sp->nfails++];
        *f = (struct hfail){node, gpu, t, repair_at};
        write_fail(m, sp, f, 1);
        uint32_t mask;
        char what[64];
        if (gpu < 0) {
            mask = node_usable_mask(n);
            cluster_set_node_health(&sp->c, (uint32_t)node, CLUSTER_FAILED);
            snprintf(what, sizeof what, "node %d", (int)node);
        } else {
            mask = 1u << gpu;
            cluster_set_gpu_health(&sp->c, (uint32_t)node, gpu, CLUSTER_FAILED);
            snprintf(what, sizeof what, "GPU %d of node %d", (int)gpu, (int)node);
        }
        log_info("msg=\"hardware failed\" pool=%s node=%d gpu=%d", sp->p->o.id, (int)node,
                 (int)gpu);
        evict(s, sp, node, mask, t, what);
        return 0;
    }
    struct hfail *f = find_fail(sp, node, gpu);
    if (!f)
        return -1;
    write_fail(m, sp, f, 0);
    *f = sp->fails[--sp->nfails];
    if (gpu < 0)
        cluster_set_node_health(&sp->c, (uint32_t)node, CLUSTER_UP);
    else
        cluster_set_gpu_health(&sp->c, (uint32_t)node, gpu, CLUSTER_UP);
    log_info("msg=\"hardware repaired\" pool=%s node=%d gpu=%d", sp->p->o.id, (int)node, (int)gpu);
    refill(s, sp, t);
    return 0;
}

int sched_set_health(struct market *m, struct pool *p, int64_t node, int gpu, int fail)
{
    struct sched *s = S(m);
    struct spool *sp = spool_of(s, p);
    CAPX_ASSERT(node >= 0 && node < p->nodes && gpu >= -1 && gpu < p->gpus_per_node);
    int rc = set_health(s, sp, (int32_t)node, gpu, fail, market_now(m), 0);
    flush_writes(s);
    return rc;
}

/* splitmix64 */
static uint64_t rnd(struct sched *s)
{
    uint64_t z = (s->rng += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

/* The failure process for the hour starting at t: repairs due, then each healthy node and
   each healthy GPU fails with probability 1/mtbf_h (exponential lifetimes, hourly steps). */
static void failure_process(struct sched *s, int64_t t)
{
    if (cfg.mtbf_h <= 0 || t <= s->last_hour)
        return;
    s->last_hour = t;
    s->rng_dirty = 1;
    size_t i = 0;
    const char *k;
    void *v;
    /* Pools in creation order, so a seed gives the same failures. */
    uint64_t cur = 0;
    struct obj *o;
    UNUSED(i);
    UNUSED(k);
    UNUSED(v);
    while ((o = market_next(s->m, OBJ_POOL, &cur)) != NULL) {
        struct spool *sp = spool_of(s, (struct pool *)o);
        for (int f = 0; f < sp->nfails;) {
            struct hfail h = sp->fails[f];
            if (h.repair_at && h.repair_at <= t) {
                (void)set_health(s, sp, h.node, h.gpu, 0, t, 0);
                f = 0; /* the array changed */
                continue;
            }
            f++;
        }
        uint64_t threshold = UINT64_MAX / (uint64_t)cfg.mtbf_h;
        for (uint32_t n = 0; n < sp->c.nnodes; n++) {
            if (sp->c.nodes[n].health != CLUSTER_UP)
                continue;
            if (rnd(s) < threshold) {
                (void)set_health(s, sp, (int32_t)n, -1, 1, t, t + cfg.repair_h * HOUR);
                continue;
            }
            for (int g = 0; g < sp->c.nodes[n].ngpu; g++)
                if (sp->c.nodes[n].gpu_health[g] == CLUSTER_UP && rnd(s) < threshold)
                    (void)set_health(s, sp, (int32_t)n, g, 1, t, t + cfg.repair_h * HOUR);
        }
    }
}

/* ---- hooks ---- */

void sched_pool_added(struct market *m, struct pool *p)
{
    (void)spool_of(S(m), p);
}

void sched_spot_won(struct market *m, struct order *o)
{
    struct sched *s = S(m);
    if (o->running_pool)
        (void)sspot_of(s, o, o->running_pool);
}

void sched_spot_stopped(struct market *m, struct order *o)
{
    struct sched *s = S(m);
    struct sspot *x = hmap_get(&s->spots, o->o.id);
    if (!x)
        return;
    give_pieces(x->sp, &x->pl);
    mark_spot(s, x);
    flush_writes(s);
}

void sched_minute(struct market *m, int64_t t)
{
    struct sched *s = S(m);
    uint64_t cur = 0;
    struct obj *o;
    while ((o = market_next(m, OBJ_POOL, &cur)) != NULL) {
        struct spool *sp = spool_of(s, (struct pool *)o);
        for (int a = 0; a < sp->nact; a++)
            expire_jobs(s, sp->act[a], t);
    }
    flush_writes(s);
}

int64_t sched_next_due(struct market *m)
{
    struct sched *s = S(m);
    int64_t due = INT64_MAX;
    size_t i = 0;
    const char *k;
    void *v;
    while (hmap_next(&s->pools, &i, &k, &v)) {
        struct spool *sp = v;
        for (int a = 0; a < sp->nact; a++)
            for (int j = 0; j < sp->act[a]->njobs; j++) {
                const struct sjob *jb = sp->act[a]->jobs[j];
                if (jb->hours && jb->status[0] == 'r' && jb->started + jb->hours * HOUR < due)
                    due = jb->started + jb->hours * HOUR;
            }
    }
    return due;
}

void sched_round_done(struct market *m, int64_t t)
{
    struct sched *s = S(m);
    UNUSED(t);
    uint64_t cur = 0;
    struct obj *o;
    while ((o = market_next(m, OBJ_POOL, &cur)) != NULL) {
        struct spool *sp = spool_of(s, (struct pool *)o);
        if (sp->nspot)
            sync_spot(s, sp);
    }
    flush_writes(s);
}

void sched_hour(struct market *m, int64_t t)
{
    struct sched *s = S(m);
    failure_process(s, t);
    uint64_t cur = 0;
    struct obj *o;
    while ((o = market_next(m, OBJ_POOL, &cur)) != NULL) {
        struct spool *sp = spool_of(s, (struct pool *)o);
        int placed = 0;
        for (int a = 0; a < sp->nact; a++)
            if (sp->act[a]->pending) {
                place_contract(s, sp->act[a], t);
                placed = 1;
            }
        if (placed) {
            reclaim(s, sp, t);
            sync_spot(s, sp);
        }
        refill(s, sp, t);
        for (int a = 0; a < sp->nact; a++)
            if (sp->act[a]->missing > 0 && sp->act[a]->c->end > t)
                record_loss(s, sp->act[a], t, sp->act[a]->missing);
    }
    flush_writes(s);
}

/* ---- jobs API support ---- */

struct sjob *sched_job(struct market *m, const char *id)
{
    return hmap_get(&S(m)->jobs, id);
}

struct contract *sched_job_contract(const struct sjob *j)
{
    return j->sc->c;
}

json_t *sched_job_json(const struct sjob *j)
{
    json_t *o = json_pack("{s:s,s:s,s:I,s:b,s:s,s:o}", "id", j->id, "contract_id", j->sc->c->o.id,
                          "gpus", (json_int_t)j->gpus, "gang", j->gang, "status", j->status,
                          "placement", pieces_json(&j->pl));
    json_object_set_new(o, "hours", j->hours ? json_integer(j->hours) : json_null());
    json_object_set_new(o, "reason", j->reason[0] ? json_string(j->reason) : json_null());
    json_object_set_new(o, "created_at", ts(j->created));
    json_object_set_new(o, "started_at", ts(j->started));
    json_object_set_new(o, "ended_at", ts(j->ended));
    json_object_set_new(o, "ends_at",
                        j->hours && j->started >= 0 && j->ended < 0
                            ? ts(j->started + j->hours * HOUR)
                            : json_null());
    return o;
}

struct sjob *sched_job_next(struct market *m, const struct contract *c, uint64_t *cursor)
{
    struct sctr *sc = hmap_get(&S(m)->ctrs, c->o.id);
    if (!sc)
        return NULL;
    for (int i = 0; i < sc->njobs; i++)
        if (sc->jobs[i]->seq > *cursor) {
            *cursor = sc->jobs[i]->seq;
            return sc->jobs[i];
        }
    return NULL;
}

static void ctr_add_job(struct sctr *c, struct sjob *j)
{
    if (c->njobs == c->capjobs) {
        c->capjobs = c->capjobs ? c->capjobs * 2 : 8;
        c->jobs = xrealloc(c->jobs, (size_t)c->capjobs * sizeof *c->jobs);
    }
    c->jobs[c->njobs++] = j;
}

int sched_job_submit(struct market *m, struct contract *c, int64_t gpus, int gang, int64_t hours,
                     int queue, struct sjob **out)
{
    struct sched *s = S(m);
    struct sctr *sc = sctr_of(s, c);
    int64_t now = market_now(m);
    struct sjob *j = xcalloc(1, sizeof *j);
    capx_id_new("job_", j->id, sizeof j->id);
    j->seq = s->next_seq++;
    j->sc = sc;
    j->gpus = gpus;
    j->gang = gang;
    j->hours = hours;
    j->created = now;
    j->started = j->ended = -1;
    j->status = "queued";
    if (sc->pending)
        place_contract(s, sc, now);
    ctr_add_job(sc, j); /* first: the spot supply it leaves is computed with it */
    if (job_place(s, j, now, 1) < 0 && !queue) {
        sc->njobs--;
        s->next_seq--;
        free(j);
        flush_writes(s);
        return -1;
    }
    hmap_put(&s->jobs, j->id, j);
    mark_job(s, j);
    flush_writes(s);
    *out = j;
    return 0;
}

int sched_job_stop(struct market *m, struct sjob *j)
{
    struct sched *s = S(m);
    int64_t now = market_now(m);
    if (strcmp(j->status, "running") && strcmp(j->status, "queued"))
        return -1;
    int was_running = !strcmp(j->status, "running");
    job_end(s, j, "stopped", now, "stopped by the buyer");
    if (was_running) {
        start_queued(s, j->sc, now, 1);
        if (lending(j->sc))
            sync_spot(s, j->sc->sp);
    }
    flush_writes(s);
    return 0;
}

int sched_spot_hosts(struct market *m, const struct order *o, struct contract **hosts,
                     int64_t *gpus, int cap)
{
    struct sspot *x = hmap_get(&S(m)->spots, o->o.id);
    int n = 0;
    if (!x)
        return 0;
    for (int i = 0; i < x->pl.n; i++) {
        struct contract *h = x->pl.v[i].host ? x->pl.v[i].host->c : NULL;
        int k = 0;
        while (k < n && hosts[k] != h)
            k++;
        if (k == n) {
            if (n == cap)
                continue;
            hosts[n] = h;
            gpus[n++] = 0;
        }
        gpus[k] += popc(x->pl.v[i].mask);
    }
    return n;
}

/* ---- views ---- */

void sched_contract_json(const struct contract *c, json_t *j)
{
    struct sctr *sc = the ? hmap_get(&the->ctrs, c->o.id) : NULL;
    json_t *lost = json_array();
    int64_t total = 0;
    if (sc) {
        for (int i = 0; i < sc->nloss; i++) {
            total += sc->loss[i].gpus;
            json_array_append_new(lost, json_pack("{s:o,s:I}", "hour", ts(sc->loss[i].hour), "gpus",
                                                  (json_int_t)sc->loss[i].gpus));
        }
    }
    json_object_set_new(j, "placement", sc ? pieces_json(&sc->pl) : json_array());
    json_object_set_new(j, "lost_gpu_hours", json_integer(total));
    json_object_set_new(j, "lost_hours", lost);
    json_object_set_new(j, "missing_gpus", json_integer(sc ? sc->missing : 0));
    json_object_set_new(j, "lend_idle", json_boolean(c->order->lend_idle));
    if (sc && sc->active) {
        json_object_set_new(j, "gpus_in_jobs", json_integer(jobs_gpus(sc)));
        json_object_set_new(j, "gpus_lent", json_integer(ctr_lent(sc)));
    }
}

void sched_pool_json(const struct pool *p, json_t *j)
{
    struct spool *sp = the ? hmap_get(&the->pools, p->o.id) : NULL;
    if (!sp)
        return;
    int64_t failed_nodes = 0, failed_gpus = 0, contracted = 0, spot = 0, jobs = 0;
    /* Per node: what contracts, their jobs and spot hold. */
    int64_t nn = sp->c.nnodes;
    uint32_t *ctr = xcalloc((size_t)nn, sizeof *ctr), *job = xcalloc((size_t)nn, sizeof *job),
             *spt = xcalloc((size_t)nn, sizeof *spt);
    for (int a = 0; a < sp->nact; a++) {
        struct sctr *c = sp->act[a];
        for (int k = 0; k < c->pl.n; k++)
            ctr[c->pl.v[k].node] |= c->pl.v[k].mask;
        for (int i = 0; i < c->njobs; i++)
            for (int k = 0; k < c->jobs[i]->pl.n; k++)
                job[c->jobs[i]->pl.v[k].node] |= c->jobs[i]->pl.v[k].mask;
    }
    for (int i = 0; i < sp->nspot; i++)
        for (int k = 0; k < sp->spot[i]->pl.n; k++)
            spt[sp->spot[i]->pl.v[k].node] |= sp->spot[i]->pl.v[k].mask;
    json_t *nodes = json_array();
    for (int64_t n = 0; n < nn; n++) {
        const struct cluster_node *cn = &sp->c.nodes[n];
        json_t *fg = json_array();
        for (int g = 0; g < cn->ngpu; g++)
            if (cn->gpu_health[g] != CLUSTER_UP) {
                json_array_append_new(fg, json_integer(g));
                failed_gpus++;
            }
        if (cn->health != CLUSTER_UP)
            failed_nodes++;
        contracted += popc(ctr[n]);
        jobs += popc(job[n]);
        spot += popc(spt[n]);
        int plain = cn->health == CLUSTER_UP && json_array_size(fg) == 0 && !ctr[n] && !spt[n];
        if (nn > 1024 && plain) {
            json_decref(fg);
            continue;
        }
        const char *state = cn->health != CLUSTER_UP ? "failed"
                            : json_array_size(fg)    ? "degraded"
                                                     : "up";
        json_array_append_new(nodes, json_pack("{s:I,s:i,s:s,s:o,s:i,s:i,s:i}", "node",
                                               (json_int_t)n, "rack", cn->rack, "state", state,
                                               "failed_gpus", fg, "contracted", popc(ctr[n]),
                                               "jobs", popc(job[n]), "spot", popc(spt[n])));
    }
    free(ctr);
    free(job);
    free(spt);
    int64_t busy = jobs + spot;
    json_object_set_new(j, "node_states", nodes);
    json_object_set_new(j, "utilization",
                        json_pack("{s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:f}", "gpus", (json_int_t)p->gpus,
                                  "failed_nodes", (json_int_t)failed_nodes, "failed_gpus",
                                  (json_int_t)(failed_gpus + failed_nodes * p->gpus_per_node),
                                  "contracted", (json_int_t)contracted, "in_jobs", (json_int_t)jobs,
                                  "spot", (json_int_t)spot, "busy", (json_int_t)busy, "busy_pct",
                                  p->gpus ? 100.0 * (double)busy / (double)p->gpus : 0.0));
}

/* ---- loading ---- */

int sched_load(struct market *m, PGconn *conn, char *err, size_t errlen)
{
    struct sched *s = S(m);
    uint64_t cur = 0;
    struct obj *o;
    while ((o = market_next(m, OBJ_POOL, &cur)) != NULL)
        (void)spool_of(s, (struct pool *)o);
    /* Health. */
    PGresult *r =
        db_rows(conn,
                "SELECT pool_id, node, gpu, extract(epoch FROM failed_at)::bigint, "
                "extract(epoch FROM repair_at)::bigint FROM node_health ORDER BY failed_at, "
                "pool_id, node, gpu",
                err, errlen);
    if (!r)
        return -1;
    for (int i = 0; i < PQntuples(r); i++) {
        struct obj *po = market_get(m, PQgetvalue(r, i, 0));
        if (!po || po->type != OBJ_POOL)
            continue;
        struct spool *sp = spool_of(s, (struct pool *)po);
        int32_t node = (int32_t)db_i64(r, i, 1), gpu = (int32_t)db_i64(r, i, 2);
        if (node >= (int32_t)sp->c.nnodes || gpu >= sp->c.nodes[node].ngpu)
            continue;
        if (sp->nfails == sp->capfails) {
            sp->capfails = sp->capfails ? sp->capfails * 2 : 8;
            sp->fails = xrealloc(sp->fails, (size_t)sp->capfails * sizeof *sp->fails);
        }
        sp->fails[sp->nfails++] = (struct hfail){node, gpu, db_i64(r, i, 3), db_i64(r, i, 4)};
        if (gpu < 0)
            cluster_set_node_health(&sp->c, (uint32_t)node, CLUSTER_FAILED);
        else
            cluster_set_gpu_health(&sp->c, (uint32_t)node, gpu, CLUSTER_FAILED);
    }
    PQclear(r);
    /* Contracts that are active hold GPUs. */
    cur = 0;
    while ((o = market_next(m, OBJ_CONTRACT, &cur)) != NULL) {
        struct contract *c = (struct contract *)o;
        if (!strcmp(c->status, "active")) {
            struct sctr *sc = sctr_of(s, c);
            sc->active = 1;
            act_add(sc->sp, sc);
        }
    }
    /* Losses. */
    r = db_rows(conn,
                "SELECT contract_id, extract(epoch FROM hour)::bigint, gpus FROM contract_losses "
                "ORDER BY contract_id, hour",
                err, errlen);
    if (!r)
        return -1;
    for (int i = 0; i < PQntuples(r); i++) {
        struct obj *co = market_get(m, PQgetvalue(r, i, 0));
        if (!co || co->type != OBJ_CONTRACT)
            continue;
        struct sctr *sc = sctr_of(s, (struct contract *)co);
        record_loss(s, sc, db_i64(r, i, 1), db_i64(r, i, 2));
        sc->dirty = 0;
    }
    PQclear(r);
    s->ndirty = 0;
    /* Jobs. */
    r = db_rows(conn,
                "SELECT id, seq, contract_id, gpus, gang, hours, status, reason, "
                "extract(epoch FROM created_at)::bigint, extract(epoch FROM started_at)::bigint, "
                "extract(epoch FROM ended_at)::bigint FROM jobs ORDER BY seq",
                err, errlen);
    if (!r)
        return -1;
    for (int i = 0; i < PQntuples(r); i++) {
        struct obj *co = market_get(m, PQgetvalue(r, i, 2));
        if (!co || co->type != OBJ_CONTRACT)
            continue;
        struct sjob *j = xcalloc(1, sizeof *j);
        snprintf(j->id, sizeof j->id, "%s", PQgetvalue(r, i, 0));
        j->seq = (uint64_t)db_i64(r, i, 1);
        j->sc = sctr_of(s, (struct contract *)co);
        j->gpus = db_i64(r, i, 3);
        j->gang = PQgetvalue(r, i, 4)[0] == 't';
        j->hours = db_i64(r, i, 5);
        const char *st = PQgetvalue(r, i, 6);
        j->status = !strcmp(st, "running")     ? "running"
                    : !strcmp(st, "queued")    ? "queued"
                    : !strcmp(st, "completed") ? "completed"
                    : !strcmp(st, "stopped")   ? "stopped"
                                               : "failed";
        snprintf(j->reason, sizeof j->reason, "%s", PQgetvalue(r, i, 7));
        j->created = db_i64(r, i, 8);
        j->started = PQgetisnull(r, i, 9) ? -1 : db_i64(r, i, 9);
        j->ended = PQgetisnull(r, i, 10) ? -1 : db_i64(r, i, 10);
        if (j->seq >= s->next_seq)
            s->next_seq = j->seq + 1;
        hmap_put(&s->jobs, j->id, j);
        ctr_add_job(j->sc, j);
    }
    PQclear(r);
    /* Placements: contracts take their GPUs, jobs and spot bids get theirs. */
    r = db_rows(
        conn,
        "SELECT holder_id, pool_id, node, gpu_mask, host FROM placements ORDER BY holder_id, "
        "node",
        err, errlen);
    if (!r)
        return -1;
    for (int i = 0; i < PQntuples(r); i++) {
        const char *holder = PQgetvalue(r, i, 0);
        struct obj *po = market_get(m, PQgetvalue(r, i, 1));
        if (!po || po->type != OBJ_POOL)
            continue;
        struct spool *sp = spool_of(s, (struct pool *)po);
        int32_t node = (int32_t)db_i64(r, i, 2);
        uint32_t mask = (uint32_t)db_i64(r, i, 3);
        if (node < 0 || node >= (int32_t)sp->c.nnodes || (mask >> sp->c.nodes[node].ngpu) != 0)
            continue;
        if (!strncmp(holder, "ctr_", 4)) {
            struct sctr *sc = hmap_get(&s->ctrs, holder);
            if (!sc || !sc->active)
                continue;
            take_mask(&sp->c, (uint32_t)node, mask);
            pieces_add(&sc->pl, node, mask, NULL);
        } else if (!strncmp(holder, "job_", 4)) {
            struct sjob *j = hmap_get(&s->jobs, holder);
            if (j && !strcmp(j->status, "running"))
                pieces_add(&j->pl, node, mask, NULL);
        } else {
            struct obj *oo = market_get(m, holder);
            struct order *ord = (struct order *)oo;
            if (!oo || oo->type != OBJ_ORDER || strcmp(ord->status, "running") ||
                ord->running_pool != sp->p)
                continue;
            struct sspot *x = sspot_of(s, ord, sp->p);
            struct sctr *host =
                PQgetisnull(r, i, 4) ? NULL : hmap_get(&s->ctrs, PQgetvalue(r, i, 4));
            if (!PQgetisnull(r, i, 4) && !host)
                continue;
            if (!host)
                take_mask(&sp->c, (uint32_t)node, mask);
            pieces_add(&x->pl, node, mask, host);
        }
    }
    PQclear(r);
    /* Derived: what each active contract lacks; running bids not yet placed. */
    size_t it = 0;
    const char *k;
    void *v;
    while (hmap_next(&s->ctrs, &it, &k, &v)) {
        struct sctr *sc = v;
        if (sc->active) {
            sc->missing = sc->c->gpus - pieces_gpus(&sc->pl);
            if (sc->missing < 0)
                sc->missing = 0;
            if (sc->pl.n == 0)
                sc->pending = 1; /* active without a placement: placed at the next hour work */
        }
    }
    cur = 0;
    while ((o = market_next(m, OBJ_ORDER, &cur)) != NULL) {
        struct order *ord = (struct order *)o;
        if (ord->spot && !strcmp(ord->status, "running") && ord->running_pool)
            (void)sspot_of(s, ord, ord->running_pool);
    }
    r = db_rows(conn, "SELECT rng, last_hour FROM sched_state", err, errlen);
    if (!r)
        return -1;
    if (PQntuples(r) == 1) {
        s->rng = (uint64_t)db_i64(r, 0, 0);
        s->last_hour = db_i64(r, 0, 1);
    }
    PQclear(r);
    return 0;
}
