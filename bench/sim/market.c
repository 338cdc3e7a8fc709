/*
 * market.c — `capx-sim market --scenario FILE [--set KEY=VALUE ...] [--seed S]`:
 * the exchange over a virtual clock, driving the same matching engine and
 * scheduler library as capxd (server/market.c, server/sched.c), without HTTP,
 * SQL or money.
 *
 * The model, hour by hour (times are Unix seconds; the clock starts on an hour):
 *   - Hardware: `nodes` nodes of `gpus_per_node` GPUs in racks of
 *     `nodes_per_rack`, cut into pools (one provider, one GPU model, one region
 *     each; sizes drawn from [pool_nodes_min, pool_nodes_max]). Each pool is a
 *     scheduler cluster (scheduler/cluster.h).
 *   - Supply: every pool offers a share of its GPUs for reservations in blocks
 *     of `offer_block_days`, each posted `offer_ahead_days` before it starts
 *     (so resting orders are retried as blocks arrive), and all its idle GPUs
 *     for spot at a reserve price.
 *   - Demand: reservation orders arrive as a Poisson stream sized so the GPU-
 *     hours asked are `resv_load` x the GPU-hours offered; sizes from
 *     `resv_gpus`, hours log-uniform in [resv_hours_min, resv_hours_max], start
 *     1..resv_lead_max_h hours ahead, a share flexible (latest_start later), a
 *     share single-pool. Spot bids (gangs from `spot_gpus`) arrive as another
 *     Poisson stream and are cancelled by their buyer after a drawn lifetime.
 *   - Each engine FILL is a contract on one pool (a piece spanning two offer
 *     blocks is two contracts; the second takes over the first's GPUs).
 *     `notice_s` before a contract's start hour the pool's spot supply shrinks
 *     by what the starting contracts need beyond what the ending ones give back,
 *     and the engine preempts the lowest-priority spot bids
 *     (engine_spot_reclaim). Then each starting contract is planned as a gang
 *     (scheduler/gang.h: fewest racks, whole nodes first) over the GPUs that are
 *     free, held by spot or held by contracts ending at that hour; it holds the
 *     planned GPUs free now, spot bids on the others move to free GPUs (or the
 *     engine preempts more, by priority, until they fit), and at the start hour
 *     it takes the rest. A sold contract that is not placed whole while its pool
 *     has the GPUs aborts the run (CAPX_ASSERT), and so does a spot bid
 *     preempted at a start without notice.
 *   - Spot: a round every `spot_round_min` minutes over every pool's idle
 *     supply (healthy, unsold, not needed by contracts); winners are placed as
 *     gangs on free GPUs, losers (outbid) and reclaimed bids give theirs back.
 *   - Failures: every hour, nodes fail with exponential lifetimes of mean
 *     `node_mtbf_h` and GPUs with `gpu_mtbf_h`; each failure is repaired after
 *     an exponential time of mean `node_repair_h` / `gpu_repair_h` (at least an
 *     hour). A contract's GPUs on failed hardware are re-placed on the pool's
 *     healthy unsold GPUs, same rack first, preempting spot if needed; what
 *     cannot be re-placed is missing, retried every hour, and every missing
 *     GPU-hour is recorded as lost. Spot bids hit by a failure are re-placed or,
 *     when the supply no longer holds them, preempted by the engine.
 *   - Utilization = GPU-hours held by contracts and spot bids / all GPU-hours
 *     of the horizon (failed GPUs included in the denominator).
 *
 * Deterministic for a seed: the generators are splitmix64 streams derived from
 * the seed (one each for the layout, orders, spot bids and failures).
 */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "bench/sim/market.h"
#include "matching/engine.h"
#include "scheduler/cluster.h"
#include "scheduler/gang.h"
#include "scheduler/job.h"

#define HOUR       3600
#define T0_HOUR    INT64_C(490896) /* 2026-01-01T00:00:00Z / 3600: the clock's start */
#define MAX_LIST   16              /* entries of a size:weight list */
#define MAX_MODELS 8
#define BUYER_BASE 1000 /* buyer account ids start here; providers are 1..providers */
#define CTR_NONE   (-1)
#define MICRO      1000000.0

/* ---- the scenario: one table gives the file keys, --set and the defaults ---- */

struct wlist {
    int n;
    int32_t v[MAX_LIST];
    double w[MAX_LIST];
};

static struct scen {
    double seed, days, nodes, gpus_per_node, nodes_per_rack, providers, regions;
    double pool_nodes_min, pool_nodes_max, offer_share_min, offer_share_max;
    double offer_block_days, offer_ahead_days, price_spread;
    double resv_load, resv_hours_min, resv_hours_max, resv_lead_max_h, resv_flex_pct,
        resv_flex_max_h, resv_single_pool_pct, resv_any_region_pct, resv_limit_min, resv_limit_max;
    double spot_bid_rate, spot_life_min_h, spot_life_max_h, spot_reserve, spot_limit_min,
        spot_limit_max, spot_round_min, notice_s, notice_plan;
    double node_mtbf_h, node_repair_h, gpu_mtbf_h, gpu_repair_h, buyers;
    char models[256], resv_gpus[256], spot_gpus[256];
} sc;

struct opt {
    const char *name;
    double *num; /* numeric option, or NULL */
    char *str;   /* string option (models, lists) */
    const char *def;
    double min, max;
    const char *help;
};

#define NUM(f, d, lo, hi, h)                                                                       \
    {                                                                                              \
#f, &sc.f, NULL, d, lo, hi, h                                                              \
    }
#define STR(f, d, h)                                                                               \
    {                                                                                              \
#f, NULL, sc.f, d, 0, 0, h                                                                 \
    }
static const struct opt opts[] = {
    NUM(seed, "1", 0, 1e18, "seed of every random stream"),
    NUM(days, "90", 1, 366, "simulated days"),
    NUM(nodes, "10000", 4, 100000, "nodes in all pools"),
    NUM(gpus_per_node, "8", 1, 16, "GPUs per node"),
    NUM(nodes_per_rack, "4", 1, 64, "nodes per rack"),
    NUM(providers, "8", 1, 500, "provider accounts (pools are dealt round-robin)"),
    NUM(regions, "4", 1, 64, "regions"),
    STR(models, "H100:2.40,A100:1.40", "GPU models as NAME:USD_PER_GPU_HOUR,..."),
    NUM(pool_nodes_min, "64", 4, 100000, "smallest pool (nodes, rounded to racks)"),
    NUM(pool_nodes_max, "512", 4, 100000, "largest pool (nodes)"),
    NUM(offer_share_min, "0.7", 0.01, 1, "share of a pool offered for reservations, low"),
    NUM(offer_share_max, "1.0", 0.01, 1, "share of a pool offered for reservations, high"),
    NUM(offer_block_days, "30", 1, 180, "days covered by one reservation offer"),
    NUM(offer_ahead_days, "60", 1, 300, "an offer is posted this long before it starts"),
    NUM(price_spread, "0.15", 0, 0.9, "asks vary by +-this share of the model's price"),
    NUM(resv_load, "0.95", 0, 10, "GPU-hours asked / GPU-hours offered for reservations"),
    STR(resv_gpus, "8:30,16:15,32:15,64:12,128:10,256:8,512:6,1024:4",
        "reservation sizes as GPUS:WEIGHT,..."),
    NUM(resv_hours_min, "24", 1, 8784, "shortest reservation (hours)"),
    NUM(resv_hours_max, "720", 1, 8784, "longest reservation (hours; log-uniform between)"),
    NUM(resv_lead_max_h, "336", 1, 8000, "a reservation starts 1..this many hours ahead"),
    NUM(resv_flex_pct, "30", 0, 100, "% of reservations with a flexible start"),
    NUM(resv_flex_max_h, "168", 1, 8000, "latest_start - start, up to (hours)"),
    NUM(resv_single_pool_pct, "80", 0, 100, "% of reservations that need one pool (a gang)"),
    NUM(resv_any_region_pct, "30", 0, 100, "% of reservations that accept any region"),
    NUM(resv_limit_min, "0.9", 0.01, 100, "limit price / model price, low"),
    NUM(resv_limit_max, "1.4", 0.01, 100, "limit price / model price, high"),
    NUM(spot_bid_rate, "0.6", 0, 1000, "spot bids arriving per hour per 1,000 GPUs"),
    STR(spot_gpus, "1:20,8:30,16:20,32:15,64:10,128:5", "spot gang sizes as GPUS:WEIGHT,..."),
    NUM(spot_life_min_h, "2", 0.02, 8784, "a spot bid is cancelled after this many hours, low"),
    NUM(spot_life_max_h, "48", 0.02, 8784, "a spot bid's lifetime, high"),
    NUM(spot_reserve, "0.35", 0.01, 10, "spot reserve / model price (x 0.8..1.2 per pool)"),
    NUM(spot_limit_min, "0.3", 0.01, 100, "spot limit / model price, low"),
    NUM(spot_limit_max, "0.9", 0.01, 100, "spot limit / model price, high"),
    NUM(spot_round_min, "1", 1, 60, "minutes between spot rounds (capxd: 1)"),
    NUM(notice_s, "120", 1, 3599, "spot notice before a reservation starts (seconds)"),
    NUM(notice_plan, "1", 0, 1,
        "1: plan starting gangs at the notice point over spot-held GPUs (0: at the start)"),
    NUM(node_mtbf_h, "20000", 0, 1e9, "mean hours between failures of a node (0: none)"),
    NUM(node_repair_h, "24", 1, 8784, "mean hours to repair a node"),
    NUM(gpu_mtbf_h, "100000", 0, 1e9, "mean hours between failures of a GPU (0: none)"),
    NUM(gpu_repair_h, "48", 1, 8784, "mean hours to repair a GPU"),
    NUM(buyers, "500", 1, 1e6, "buyer accounts"),
};

static const struct opt *opt_find(const char *name, size_t len)
{
    for (size_t i = 0; i < ARRAY_LEN(opts); i++)
        if (strlen(opts[i].name) == len && memcmp(opts[i].name, name, len) == 0)
            return &opts[i];
    return NULL;
}

static int opt_set(const struct opt *o, const char *v, char *err, size_t errlen)
{
    if (!o->num) {
        if (strlen(v) >= 256) {
            snprintf(err, errlen, "%s: too long", o->name);
            return -1;
        }
        snprintf(o->str, 256, "%s", v);
        return 0;
    }
    char *end;
    errno = 0;
    double x = strtod(v, &end);
    if (end == v || *end || errno || !(x >= o->min && x <= o->max)) {
        snprintf(err, errlen, "%s: '%s' is not a number in [%g, %g]", o->name, v, o->min, o->max);
        return -1;
    }
    *o->num = x;
    return 0;
}

/* "KEY=VALUE" (spaces around '=' allowed). */
static int opt_assign(const char *line, char *err, size_t errlen)
{
    const char *eq = strchr(line, '=');
    if (!eq) {
        snprintf(err, errlen, "expected KEY = VALUE");
        return -1;
    }
    const char *k = line, *ke = eq, *v = eq + 1;
    while (*k == ' ' || *k == '\t')
        k++;
    while (ke > k && (ke[-1] == ' ' || ke[-1] == '\t'))
        ke--;
    while (*v == ' ' || *v == '\t')
        v++;
    char val[256];
    size_t vl = strlen(v);
    while (vl && (v[vl - 1] == ' ' || v[vl - 1] == '\t' || v[vl - 1] == '\r'))
        vl--;
    if (vl >= sizeof val) {
        snprintf(err, errlen, "value too long");
        return -1;
    }
    memcpy(val, v, vl);
    val[vl] = '\0';
    const struct opt *o = opt_find(k, (size_t)(ke - k));
    if (!o) {
        snprintf(err, errlen, "unknown key '%.*s'", (int)(ke - k), k);
        return -1;
    }
    return opt_set(o, val, err, errlen);
}

static int scen_read(const char *path, char *err, size_t errlen)
{
    FILE *f = fopen(path, "r");
    if (!f) {
        snprintf(err, errlen, "%s: %s", path, strerror(errno));
        return -1;
    }
    char line[1024], e2[256];
    int ln = 0, rc = 0;
    while (fgets(line, sizeof line, f)) {
        ln++;
        line[strcspn(line, "\n")] = '\0';
        char *h = strchr(line, '#');
        if (h)
            *h = '\0';
        const char *p = line;
        while (*p == ' ' || *p == '\t' || *p == '\r')
            p++;
        if (!*p)
            continue;
        if (opt_assign(p, e2, sizeof e2) < 0) {
            snprintf(err, errlen, "%s:%d: %s", path, ln, e2);
            rc = -1;
            break;
        }
    }
    fclose(f);
    return rc;
}

/* "A:W,B:W,..." with integer A in [lo, hi] and W > 0. */
static int wlist_parse(const char *s, int32_t lo, int32_t hi, struct wlist *out)
{
    out->n = 0;
    while (*s) {
        char *end;
        long v = strtol(s, &end, 10);
        if (end == s || *end != ':' || v < lo || v > hi || out->n == MAX_LIST)
            return -1;
        s = end + 1;
        double w = strtod(s, &end);
        if (end == s || !(w > 0))
            return -1;
        out->v[out->n] = (int32_t)v;
        out->w[out->n] = w;
        out->n++;
        s = end;
        if (*s == ',')
            s++;
        else if (*s)
            return -1;
    }
    return out->n ? 0 : -1;
}

/* ---- random streams ---- */

struct rng {
    uint64_t s;
};

static uint64_t rnext(struct rng *r)
{
    uint64_t z = (r->s += UINT64_C(0x9e3779b97f4a7c15));
    z = (z ^ (z >> 30)) * UINT64_C(0xbf58476d1ce4e5b9);
    z = (z ^ (z >> 27)) * UINT64_C(0x94d049bb133111eb);
    return z ^ (z >> 31);
}

static double runif(struct rng *r) /* [0, 1) */
{
    return (double)(rnext(r) >> 11) * (1.0 / 9007199254740992.0);
}

static double rrange(struct rng *r, double lo, double hi)
{
    return lo + (hi - lo) * runif(r);
}

static uint64_t rbelow(struct rng *r, uint64_t n)
{
    uint64_t lim = UINT64_MAX - UINT64_MAX % n;
    for (;;) {
        uint64_t x = rnext(r);
        if (x < lim)
            return x % n;
    }
}

static double rexp(struct rng *r, double mean)
{
    return -mean * log(1.0 - runif(r));
}

static int rpoisson(struct rng *r, double lambda)
{
    if (lambda <= 0)
        return 0;
    if (lambda > 50) /* normal approximation, never below 0 */
        return (int)fmax(
            0, floor(lambda +
                     sqrt(lambda) * sqrt(-2 * log(1 - runif(r))) * cos(2 * M_PI * runif(r)) + 0.5));
    double l = exp(-lambda), p = 1.0;
    int k = 0;
    do {
        k++;
        p *= runif(r);
    } while (p > l);
    return k - 1;
}

static int32_t rpick(struct rng *r, const struct wlist *w)
{
    double tot = 0;
    for (int i = 0; i < w->n; i++)
        tot += w->w[i];
    double x = runif(r) * tot;
    for (int i = 0; i < w->n; i++) {
        if (x < w->w[i])
            return w->v[i];
        x -= w->w[i];
    }
    return w->v[w->n - 1];
}

/* ---- the simulated world ---- */

struct piece {
    int32_t node;
    uint32_t mask; /* one cluster_take each: a piece is given back whole */
};

struct pieces {
    struct piece *v;
    int n, cap;
};

enum { C_SCHEDULED = 0, C_ACTIVE, C_ENDED };

struct ctr {
    uint64_t order;
    int pool;
    int32_t gpus;
    int64_t start, end; /* hours */
    int state;
    int next;           /* the contract continuing this one (next offer block), or CTR_NONE */
    int cont;           /* continues the previous block's contract: takes over its GPUs */
    int gang;           /* of a single_pool order: the buyer's gang (multi-pool pieces are not) */
    int32_t missing;    /* GPUs not placed (failures) */
    struct pieces plan; /* planned at the notice point on GPUs of contracts ending at its start */
    int64_t lost;       /* GPU-hours lost */
    struct pieces pl;
};

struct bid {
    uint64_t id;
    int model, region;
    int32_t gpus;
    int pool;        /* running in, or -1 */
    int32_t shortby; /* GPUs lost to a failure, to re-place */
    int64_t cancel_at;
    int live;
    struct pieces pl;
};

struct ivec {
    int *v;
    int n, cap;
};

struct pool {
    uint64_t id; /* engine pool id = index + 1 */
    int provider, model, region;
    int32_t nodes, gpus, offer_gpus;
    int64_t first_node; /* global node index of node 0 */
    struct cluster c;
    struct ivec act;  /* active contracts */
    struct ivec spot; /* running bids */
    double ask;       /* base ask, micro-USD */
    int64_t reserve;
    int64_t posted_to;    /* offers posted up to this hour (exclusive) */
    int dirty;            /* free counts must be recomputed */
    int32_t free_gpus;    /* healthy GPUs held by nobody */
    int32_t spot_held;    /* GPUs held by spot bids (healthy) */
    int32_t spot_running; /* Σ gpus of bids the engine runs here */
    int32_t need_next;    /* GPUs the next hour's starting contracts need (notice window) */
    int32_t ending_next;  /* GPUs the next hour's ending contracts give back */
    int32_t missing;      /* Σ GPUs active contracts lack */
};

struct repair {
    int64_t at;
    int pool;
    int32_t node;
    int gpu; /* -1: the node */
};

enum { WHY_ROUND = 0, WHY_NOTICE, WHY_START, WHY_FAILURE, WHY_N };

struct model {
    char name[32];
    double price; /* micro-USD per GPU-hour */
};

struct sim {
    engine *eng;
    struct model models[MAX_MODELS];
    int nmodels;
    struct wlist resv_gpus, spot_gpus;
    struct pool *pools;
    int npools;
    int64_t total_gpus, total_nodes;
    struct ctr *ctrs;
    int nctrs, capctrs;
    struct bid *bids;
    size_t nbids, capbids;
    struct ivec livebids;
    struct ivec *starts, *ends; /* per hour of the horizon: contracts starting / ending */
    struct repair *reps;
    int nreps, capreps;
    engine_event *ev;
    size_t nev, capev;
    struct rng r_layout, r_orders, r_bids, r_fail;
    int64_t now, t_end, h_end; /* h_end: first hour after the horizon */
    uint64_t next_id;
    uint8_t *gang_order; /* by order id: 1 for single_pool orders */
    uint64_t ngang;
    int why; /* why the engine is being asked to preempt */
    /* utilization */
    int64_t busy, busy_spot, last_t;
    double busy_s, spot_s, ctr_s;
    /* counters */
    long orders, orders_filled, bids_n, offers_n;
    long started, on_time, had_gpus, short_at_start, continued;
    long small, small_one_rack, fewest_racks, placed_full;
    long preempt[WHY_N], won, spot_moved;
    long node_fail, gpu_fail, ctr_hit, ctr_replaced_rack;
    int64_t lost_gpu_hours, asked_gpu_hours, sold_gpu_hours, offered_gpu_hours;
};

static int popc(uint32_t x)
{
    return __builtin_popcount(x);
}

static void ivec_push(struct ivec *v, int x)
{
    if (v->n == v->cap) {
        v->cap = v->cap ? v->cap * 2 : 8;
        v->v = xrealloc(v->v, (size_t)v->cap * sizeof *v->v);
    }
    v->v[v->n++] = x;
}

static void ivec_del(struct ivec *v, int x)
{
    for (int i = 0; i < v->n; i++)
        if (v->v[i] == x) {
            memmove(v->v + i, v->v + i + 1, (size_t)(v->n - i - 1) * sizeof *v->v);
            v->n--;
            return;
        }
    CAPX_ASSERT(0);
}

static void pieces_add(struct pieces *p, int32_t node, uint32_t mask)
{
    if (p->n == p->cap) {
        p->cap = p->cap ? p->cap * 2 : 4;
        p->v = xrealloc(p->v, (size_t)p->cap * sizeof *p->v);
    }
    p->v[p->n++] = (struct piece){node, mask};
}

static int32_t pieces_gpus(const struct pieces *p)
{
    int32_t n = 0;
    for (int i = 0; i < p->n; i++)
        n += popc(p->v[i].mask);
    return n;
}

/* ---- capacity: every GPU a holder takes or gives goes through these ---- */

static void integrate(struct sim *s, int64_t t)
{
    if (t > s->last_t) {
        double dt = (double)(t - s->last_t);
        s->busy_s += (double)s->busy * dt;
        s->spot_s += (double)s->busy_spot * dt;
        s->ctr_s += (double)(s->busy - s->busy_spot) * dt;
        s->last_t = t;
    }
}

static void hold(struct sim *s, struct pool *p, struct pieces *pl, int32_t node, uint32_t mask,
                 int spot)
{
    cluster_take(&p->c, (uint32_t)node, mask, CLUSTER_GPU_MILLI, 0, 0);
    pieces_add(pl, node, mask);
    s->busy += popc(mask);
    if (spot)
        s->busy_spot += popc(mask);
    p->dirty = 1;
}

static void give_piece(struct sim *s, struct pool *p, struct piece pc, int spot)
{
    cluster_give(&p->c, (uint32_t)pc.node, pc.mask, CLUSTER_GPU_MILLI, 0, 0);
    s->busy -= popc(pc.mask);
    if (spot)
        s->busy_spot -= popc(pc.mask);
    p->dirty = 1;
}

static void give_all(struct sim *s, struct pool *p, struct pieces *pl, int spot)
{
    for (int i = 0; i < pl->n; i++)
        give_piece(s, p, pl->v[i], spot);
    pl->n = 0;
}

/* Takes back the GPUs `mask` of `node` from a holder (failed hardware); returns how many. */
static int32_t give_hit(struct sim *s, struct pool *p, struct pieces *pl, int32_t node,
                        uint32_t mask, int spot)
{
    int32_t lost = 0;
    for (int i = 0; i < pl->n; i++) {
        struct piece pc = pl->v[i];
        if (pc.node != node || !(pc.mask & mask))
            continue;
        lost += popc(pc.mask & mask);
        give_piece(s, p, pc, spot);
        pl->v[i] = pl->v[--pl->n];
        uint32_t keep = pc.mask & ~mask;
        if (keep)
            hold(s, p, pl, node, keep, spot); /* appended; examined again, harmlessly */
        i--;
    }
    return lost;
}

static void recount(struct sim *s, struct pool *p)
{
    if (!p->dirty)
        return;
    int32_t f = 0, sh = 0;
    for (uint32_t i = 0; i < p->c.nnodes; i++)
        f += popc(gang_free_mask(&p->c.nodes[i]));
    for (int i = 0; i < p->spot.n; i++)
        sh += pieces_gpus(&s->bids[p->spot.v[i]].pl);
    p->free_gpus = f;
    p->spot_held = sh;
    p->dirty = 0;
}

/* Takes up to k free healthy GPUs of the pool: the nodes of `rack` first (most free first)
   when rack >= 0, then gangs of the rest by gang_choose (fewest racks, whole nodes first).
   Returns the number taken. */
static int32_t take_gpus(struct sim *s, struct pool *p, int32_t k, int rack, struct pieces *out,
                         int spot)
{
    struct cluster *c = &p->c;
    int32_t got = 0;
    if (rack >= 0) {
        uint32_t first = (uint32_t)rack * (uint32_t)sc.nodes_per_rack;
        uint32_t last = first + (uint32_t)sc.nodes_per_rack;
        while (got < k) {
            int bestn, best = gang_most_free_node(c, first, last, &bestn);
            if (best < 0)
                break;
            uint32_t mask = gang_pick_gpus(&c->nodes[best], k - got < bestn ? k - got : bestn);
            CAPX_ASSERT(mask);
            hold(s, p, out, best, mask, spot);
            got += popc(mask);
        }
    }
    recount(s, p);
    int32_t want = k - got < p->free_gpus ? k - got : p->free_gpus;
    if (want <= 0)
        return got;
    struct cluster_alloc *al = xmalloc((size_t)c->nnodes * sizeof *al);
    while (want > 0) {
        int32_t w = want > JOB_MAX_GPUS ? JOB_MAX_GPUS : want;
        struct job_spec j = {.id = 1,
                             .gpus = w,
                             .gpu_milli = CLUSTER_GPU_MILLI,
                             .gang = true,
                             .prio = spot ? JOB_SPOT : JOB_RESERVATION};
        uint32_t n = 0;
        /* the pool has w free healthy GPUs and a gang of whole GPUs may spread */
        CAPX_ASSERT(gang_choose(c, &j, al, &n) == 0);
        for (uint32_t i = 0; i < n; i++) {
            hold(s, p, out, (int32_t)al[i].node, al[i].gpu_mask, spot);
            got += popc(al[i].gpu_mask);
        }
        want -= w;
    }
    free(al);
    return got;
}

static int racks_of(const struct pieces *pl)
{
    int r[64], n = 0;
    for (int i = 0; i < pl->n; i++) {
        int rk = pl->v[i].node / (int)sc.nodes_per_rack, seen = 0;
        for (int k = 0; k < n; k++)
            if (r[k] == rk)
                seen = 1;
        if (!seen) {
            if (n == (int)ARRAY_LEN(r))
                return n + 1; /* more than we care to count */
            r[n++] = rk;
        }
    }
    return n;
}

/* ---- spot supply and the engine ---- */

/* GPUs spot may hold in the pool now: healthy, unsold (what spot holds counts), less what
   contracts lack and, inside the notice window, what the next hour's starting contracts need
   beyond what the ending ones give back. */
static int32_t spot_idle(struct sim *s, struct pool *p)
{
    recount(s, p);
    int64_t idle = (int64_t)p->free_gpus + p->spot_held - p->missing;
    int64_t extra = (int64_t)p->need_next - p->ending_next;
    if (extra > 0)
        idle -= extra;
    if (idle < 0)
        idle = 0;
    return (int32_t)idle;
}

static void sink(void *ctx, const engine_event *ev)
{
    struct sim *s = ctx;
    if (s->nev == s->capev) {
        s->capev = s->capev ? s->capev * 2 : 256;
        s->ev = xrealloc(s->ev, s->capev * sizeof *s->ev);
    }
    s->ev[s->nev++] = *ev;
}

static int pool_ix(const struct sim *s, uint64_t id)
{
    CAPX_ASSERT(id >= 1 && id <= (uint64_t)s->npools);
    return (int)(id - 1);
}

static struct bid *bid_of(struct sim *s, uint64_t id)
{
    /* bid ids are handed out in order; s->bids is sorted by id */
    size_t lo = 0, hi = s->nbids;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (s->bids[mid].id < id)
            lo = mid + 1;
        else
            hi = mid;
    }
    CAPX_ASSERT(lo < s->nbids && s->bids[lo].id == id);
    return &s->bids[lo];
}

static void bid_stop(struct sim *s, struct bid *b)
{
    if (b->pool < 0)
        return;
    struct pool *p = &s->pools[b->pool];
    give_all(s, p, &b->pl, 1);
    ivec_del(&p->spot, (int)(b - s->bids));
    p->spot_running -= b->gpus;
    b->pool = -1;
    b->shortby = 0;
}

static void new_contract(struct sim *s, const engine_event *ev)
{
    if (s->nctrs == s->capctrs) {
        s->capctrs = s->capctrs ? s->capctrs * 2 : 1024;
        s->ctrs = xrealloc(s->ctrs, (size_t)s->capctrs * sizeof *s->ctrs);
    }
    int ix = s->nctrs++;
    struct ctr *c = &s->ctrs[ix];
    memset(c, 0, sizeof *c);
    c->order = ev->order;
    c->pool = pool_ix(s, ev->pool);
    c->gpus = (int32_t)ev->gpus;
    c->start = ev->start;
    c->end = ev->end;
    c->next = CTR_NONE;
    c->gang = ev->order < s->ngang && s->gang_order[ev->order];
    /* One order's piece over several offer blocks is one contract per block (FILL events of
       a piece come in time order): the buyer keeps its GPUs across the boundary. */
    if (ix > 0) {
        struct ctr *pv = &s->ctrs[ix - 1];
        if (pv->order == c->order && pv->pool == c->pool && pv->end == c->start &&
            pv->gpus == c->gpus) {
            pv->next = ix;
            c->cont = 1;
        }
    }
    int64_t from = c->start, to = c->end < s->h_end ? c->end : s->h_end;
    if (to > from)
        s->sold_gpu_hours += (int64_t)c->gpus * (to - from);
    int64_t rs = c->start - T0_HOUR, re = c->end - T0_HOUR;
    if (rs < s->h_end - T0_HOUR)
        ivec_push(&s->starts[rs], ix);
    if (re < s->h_end - T0_HOUR)
        ivec_push(&s->ends[re], ix);
}

/* Applies the events of the last engine call: stops first, then wins (a round reports its
   winners before its losers, and the winners need the losers' GPUs). */
static void apply_events(struct sim *s)
{
    for (size_t i = 0; i < s->nev; i++) {
        const engine_event *ev = &s->ev[i];
        switch (ev->kind) {
        case ENGINE_EV_FILL:
            new_contract(s, ev);
            break;
        case ENGINE_EV_ORDER_DONE:
            if (ev->reason == ENGINE_R_FILLED)
                s->orders_filled++;
            break;
        case ENGINE_EV_SPOT_PREEMPTED:
            s->preempt[ev->reason == ENGINE_R_OUTBID ? WHY_ROUND : s->why]++;
            bid_stop(s, bid_of(s, ev->order));
            break;
        case ENGINE_EV_SPOT_BID_DONE: {
            struct bid *b = bid_of(s, ev->order);
            bid_stop(s, b);
            b->live = 0;
            break;
        }
        default:
            break;
        }
    }
    for (size_t i = 0; i < s->nev; i++) {
        const engine_event *ev = &s->ev[i];
        if (ev->kind != ENGINE_EV_SPOT_WON)
            continue;
        struct bid *b = bid_of(s, ev->order);
        struct pool *p = &s->pools[pool_ix(s, ev->pool)];
        CAPX_ASSERT(b->pool < 0 && ev->gpus == b->gpus);
        b->pool = (int)(p - s->pools);
        ivec_push(&p->spot, (int)(b - s->bids));
        p->spot_running += b->gpus;
        int32_t got = take_gpus(s, p, b->gpus, -1, &b->pl, 1);
        CAPX_ASSERT(got == b->gpus); /* the supply given to the round was free */
        s->won++;
    }
    s->nev = 0;
}

static void engine_ok(struct sim *s, int rc, const char *what)
{
    if (rc < 0)
        capx_fatal("%s: %s", what, engine_strerror(engine_error(s->eng)));
    apply_events(s);
}

/* The engine preempts the pool's lowest-priority running bids until `avail` GPUs hold them. */
static void reclaim(struct sim *s, struct pool *p, int32_t avail, int why)
{
    if (p->spot_running <= avail)
        return;
    s->why = why;
    engine_ok(s, engine_spot_reclaim(s->eng, s->now, p->id, avail), "spot reclaim");
    CAPX_ASSERT(p->spot_running <= avail);
}

/* Spot bids of the pool hit by a failure get their GPUs back, or lose them to the engine. */
static void spot_fix(struct sim *s, struct pool *p)
{
    reclaim(s, p, spot_idle(s, p), WHY_FAILURE);
    for (int i = 0; i < p->spot.n; i++) {
        struct bid *b = &s->bids[p->spot.v[i]];
        if (b->shortby > 0) {
            int32_t got = take_gpus(s, p, b->shortby, -1, &b->pl, 1);
            CAPX_ASSERT(got == b->shortby);
            b->shortby = 0;
        }
    }
}

static void spot_round(struct sim *s)
{
    engine_spot_supply *sup = xmalloc((size_t)s->npools * sizeof *sup);
    for (int i = 0; i < s->npools; i++)
        sup[i] = (engine_spot_supply){s->pools[i].id, spot_idle(s, &s->pools[i]), 0};
    s->why = WHY_ROUND;
    engine_ok(s, engine_spot_round(s->eng, s->now, sup, (size_t)s->npools), "spot round");
    free(sup);
}

/* ---- contracts ---- */

static void set_missing(struct sim *s, struct ctr *c, int32_t m)
{
    s->pools[c->pool].missing += m - c->missing;
    c->missing = m;
}

/* Gives a contract the GPUs it lacks: same rack first (after a failure), preempting spot (the
   engine picks the bids, lowest priority first) while the pool's free GPUs are short. */
static void fill_contract(struct sim *s, struct ctr *c, int rack, int why)
{
    struct pool *p = &s->pools[c->pool];
    if (c->missing <= 0)
        return;
    for (;;) {
        recount(s, p);
        if (p->free_gpus >= c->missing || p->spot_running == 0)
            break;
        int32_t avail = p->spot_running - (c->missing - p->free_gpus);
        reclaim(s, p, avail > 0 ? avail : 0, why);
    }
    set_missing(s, c, c->missing - take_gpus(s, p, c->missing, rack, &c->pl, 0));
}

/* ---- the notice point: where starting contracts go, and spot making way ---- */

static void cl_give(struct cluster *c, const struct pieces *pl)
{
    for (int i = 0; i < pl->n; i++)
        cluster_give(c, (uint32_t)pl->v[i].node, pl->v[i].mask, CLUSTER_GPU_MILLI, 0, 0);
}

static void cl_take(struct cluster *c, const struct pieces *pl)
{
    for (int i = 0; i < pl->n; i++)
        cluster_take(c, (uint32_t)pl->v[i].node, pl->v[i].mask, CLUSTER_GPU_MILLI, 0, 0);
}

static int ending_here(const struct sim *s, const struct ctr *e, const struct pool *p)
{
    return e->state == C_ACTIVE && e->next == CTR_NONE && &s->pools[e->pool] == p;
}

/* Plans starting contract `ix` with gang_choose (fewest racks, whole nodes first) over the pool
   as it will be at its start if spot makes way: GPUs spot holds and GPUs of contracts ending
   then count as free, GPUs planned for contracts starting with it do not. Holds the planned
   GPUs that are free now (spot on the others is moved off them now, or preempted by the
   engine when there is no room to move it), and keeps the part on ending contracts in
   c->plan for the start. */
static void plan_contract(struct sim *s, int ix, int64_t rel)
{
    struct ctr *c = &s->ctrs[ix];
    struct pool *p = &s->pools[c->pool];
    struct cluster *cl = &p->c;
    const struct ivec *ends = &s->ends[rel], *starts = &s->starts[rel];
    /* the view: spot and ending contracts given back, earlier plans on ending GPUs kept */
    for (int i = 0; i < p->spot.n; i++)
        cl_give(cl, &s->bids[p->spot.v[i]].pl);
    for (int i = 0; i < ends->n; i++)
        if (ending_here(s, &s->ctrs[ends->v[i]], p))
            cl_give(cl, &s->ctrs[ends->v[i]].pl);
    for (int i = 0; i < starts->n && starts->v[i] != ix; i++)
        if (s->ctrs[starts->v[i]].pool == c->pool)
            cl_take(cl, &s->ctrs[starts->v[i]].plan);
    struct cluster_alloc *al = xmalloc((size_t)cl->nnodes * sizeof *al);
    struct job_spec j = {.id = 1,
                         .gpus = c->gpus,
                         .gpu_milli = CLUSTER_GPU_MILLI,
                         .gang = true,
                         .prio = JOB_RESERVATION};
    uint32_t nal = 0;
    int ok = c->gpus <= JOB_MAX_GPUS && gang_choose(cl, &j, al, &nal) == 0;
    for (int i = 0; i < starts->n && starts->v[i] != ix; i++)
        if (s->ctrs[starts->v[i]].pool == c->pool)
            cl_give(cl, &s->ctrs[starts->v[i]].plan);
    for (int i = 0; i < ends->n; i++)
        if (ending_here(s, &s->ctrs[ends->v[i]], p))
            cl_take(cl, &s->ctrs[ends->v[i]].pl);
    for (int i = 0; i < p->spot.n; i++)
        cl_take(cl, &s->bids[p->spot.v[i]].pl);
    if (!ok) { /* the pool lacks healthy GPUs: the start takes what there is */
        free(al);
        return;
    }
    /* spot on planned GPUs moves */
    struct ivec moving = {0};
    for (int i = 0; i < p->spot.n; i++) {
        struct bid *b = &s->bids[p->spot.v[i]];
        int hit = 0;
        for (int k = 0; k < b->pl.n && !hit; k++)
            for (uint32_t a = 0; a < nal && !hit; a++)
                hit = (int32_t)al[a].node == b->pl.v[k].node && (al[a].gpu_mask & b->pl.v[k].mask);
        if (hit) {
            give_all(s, p, &b->pl, 1);
            ivec_push(&moving, (int)(b - s->bids));
        }
    }
    /* the planned GPUs free now are the contract's from now; the rest wait for the start */
    for (uint32_t a = 0; a < nal; a++) {
        uint32_t now_free = al[a].gpu_mask & gang_free_mask(&cl->nodes[al[a].node]);
        if (now_free) {
            hold(s, p, &c->pl, (int32_t)al[a].node, now_free, 0);
            p->need_next -= popc(now_free);
        }
        if (al[a].gpu_mask & ~now_free)
            pieces_add(&c->plan, (int32_t)al[a].node, al[a].gpu_mask & ~now_free);
    }
    free(al);
    for (int i = 0; i < moving.n; i++) {
        struct bid *b = &s->bids[moving.v[i]];
        for (;;) {
            if (b->pool < 0) /* the engine preempted it to make room */
                break;
            recount(s, p);
            if (p->free_gpus >= b->gpus) {
                CAPX_ASSERT(take_gpus(s, p, b->gpus, -1, &b->pl, 1) == b->gpus);
                s->spot_moved++;
                break;
            }
            /* no room to move it: the engine preempts by priority until there is */
            reclaim(s, p, p->spot_running - (b->gpus - p->free_gpus), WHY_NOTICE);
        }
    }
    free(moving.v);
}

static void start_contract(struct sim *s, int ix)
{
    struct ctr *c = &s->ctrs[ix];
    struct pool *p = &s->pools[c->pool];
    CAPX_ASSERT(c->state == C_SCHEDULED);
    c->state = C_ACTIVE;
    ivec_push(&p->act, ix);
    if (c->cont) {
        s->continued++;
        return; /* its GPUs came from the previous block's contract */
    }
    s->started++;
    /* the plan made at the notice point: GPUs of the contracts that just ended */
    for (int i = 0; i < c->plan.n; i++) {
        const struct cluster_node *n = &p->c.nodes[c->plan.v[i].node];
        uint32_t m = c->plan.v[i].mask & gang_free_mask(n);
        if (m)
            hold(s, p, &c->pl, c->plan.v[i].node, m, 0);
    }
    free(c->plan.v);
    c->plan = (struct pieces){0};
    recount(s, p);
    int32_t held = pieces_gpus(&c->pl);
    int had = held + p->free_gpus + p->spot_held >= c->gpus;
    long late = s->preempt[WHY_START];
    set_missing(s, c, c->gpus - held);
    fill_contract(s, c, -1, WHY_START);
    if (had) {
        /* A sold reservation whose pool has the GPUs starts on time, whole. */
        CAPX_ASSERT(c->missing == 0);
        s->had_gpus++;
    } else {
        s->short_at_start++;
    }
    /* The notice window freed what starting contracts need: nothing is preempted late. */
    CAPX_ASSERT(!had || s->preempt[WHY_START] == late);
    if (c->missing == 0) {
        s->on_time++;
        int racks = racks_of(&c->pl);
        int32_t rack_gpus = (int32_t)(sc.nodes_per_rack * sc.gpus_per_node);
        if (c->gang && c->gpus <= rack_gpus) {
            s->small++;
            s->small_one_rack += racks == 1;
        }
        if (c->gang) {
            s->fewest_racks += racks == (c->gpus + rack_gpus - 1) / rack_gpus;
            s->placed_full++;
        }
    }
}

static void end_contract(struct sim *s, int ix)
{
    struct ctr *c = &s->ctrs[ix];
    struct pool *p = &s->pools[c->pool];
    if (c->state != C_ACTIVE)
        return;
    c->state = C_ENDED;
    ivec_del(&p->act, ix);
    int32_t m = c->missing;
    set_missing(s, c, 0);
    if (c->next != CTR_NONE) { /* hand the GPUs to the next block's contract */
        struct ctr *n = &s->ctrs[c->next];
        n->pl = c->pl;
        set_missing(s, n, m); /* counted in the pool when it starts, right after */
        c->pl = (struct pieces){0};
        return;
    }
    give_all(s, p, &c->pl, 0);
    free(c->pl.v);
    c->pl = (struct pieces){0};
}

/* ---- failures ---- */

static void add_repair(struct sim *s, int pool, int32_t node, int gpu, double mean_h)
{
    if (s->nreps == s->capreps) {
        s->capreps = s->capreps ? s->capreps * 2 : 64;
        s->reps = xrealloc(s->reps, (size_t)s->capreps * sizeof *s->reps);
    }
    int64_t h = (int64_t)ceil(rexp(&s->r_fail, mean_h));
    if (h < 1)
        h = 1;
    s->reps[s->nreps++] = (struct repair){s->now + h * HOUR, pool, node, gpu};
}

/* The hardware `mask` of `node` just failed: holders lose those GPUs; contracts are re-placed
   (same rack first, preempting spot), spot bids after them. */
static void evict(struct sim *s, struct pool *p, int32_t node, uint32_t mask)
{
    int rack = p->c.nodes[node].rack;
    p->dirty = 1;
    for (int i = 0; i < p->spot.n; i++) {
        struct bid *b = &s->bids[p->spot.v[i]];
        b->shortby += give_hit(s, p, &b->pl, node, mask, 1);
    }
    for (int a = 0; a < p->act.n; a++) {
        struct ctr *c = &s->ctrs[p->act.v[a]];
        int32_t lost = give_hit(s, p, &c->pl, node, mask, 0);
        if (!lost)
            continue;
        s->ctr_hit++;
        set_missing(s, c, c->missing + lost);
        fill_contract(s, c, rack, WHY_FAILURE);
        s->ctr_replaced_rack += c->missing == 0;
    }
    spot_fix(s, p);
}

static int pool_of_node(const struct sim *s, int64_t g)
{
    int lo = 0, hi = s->npools - 1;
    while (lo < hi) {
        int mid = (lo + hi + 1) / 2;
        if (s->pools[mid].first_node <= g)
            lo = mid;
        else
            hi = mid - 1;
    }
    return lo;
}

static void failures(struct sim *s)
{
    /* repairs due */
    for (int i = 0; i < s->nreps;) {
        struct repair r = s->reps[i];
        if (r.at > s->now) {
            i++;
            continue;
        }
        s->reps[i] = s->reps[--s->nreps];
        struct pool *p = &s->pools[r.pool];
        if (r.gpu < 0)
            cluster_set_node_health(&p->c, (uint32_t)r.node, CLUSTER_UP);
        else
            cluster_set_gpu_health(&p->c, (uint32_t)r.node, r.gpu, CLUSTER_UP);
        p->dirty = 1;
    }
    /* new failures: exponential lifetimes are memoryless, so the hour's failures are a
       Poisson draw over the components, each a uniform pick (already failed ones redrawn) */
    if (sc.node_mtbf_h > 0) {
        int k = rpoisson(&s->r_fail, (double)s->total_nodes / sc.node_mtbf_h);
        for (int i = 0; i < k; i++) {
            for (int tries = 0; tries < 64; tries++) {
                int64_t g = (int64_t)rbelow(&s->r_fail, (uint64_t)s->total_nodes);
                int pi = pool_of_node(s, g);
                struct pool *p = &s->pools[pi];
                int32_t node = (int32_t)(g - p->first_node);
                struct cluster_node *n = &p->c.nodes[node];
                if (n->health != CLUSTER_UP)
                    continue;
                uint32_t mask = 0;
                for (int q = 0; q < n->ngpu; q++)
                    if (cluster_gpu_usable(n, q))
                        mask |= 1u << q;
                cluster_set_node_health(&p->c, (uint32_t)node, CLUSTER_FAILED);
                add_repair(s, pi, node, -1, sc.node_repair_h);
                s->node_fail++;
                evict(s, p, node, mask);
                break;
            }
        }
    }
    if (sc.gpu_mtbf_h > 0) {
        int64_t ng = s->total_nodes * (int64_t)sc.gpus_per_node;
        int k = rpoisson(&s->r_fail, (double)ng / sc.gpu_mtbf_h);
        for (int i = 0; i < k; i++) {
            for (int tries = 0; tries < 64; tries++) {
                int64_t g = (int64_t)rbelow(&s->r_fail, (uint64_t)ng);
                int64_t gn = g / (int64_t)sc.gpus_per_node;
                int gpu = (int)(g % (int64_t)sc.gpus_per_node);
                int pi = pool_of_node(s, gn);
                struct pool *p = &s->pools[pi];
                int32_t node = (int32_t)(gn - p->first_node);
                struct cluster_node *n = &p->c.nodes[node];
                if (n->health != CLUSTER_UP || n->gpu_health[gpu] != CLUSTER_UP)
                    continue;
                cluster_set_gpu_health(&p->c, (uint32_t)node, gpu, CLUSTER_FAILED);
                add_repair(s, pi, node, gpu, sc.gpu_repair_h);
                s->gpu_fail++;
                evict(s, p, node, 1u << gpu);
                break;
            }
        }
    }
}

/* ---- setup ---- */

static int models_parse(struct sim *s)
{
    const char *p = sc.models;
    s->nmodels = 0;
    while (*p) {
        const char *colon = strchr(p, ':');
        if (!colon || colon == p || colon - p >= 32 || s->nmodels == MAX_MODELS)
            return -1;
        struct model *m = &s->models[s->nmodels];
        memcpy(m->name, p, (size_t)(colon - p));
        m->name[colon - p] = '\0';
        char *end;
        double usd = strtod(colon + 1, &end);
        if (end == colon + 1 || !(usd > 0 && usd < 1000))
            return -1;
        m->price = usd * MICRO;
        s->nmodels++;
        p = end;
        if (*p == ',')
            p++;
        else if (*p)
            return -1;
    }
    return s->nmodels ? 0 : -1;
}

static void make_pools(struct sim *s)
{
    int64_t left = (int64_t)sc.nodes, npr = (int64_t)sc.nodes_per_rack;
    int cap = 0;
    struct rng *r = &s->r_layout;
    char err[128];
    while (left > 0) {
        int64_t lo = (int64_t)sc.pool_nodes_min / npr, hi = (int64_t)sc.pool_nodes_max / npr;
        if (lo < 1)
            lo = 1;
        if (hi < lo)
            hi = lo;
        int64_t n = (lo + (int64_t)rbelow(r, (uint64_t)(hi - lo + 1))) * npr;
        if (n > left || left - n < lo * npr)
            n = left; /* the last pool takes the rest */
        if (s->npools == cap) {
            cap = cap ? cap * 2 : 32;
            s->pools = xrealloc(s->pools, (size_t)cap * sizeof *s->pools);
        }
        struct pool *p = &s->pools[s->npools];
        memset(p, 0, sizeof *p);
        p->id = (uint64_t)s->npools + 1;
        p->provider = s->npools % (int)sc.providers;
        p->model = (int)rbelow(r, (uint64_t)s->nmodels);
        p->region = (int)rbelow(r, (uint64_t)sc.regions);
        p->nodes = (int32_t)n;
        p->gpus = (int32_t)(n * (int64_t)sc.gpus_per_node);
        p->first_node = (int64_t)sc.nodes - left;
        double share = rrange(r, sc.offer_share_min, sc.offer_share_max);
        p->offer_gpus = (int32_t)fmax(1, floor(share * p->gpus));
        double base = s->models[p->model].price;
        p->ask = base;
        p->reserve = (int64_t)(base * sc.spot_reserve * rrange(r, 0.8, 1.2));
        if (p->reserve < 1)
            p->reserve = 1;
        p->posted_to = T0_HOUR + 1;
        p->dirty = 1;
        cluster_init(&p->c);
        int model = cluster_model(&p->c, "gpu", 3);
        CAPX_ASSERT(model == 0);
        for (int64_t i = 0; i < n; i++) {
            struct cluster_node_spec ns = {model,          (int)sc.gpus_per_node, 0,
                                           (int)(i / npr), INT64_C(1) << 30,      INT64_C(1) << 30};
            if (cluster_add_node(&p->c, &ns, err, sizeof err) < 0)
                capx_fatal("pool %d: %s", s->npools, err);
        }
        if (engine_add_pool(s->eng, p->id, (uint64_t)p->provider + 1, (uint64_t)p->model + 1,
                            (uint64_t)p->region + 1, p->gpus) < 0)
            capx_fatal("engine_add_pool: %s", engine_strerror(engine_error(s->eng)));
        s->total_gpus += p->gpus;
        s->npools++;
        left -= n;
    }
    s->total_nodes = (int64_t)sc.nodes;
}

/* Posts every reservation block of every pool that starts within offer_ahead_days. */
static void post_offers(struct sim *s)
{
    int64_t block = (int64_t)(sc.offer_block_days * 24);
    int64_t horizon = s->now / HOUR + (int64_t)(sc.offer_ahead_days * 24);
    for (int i = 0; i < s->npools; i++) {
        struct pool *p = &s->pools[i];
        while (p->posted_to <= horizon) {
            double f = rrange(&s->r_layout, 1 - sc.price_spread, 1 + sc.price_spread);
            engine_offer_spec o = {s->next_id++,          p->id,
                                   p->posted_to,          p->posted_to + block,
                                   (int64_t)(p->ask * f), p->offer_gpus};
            engine_ok(s, engine_offer(s->eng, s->now, &o), "offer");
            int64_t from = o.start > T0_HOUR ? o.start : T0_HOUR;
            int64_t to = o.end < s->h_end ? o.end : s->h_end;
            if (to > from)
                s->offered_gpu_hours += (int64_t)o.gpus * (to - from);
            p->posted_to = o.end;
            s->offers_n++;
        }
    }
}

/* A market chosen in proportion to capacity: the model and region of a random GPU. */
static struct pool *random_pool(struct sim *s, struct rng *r)
{
    int64_t g = (int64_t)rbelow(r, (uint64_t)s->total_gpus);
    return &s->pools[pool_of_node(s, g / (int64_t)sc.gpus_per_node)];
}

static void new_order(struct sim *s)
{
    struct rng *r = &s->r_orders;
    struct pool *p = random_pool(s, r);
    double lh = rrange(r, log(sc.resv_hours_min), log(sc.resv_hours_max));
    int32_t hours = (int32_t)lround(exp(lh));
    int64_t cur = s->now / HOUR + 1;
    engine_order_spec o = {0};
    o.id = s->next_id++;
    o.account = BUYER_BASE + rbelow(r, (uint64_t)sc.buyers);
    o.model = (uint64_t)p->model + 1;
    o.region = runif(r) * 100 < sc.resv_any_region_pct ? 0 : (uint64_t)p->region + 1;
    o.gpus = rpick(r, &s->resv_gpus);
    o.hours = hours;
    o.start = cur + 1 + (int64_t)rbelow(r, (uint64_t)sc.resv_lead_max_h);
    o.latest_start = o.start;
    if (runif(r) * 100 < sc.resv_flex_pct)
        o.latest_start = o.start + 1 + (int64_t)rbelow(r, (uint64_t)sc.resv_flex_max_h);
    o.limit_price =
        (int64_t)(s->models[p->model].price * rrange(r, sc.resv_limit_min, sc.resv_limit_max));
    o.all_or_none = true;
    o.single_pool = runif(r) * 100 < sc.resv_single_pool_pct;
    if (o.id >= s->ngang) {
        uint64_t n = o.id * 2 + 1024;
        s->gang_order = xrealloc(s->gang_order, n);
        memset(s->gang_order + s->ngang, 0, n - s->ngang);
        s->ngang = n;
    }
    s->gang_order[o.id] = o.single_pool;
    o.tif = ENGINE_GTC;
    s->orders++;
    s->asked_gpu_hours += (int64_t)o.gpus * o.hours;
    engine_ok(s, engine_order(s->eng, s->now, &o), "order");
}

static void new_bid(struct sim *s)
{
    struct rng *r = &s->r_bids;
    struct pool *p = random_pool(s, r);
    if (s->nbids == s->capbids) {
        s->capbids = s->capbids ? s->capbids * 2 : 1024;
        s->bids = xrealloc(s->bids, s->capbids * sizeof *s->bids);
    }
    struct bid *b = &s->bids[s->nbids];
    memset(b, 0, sizeof *b);
    b->id = s->next_id++;
    b->model = p->model;
    b->region = p->region;
    b->gpus = rpick(r, &s->spot_gpus);
    b->pool = -1;
    b->live = 1;
    b->cancel_at = s->now + (int64_t)(rrange(r, sc.spot_life_min_h, sc.spot_life_max_h) * HOUR);
    engine_spot_bid_spec bs = {
        b->id,
        BUYER_BASE + rbelow(r, (uint64_t)sc.buyers),
        (uint64_t)p->model + 1,
        (uint64_t)p->region + 1,
        (int64_t)(s->models[p->model].price * rrange(r, sc.spot_limit_min, sc.spot_limit_max)),
        b->gpus};
    s->nbids++;
    s->bids_n++;
    ivec_push(&s->livebids, (int)(b - s->bids));
    engine_ok(s, engine_spot_bid(s->eng, s->now, &bs), "spot bid");
}

static void cancel_due_bids(struct sim *s)
{
    for (int i = 0; i < s->livebids.n;) {
        struct bid *b = &s->bids[s->livebids.v[i]];
        if (b->live && b->cancel_at > s->now) {
            i++;
            continue;
        }
        s->livebids.v[i] = s->livebids.v[--s->livebids.n];
        if (b->live)
            engine_ok(s, engine_cancel_order(s->eng, s->now, b->id), "cancel bid");
    }
}

/* ---- the clock ---- */

static void hour_boundary(struct sim *s, int64_t h)
{
    int64_t rel = h - T0_HOUR;
    integrate(s, s->now);
    engine_ok(s, engine_tick(s->eng, s->now), "tick");
    for (int i = 0; i < s->npools; i++)
        s->pools[i].need_next = s->pools[i].ending_next = 0;
    /* contracts ending now give their GPUs back (or to the next block's contract) */
    for (int i = 0; i < s->ends[rel].n; i++)
        end_contract(s, s->ends[rel].v[i]);
    /* contracts starting now are placed */
    for (int i = 0; i < s->starts[rel].n; i++)
        start_contract(s, s->starts[rel].v[i]);
    /* hardware: repairs and failures of the hour; contracts short of GPUs take them back */
    failures(s);
    for (int i = 0; i < s->npools; i++) {
        struct pool *p = &s->pools[i];
        int any = 0;
        for (int a = 0; a < p->act.n; a++)
            if (s->ctrs[p->act.v[a]].missing > 0) {
                fill_contract(s, &s->ctrs[p->act.v[a]], -1, WHY_FAILURE);
                any = 1;
            }
        if (any)
            spot_fix(s, p);
        for (int a = 0; a < p->act.n; a++) {
            struct ctr *c = &s->ctrs[p->act.v[a]];
            c->lost += c->missing;
            s->lost_gpu_hours += c->missing; /* this hour, for each GPU not delivered */
        }
    }
    post_offers(s);
}

/* `notice_s` before hour h: spot on GPUs the starting contracts need gets its notice. */
static void notice_point(struct sim *s, int64_t h)
{
    int64_t rel = h - T0_HOUR;
    if (rel >= s->h_end - T0_HOUR)
        return;
    for (int i = 0; i < s->starts[rel].n; i++) {
        struct ctr *c = &s->ctrs[s->starts[rel].v[i]];
        if (!c->cont)
            s->pools[c->pool].need_next += c->gpus;
    }
    for (int i = 0; i < s->ends[rel].n; i++) {
        struct ctr *c = &s->ctrs[s->ends[rel].v[i]];
        if (c->next == CTR_NONE && c->state == C_ACTIVE)
            s->pools[c->pool].ending_next += pieces_gpus(&c->pl);
    }
    for (int i = 0; i < s->npools; i++)
        if (s->pools[i].need_next)
            reclaim(s, &s->pools[i], spot_idle(s, &s->pools[i]), WHY_NOTICE);
    for (int i = 0; i < s->starts[rel].n; i++)
        if (!s->ctrs[s->starts[rel].v[i]].cont && sc.notice_plan > 0)
            plan_contract(s, s->starts[rel].v[i], rel);
}

static double wall(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static void run(struct sim *s)
{
    int64_t t0 = T0_HOUR * HOUR;
    int64_t round = (int64_t)sc.spot_round_min * 60, notice = (int64_t)sc.notice_s;
    double resv_rate = 0, bid_rate = 0;
    {
        /* orders per hour so that GPU-hours asked = resv_load x GPU-hours offered per hour */
        double tot = 0, mean_g = 0;
        for (int i = 0; i < s->resv_gpus.n; i++) {
            tot += s->resv_gpus.w[i];
            mean_g += s->resv_gpus.w[i] * s->resv_gpus.v[i];
        }
        mean_g /= tot;
        double a = log(sc.resv_hours_min), b = log(sc.resv_hours_max);
        double mean_h =
            b > a ? (sc.resv_hours_max - sc.resv_hours_min) / (b - a) : sc.resv_hours_min;
        int64_t offered = 0;
        for (int i = 0; i < s->npools; i++)
            offered += s->pools[i].offer_gpus;
        resv_rate = sc.resv_load * (double)offered / (mean_g * mean_h);
        bid_rate = sc.spot_bid_rate * (double)s->total_gpus / 1000.0;
    }
    double next_order = (double)t0 + (resv_rate > 0 ? rexp(&s->r_orders, HOUR / resv_rate) : 1e30);
    double next_bid = (double)t0 + (bid_rate > 0 ? rexp(&s->r_bids, HOUR / bid_rate) : 1e30);
    s->now = t0;
    s->last_t = t0;
    post_offers(s);
    for (int64_t h = T0_HOUR; h < s->h_end; h++) {
        int64_t T = h * HOUR;
        s->now = T;
        hour_boundary(s, h);
        int64_t tn = T + HOUR - notice, tr = T;
        int noticed = 0;
        for (;;) {
            /* the next thing due in this hour: an arrival, a round, the notice point */
            int64_t t = T + HOUR;
            if (tr < t)
                t = tr;
            if (!noticed && tn < t)
                t = tn;
            if ((int64_t)next_order < t)
                t = (int64_t)next_order;
            if ((int64_t)next_bid < t)
                t = (int64_t)next_bid;
            if (t >= T + HOUR)
                break;
            integrate(s, t);
            s->now = t;
            if ((int64_t)next_order == t) {
                new_order(s);
                next_order += rexp(&s->r_orders, HOUR / resv_rate);
                continue;
            }
            if ((int64_t)next_bid == t) {
                new_bid(s);
                next_bid += rexp(&s->r_bids, HOUR / bid_rate);
                continue;
            }
            if (!noticed && tn == t) {
                notice_point(s, h + 1);
                noticed = 1;
                continue;
            }
            cancel_due_bids(s);
            spot_round(s);
            tr += round;
        }
    }
    s->now = s->t_end;
    integrate(s, s->t_end);
}

static int usage(void)
{
    fprintf(stderr, "usage: capx-sim market [--scenario FILE] [--set KEY=VALUE ...] [--seed S]\n"
                    "scenario keys (KEY = VALUE lines, # comments), with defaults:\n");
    for (size_t i = 0; i < ARRAY_LEN(opts); i++)
        fprintf(stderr, "  %-22s %-28s %s\n", opts[i].name, opts[i].def, opts[i].help);
    return 2;
}

static void print_table(const struct sim *s, double secs)
{
    double cap_h = (double)s->total_gpus * (double)(s->h_end - T0_HOUR);
    double on_time = s->had_gpus ? 100.0 * (double)s->on_time / (double)s->had_gpus : 100.0;
    double one_rack = s->small ? 100.0 * (double)s->small_one_rack / (double)s->small : 100.0;
    long pre = s->preempt[WHY_ROUND] + s->preempt[WHY_NOTICE] + s->preempt[WHY_START] +
               s->preempt[WHY_FAILURE];
    double util = 100.0 * s->busy_s / HOUR / cap_h;
    printf("capx market simulation: %.0f days, %lld nodes (%lld GPUs) in racks of %.0f, %d pools, "
           "%.0f providers, %.0f regions, %d models, seed %.0f\n",
           sc.days, (long long)s->total_nodes, (long long)s->total_gpus, sc.nodes_per_rack,
           s->npools, sc.providers, sc.regions, s->nmodels, sc.seed);
    printf("\n%-58s %14s\n", "figure", "value");
    printf("%-58s %14ld\n", "reservation orders", s->orders);
    printf("%-58s %14ld\n", "  filled whole", s->orders_filled);
    printf("%-58s %13.1f%%\n", "  GPU-hours sold / GPU-hours offered in the horizon",
           s->offered_gpu_hours ? 100.0 * (double)s->sold_gpu_hours / (double)s->offered_gpu_hours
                                : 0);
    printf("%-58s %14ld\n", "contracts started (excluding block continuations)", s->started);
    printf("%-58s %14ld\n", "  their pool had the GPUs at the start", s->had_gpus);
    printf("%-58s %14ld\n", "  placed whole on their start hour", s->on_time);
    printf("%-58s %13.2f%%\n", "reservations started on time (where the pool had the GPUs)",
           on_time);
    printf("%-58s %14ld\n", "  started short: pool lacked healthy GPUs (failures)",
           s->short_at_start);
    printf("%-58s %14ld\n", "  continued across offer blocks on the same GPUs", s->continued);
    printf("%-58s %13.2f%%\n", "gangs (single-pool contracts) of <= a rack kept in one rack",
           one_rack);
    printf("%-58s %13.2f%%\n", "gangs on the fewest racks possible",
           s->placed_full ? 100.0 * (double)s->fewest_racks / (double)s->placed_full : 100.0);
    printf("%-58s %14ld\n", "spot bids", s->bids_n);
    printf("%-58s %14ld\n", "  times a bid won a round", s->won);
    printf("%-58s %14ld\n", "spot preemptions", pre);
    printf("%-58s %14ld\n", "  by a starting reservation, with notice", s->preempt[WHY_NOTICE]);
    printf("%-58s %14ld\n", "  by a lost auction (outbid)", s->preempt[WHY_ROUND]);
    printf("%-58s %14ld\n", "  by a failure (contract re-placed / spot GPUs lost)",
           s->preempt[WHY_FAILURE]);
    printf("%-58s %14ld\n", "  at a reservation start without notice", s->preempt[WHY_START]);
    printf("%-58s %14ld\n", "spot bids moved off GPUs a starting gang needs, at notice",
           s->spot_moved);
    printf("%-58s %14ld\n", "node failures", s->node_fail);
    printf("%-58s %14ld\n", "GPU failures", s->gpu_fail);
    printf("%-58s %14ld\n", "contracts hit by a failure", s->ctr_hit);
    printf("%-58s %14ld\n", "  re-placed whole at once (same rack first)", s->ctr_replaced_rack);
    printf("%-58s %14lld\n", "lost GPU-hours", (long long)s->lost_gpu_hours);
    printf("%-58s %13.2f%%\n", "GPU utilization (contracts + spot)", util);
    printf("%-58s %13.2f%%\n", "  held by contracts", 100.0 * s->ctr_s / HOUR / cap_h);
    printf("%-58s %13.2f%%\n", "  held by spot", 100.0 * s->spot_s / HOUR / cap_h);
    printf("%-58s %13.2fs\n", "wall time", secs);
    printf("{\"bench\": \"market-sim\", \"days\": %.0f, \"on_time_pct\": %.2f, \"one_rack_pct\": "
           "%.2f, \"preemptions\": %ld, \"utilization_pct\": %.2f, \"lost_gpu_hours\": %lld, "
           "\"wall_s\": %.2f}\n",
           sc.days, on_time, one_rack, pre, util, (long long)s->lost_gpu_hours, secs);
}

int msim_main(int argc, char **argv)
{
    char err[512];
    for (size_t i = 0; i < ARRAY_LEN(opts); i++)
        if (opt_set(&opts[i], opts[i].def, err, sizeof err) < 0)
            capx_fatal("default: %s", err);
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!v)
            return usage();
        if (strcmp(a, "--scenario") == 0) {
            if (scen_read(v, err, sizeof err) < 0) {
                fprintf(stderr, "capx-sim: %s\n", err);
                return 2;
            }
        } else if (strcmp(a, "--set") == 0) {
            if (opt_assign(v, err, sizeof err) < 0) {
                fprintf(stderr, "capx-sim: --set %s: %s\n", v, err);
                return 2;
            }
        } else if (strcmp(a, "--seed") == 0) {
            if (opt_set(opt_find("seed", 4), v, err, sizeof err) < 0) {
                fprintf(stderr, "capx-sim: %s\n", err);
                return 2;
            }
        } else {
            return usage();
        }
        i++;
    }
    struct sim *s = xcalloc(1, sizeof *s);
    if (models_parse(s) < 0 || wlist_parse(sc.resv_gpus, 1, ENGINE_MAX_GPUS, &s->resv_gpus) < 0 ||
        wlist_parse(sc.spot_gpus, 1, JOB_MAX_GPUS, &s->spot_gpus) < 0 ||
        sc.pool_nodes_min > sc.pool_nodes_max || sc.offer_share_min > sc.offer_share_max ||
        sc.resv_hours_min > sc.resv_hours_max || sc.resv_limit_min > sc.resv_limit_max ||
        sc.spot_limit_min > sc.spot_limit_max || sc.spot_life_min_h > sc.spot_life_max_h) {
        fprintf(stderr, "capx-sim: the scenario's models, size lists or ranges are invalid\n");
        free(s);
        return 2;
    }
    uint64_t seed = (uint64_t)sc.seed;
    s->r_layout.s = seed ^ UINT64_C(0x6c61796f7574);
    s->r_orders.s = seed ^ UINT64_C(0x6f7264657273);
    s->r_bids.s = seed ^ UINT64_C(0x62696473);
    s->r_fail.s = seed ^ UINT64_C(0x6661696c);
    s->next_id = 1;
    s->eng = engine_new(sink, s);
    s->h_end = T0_HOUR + (int64_t)(sc.days * 24);
    s->t_end = s->h_end * HOUR;
    int64_t nh = s->h_end - T0_HOUR + 1;
    s->starts = xcalloc((size_t)nh, sizeof *s->starts);
    s->ends = xcalloc((size_t)nh, sizeof *s->ends);
    make_pools(s);
    /* every pool offers its idle GPUs to spot */
    for (int i = 0; i < s->npools; i++) {
        struct pool *p = &s->pools[i];
        engine_spot_offer_spec so = {s->next_id++, p->id, p->reserve, p->gpus};
        engine_ok(s, engine_spot_offer(s->eng, T0_HOUR * HOUR, &so), "spot offer");
    }
    double w0 = wall();
    run(s);
    double secs = wall() - w0;
    print_table(s, secs);

    engine_free(s->eng);
    for (int i = 0; i < s->npools; i++) {
        cluster_free(&s->pools[i].c);
        free(s->pools[i].act.v);
        free(s->pools[i].spot.v);
    }
    for (int i = 0; i < s->nctrs; i++) {
        free(s->ctrs[i].pl.v);
        free(s->ctrs[i].plan.v);
    }
    for (size_t i = 0; i < s->nbids; i++)
        free(s->bids[i].pl.v);
    for (int64_t i = 0; i < nh; i++) {
        free(s->starts[i].v);
        free(s->ends[i].v);
    }
    free(s->starts);
    free(s->ends);
    free(s->pools);
    free(s->ctrs);
    free(s->bids);
    free(s->livebids.v);
    free(s->reps);
    free(s->gang_order);
    free(s->ev);
    free(s);
    return 0;
}
