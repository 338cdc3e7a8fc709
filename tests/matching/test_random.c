/*
 * test_random.c — the engine against the reference matcher (ref.c).
 *
 * Each stream is a fixed seed: a tiny world (1–2 gpu models, 1–2 regions, 2–6
 * pools, 5 accounts, some of them both providers and buyers) and a random
 * command stream over it. Engine and reference take every command; their
 * return codes, errors and events must be identical. After every command the
 * harness checks the invariants of issue 4: no pool-hour oversold, every fill
 * within its limit, all-or-none respected, the book at rest (no resting order
 * could fill now, which is what price-time priority and the re-try rule
 * guarantee), spot winners paying one price within their limits and above the
 * reserves used, and after every command (every N with --rebuild-every N) the
 * book rebuilt from its open entities has the same digest (and the run
 * continues on the rebuilt engine).
 *
 *   test_matching_random --streams N [--seed S]   N streams from seed S
 *   test_matching_random --seconds T              streams until T seconds pass
 *   ... --rebuild-every N                         rebuild check every N commands (1)
 */
#include "matching/engine.h"
#include "tests/matching/ref.h"
#include "tests/test.h"

#include <time.h>

typedef struct evbuf {
    engine_event *v;
    size_t n, cap;
} evbuf;

static void sink(void *ctx, const engine_event *ev)
{
    evbuf *b = ctx;
    if (b->n == b->cap) {
        b->cap = b->cap ? b->cap * 2 : 64;
        b->v = realloc(b->v, b->cap * sizeof(*ev));
    }
    b->v[b->n++] = *ev;
}

static uint64_t rng_state;
static uint64_t rnd(void)
{
    rng_state ^= rng_state >> 12;
    rng_state ^= rng_state << 25;
    rng_state ^= rng_state >> 27;
    return rng_state * 2685821657736338717ULL;
}
static int64_t rr(int64_t lo, int64_t hi) /* [lo, hi] */
{
    return lo + (int64_t)(rnd() % (uint64_t)(hi - lo + 1));
}

static const char *kind_name(int k)
{
    static const char *n[] = {"?",         "ORDER_ACCEPTED", "FILL",    "ORDER_DONE",
                              "OFFER_ACC", "OFFER_DONE",     "BID_ACC", "SPOT_WON",
                              "PREEMPTED", "BID_DONE",       "ROUND"};
    return k >= 0 && k <= 10 ? n[k] : "?";
}

static void dump(const char *who, const engine_event *v, size_t n)
{
    for (size_t i = 0; i < n; i++)
        fprintf(stderr,
                "  %s %s r=%d ord=%llu off=%llu pool=%llu seq=%llu gpus=%lld filled=%lld "
                "[%lld,%lld) price=%lld amt=%lld\n",
                who, kind_name(v[i].kind), v[i].reason, (unsigned long long)v[i].order,
                (unsigned long long)v[i].offer, (unsigned long long)v[i].pool,
                (unsigned long long)v[i].seq, (long long)v[i].gpus, (long long)v[i].filled,
                (long long)v[i].start, (long long)v[i].end, (long long)v[i].price,
                (long long)v[i].amount);
}

typedef struct world {
    int nmodels, nregions, npools;
    uint64_t next_offer, next_order;
    int64_t now;
} world;

static int stream_failed;
static int rebuild_every = 1; /* --rebuild-every N */

#define SCHECK(c)                                                                                  \
    do {                                                                                           \
        CHECK(c);                                                                                  \
        if (!(c))                                                                                  \
            stream_failed = 1;                                                                     \
    } while (0)

static const rf_order *find_order(const ref *r, uint64_t id)
{
    for (int i = r->norders - 1; i >= 0; i--)
        if (r->orders[i].s.id == id)
            return &r->orders[i];
    return NULL;
}

static const ref_bid *find_bid(const ref *r, uint64_t id)
{
    for (int i = r->nbids - 1; i >= 0; i--)
        if (r->bids[i].s.id == id)
            return &r->bids[i];
    return NULL;
}

/* Invariants on one command's events and the state after it. */
static void invariants(const ref *r, const engine_event *v, size_t n)
{
    /* fills: grouped by order, pieces by their cumulative `filled` */
    for (size_t i = 0; i < n;) {
        if (v[i].kind != ENGINE_EV_FILL) {
            i++;
            continue;
        }
        uint64_t id = v[i].order;
        const rf_order *o = find_order(r, id);
        SCHECK(o != NULL);
        if (!o)
            return;
        int64_t amount = 0, gpus = 0, last_filled = -1, start = v[i].start;
        int64_t piece_start = v[i].start, at = v[i].start;
        for (; i < n && v[i].kind == ENGINE_EV_FILL && v[i].order == id; i++) {
            if (v[i].filled != last_filled) {
                SCHECK(at == piece_start || at == start + o->s.hours); /* previous piece whole */
                gpus += v[i].gpus;
                last_filled = v[i].filled;
                SCHECK(v[i].start == start); /* every piece has the same start */
                at = v[i].start;
            }
            SCHECK(v[i].start == at); /* segments are contiguous */
            at = v[i].end;
            SCHECK(v[i].amount == v[i].price * v[i].gpus * (v[i].end - v[i].start));
            amount += v[i].amount;
        }
        SCHECK(at == start + o->s.hours);
        SCHECK(amount <= o->s.limit_price * gpus * o->s.hours); /* within the limit */
        if (o->s.all_or_none)
            SCHECK(gpus == o->s.gpus); /* all or none */
        if (o->s.single_pool)
            SCHECK(gpus <= o->s.gpus);
    }
    /* no pool-hour oversold */
    for (int p = 0; p < r->npools; p++)
        for (int h = 0; h < REF_HOURS; h++)
            if (r->pools[p].sold[h] > r->pools[p].gpus) {
                SCHECK(!"pool-hour oversold");
                return;
            }
    /* the book is at rest */
    uint64_t which = 0;
    bool fillable = ref_resting_fillable(r, &which);
    SCHECK(!fillable);
    if (fillable)
        fprintf(stderr, "  resting order %llu could fill (single %d aon %d)\n",
                (unsigned long long)which, find_order(r, which)->s.single_pool,
                find_order(r, which)->s.all_or_none);
    /* spot: one price per market round, within limits, above reserves */
    for (size_t i = 0; i < n; i++) {
        if (v[i].kind != ENGINE_EV_SPOT_ROUND)
            continue;
        int64_t P = v[i].price;
        int64_t used[64] = {0};
        for (size_t j = 0; j < i; j++)
            if (v[j].kind == ENGINE_EV_SPOT_WON && v[j].model == v[i].model &&
                v[j].region == v[i].region)
                SCHECK(v[j].price == P);
        for (int b = 0; b < r->nbids; b++) {
            const ref_bid *bd = &r->bids[b];
            if (!bd->live || bd->running < 0 || bd->s.model != v[i].model ||
                bd->s.region != v[i].region)
                continue;
            SCHECK(bd->s.limit_price >= P);
            const ref_pool *pl = &r->pools[bd->running];
            SCHECK(pl->spot >= 0 && r->offers[pl->spot].price <= P);
            used[bd->running] += bd->s.gpus;
        }
        for (int p = 0; p < r->npools; p++)
            SCHECK(used[p] <= r->pools[p].supply || r->pools[p].model != v[i].model ||
                   r->pools[p].region != v[i].region);
    }
    for (size_t i = 0; i < n; i++)
        if (v[i].kind == ENGINE_EV_SPOT_WON) {
            const ref_bid *b = find_bid(r, v[i].order);
            SCHECK(b && b->s.limit_price >= v[i].price);
        }
}

static engine_order_spec random_order(world *w, int64_t cur)
{
    engine_order_spec s = {0};
    s.id = rr(0, 30) == 0 ? (uint64_t)rr(1, (int64_t)w->next_order + 1) : ++w->next_order;
    s.account = rr(1, 5);
    s.model = rr(1, w->nmodels + (rr(0, 20) == 0));
    s.region = rr(0, w->nregions);
    s.start = cur + rr(-2, 14);
    s.latest_start = rr(0, 2) ? s.start : s.start + rr(-1, 5);
    s.hours = rr(1, 8);
    if (cur < 150 && rr(0, 25) == 0) { /* now and then: long contracts, wide windows */
        s.hours = rr(20, 140);
        s.latest_start = s.start + rr(0, 100);
    }
    s.gpus = rr(0, 40) == 0 ? 0 : rr(1, 14);
    s.limit_price = rr(9, 16);
    s.all_or_none = rr(0, 1);
    s.single_pool = rr(0, 3) == 0;
    s.tif = rr(0, 3) == 0 ? ENGINE_IOC : ENGINE_GTC;
    return s;
}

static void run_stream(uint64_t seed, int ncmds)
{
    rng_state = seed * 0x9E3779B97F4A7C15ULL + 12345;
    for (int i = 0; i < 4; i++)
        rnd();
    evbuf eb = {0};
    engine *e = engine_new(sink, &eb);
    ref *r = ref_new();
    world w = {0};
    w.nmodels = rr(1, 2);
    w.nregions = rr(1, 2);
    w.npools = rr(2, 6);
    w.now = rr(0, 100000);
    stream_failed = 0;
    for (int i = 0; i < w.npools; i++) {
        uint64_t acct = rr(1, 3), model = rr(1, w.nmodels), region = rr(1, w.nregions);
        int32_t gpus = rr(4, 16);
        int a = engine_add_pool(e, 100 + i, acct, model, region, gpus);
        int b = ref_add_pool(r, 100 + i, acct, model, region, gpus);
        SCHECK(a == 0 && b == 0);
    }
    for (int c = 0; c < ncmds && !stream_failed; c++) {
        eb.n = 0;
        ref_clear_events(r);
        int64_t cur = w.now / 3600 + 1;
        int op = rr(0, 99);
        int a = 0, b = 0;
        if (rr(0, 3) == 0)
            w.now += rr(0, 2400);
        int64_t now = rr(0, 30) == 0 ? w.now - rr(1, 5000) : w.now;
        const char *what;
        if (op < 22) {
            what = "offer";
            engine_offer_spec s = {0};
            s.id = rr(0, 20) == 0 ? (uint64_t)rr(1, (int64_t)w.next_offer + 1) : ++w.next_offer;
            s.pool = 100 + rr(0, w.npools - (rr(0, 30) != 0));
            s.start = cur + rr(-1, 16);
            s.end = s.start + rr(0, 24);
            if (cur < 150 && rr(0, 8) == 0)
                s.end = s.start + rr(40, 200);
            s.price = rr(10, 14);
            s.gpus = rr(1, 16);
            a = engine_offer(e, now, &s);
            b = ref_offer(r, now, &s);
        } else if (op < 52) {
            what = "order";
            engine_order_spec s = random_order(&w, cur);
            a = engine_order(e, now, &s);
            b = ref_order(r, now, &s);
        } else if (op < 60) {
            what = "cancel order";
            uint64_t id = rr(0, w.next_order + 1);
            a = engine_cancel_order(e, now, id);
            b = ref_cancel_order(r, now, id);
        } else if (op < 66) {
            what = "cancel offer";
            uint64_t id = rr(0, w.next_offer + 1);
            a = engine_cancel_offer(e, now, id);
            b = ref_cancel_offer(r, now, id);
        } else if (op < 72) {
            what = "quote";
            engine_order_spec s = random_order(&w, cur);
            engine_quote_result qa, qb;
            engine_piece pa[16], pb[16];
            a = engine_quote(e, now, &s, &qa, pa, 16);
            b = ref_quote(r, now, &s, &qb, pb, 16);
            SCHECK(qa.fillable == qb.fillable && qa.gpus == qb.gpus && qa.start == qb.start &&
                   qa.total == qb.total && qa.npieces == qb.npieces);
            for (size_t k = 0; k < qa.npieces && k < 16 && qa.npieces == qb.npieces; k++)
                SCHECK(pa[k].pool == pb[k].pool && pa[k].offer == pb[k].offer &&
                       pa[k].start == pb[k].start && pa[k].end == pb[k].end &&
                       pa[k].price == pb[k].price && pa[k].amount == pb[k].amount &&
                       pa[k].gpus == pb[k].gpus);
        } else if (op < 77) {
            what = "spot offer";
            engine_spot_offer_spec s = {0};
            s.id = rr(0, 20) == 0 ? (uint64_t)rr(1, (int64_t)w.next_offer + 1) : ++w.next_offer;
            s.pool = 100 + rr(0, w.npools - 1);
            s.reserve = rr(5, 12);
            s.gpus = rr(1, 16);
            a = engine_spot_offer(e, now, &s);
            b = ref_spot_offer(r, now, &s);
        } else if (op < 87) {
            what = "spot bid";
            engine_spot_bid_spec s = {0};
            s.id = rr(0, 20) == 0 ? (uint64_t)rr(1, (int64_t)w.next_order + 1) : ++w.next_order;
            s.account = rr(1, 5);
            s.model = rr(1, w.nmodels);
            s.region = rr(1, w.nregions);
            s.gpus = rr(1, 8);
            s.limit_price = rr(4, 14);
            a = engine_spot_bid(e, now, &s);
            b = ref_spot_bid(r, now, &s);
        } else if (op < 95) {
            what = "spot round";
            engine_spot_supply sup[8];
            size_t n = 0;
            for (int p = 0; p < w.npools; p++)
                if (rr(0, 5))
                    sup[n++] = (engine_spot_supply){100 + p, (int32_t)rr(0, 16),
                                                    (int32_t)(rr(0, 3) ? 0 : rr(0, 4))};
            if (rr(0, 40) == 0 && n > 0)
                sup[n++] = sup[0]; /* duplicate: refused */
            a = engine_spot_round(e, now, sup, n);
            b = ref_spot_round(r, now, sup, n);
        } else if (op < 98) {
            what = "reclaim";
            uint64_t pool = 100 + rr(0, w.npools);
            int32_t avail = rr(-1, 10);
            a = engine_spot_reclaim(e, now, pool, avail);
            b = ref_spot_reclaim(r, now, pool, avail);
        } else {
            what = "tick";
            a = engine_tick(e, now);
            b = ref_tick(r, now);
        }
        SCHECK(a == b);
        if (a < 0 && b < 0)
            SCHECK(engine_error(e) == r->err);
        SCHECK(eb.n == r->nev);
        for (size_t k = 0; k < eb.n && k < r->nev; k++)
            SCHECK(memcmp(&eb.v[k], &r->ev[k], sizeof(engine_event)) == 0);
        invariants(r, r->ev, r->nev);
        /* market data: best bid is the highest limit among the market's resting orders */
        {
            engine_top top;
            uint64_t model = rr(1, w.nmodels), region = rr(1, w.nregions);
            if (engine_top_of(e, model, region, 0, 0, &top) == 0) {
                int64_t bb = 0;
                bool exists = false;
                for (int p = 0; p < r->npools; p++)
                    exists |= r->pools[p].model == model && r->pools[p].region == region;
                for (int i = 0; i < r->norders && exists; i++) {
                    const rf_order *o = &r->orders[i];
                    if (o->live && o->s.model == model && (!o->s.region || o->s.region == region) &&
                        o->s.limit_price > bb)
                        bb = o->s.limit_price;
                }
                if (exists)
                    SCHECK(top.best_bid == bb);
            }
            engine_level lv[8];
            (void)engine_depth(e, model, region, cur, cur + 24, 'a', lv, 8);
            (void)engine_depth(e, model, region, cur, cur + 24, 'b', lv, 8);
            engine_trade tr[4];
            (void)engine_trades(e, model, region, tr, 4);
        }
        if (stream_failed) {
            fprintf(stderr, "seed %llu command %d (%s): rc %d/%d err %d/%d\n",
                    (unsigned long long)seed, c, what, a, b, engine_error(e), r->err);
            dump("engine", eb.v, eb.n);
            dump("ref   ", r->ev, r->nev);
            break;
        }
        /* rebuild from the open entities: same digest; carry on with the rebuilt engine */
        if (c % rebuild_every == rebuild_every - 1) {
            size_t before = eb.n;
            engine *e2 = ref_rebuild(r, sink, &eb);
            uint64_t d1 = engine_digest(e), d2 = engine_digest(e2);
            SCHECK(d1 == d2);
            SCHECK(eb.n == before); /* a rebuild says nothing */
            engine_free(e);
            e = e2;
            if (d1 != d2) {
                fprintf(stderr, "seed %llu command %d: rebuilt digest differs\n",
                        (unsigned long long)seed, c);
                break;
            }
        }
    }
    engine_free(e);
    ref_free(r);
    free(eb.v);
}

int main(int argc, char **argv)
{
    long streams = 0, seconds = 0;
    uint64_t seed = 1;
    for (int i = 1; i + 1 < argc; i += 2) {
        if (!strcmp(argv[i], "--streams"))
            streams = atol(argv[i + 1]);
        else if (!strcmp(argv[i], "--seconds"))
            seconds = atol(argv[i + 1]);
        else if (!strcmp(argv[i], "--rebuild-every"))
            rebuild_every = atoi(argv[i + 1]) > 0 ? atoi(argv[i + 1]) : 1;
        else if (!strcmp(argv[i], "--seed"))
            seed = strtoull(argv[i + 1], NULL, 10);
    }
    if (!streams && !seconds)
        streams = 100;
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    long done = 0;
    int fails = 0;
    for (;; done++) {
        if (streams && done >= streams)
            break;
        if (seconds) {
            clock_gettime(CLOCK_MONOTONIC, &t1);
            if (t1.tv_sec - t0.tv_sec >= seconds)
                break;
        }
        int before = test_failures;
        /* the time-bounded run uses long streams from a separate seed range */
        run_stream(seconds ? 1000000 + seed + done : seed + done, seconds ? 600 : 120);
        if (test_failures != before && ++fails >= 3)
            break;
    }
    fprintf(stderr, "%ld streams\n", done);
    return TEST_DONE();
}
