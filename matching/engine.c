/*
 * engine.c — the engine's lifecycle, pools and markets, reservation offers and
 * orders (entry, re-tries when supply arrives, cancel, expiry), the rebuild
 * calls, market data and the book digest. The fill search is in resv.c, the
 * spot auction in spot.c; the rules are in docs/matching.md.
 *
 * How a command runs: engine_advance() moves the clock and expires what is due
 * (events in (expiry hour, seq) order), then the command is validated, then
 * applied; events go to the sink as they happen. Nothing allocates per order
 * once the slabs and scratch arrays have grown to the book's size.
 */
#include "matching/engine-internal.h"

#include <stdlib.h>
#include <string.h>

/* ---------------------------------------------------------------- helpers */

void slab_init(slab *s, uint32_t size)
{
    memset(s, 0, sizeof(*s));
    s->size = size;
}

void slab_free(slab *s)
{
    free(s->items);
    free(s->free);
    memset(s, 0, sizeof(*s));
}

void slab_grow(slab *s)
{
    s->cap = s->cap ? s->cap * 2 : 64;
    s->items = xrealloc(s->items, (size_t)s->cap * s->size);
}

void slab_grow_free(slab *s)
{
    s->free_cap = s->free_cap ? s->free_cap * 2 : 64;
    s->free = xrealloc(s->free, (size_t)s->free_cap * sizeof(uint32_t));
}

size_t slab_memory(const slab *s)
{
    return (size_t)s->cap * s->size + (size_t)s->free_cap * sizeof(uint32_t);
}

void grow(void **arr, size_t *cap, size_t need, size_t elem)
{
    if (need <= *cap)
        return;
    size_t nc = *cap ? *cap : 16;
    while (nc < need)
        nc *= 2;
    *arr = xrealloc(*arr, nc * elem);
    *cap = nc;
}

void grow32(void **arr, uint32_t *cap, uint32_t need, size_t elem)
{
    size_t c = *cap;
    grow(arr, &c, need, elem);
    CAPX_ASSERT(c <= UINT32_MAX);
    *cap = (uint32_t)c;
}

int engine_fail(engine *e, enum engine_error err)
{
    e->err = err;
    return CAPX_ERR;
}

/* ---------------------------------------------------------------- lifecycle */

static void lbset_free(lbset *s);
static size_t lbset_memory(const lbset *s);

engine *engine_new(engine_sink_fn sink, void *ctx)
{
    engine *e = xcalloc(1, sizeof(*e));
    e->sink = sink;
    e->sink_ctx = ctx;
    e->next_seq = 1;
    e->next_trade = 1;
    e->cur = 1;
    e->mcache = NONE32;
    slab_init(&e->pools, sizeof(pool));
    slab_init(&e->offers, sizeof(offer));
    slab_init(&e->orders, sizeof(order));
    slab_init(&e->bids, sizeof(spot_bid));
    slab_init(&e->levels, sizeof(spot_level));
    slab_init(&e->markets, sizeof(market));
    slab_init(&e->models, sizeof(model));
    idmap_init(&e->pool_ids, 64);
    idmap_init(&e->offer_ids, 64);
    seqmap_init(&e->order_ids, 64);
    idmap_init(&e->model_ids, 16);
    sold_arena_init(&e->arena);
    return e;
}

void engine_free(engine *e)
{
    if (!e)
        return;
    for (uint32_t i = 0; i < e->pools.n; i++) {
        pool *p = POOL(e, i);
        free(p->offers);
        soldmap_free(&p->sold, &e->arena);
    }
    for (uint32_t i = 0; i < e->markets.n; i++) {
        market *m = MARKET(e, i);
        free(m->pools);
        free(m->levels);
        free(m->level_px);
        idmap_free(&m->level_of);
        free(m->sp);
        free(m->sp_ids);
        free(m->rb);
        free(m->sp_res);
        free(m->seg);
        lbset_free(&m->lb);
    }
    for (uint32_t i = 0; i < e->models.n; i++) {
        model *md = MODEL(e, i);
        free(md->markets);
        free(md->levels);
        lbset_free(&md->lb);
    }
    slab_free(&e->pools);
    slab_free(&e->offers);
    slab_free(&e->orders);
    slab_free(&e->bids);
    slab_free(&e->levels);
    slab_free(&e->markets);
    slab_free(&e->models);
    idmap_free(&e->pool_ids);
    idmap_free(&e->offer_ids);
    seqmap_free(&e->order_ids);
    idmap_free(&e->model_ids);
    sold_arena_free(&e->arena);
    free(e->market_order);
    free(e->heap);
    free(e->sc_pools);
    free(e->sc_cand);
    free(e->sc_sel);
    free(e->sc_kc);
    free(e->sc_avail);
    free(e->sc_sold);
    free(e->sc_dq);
    free(e->sc_price);
    free(e->pieces);
    free(e->sc_retry);
    free(e->stamp);
    free(e->sc_losers);
    free(e->sc_changes);
    free(e->sc_supply);
    free(e);
}

enum engine_error engine_error(const engine *e)
{
    return e->err;
}

const char *engine_strerror(enum engine_error err)
{
    switch (err) {
    case ENGINE_OK:
        return "ok";
    case ENGINE_EINVAL:
        return "a field is out of range";
    case ENGINE_ENOTFOUND:
        return "no such pool, order or offer";
    case ENGINE_EEXIST:
        return "the id is already in use";
    case ENGINE_ECONFLICT:
        return "conflicts with an open offer of the pool";
    case ENGINE_EPAST:
        return "no usable start hour left";
    }
    return "unknown error";
}

size_t engine_memory(const engine *e)
{
    size_t b = sizeof(*e);
    b += slab_memory(&e->pools) + slab_memory(&e->offers) + slab_memory(&e->orders);
    b += slab_memory(&e->bids) + slab_memory(&e->levels) + slab_memory(&e->markets);
    b += slab_memory(&e->models);
    b += idmap_memory(&e->pool_ids) + idmap_memory(&e->offer_ids);
    b += seqmap_memory(&e->order_ids) + idmap_memory(&e->model_ids);
    b += sold_arena_memory(&e->arena);
    b += (size_t)e->heap_cap * sizeof(heap_ent);
    for (uint32_t i = 0; i < e->pools.n; i++) {
        const pool *p = POOL(e, i);
        b += soldmap_memory(&p->sold) + (size_t)p->offers_cap * sizeof(uint32_t);
    }
    for (uint32_t i = 0; i < e->markets.n; i++) {
        const market *m = MARKET(e, i);
        b += (size_t)(m->pools_cap + m->levels_cap) * sizeof(uint32_t);
        b += (size_t)m->levels_cap * sizeof(int64_t) + idmap_memory(&m->level_of);
        b += (size_t)m->rb_cap * sizeof(rb_ent);
        b += lbset_memory(&m->lb);
        b += (size_t)m->sp_cap * (sizeof(uint32_t) + sizeof(int64_t) + 3 * sizeof(uint64_t)) +
             (size_t)m->seg_size * 2 * sizeof(int32_t);
    }
    for (uint32_t i = 0; i < e->models.n; i++) {
        const model *md = MODEL(e, i);
        b += (size_t)(md->markets_cap + md->levels_cap) * sizeof(uint32_t);
        b += lbset_memory(&md->lb);
    }
    if (e->sc_sold)
        b += (SEARCH_CHUNK + ENGINE_MAX_HOURS + 1) * (3 * sizeof(int32_t) + sizeof(int64_t));
    b += e->sc_pools_cap * sizeof(uint32_t) + (e->sc_cand_cap + e->sc_sel_cap) * sizeof(cand) +
         e->sc_kc_cap * sizeof(kc_ent);
    b += e->pieces_cap * sizeof(piece) + e->sc_retry_cap * sizeof(uint32_t);
    b += e->stamp_cap * sizeof(uint32_t) + e->sc_supply_cap * sizeof(uint32_t);
    b += e->sc_losers_cap * sizeof(int64_t);
    return b;
}

/* ---------------------------------------------------------------- markets */

uint32_t engine_model_get(engine *e, uint64_t id, bool create)
{
    uint32_t i = idmap_get(&e->model_ids, id);
    if (i != IDMAP_NONE || !create)
        return i == IDMAP_NONE ? NONE32 : i;
    i = slab_new(&e->models);
    MODEL(e, i)->id = id;
    idmap_put(&e->model_ids, id, i);
    return i;
}

static bool market_before(const market *a, const market *b)
{
    return a->model < b->model || (a->model == b->model && a->region < b->region);
}

uint32_t engine_market_get(engine *e, uint64_t model_id, uint64_t region, bool create)
{
    if (e->mcache != NONE32 && e->mcache_model == model_id && e->mcache_region == region)
        return e->mcache;
    uint32_t k = engine_market_find(e, model_id, region, create);
    if (k != NONE32) {
        e->mcache = k;
        e->mcache_model = model_id;
        e->mcache_region = region;
    }
    return k;
}

uint32_t engine_market_find(engine *e, uint64_t model_id, uint64_t region, bool create)
{
    uint32_t mi = engine_model_get(e, model_id, create);
    if (mi == NONE32)
        return NONE32;
    model *md = MODEL(e, mi);
    for (uint32_t i = 0; i < md->nmarkets; i++)
        if (MARKET(e, md->markets[i])->region == region)
            return md->markets[i];
    if (!create)
        return NONE32;
    uint32_t k = slab_new(&e->markets);
    md = MODEL(e, mi);
    market *m = MARKET(e, k);
    m->model = model_id;
    m->region = region;
    m->model_idx = mi;
    idmap_init(&m->level_of, 16);
    grow32((void **)&md->markets, &md->markets_cap, md->nmarkets + 1, sizeof(uint32_t));
    md->markets[md->nmarkets++] = k;
    /* keep market_order sorted by (model, region) */
    grow32((void **)&e->market_order, &e->market_order_cap, e->nmarket_order + 1, sizeof(uint32_t));
    uint32_t pos = e->nmarket_order;
    while (pos > 0 && market_before(m, MARKET(e, e->market_order[pos - 1]))) {
        e->market_order[pos] = e->market_order[pos - 1];
        pos--;
    }
    e->market_order[pos] = k;
    e->nmarket_order++;
    return k;
}

int engine_add_pool(engine *e, uint64_t id, uint64_t account, uint64_t model_id, uint64_t region,
                    int32_t gpus)
{
    if (id == 0 || account == 0 || model_id == 0 || region == 0 || gpus < 1 ||
        gpus > ENGINE_MAX_POOL_GPUS)
        return engine_fail(e, ENGINE_EINVAL);
    if (idmap_get(&e->pool_ids, id) != IDMAP_NONE)
        return engine_fail(e, ENGINE_EEXIST);
    uint32_t mk = engine_market_get(e, model_id, region, true);
    uint32_t pi = slab_new(&e->pools);
    pool *p = POOL(e, pi);
    p->id = id;
    p->account = account;
    p->market = mk;
    p->gpus = gpus;
    p->spot_offer = NONE32;
    soldmap_init(&p->sold);
    idmap_put(&e->pool_ids, id, pi);
    market *m = MARKET(e, mk);
    grow32((void **)&m->pools, &m->pools_cap, m->npools + 1, sizeof(uint32_t));
    m->pools[m->npools++] = pi;
    return CAPX_OK;
}

/* ---------------------------------------------------------------- expiry heap */

static bool heap_less(const heap_ent *a, const heap_ent *b)
{
    return a->dead_at < b->dead_at || (a->dead_at == b->dead_at && a->seq < b->seq);
}

/* Does this entry still stand for a live order or offer with that expiry? */
static bool heap_valid(engine *e, const heap_ent *h)
{
    if (h->is_offer) {
        const offer *of = OFFER(e, h->idx);
        return of->live && of->seq == h->seq && of->end == h->dead_at;
    }
    const order *o = ORDER(e, h->idx);
    return o->live && o->seq == h->seq && o->dead_at == h->dead_at;
}

static void heap_sift_down(engine *e, uint32_t i);

/* Cancelled entities leave their entries behind (popped lazily when due); when they outnumber
 * the live ones, drop them and heapify again, so the heap stays bounded by the book. */
static void heap_compact(engine *e)
{
    uint32_t live = (e->orders.n - e->orders.nfree) + (e->offers.n - e->offers.nfree);
    if (e->nheap < 1024 || e->nheap < 2 * live)
        return;
    uint32_t k = 0;
    for (uint32_t i = 0; i < e->nheap; i++)
        if (heap_valid(e, &e->heap[i]))
            e->heap[k++] = e->heap[i];
    e->nheap = k;
    for (uint32_t i = k / 2; i-- > 0;)
        heap_sift_down(e, i);
}

static void heap_push(engine *e, int64_t dead_at, uint64_t seq, uint32_t idx, bool is_offer)
{
    heap_compact(e);
    grow32((void **)&e->heap, &e->heap_cap, e->nheap + 1, sizeof(heap_ent));
    heap_ent x = {dead_at, seq, idx, is_offer};
    uint32_t i = e->nheap++;
    while (i > 0) {
        uint32_t p = (i - 1) / 2;
        if (!heap_less(&x, &e->heap[p]))
            break;
        e->heap[i] = e->heap[p];
        i = p;
    }
    e->heap[i] = x;
}

static void heap_sift_down(engine *e, uint32_t i)
{
    heap_ent x = e->heap[i];
    uint32_t n = e->nheap;
    for (;;) {
        uint32_t l = 2 * i + 1, r = l + 1, m = i;
        const heap_ent *best = &x;
        if (l < n && heap_less(&e->heap[l], best)) {
            m = l;
            best = &e->heap[l];
        }
        if (r < n && heap_less(&e->heap[r], best))
            m = r;
        if (m == i)
            break;
        e->heap[i] = e->heap[m];
        i = m;
    }
    e->heap[i] = x;
}

static void heap_pop(engine *e)
{
    e->heap[0] = e->heap[--e->nheap];
    if (e->nheap)
        heap_sift_down(e, 0);
}

/* ---------------------------------------------------------------- resting orders */

/* Position of the first level with limit <= p (levels are highest first). */
static uint32_t rlevel_pos(const engine *e, const model *md, int64_t p)
{
    uint32_t lo = 0, hi = md->nlevels;
    while (lo < hi) {
        uint32_t mid = (lo + hi) / 2;
        if (LEVEL(e, md->levels[mid])->price > p)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

static void resting_insert(engine *e, uint32_t oi)
{
    order *o = ORDER(e, oi);
    model *md = MODEL(e, o->model);
    uint32_t pos = rlevel_pos(e, md, o->limit), li;
    if (pos < md->nlevels && LEVEL(e, md->levels[pos])->price == o->limit) {
        li = md->levels[pos];
    } else {
        li = slab_new(&e->levels);
        spot_level *l = LEVEL(e, li);
        l->price = o->limit;
        l->head = l->tail = NONE32;
        grow32((void **)&md->levels, &md->levels_cap, md->nlevels + 1, sizeof(uint32_t));
        memmove(md->levels + pos + 1, md->levels + pos, (md->nlevels - pos) * sizeof(uint32_t));
        md->levels[pos] = li;
        md->nlevels++;
    }
    spot_level *l = LEVEL(e, li);
    o->level = li;
    LEVEL_LINK(e, l, oi, ORDER);
    md->nresting++;
    heap_push(e, o->dead_at, o->seq, oi, false);
}

static void resting_remove(engine *e, uint32_t oi)
{
    order *o = ORDER(e, oi);
    model *md = MODEL(e, o->model);
    spot_level *l = LEVEL(e, o->level);
    LEVEL_UNLINK(e, l, oi, ORDER);
    md->nresting--;
    if (--l->count == 0) {
        uint32_t pos = rlevel_pos(e, md, l->price);
        CAPX_ASSERT(pos < md->nlevels && md->levels[pos] == o->level);
        memmove(md->levels + pos, md->levels + pos + 1, (md->nlevels - pos - 1) * sizeof(uint32_t));
        md->nlevels--;
        slab_del(&e->levels, o->level);
    }
}

/* Order oi leaves the book (unmap: drop its id, unless the caller already took it). */
static void order_done(engine *e, uint32_t oi, uint8_t reason, bool unmap)
{
    order *o = ORDER(e, oi);
    ev_fields ev = {0};
    ev.kind = ENGINE_EV_ORDER_DONE;
    ev.reason = reason;
    ev.order = o->id;
    ev.buyer = o->account;
    ev.model = MODEL(e, o->model)->id;
    ev.region = o->region;
    ev.gpus = o->gpus;
    ev.filled = o->filled;
    ev.start = o->fixed;
    ev.pool = o->fixed_pool == NONE32 ? 0 : POOL(e, o->fixed_pool)->id;
    if (unmap)
        seqmap_del(&e->order_ids, o->id);
    o->live = 0;
    slab_del(&e->orders, oi);
    emit(e, &ev);
}

/* ---------------------------------------------------------------- offers */

static int lbent_cmp(const void *a, const void *b)
{
    const lbent *x = a, *y = b;
    if (x->price != y->price)
        return x->price < y->price ? -1 : 1;
    return x->offer < y->offer ? -1 : x->offer > y->offer;
}

/* Recompute the running `rest` sums of entries [0, upto). */
static void lblist_rest(lblist *l, uint32_t upto)
{
    int64_t r = upto < l->n ? l->v[upto].rest : 0;
    for (uint32_t i = upto; i-- > 0;) {
        r += l->v[i].gpus;
        l->v[i].rest = r;
    }
}

static void lblist_build(engine *e, lblist *l, const uint32_t *markets, uint32_t nmarkets,
                         int64_t from, int64_t to)
{
    uint32_t k = 0;
    for (uint32_t i = 0; i < nmarkets; i++) {
        const market *m = MARKET(e, markets[i]);
        for (uint32_t j = 0; j < m->npools; j++) {
            const pool *p = POOL(e, m->pools[j]);
            grow32((void **)&l->v, &l->cap, k + p->noffers, sizeof(lbent));
            for (uint32_t t = 0; t < p->noffers; t++) {
                const offer *of = OFFER(e, p->offers[t]);
                if (from >= to || (of->start < to && of->end > from))
                    l->v[k++] = (lbent){of->price,    of->start, of->end, m->pools[j],
                                        p->offers[t], of->gpus,  0};
            }
        }
    }
    if (k > 1)
        qsort(l->v, k, sizeof(lbent), lbent_cmp);
    l->n = k;
    lblist_rest(l, k);
    l->dirty = false;
}

int engine_lb_lists(engine *e, lbset *s, const uint32_t *markets, uint32_t nmarkets, int64_t a,
                    int64_t b, const lblist *out[2])
{
    if (s->nbkt == 0) { /* first use: every list to be built on demand */
        s->base = a >> LB_BUCKET_SHIFT;
        s->bkt = xcalloc(LB_BUCKETS, sizeof(lblist));
        s->nbkt = LB_BUCKETS;
        for (uint32_t i = 0; i < LB_BUCKETS; i++)
            s->bkt[i].dirty = true;
        s->all.dirty = true;
    }
    int64_t b0 = a >> LB_BUCKET_SHIFT, b1 = (b - 1) >> LB_BUCKET_SHIFT;
    int n = 0;
    if (b1 - b0 <= 1 && b0 >= s->base && b1 < s->base + LB_BUCKETS) {
        for (int64_t k = b0; k <= b1; k++) {
            lblist *l = &s->bkt[k - s->base];
            if (l->dirty) {
                int64_t from = k << LB_BUCKET_SHIFT;
                lblist_build(e, l, markets, nmarkets, from, from + (1 << LB_BUCKET_SHIFT));
            }
            out[n++] = l;
        }
        return n;
    }
    if (s->all.dirty)
        lblist_build(e, &s->all, markets, nmarkets, 0, 0);
    out[0] = &s->all;
    return 1;
}

static void lbset_free(lbset *s)
{
    free(s->all.v);
    for (uint32_t i = 0; i < s->nbkt; i++)
        free(s->bkt[i].v);
    free(s->bkt);
}

static size_t lbset_memory(const lbset *s)
{
    size_t b = s->all.cap * sizeof(lbent) + s->nbkt * sizeof(lblist);
    for (uint32_t i = 0; i < s->nbkt; i++)
        b += s->bkt[i].cap * sizeof(lbent);
    return b;
}

/* Offer oi entered (add) or left a built list. */
static void lblist_update(lblist *l, const lbent *x, bool add)
{
    if (l->dirty)
        return;
    uint32_t lo = 0, hi = l->n;
    while (lo < hi) {
        uint32_t mid = (lo + hi) / 2;
        if (lbent_cmp(&l->v[mid], x) < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    if (add) {
        grow32((void **)&l->v, &l->cap, l->n + 1, sizeof(lbent));
        memmove(l->v + lo + 1, l->v + lo, (l->n - lo) * sizeof(lbent));
        l->v[lo] = *x;
        l->n++;
        lblist_rest(l, lo + 1);
    } else {
        CAPX_ASSERT(lo < l->n && l->v[lo].offer == x->offer);
        memmove(l->v + lo, l->v + lo + 1, (l->n - lo - 1) * sizeof(lbent));
        l->n--;
        lblist_rest(l, lo);
    }
}

static void lbset_update(lbset *s, const lbent *x, bool add)
{
    if (s->nbkt == 0)
        return; /* never used: nothing built yet */
    lblist_update(&s->all, x, add);
    for (int64_t b = x->start >> LB_BUCKET_SHIFT; b <= (x->end - 1) >> LB_BUCKET_SHIFT; b++)
        if (b >= s->base && b < s->base + s->nbkt)
            lblist_update(&s->bkt[b - s->base], x, add);
}

/* Offer oi of pool pi entered or left the book: the cheapest-first lists. */
static void pool_offers_changed(engine *e, uint32_t pi, uint32_t oi, bool add)
{
    const offer *of = OFFER(e, oi);
    lbent x = {of->price, of->start, of->end, pi, oi, of->gpus, 0};
    market *m = MARKET(e, POOL(e, pi)->market);
    lbset_update(&m->lb, &x, add);
    lbset_update(&MODEL(e, m->model_idx)->lb, &x, add);
}

static void pool_offer_remove(engine *e, pool *p, uint32_t oi)
{
    uint32_t pos = pool_offer_from(e, p, OFFER(e, oi)->start);
    CAPX_ASSERT(pos < p->noffers && p->offers[pos] == oi);
    memmove(p->offers + pos, p->offers + pos + 1, (p->noffers - pos - 1) * sizeof(uint32_t));
    p->noffers--;
    pool_offers_changed(e, OFFER(e, oi)->pool, oi, false);
}

static void offer_done(engine *e, uint32_t oi, uint8_t reason)
{
    offer *of = OFFER(e, oi);
    pool *p = POOL(e, of->pool);
    market *m = MARKET(e, p->market);
    ev_fields ev = {0};
    ev.kind = ENGINE_EV_OFFER_DONE;
    ev.reason = reason;
    ev.offer = of->id;
    ev.pool = p->id;
    ev.provider = p->account;
    ev.model = m->model;
    ev.region = m->region;
    if (of->kind == OFFER_RESV)
        pool_offer_remove(e, p, oi);
    idmap_del(&e->offer_ids, of->id);
    of->live = 0;
    slab_del(&e->offers, oi);
    emit(e, &ev);
}

/* ---------------------------------------------------------------- clock and expiry */

static int64_t cur_of(int64_t now)
{
    return now / 3600 + 1;
}

int engine_advance_slow(engine *e, int64_t now)
{
    e->clock_dirty = false;
    if (now < 0)
        return engine_fail(e, ENGINE_EINVAL);
    if (now > e->now)
        e->now = now;
    int64_t cur = cur_of(e->now);
    bool new_block = (cur >> SOLD_BLOCK_SHIFT) != (e->cur >> SOLD_BLOCK_SHIFT);
    e->cur = cur;
    while (e->nheap && e->heap[0].dead_at <= cur) {
        heap_ent h = e->heap[0];
        heap_pop(e);
        if (!heap_valid(e, &h))
            continue;
        if (h.is_offer) {
            offer_done(e, h.idx, ENGINE_R_EXPIRED);
        } else {
            resting_remove(e, h.idx);
            order_done(e, h.idx, ENGINE_R_EXPIRED, true);
        }
    }
    if (new_block) /* hours before now never matter again */
        for (uint32_t i = 0; i < e->pools.n; i++)
            if (POOL(e, i)->id)
                soldmap_trim(&POOL(e, i)->sold, &e->arena, cur);
    return CAPX_OK;
}

int engine_tick(engine *e, int64_t now)
{
    return engine_advance(e, now);
}

static int offer_check(engine *e, const engine_offer_spec *s, bool restore, uint32_t *pool_out)
{
    if (s->id == 0 || s->start < 0 || s->start >= s->end ||
        s->end - s->start > ENGINE_MAX_OFFER_HOURS || s->price < 1 || s->price > ENGINE_MAX_PRICE ||
        s->gpus < 1)
        return engine_fail(e, ENGINE_EINVAL);
    uint32_t pi = idmap_get(&e->pool_ids, s->pool);
    if (pi == IDMAP_NONE)
        return engine_fail(e, ENGINE_ENOTFOUND);
    pool *p = POOL(e, pi);
    if (s->gpus > p->gpus)
        return engine_fail(e, ENGINE_EINVAL);
    if (idmap_get(&e->offer_ids, s->id) != IDMAP_NONE)
        return engine_fail(e, ENGINE_EEXIST);
    if (!restore) {
        if (s->start < e->cur)
            return engine_fail(e, ENGINE_EPAST);
        if (s->start > e->cur + ENGINE_MAX_AHEAD_HOURS)
            return engine_fail(e, ENGINE_EINVAL);
    }
    uint32_t pos = pool_offer_from(e, p, s->start);
    if (pos < p->noffers && OFFER(e, p->offers[pos])->start < s->end)
        return engine_fail(e, ENGINE_ECONFLICT);
    *pool_out = pi;
    return CAPX_OK;
}

uint32_t offer_new(engine *e, uint64_t id, uint64_t seq, uint32_t pi, int64_t price, int32_t gpus,
                   uint8_t kind)
{
    uint32_t oi = slab_new(&e->offers);
    offer *of = OFFER(e, oi);
    of->id = id;
    of->seq = seq;
    of->price = price;
    of->pool = pi;
    of->gpus = gpus;
    of->kind = kind;
    of->live = 1;
    idmap_put(&e->offer_ids, id, oi);
    return oi;
}

static uint32_t offer_insert(engine *e, const engine_offer_spec *s, uint32_t pi, uint64_t seq)
{
    uint32_t oi = offer_new(e, s->id, seq, pi, s->price, s->gpus, OFFER_RESV);
    OFFER(e, oi)->start = s->start;
    OFFER(e, oi)->end = s->end;
    pool *p = POOL(e, pi);
    grow32((void **)&p->offers, &p->offers_cap, p->noffers + 1, sizeof(uint32_t));
    uint32_t pos = pool_offer_from(e, p, s->start);
    memmove(p->offers + pos + 1, p->offers + pos, (p->noffers - pos) * sizeof(uint32_t));
    p->offers[pos] = oi;
    p->noffers++;
    pool_offers_changed(e, pi, oi, true);
    heap_push(e, s->end, seq, oi, true);
    return oi;
}

/* ---------------------------------------------------------------- orders */

static int order_check(engine *e, const engine_order_spec *s, bool need_id)
{
    int64_t latest = s->latest_start < s->start ? s->start : s->latest_start;
    if ((need_id && s->id == 0) || s->account == 0 || s->model == 0 || s->gpus < 1 ||
        s->gpus > ENGINE_MAX_GPUS || s->hours < 1 || s->hours > ENGINE_MAX_HOURS ||
        s->limit_price < 1 || s->limit_price > ENGINE_MAX_PRICE || s->start < 0 ||
        latest - s->start > ENGINE_MAX_WINDOW || s->tif > ENGINE_IOC)
        return engine_fail(e, ENGINE_EINVAL);
    if (need_id && seqmap_get(&e->order_ids, s->id) != IDMAP_NONE)
        return engine_fail(e, ENGINE_EEXIST);
    return CAPX_OK;
}

static void want_of(engine *e, const order *o, want *w)
{
    w->account = o->account;
    w->region = o->region;
    w->model = o->model;
    w->only_pool = o->fixed_pool;
    if (o->fixed >= 0) {
        w->lo = w->hi = o->fixed;
    } else {
        w->lo = o->start;
        w->hi = o->latest;
    }
    if (w->lo < e->cur)
        w->lo = e->cur;
    w->gpus = o->gpus;
    w->hours = o->hours;
    w->limit = o->limit;
    w->aon = o->aon;
    w->single = o->single;
}

/* Try to fill order oi now. Returns true when it is completely filled (and gone). */
/* Try to fill order oi now (over the starts of *restrict when given: a re-try). Returns true
 * when it is completely filled (and gone). */
static bool order_try(engine *e, uint32_t oi, bool resting, const want *restrict_to)
{
    order *o = ORDER(e, oi);
    want w;
    if (restrict_to)
        w = *restrict_to;
    else
        want_of(e, o, &w);
    if (w.lo > w.hi)
        return false;
    plan p;
    resv_search(e, &w, &p);
    if (p.start < 0) {
        if (o->aon && !o->single) { /* bounds over every start, see engine_offer */
            if (!restrict_to) {
                o->shortfall = p.shortfall;
                o->kg_hi = p.kg_hi;
            } else {
                o->shortfall = p.shortfall < o->shortfall ? p.shortfall : o->shortfall;
                o->kg_hi = p.kg_hi > o->kg_hi ? p.kg_hi : o->kg_hi;
            }
        }
        return false;
    }
    resv_apply(e, o, &w, &p);
    o = ORDER(e, oi);
    if (o->gpus == 0) {
        if (resting)
            resting_remove(e, oi);
        order_done(e, oi, ENGINE_R_FILLED, true);
        return true;
    }
    /* Partly filled: the rest keeps this start. */
    CAPX_ASSERT(!o->aon);
    if (o->single && o->fixed_pool == NONE32)
        o->fixed_pool = e->pieces[0].pool; /* one piece: the rest comes from the same pool */
    if (o->fixed < 0) {
        o->fixed = p.start;
        o->dead_at = p.start + 1;
        if (resting)
            heap_push(e, o->dead_at, o->seq, oi, false);
    }
    return false;
}

static uint32_t order_new(engine *e, const engine_order_spec *s, uint64_t seq)
{
    uint32_t oi = slab_new(&e->orders);
    order *o = ORDER(e, oi);
    o->id = s->id;
    o->account = s->account;
    o->seq = seq;
    o->region = s->region;
    o->start = s->start;
    o->latest = s->latest_start < s->start ? s->start : s->latest_start;
    o->fixed = -1;
    o->fixed_pool = NONE32;
    o->shortfall = 0; /* nothing known yet: no re-try is skipped */
    o->kg_hi = INT64_MAX;
    o->limit = s->limit_price;
    o->dead_at = o->latest + 1;
    o->gpus = s->gpus;
    o->hours = s->hours;
    o->aon = s->all_or_none;
    o->single = s->single_pool;
    o->tif = s->tif;
    o->live = 1;
    o->model = engine_model_get(e, s->model, true);
    seqmap_put(&e->order_ids, s->id, oi);
    return oi;
}

int engine_order(engine *e, int64_t now, const engine_order_spec *s)
{
    if (engine_advance(e, now) < 0)
        return CAPX_ERR;
    if (order_check(e, s, true) < 0)
        return CAPX_ERR;
    int64_t latest = s->latest_start < s->start ? s->start : s->latest_start;
    if (latest < e->cur)
        return engine_fail(e, ENGINE_EPAST);
    if (s->start > e->cur + ENGINE_MAX_AHEAD_HOURS)
        return engine_fail(e, ENGINE_EINVAL);
    uint64_t seq = e->next_seq++;
    uint32_t oi = order_new(e, s, seq);
    ev_fields ev = {0};
    ev.kind = ENGINE_EV_ORDER_ACCEPTED;
    ev.order = s->id;
    ev.buyer = s->account;
    ev.model = s->model;
    ev.region = s->region;
    ev.seq = seq;
    ev.gpus = s->gpus;
    ev.start = s->start;
    ev.end = latest;
    ev.price = s->limit_price;
    emit(e, &ev);
    if (order_try(e, oi, false, NULL))
        return CAPX_OK;
    if (s->tif == ENGINE_IOC) {
        order_done(e, oi, ENGINE_R_IOC, true);
        return CAPX_OK;
    }
    resting_insert(e, oi);
    return CAPX_OK;
}

int engine_quote(engine *e, int64_t now, const engine_order_spec *s, engine_quote_result *q,
                 engine_piece *pieces, size_t cap)
{
    memset(q, 0, sizeof(*q));
    q->start = -1;
    if (now < 0 || order_check(e, s, false) < 0)
        return engine_fail(e, ENGINE_EINVAL);
    int64_t n = now > e->now ? now : e->now;
    uint32_t mi = engine_model_get(e, s->model, false);
    if (mi == NONE32)
        return CAPX_OK;
    want w;
    w.account = s->account;
    w.region = s->region;
    w.model = mi;
    w.only_pool = NONE32;
    w.lo = s->start < cur_of(n) ? cur_of(n) : s->start;
    w.hi = s->latest_start < s->start ? s->start : s->latest_start;
    w.gpus = s->gpus;
    w.hours = s->hours;
    w.limit = s->limit_price;
    w.aon = s->all_or_none;
    w.single = s->single_pool;
    if (w.lo > w.hi)
        return CAPX_OK;
    plan p;
    resv_search(e, &w, &p);
    if (p.start < 0)
        return CAPX_OK;
    resv_pieces(e, &w, &p, q, pieces, cap);
    return CAPX_OK;
}

int engine_offer(engine *e, int64_t now, const engine_offer_spec *s)
{
    if (engine_advance(e, now) < 0)
        return CAPX_ERR;
    uint32_t pi;
    if (offer_check(e, s, false, &pi) < 0)
        return CAPX_ERR;
    uint64_t seq = e->next_seq++;
    offer_insert(e, s, pi, seq);
    pool *p = POOL(e, pi);
    market *m = MARKET(e, p->market);
    ev_fields ev = {0};
    ev.kind = ENGINE_EV_OFFER_ACCEPTED;
    ev.offer = s->id;
    ev.pool = s->pool;
    ev.provider = p->account;
    ev.model = m->model;
    ev.region = m->region;
    ev.seq = seq;
    ev.gpus = s->gpus;
    ev.start = s->start;
    ev.end = s->end;
    ev.price = s->price;
    emit(e, &ev);

    /* Retry the resting orders this offer's hours could serve, in priority order. */
    model *md = MODEL(e, m->model_idx);
    uint64_t region = m->region, account = p->account;
    uint32_t n = 0;
    grow((void **)&e->sc_retry, &e->sc_retry_cap, md->nresting, sizeof(uint32_t));
    FOR_RESTING(e, md, oi)
    {
        order *o = ORDER(e, oi);
        if ((o->region && o->region != region) || o->account == account)
            continue;
        int64_t lo = o->fixed >= 0 ? o->fixed : o->start;
        int64_t hi = o->fixed >= 0 ? o->fixed : o->latest;
        if (lo < e->cur)
            lo = e->cur;
        if (lo > hi || hi + o->hours <= s->start || lo >= s->end)
            continue;
        e->sc_retry[n++] = oi;
    }
    /*
     * Each resting order could not fill at any start before this offer, and nothing but new
     * offers adds supply, so only starts whose hours meet this offer can fill now, and the fill
     * must use this pool: a single_pool order can only use it; an order that takes part fills
     * needs this pool alone to give a GPU within its limit; an all_or_none order needs, where
     * it was short of GPUs, more than this offer adds, and where it was short of money, GPUs
     * cheaper than the dearest of the G cheapest it had (supply since only shrank, so the G
     * cheapest can only have become dearer: docs/matching.md).
     */
    for (uint32_t i = 0; i < n; i++) {
        uint32_t oi = e->sc_retry[i];
        order *o = ORDER(e, oi);
        want w;
        want_of(e, o, &w);
        if (w.lo < s->start - o->hours + 1)
            w.lo = s->start - o->hours + 1;
        if (w.hi > s->end - 1)
            w.hi = s->end - 1;
        if (w.lo > w.hi)
            continue;
        if (o->single) {
            if (o->fixed_pool != NONE32 && o->fixed_pool != pi)
                continue;
            w.only_pool = pi;
        } else if (!o->aon) {
            if (resv_pool_kmin(e, pi, &w) > o->limit * o->hours)
                continue;
        } else if (s->gpus < o->shortfall && resv_pool_kmin(e, pi, &w) >= o->kg_hi) {
            if (o->shortfall != INT32_MAX)
                o->shortfall -= s->gpus; /* still short by at least this much */
            continue;
        }
        (void)order_try(e, oi, true, &w);
    }
    return CAPX_OK;
}

int engine_cancel_order(engine *e, int64_t now, uint64_t id)
{
    if (engine_advance(e, now) < 0)
        return CAPX_ERR;
    uint32_t oi = id ? seqmap_take(&e->order_ids, id) : IDMAP_NONE; /* one probe */
    if (oi == IDMAP_NONE)
        return engine_fail(e, ENGINE_ENOTFOUND);
    if (oi & 0x80000000u) {
        spot_cancel_bid(e, oi & 0x7fffffffu);
        return CAPX_OK;
    }
    resting_remove(e, oi);
    order_done(e, oi, ENGINE_R_CANCELLED, false);
    return CAPX_OK;
}

int engine_cancel_offer(engine *e, int64_t now, uint64_t id)
{
    if (engine_advance(e, now) < 0)
        return CAPX_ERR;
    uint32_t oi = id ? idmap_get(&e->offer_ids, id) : IDMAP_NONE;
    if (oi == IDMAP_NONE)
        return engine_fail(e, ENGINE_ENOTFOUND);
    if (OFFER(e, oi)->kind == OFFER_SPOT) {
        spot_offer_gone(e, oi);
        return CAPX_OK;
    }
    offer_done(e, oi, ENGINE_R_CANCELLED);
    return CAPX_OK;
}

/* ---------------------------------------------------------------- rebuild */

int engine_restore_offer(engine *e, const engine_offer_spec *s, uint64_t seq)
{
    e->clock_dirty = true;
    uint32_t pi;
    if (seq == 0)
        return engine_fail(e, ENGINE_EINVAL);
    if (offer_check(e, s, true, &pi) < 0)
        return CAPX_ERR;
    offer_insert(e, s, pi, seq);
    if (seq >= e->next_seq)
        e->next_seq = seq + 1;
    return CAPX_OK;
}

int engine_restore_sold(engine *e, uint64_t pool_id, int64_t start, int64_t end, int32_t gpus)
{
    uint32_t pi = idmap_get(&e->pool_ids, pool_id);
    if (pi == IDMAP_NONE)
        return engine_fail(e, ENGINE_ENOTFOUND);
    if (start < 0 || start >= end || end - start > 2 * ENGINE_MAX_OFFER_HOURS || gpus < 1)
        return engine_fail(e, ENGINE_EINVAL);
    if (start < e->cur)
        start = e->cur; /* the past never matters */
    if (start < end)
        soldmap_add(&POOL(e, pi)->sold, &e->arena, start, end, gpus);
    return CAPX_OK;
}

int engine_restore_order(engine *e, const engine_order_spec *s, uint64_t seq, int32_t filled,
                         int64_t fixed_start, uint64_t fixed_pool)
{
    e->clock_dirty = true;
    if (seq == 0 || order_check(e, s, true) < 0 || filled < 0 || filled >= s->gpus ||
        (filled > 0 && (fixed_start < 0 || s->all_or_none)) || s->tif != ENGINE_GTC ||
        (fixed_pool && !s->single_pool))
        return engine_fail(e, ENGINE_EINVAL);
    uint32_t fp = NONE32;
    if (fixed_pool && (fp = idmap_get(&e->pool_ids, fixed_pool)) == IDMAP_NONE)
        return engine_fail(e, ENGINE_ENOTFOUND);
    uint32_t oi = order_new(e, s, seq);
    order *o = ORDER(e, oi);
    o->gpus = s->gpus - filled;
    o->filled = filled;
    o->fixed_pool = fp;
    if (fixed_start >= 0) {
        o->fixed = fixed_start;
        o->dead_at = fixed_start + 1;
    }
    resting_insert(e, oi);
    if (seq >= e->next_seq)
        e->next_seq = seq + 1;
    return CAPX_OK;
}

void engine_restore_counters(engine *e, uint64_t next_seq, uint64_t next_trade, int64_t now)
{
    e->clock_dirty = true;
    if (next_seq > e->next_seq)
        e->next_seq = next_seq;
    if (next_trade > e->next_trade)
        e->next_trade = next_trade;
    if (now > e->now) {
        e->now = now;
        e->cur = cur_of(now);
    }
}

void engine_restore_market_data(engine *e, uint64_t model_id, uint64_t region,
                                const engine_trade *trades, size_t n, int64_t spot_price)
{
    market *m = MARKET(e, engine_market_get(e, model_id, region, true));
    for (size_t i = 0; i < n; i++) {
        m->trades[m->trade_head] = trades[i];
        m->trade_head = (m->trade_head + 1) % ENGINE_TRADES_KEPT;
        if (m->ntrades < ENGINE_TRADES_KEPT)
            m->ntrades++;
        m->last_price = trades[i].price;
    }
    if (spot_price > 0)
        m->spot_price = spot_price;
}

/* ---------------------------------------------------------------- market data */

static bool order_touches(const order *o, int64_t cur, int64_t from, int64_t to)
{
    int64_t lo = o->fixed >= 0 ? o->fixed : o->start;
    int64_t hi = o->fixed >= 0 ? o->fixed : o->latest;
    if (lo < cur)
        lo = cur;
    if (from >= to)
        return true;
    return hi + o->hours > from && lo < to;
}

/* Unsold GPUs of an offer over [from, to) ∩ its hours: in every hour (*all) and in total. */
static bool offer_unsold(const engine *e, const offer *of, int64_t from, int64_t to, int64_t *all,
                         int64_t *gh)
{
    int64_t a = of->start > from ? of->start : from;
    int64_t b = of->end < to ? of->end : to;
    if (a < e->cur)
        a = e->cur;
    *all = 0;
    *gh = 0;
    if (a >= b)
        return false;
    const pool *p = POOL(e, of->pool);
    int32_t buf[256];
    int64_t mx = 0;
    for (int64_t h = a; h < b; h += 256) {
        int64_t c = b - h < 256 ? b - h : 256;
        soldmap_hourly(&p->sold, &e->arena, h, h + c, buf);
        for (int64_t i = 0; i < c; i++) {
            mx = buf[i] > mx ? buf[i] : mx;
            *gh += buf[i] < of->gpus ? of->gpus - buf[i] : 0;
        }
    }
    *all = mx < of->gpus ? of->gpus - mx : 0;
    return *gh > 0;
}

int engine_top_of(const engine *e, uint64_t model_id, uint64_t region, int64_t from, int64_t to,
                  engine_top *out)
{
    memset(out, 0, sizeof(*out));
    uint32_t mk = engine_market_find((engine *)e, model_id, region, false) /* reads only */;
    if (mk == NONE32)
        return CAPX_OK;
    const market *m = MARKET(e, mk);
    const model *md = MODEL(e, m->model_idx);
    FOR_RESTING(e, md, oi)
    {
        const order *o = ORDER(e, oi);
        if ((o->region == 0 || o->region == region) && order_touches(o, e->cur, from, to)) {
            out->best_bid = o->limit;
            goto bid_found;
        }
    }
bid_found:
    int64_t f = from < to ? from : e->cur, t = from < to ? to : INT64_MAX / 2;
    for (uint32_t i = 0; i < m->npools; i++) {
        const pool *p = POOL(e, m->pools[i]);
        for (uint32_t j = 0; j < p->noffers; j++) {
            const offer *of = OFFER(e, p->offers[j]);
            int64_t all, gh;
            if ((out->best_ask == 0 || of->price < out->best_ask) &&
                offer_unsold(e, of, f, t, &all, &gh))
                out->best_ask = of->price;
        }
    }
    out->last_price = m->last_price;
    out->spot_price = m->spot_price;
    return CAPX_OK;
}

static int level_cmp(const void *a, const void *b)
{
    const engine_level *x = a, *y = b;
    return x->price < y->price ? -1 : x->price > y->price;
}

size_t engine_depth(const engine *e, uint64_t model_id, uint64_t region, int64_t from, int64_t to,
                    char side, engine_level *out, size_t cap)
{
    uint32_t mk = engine_market_find((engine *)e, model_id, region, false) /* reads only */;
    if (mk == NONE32)
        return 0;
    const market *m = MARKET(e, mk);
    size_t n = 0;
    if (side == 'b') {
        const model *md = MODEL(e, m->model_idx);
        int64_t last = -1;
        FOR_RESTING(e, md, oi)
        {
            const order *o = ORDER(e, oi);
            if ((o->region && o->region != region) || !order_touches(o, e->cur, from, to))
                continue;
            if (o->limit != last) {
                if (n < cap) {
                    memset(&out[n], 0, sizeof(out[n]));
                    out[n].price = o->limit;
                }
                n++;
                last = o->limit;
            }
            if (n <= cap) {
                out[n - 1].gpus += o->gpus;
                out[n - 1].gpu_hours += (int64_t)o->gpus * o->hours;
                out[n - 1].count++;
            }
        }
        return n;
    }
    /* asks: collect per offer, sort by price, merge */
    size_t cnt = 0;
    for (uint32_t i = 0; i < m->npools; i++)
        cnt += POOL(e, m->pools[i])->noffers;
    engine_level *tmp = xcalloc(cnt ? cnt : 1, sizeof(*tmp));
    size_t k = 0;
    int64_t f = from < to ? from : e->cur, t = from < to ? to : INT64_MAX / 2;
    for (uint32_t i = 0; i < m->npools; i++) {
        const pool *p = POOL(e, m->pools[i]);
        for (uint32_t j = 0; j < p->noffers; j++) {
            const offer *of = OFFER(e, p->offers[j]);
            int64_t all, gh;
            if (!offer_unsold(e, of, f, t, &all, &gh))
                continue;
            tmp[k].price = of->price;
            tmp[k].gpus = all;
            tmp[k].gpu_hours = gh;
            tmp[k].count = 1;
            k++;
        }
    }
    qsort(tmp, k, sizeof(*tmp), level_cmp);
    for (size_t i = 0; i < k; i++) {
        if (n > 0 && tmp[i].price == tmp[i - 1].price) {
            if (n <= cap) {
                out[n - 1].gpus += tmp[i].gpus;
                out[n - 1].gpu_hours += tmp[i].gpu_hours;
                out[n - 1].count++;
            }
            continue;
        }
        if (n < cap)
            out[n] = tmp[i];
        n++;
    }
    free(tmp);
    return n;
}

size_t engine_trades(const engine *e, uint64_t model_id, uint64_t region, engine_trade *out,
                     size_t cap)
{
    uint32_t mk = engine_market_find((engine *)e, model_id, region, false) /* reads only */;
    if (mk == NONE32)
        return 0;
    const market *m = MARKET(e, mk);
    size_t n = 0;
    for (uint32_t i = 0; i < m->ntrades && n < cap; i++) {
        uint32_t at = (m->trade_head + ENGINE_TRADES_KEPT - 1 - i) % ENGINE_TRADES_KEPT;
        out[n++] = m->trades[at];
    }
    return n;
}

/* ---------------------------------------------------------------- digest */

static int u64_cmp(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

uint64_t engine_digest(const engine *e)
{
    uint64_t h = 0xcbf29ce484222325ULL;
    h = dig(h, e->next_seq);
    h = dig(h, e->next_trade);
    h = dig(h, (uint64_t)e->cur);
    /* pools in id order: offers, sold hours from cur on (as runs) */
    uint64_t *ids = xcalloc(e->pools.n + 1, sizeof(uint64_t));
    uint32_t np = 0;
    for (uint32_t i = 0; i < e->pools.n; i++)
        ids[np++] = POOL(e, i)->id;
    qsort(ids, np, sizeof(uint64_t), u64_cmp);
    for (uint32_t k = 0; k < np; k++) {
        const pool *p = POOL(e, idmap_get(&e->pool_ids, ids[k]));
        h = dig(h, p->id);
        h = dig(h, p->account);
        h = dig(h, (uint64_t)p->gpus);
        h = dig(h, MARKET(e, p->market)->model);
        h = dig(h, MARKET(e, p->market)->region);
        for (uint32_t j = 0; j < p->noffers; j++) {
            const offer *of = OFFER(e, p->offers[j]);
            h = dig(h, of->id);
            h = dig(h, of->seq);
            h = dig(h, (uint64_t)of->start);
            h = dig(h, (uint64_t)of->end);
            h = dig(h, (uint64_t)of->price);
            h = dig(h, (uint64_t)of->gpus);
        }
        int32_t prev = 0;
        int64_t end = soldmap_end(&p->sold);
        for (int64_t hr = e->cur; hr < end; hr++) {
            int32_t v = soldmap_get(&p->sold, &e->arena, hr);
            if (v != prev) {
                h = dig(h, (uint64_t)hr);
                h = dig(h, (uint64_t)v);
                prev = v;
            }
        }
        h = dig(h, 0xfeed);
    }
    free(ids);
    /* resting orders per model, models in id order */
    ids = xcalloc(e->models.n + 1, sizeof(uint64_t));
    uint32_t nm = 0;
    for (uint32_t i = 0; i < e->models.n; i++)
        if (MODEL(e, i)->id && MODEL(e, i)->nresting)
            ids[nm++] = MODEL(e, i)->id;
    qsort(ids, nm, sizeof(uint64_t), u64_cmp);
    for (uint32_t k = 0; k < nm; k++) {
        const model *md = MODEL(e, idmap_get(&e->model_ids, ids[k]));
        h = dig(h, md->id);
        FOR_RESTING(e, md, oi)
        {
            const order *o = ORDER(e, oi);
            h = dig(h, o->id);
            h = dig(h, o->account);
            h = dig(h, o->seq);
            h = dig(h, o->region);
            h = dig(h, (uint64_t)o->start);
            h = dig(h, (uint64_t)o->latest);
            h = dig(h, (uint64_t)o->fixed);
            h = dig(h, o->fixed_pool == NONE32 ? 0 : POOL(e, o->fixed_pool)->id);
            h = dig(h, (uint64_t)o->limit);
            h = dig(h, (uint64_t)o->gpus);
            h = dig(h, (uint64_t)o->filled);
            h = dig(h, (uint64_t)o->hours);
            h = dig(h, (uint64_t)(o->aon | o->single << 1 | o->tif << 2));
        }
    }
    free(ids);
    return spot_digest(e, h);
}
