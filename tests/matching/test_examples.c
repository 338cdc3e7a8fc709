/*
 * test_examples.c — one hand-worked example per rule of docs/matching.md, with
 * the numbers written out, so a reader can check each rule by hand.
 *
 * Hours are small integers; now = 0 makes hour 1 the first usable start.
 * Pools: 11 and 12 (account 1, model 1, region 1), 13 (account 2, model 1,
 * region 2). Buyers are accounts 5 and 6.
 */
#include "matching/engine.h"
#include "tests/test.h"

static engine_event evs[256];
static size_t nev;

static void sink(void *ctx, const engine_event *ev)
{
    (void)ctx;
    if (nev < 256)
        evs[nev++] = *ev;
}

static engine *world(void)
{
    engine *e = engine_new(sink, NULL);
    CHECK(engine_add_pool(e, 11, 1, 1, 1, 16) == 0);
    CHECK(engine_add_pool(e, 12, 1, 1, 1, 16) == 0);
    CHECK(engine_add_pool(e, 13, 2, 1, 2, 16) == 0);
    nev = 0;
    return e;
}

static void offer(engine *e, uint64_t id, uint64_t pool, int32_t gpus, int64_t s, int64_t end,
                  int64_t price)
{
    engine_offer_spec o = {id, pool, s, end, price, gpus};
    CHECK(engine_offer(e, 0, &o) == 0);
}

static engine_order_spec ord(uint64_t id, int32_t gpus, int64_t start, int32_t hours, int64_t limit)
{
    engine_order_spec s = {0};
    s.id = id;
    s.account = 5;
    s.model = 1;
    s.region = 1;
    s.start = s.latest_start = start;
    s.gpus = gpus;
    s.hours = hours;
    s.limit_price = limit;
    s.all_or_none = true;
    return s;
}

static size_t count(int kind)
{
    size_t n = 0;
    for (size_t i = 0; i < nev; i++)
        n += evs[i].kind == kind;
    return n;
}

static const engine_event *nth(int kind, size_t k)
{
    for (size_t i = 0; i < nev; i++)
        if (evs[i].kind == kind && k-- == 0)
            return &evs[i];
    return NULL;
}

/* Pay-as-ask: the buyer pays the ask, not its limit. */
static void pay_as_ask(void)
{
    engine *e = world();
    offer(e, 1, 11, 8, 1, 20, 100);
    engine_order_spec s = ord(100, 4, 2, 5, 120);
    nev = 0;
    CHECK(engine_order(e, 0, &s) == 0);
    CHECK_EQ_I64(count(ENGINE_EV_FILL), 1);
    const engine_event *f = nth(ENGINE_EV_FILL, 0);
    CHECK(f && f->price == 100 && f->gpus == 4 && f->start == 2 && f->end == 7);
    CHECK(f && f->amount == 100 * 4 * 5 && f->offer == 1 && f->pool == 11 && f->provider == 1);
    const engine_event *d = nth(ENGINE_EV_ORDER_DONE, 0);
    CHECK(d && d->reason == ENGINE_R_FILLED && d->filled == 4 && d->gpus == 0);
    engine_free(e);
}

/* Most GPUs first, the limit applies to the average: 6 @100 + 4 @200 = 1400 <= 150 x 10. */
static void most_gpus_average_limit(void)
{
    engine *e = world();
    offer(e, 1, 11, 6, 1, 20, 100);
    offer(e, 2, 12, 10, 1, 20, 200);
    engine_order_spec s = ord(100, 10, 1, 1, 150);
    nev = 0;
    CHECK(engine_order(e, 0, &s) == 0);
    CHECK_EQ_I64(count(ENGINE_EV_FILL), 2);
    CHECK(nth(ENGINE_EV_FILL, 0)->pool == 11 && nth(ENGINE_EV_FILL, 0)->gpus == 6);
    CHECK(nth(ENGINE_EV_FILL, 1)->pool == 12 && nth(ENGINE_EV_FILL, 1)->gpus == 4);
    /* limit 120 without all_or_none: 6 @100 + x @200 <= 120 (6 + x) gives x = 1: 7 GPUs */
    engine_order_spec t = ord(101, 10, 2, 1, 120);
    t.all_or_none = false;
    t.tif = ENGINE_IOC;
    nev = 0;
    CHECK(engine_order(e, 0, &t) == 0);
    CHECK_EQ_I64(count(ENGINE_EV_FILL), 2);
    CHECK(nth(ENGINE_EV_FILL, 1)->gpus == 1);
    const engine_event *d = nth(ENGINE_EV_ORDER_DONE, 0);
    CHECK(d && d->reason == ENGINE_R_IOC && d->filled == 7 && d->gpus == 3 && d->start == 2);
    engine_free(e);
}

/* Cheapest start in the window wins; equal cost: the earliest start. */
static void cheapest_then_earliest(void)
{
    engine *e = world();
    offer(e, 1, 11, 8, 1, 4, 300);  /* hours 1-3 dear */
    offer(e, 2, 11, 8, 4, 20, 100); /* from hour 4 cheap */
    engine_order_spec s = ord(100, 2, 1, 2, 400);
    s.latest_start = 6;
    nev = 0;
    CHECK(engine_order(e, 0, &s) == 0);
    CHECK(nth(ENGINE_EV_FILL, 0)->start == 4); /* 4, 5, 6 all cost 200: earliest */
    engine_free(e);
}

/* Equal price: the pool whose offer came first. */
static void offer_time_priority(void)
{
    engine *e = world();
    offer(e, 1, 12, 8, 1, 20, 100);
    offer(e, 2, 11, 8, 1, 20, 100);
    engine_order_spec s = ord(100, 2, 1, 2, 100);
    nev = 0;
    CHECK(engine_order(e, 0, &s) == 0);
    CHECK(nth(ENGINE_EV_FILL, 0)->pool == 12);
    engine_free(e);
}

/*
 * The same, when the offers' order in the search's price lists (by slab slot) disagrees with
 * the order they came in: offer 3 reuses the slot of cancelled offer 1, so at equal asks the
 * search meets it before offer 2, which came first. The search must not settle on offer 3's
 * pool before it has seen every pool at that ask (a pool at exactly the bound is not cheaper
 * than the pools not yet seen): the fill goes to pool 12 (offer 2).
 */
static void offer_time_priority_reused_slot(void)
{
    engine *e = world();
    offer(e, 1, 11, 8, 1, 20, 100);
    offer(e, 2, 12, 8, 1, 20, 100);
    CHECK(engine_cancel_offer(e, 0, 1) == 0);
    offer(e, 3, 11, 8, 1, 20, 100);
    engine_order_spec s = ord(100, 8, 1, 2, 100);
    nev = 0;
    CHECK(engine_order(e, 0, &s) == 0);
    CHECK_EQ_I64(count(ENGINE_EV_FILL), 1);
    CHECK(nth(ENGINE_EV_FILL, 0) && nth(ENGINE_EV_FILL, 0)->pool == 12 &&
          nth(ENGINE_EV_FILL, 0)->offer == 2);
    engine_free(e);
}

/* Consecutive offers serve one piece; one contract per offer (price) segment. */
static void price_segments(void)
{
    engine *e = world();
    offer(e, 1, 11, 8, 1, 5, 100);
    offer(e, 2, 11, 8, 5, 20, 120);
    engine_order_spec s = ord(100, 3, 2, 6, 130);
    nev = 0;
    CHECK(engine_order(e, 0, &s) == 0);
    CHECK_EQ_I64(count(ENGINE_EV_FILL), 2);
    const engine_event *a = nth(ENGINE_EV_FILL, 0), *b = nth(ENGINE_EV_FILL, 1);
    CHECK(a->start == 2 && a->end == 5 && a->price == 100 && a->amount == 100 * 3 * 3);
    CHECK(b->start == 5 && b->end == 8 && b->price == 120 && b->amount == 120 * 3 * 3);
    engine_free(e);
}

/* Sold hours stay sold when the offer goes; a new offer sells only what is left. */
static void sold_survives_cancel(void)
{
    engine *e = world();
    offer(e, 1, 11, 8, 1, 20, 100);
    engine_order_spec s = ord(100, 6, 3, 4, 100);
    CHECK(engine_order(e, 0, &s) == 0);
    CHECK(engine_cancel_offer(e, 0, 1) == 0);
    offer(e, 2, 11, 8, 1, 20, 90);
    engine_order_spec t = ord(101, 3, 3, 1, 100);
    t.all_or_none = false;
    t.tif = ENGINE_IOC;
    nev = 0;
    CHECK(engine_order(e, 0, &t) == 0);
    CHECK(nth(ENGINE_EV_ORDER_DONE, 0)->filled == 2); /* 8 - 6 sold */
    /* overlapping open offers are refused */
    engine_offer_spec o = {3, 11, 10, 30, 100, 4};
    CHECK(engine_offer(e, 0, &o) == -1 && engine_error(e) == ENGINE_ECONFLICT);
    engine_free(e);
}

/* Self-trade prevention: the buyer's own pools are skipped. */
static void self_trade(void)
{
    engine *e = world();
    offer(e, 1, 11, 8, 1, 20, 100);
    engine_order_spec s = ord(100, 2, 1, 2, 100);
    s.account = 1; /* owns pool 11 */
    nev = 0;
    CHECK(engine_order(e, 0, &s) == 0);
    CHECK_EQ_I64(count(ENGINE_EV_FILL), 0); /* rests */
    engine_free(e);
}

/* Resting orders: highest limit first, then earliest, when supply arrives. */
static void resting_priority(void)
{
    engine *e = world();
    engine_order_spec a = ord(100, 6, 2, 2, 110);
    engine_order_spec b = ord(101, 6, 2, 2, 120); /* later but higher */
    engine_order_spec c = ord(102, 6, 2, 2, 120); /* same limit, later */
    CHECK(engine_order(e, 0, &a) == 0 && engine_order(e, 0, &b) == 0);
    CHECK(engine_order(e, 0, &c) == 0);
    nev = 0;
    offer(e, 1, 11, 12, 1, 20, 100); /* room for two of them */
    CHECK_EQ_I64(count(ENGINE_EV_FILL), 2);
    CHECK(nth(ENGINE_EV_FILL, 0)->order == 101 && nth(ENGINE_EV_FILL, 1)->order == 102);
    engine_top top;
    CHECK(engine_top_of(e, 1, 1, 0, 0, &top) == 0);
    CHECK(top.best_bid == 110 && top.best_ask == 100 && top.last_price == 100);
    engine_free(e);
}

/* single_pool: one piece, even when two pools together could fill more. */
static void single_pool(void)
{
    engine *e = world();
    offer(e, 1, 11, 4, 1, 20, 100);
    offer(e, 2, 12, 6, 1, 20, 100);
    engine_order_spec s = ord(100, 8, 1, 1, 100);
    s.single_pool = true;
    s.all_or_none = false;
    nev = 0;
    CHECK(engine_order(e, 0, &s) == 0);
    CHECK_EQ_I64(count(ENGINE_EV_FILL), 1);
    CHECK(nth(ENGINE_EV_FILL, 0)->pool == 12 && nth(ENGINE_EV_FILL, 0)->gpus == 6);
    /* the rest stays with pool 12 and start 1: pool 11's GPUs do not serve it */
    engine_order_spec q = ord(0, 2, 1, 1, 100);
    engine_quote_result qr;
    engine_piece pc[4];
    CHECK(engine_quote(e, 0, &q, &qr, pc, 4) == 0 && qr.fillable && pc[0].pool == 11);
    CHECK(engine_cancel_order(e, 0, 100) == 0);
    CHECK(nth(ENGINE_EV_ORDER_DONE, 0)->pool == 12);
    engine_free(e);
}

/* A region-free order uses every region of the model; a quote changes nothing. */
static void any_region_and_quote(void)
{
    engine *e = world();
    offer(e, 1, 11, 4, 1, 20, 200);
    offer(e, 2, 13, 4, 1, 20, 150);
    engine_order_spec s = ord(100, 4, 1, 2, 200);
    s.region = 0;
    engine_quote_result q;
    engine_piece pc[4];
    nev = 0;
    CHECK(engine_quote(e, 0, &s, &q, pc, 4) == 0);
    CHECK(nev == 0 && q.fillable && q.npieces == 1 && pc[0].pool == 13 && q.total == 1200);
    uint64_t d = engine_digest(e);
    CHECK(engine_quote(e, 0, &s, &q, pc, 4) == 0 && engine_digest(e) == d);
    CHECK(engine_order(e, 0, &s) == 0 && nth(ENGINE_EV_FILL, 0)->pool == 13);
    engine_free(e);
}

/* Expiry by the caller's now; cancel; IOC. */
static void expiry_cancel_ioc(void)
{
    engine *e = world();
    engine_order_spec s = ord(100, 4, 3, 2, 100);
    s.latest_start = 4;
    CHECK(engine_order(e, 0, &s) == 0);
    offer(e, 1, 11, 8, 1, 3, 100);
    nev = 0;
    CHECK(engine_tick(e, 3 * 3600 - 1) == 0); /* hour 3 still usable... */
    CHECK(nev == 1 && evs[0].kind == ENGINE_EV_OFFER_DONE && evs[0].reason == ENGINE_R_EXPIRED);
    nev = 0;
    CHECK(engine_tick(e, 4 * 3600) == 0); /* ...hour 4 no longer */
    CHECK(nev == 1 && evs[0].kind == ENGINE_EV_ORDER_DONE && evs[0].reason == ENGINE_R_EXPIRED);
    engine_order_spec t = ord(101, 4, 9, 2, 100);
    CHECK(engine_order(e, 4 * 3600, &t) == 0);
    nev = 0;
    CHECK(engine_cancel_order(e, 4 * 3600, 101) == 0);
    CHECK(nev == 1 && evs[0].reason == ENGINE_R_CANCELLED);
    CHECK(engine_cancel_order(e, 4 * 3600, 101) == -1 && engine_error(e) == ENGINE_ENOTFOUND);
    engine_order_spec u = ord(102, 4, 2, 2, 100);
    CHECK(engine_order(e, 4 * 3600, &u) == -1 && engine_error(e) == ENGINE_EPAST);
    engine_order_spec v = ord(103, 4, 9, 2, 100);
    v.tif = ENGINE_IOC;
    nev = 0;
    CHECK(engine_order(e, 4 * 3600, &v) == 0);
    CHECK(nev == 2 && evs[1].kind == ENGINE_EV_ORDER_DONE && evs[1].reason == ENGINE_R_IOC);
    engine_free(e);
}

/* Spot: uniform price, gangs, the clearing rule, preemption, rebid. */
static void spot_auction(void)
{
    engine *e = world();
    engine_spot_offer_spec a = {50, 11, 5, 4}, b = {51, 12, 8, 4};
    CHECK(engine_spot_offer(e, 0, &a) == 0 && engine_spot_offer(e, 0, &b) == 0);
    engine_spot_bid_spec x = {200, 5, 1, 1, 10, 4}; /* 4 GPUs at 10 */
    engine_spot_bid_spec y = {201, 6, 1, 1, 9, 6};  /* 6 GPUs at 9: no pool has 6 */
    engine_spot_bid_spec z = {202, 6, 1, 1, 6, 4};  /* 4 GPUs at 6: only reserve 8 left */
    CHECK(engine_spot_bid(e, 0, &x) == 0 && engine_spot_bid(e, 0, &y) == 0);
    CHECK(engine_spot_bid(e, 0, &z) == 0);
    engine_spot_supply sup[2] = {{11, 16, 0}, {12, 16, 0}};
    nev = 0;
    CHECK(engine_spot_round(e, 60, sup, 2) == 0);
    /* x wins pool 11 (reserve 5); y does not fit; z's limit 6 < reserve 8. P = max(5, 9) = 9 */
    CHECK_EQ_I64(count(ENGINE_EV_SPOT_WON), 1);
    CHECK(nth(ENGINE_EV_SPOT_WON, 0)->order == 200 && nth(ENGINE_EV_SPOT_WON, 0)->price == 9);
    CHECK(nth(ENGINE_EV_SPOT_ROUND, 0)->price == 9);
    /* lent GPUs on pool 12 make room for y? no: y wants 6 from one pool, pool 12 caps at 4 + 2 */
    engine_spot_supply sup2[2] = {{11, 0, 0}, {12, 16, 2}};
    nev = 0;
    CHECK(engine_spot_round(e, 120, sup2, 2) == 0);
    /* x loses its pool (supply 0): preempted; y fits pool 12 (4 + 2 lent) at reserve 8 */
    const engine_event *p = nth(ENGINE_EV_SPOT_PREEMPTED, 0);
    CHECK(p && p->order == 200 && p->reason == ENGINE_R_OUTBID && p->pool == 11);
    CHECK(nth(ENGINE_EV_SPOT_WON, 0) && nth(ENGINE_EV_SPOT_WON, 0)->order == 201);
    /* reclaim: pool 12 needs its GPUs back for a reservation */
    nev = 0;
    CHECK(engine_spot_reclaim(e, 130, 12, 0) == 0);
    CHECK(nev == 1 && evs[0].kind == ENGINE_EV_SPOT_PREEMPTED &&
          evs[0].reason == ENGINE_R_RECLAIMED && evs[0].order == 201);
    /* preempted bids bid again in the next round */
    nev = 0;
    CHECK(engine_spot_round(e, 180, sup, 2) == 0);
    CHECK(count(ENGINE_EV_SPOT_WON) == 1 && nth(ENGINE_EV_SPOT_WON, 0)->order == 200);
    engine_free(e);
}

/*
 * Spot levels that empty are kept and swept out later; prices that come back after a sweep
 * must get levels of their own again (no cached price may name a level swept out). 200 one-GPU
 * bids at limits 1..200, the lowest entered last (reserve 1); the bids
 * at 1..150 are cancelled (which sweeps the empty levels), then bid again at the same limits,
 * and 40 more at 201..240. A round with 60 GPUs gives them to the 60 highest limits, 181..240;
 * one with room for all gives every one of the 240 bids its GPU, highest limit first.
 */
static void spot_levels_swept(void)
{
    engine *e = world();
    CHECK(engine_add_pool(e, 14, 3, 1, 1, 300) == 0);
    engine_spot_offer_spec big = {51, 14, 1, 300};
    CHECK(engine_spot_offer(e, 0, &big) == 0);
    for (int k = 0; k < 200; k++) { /* 102..200, then 1..101: the low prices looked up last */
        int i = k < 99 ? 102 + k : k - 98;
        engine_spot_bid_spec b = {(uint64_t)(1000 + i), 5, 1, 1, i, 1};
        CHECK(engine_spot_bid(e, 0, &b) == 0);
    }
    for (int i = 1; i <= 150; i++)
        CHECK(engine_cancel_order(e, 0, (uint64_t)(1000 + i)) == 0);
    for (int i = 1; i <= 150; i++) {
        engine_spot_bid_spec b = {(uint64_t)(2000 + i), 5, 1, 1, i, 1};
        CHECK(engine_spot_bid(e, 0, &b) == 0);
    }
    for (int i = 201; i <= 240; i++) {
        engine_spot_bid_spec b = {(uint64_t)(2000 + i), 5, 1, 1, i, 1};
        CHECK(engine_spot_bid(e, 0, &b) == 0);
    }
    /* the limit of the k-th bid in priority order, and its id */
    bool ok = true;
    engine_spot_supply sup = {14, 60, 0};
    nev = 0;
    CHECK(engine_spot_round(e, 60, &sup, 1) == 0);
    CHECK_EQ_I64(count(ENGINE_EV_SPOT_WON), 60);
    for (size_t k = 0; k < 60; k++) {
        const engine_event *w = nth(ENGINE_EV_SPOT_WON, k);
        ok &= w && w->order == (k < 40 ? 2240 - k : 1200 - (k - 40));
    }
    CHECK(ok);
    CHECK(nth(ENGINE_EV_SPOT_ROUND, 0) && nth(ENGINE_EV_SPOT_ROUND, 0)->price == 180);
    sup.idle = 300;
    nev = 0;
    CHECK(engine_spot_round(e, 120, &sup, 1) == 0);
    CHECK_EQ_I64(count(ENGINE_EV_SPOT_WON), 180); /* the 60 running keep running */
    for (size_t k = 0; k < 180; k++) {
        const engine_event *w = nth(ENGINE_EV_SPOT_WON, k);
        int64_t limit = 180 - (int64_t)k;
        ok &= w && w->order == (uint64_t)(limit > 150 ? 1000 + limit : 2000 + limit);
    }
    CHECK(ok);
    engine_free(e);
}

/* Rebuild: the open entities re-entered with their seqs give the same book. */
static void rebuild(void)
{
    engine *e = world();
    offer(e, 1, 11, 8, 1, 20, 100);
    engine_order_spec s = ord(100, 6, 2, 3, 100);
    CHECK(engine_order(e, 0, &s) == 0); /* fills */
    engine_order_spec t = ord(101, 9, 2, 3, 90);
    CHECK(engine_order(e, 0, &t) == 0); /* rests, seq 3 */
    engine *r = engine_new(sink, NULL);
    engine_restore_counters(r, 4, 2, 0);
    CHECK(engine_add_pool(r, 11, 1, 1, 1, 16) == 0);
    CHECK(engine_add_pool(r, 12, 1, 1, 1, 16) == 0);
    CHECK(engine_add_pool(r, 13, 2, 1, 2, 16) == 0);
    engine_offer_spec o = {1, 11, 1, 20, 100, 8};
    CHECK(engine_restore_offer(r, &o, 1) == 0);
    CHECK(engine_restore_sold(r, 11, 2, 5, 6) == 0);
    CHECK(engine_restore_order(r, &t, 3, 0, -1, 0) == 0);
    CHECK(engine_digest(r) == engine_digest(e));
    engine_free(r);
    engine_free(e);
}

/* Depth by price level over an hour range, and last trades. */
static void market_data(void)
{
    engine *e = world();
    offer(e, 1, 11, 8, 1, 10, 100);
    offer(e, 2, 12, 4, 5, 30, 100);
    engine_order_spec s = ord(100, 2, 1, 4, 100);
    CHECK(engine_order(e, 0, &s) == 0);
    engine_level lv[4];
    CHECK_EQ_I64(engine_depth(e, 1, 1, 1, 5, 'a', lv, 4), 1);
    /* [1,5): offer 1 has 8 - 2 = 6 in every hour (24 GPU-hours), offer 2 is outside */
    CHECK(lv[0].price == 100 && lv[0].gpus == 6 && lv[0].gpu_hours == 24 && lv[0].count == 1);
    CHECK_EQ_I64(engine_depth(e, 1, 1, 4, 8, 'a', lv, 4), 1);
    CHECK(lv[0].gpus == 6 + 4 && lv[0].count == 2);
    engine_trade tr[4];
    CHECK_EQ_I64(engine_trades(e, 1, 1, tr, 4), 1);
    CHECK(tr[0].price == 100 && tr[0].gpus == 2 && tr[0].start == 1 && tr[0].end == 5);
    engine_free(e);
}

/* Many cancelled orders leave stale expiry entries; the heap is compacted and expiry still
 * finds exactly the live ones, in (expiry hour, seq) order. */
static void expiry_after_many_cancels(void)
{
    engine *e = world();
    for (uint64_t i = 0; i < 5000; i++) {
        engine_order_spec s = ord(1000 + i, 4, 2 + (int64_t)(i % 7), 2, 10);
        CHECK(engine_order(e, 0, &s) == 0);
        if (i % 50 != 0)
            CHECK(engine_cancel_order(e, 0, 1000 + i) == 0);
    }
    nev = 0;
    CHECK(engine_tick(e, 100 * 3600) == 0);
    CHECK_EQ_I64(nev, 100);
    bool ordered = true;
    for (size_t i = 1; i < nev && i < 256; i++)
        ordered &= evs[i].kind == ENGINE_EV_ORDER_DONE && evs[i].reason == ENGINE_R_EXPIRED &&
                   ((evs[i - 1].order - 1000) % 7 < (evs[i].order - 1000) % 7 ||
                    ((evs[i - 1].order - 1000) % 7 == (evs[i].order - 1000) % 7 &&
                     evs[i - 1].order < evs[i].order));
    CHECK(ordered);
    engine_free(e);
}

int main(void)
{
    expiry_after_many_cancels();
    pay_as_ask();
    most_gpus_average_limit();
    cheapest_then_earliest();
    offer_time_priority();
    offer_time_priority_reused_slot();
    price_segments();
    sold_survives_cancel();
    self_trade();
    resting_priority();
    single_pool();
    any_region_and_quote();
    expiry_cancel_ioc();
    spot_auction();
    spot_levels_swept();
    rebuild();
    market_data();
    return TEST_DONE();
}
