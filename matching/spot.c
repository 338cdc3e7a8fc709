/*
 * spot.c — spot offers and bids, and the uniform-price auction round.
 *
 * Bids of a market sit in price levels (a sorted array of level indices,
 * highest first), each a FIFO of bids in sequence order, so adding or
 * cancelling a bid is a binary search over a few dozen levels and a list
 * splice. A round walks the bids in priority order once; pools with a spot
 * offer are kept sorted by (reserve, offer seq) with a max segment tree of the
 * GPUs left, so "the cheapest pool that still fits this gang" is one descent.
 * docs/matching.md states the round's rules and why the price rule needs the
 * "limit ≥ highest reserve used so far" condition.
 */
#include "matching/engine-internal.h"

#include <stdlib.h>
#include <string.h>

#define SPOT_FLAG 0x80000000u /* order_ids values with this bit are spot bids */

/* Position of the first level with price <= p (levels are highest first). */
static uint32_t level_pos(const market *m, int64_t p)
{
    uint32_t lo = 0, hi = m->nlevels;
    while (lo < hi) {
        uint32_t mid = (lo + hi) / 2;
        if (m->level_px[mid] > p)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

/*
 * A level that empties stays (in the sorted arrays and in level_of), so that the common case of
 * a bid at a price seen recently finds its level without moving anything; the empty ones are
 * swept out once they are both many and most of the levels.
 */
static void levels_sweep(engine *e, market *m)
{
    uint32_t j = 0;
    for (uint32_t k = 0; k < m->nlevels; k++) {
        uint32_t li = m->levels[k];
        spot_level *l = LEVEL(e, li);
        if (l->count == 0) {
            idmap_del(&m->level_of, (uint64_t)l->price);
            slab_del(&e->levels, li);
            continue;
        }
        m->levels[j] = li;
        m->level_px[j] = m->level_px[k];
        j++;
    }
    m->nlevels = j;
    m->nempty = 0;
    memset(m->level_cache, 0, sizeof(m->level_cache)); /* it may name a level just freed */
}

/* A new level at price p (not in level_of), placed in the sorted arrays. */
static __attribute__((noinline)) uint32_t level_new(engine *e, market *m, int64_t p)
{
    uint32_t li = slab_new(&e->levels);
    spot_level *l = LEVEL(e, li);
    l->price = p;
    l->head = l->tail = NONE32;
    uint32_t pos = level_pos(m, p);
    if (m->nlevels == m->levels_cap) {
        m->levels_cap = m->levels_cap ? m->levels_cap * 2 : 16;
        m->levels = xrealloc(m->levels, m->levels_cap * sizeof(uint32_t));
        m->level_px = xrealloc(m->level_px, m->levels_cap * sizeof(int64_t));
    }
    memmove(m->levels + pos + 1, m->levels + pos, (m->nlevels - pos) * sizeof(uint32_t));
    memmove(m->level_px + pos + 1, m->level_px + pos, (m->nlevels - pos) * sizeof(int64_t));
    m->levels[pos] = li;
    m->level_px[pos] = p;
    m->nlevels++;
    m->nempty++; /* (it gets its first bid next) */
    idmap_put(&m->level_of, (uint64_t)p, li);
    return li;
}

/* The level of price p in market m, made if need be; counted as no longer empty. */
static inline uint32_t level_for(engine *e, market *m, int64_t p)
{
    uint32_t slot = (uint32_t)(((uint64_t)p * 0x9e3779b97f4a7c15ULL) >> 58);
    uint32_t li;
    if (m->level_cache[slot].price == p) {
        li = m->level_cache[slot].level;
    } else {
        li = idmap_get(&m->level_of, (uint64_t)p);
        if (li == IDMAP_NONE)
            li = level_new(e, m, p);
        m->level_cache[slot].price = p;
        m->level_cache[slot].level = li;
    }
    if (LEVEL(e, li)->count == 0)
        m->nempty--;
    return li;
}

void spot_bid_insert(engine *e, uint32_t bi)
{
    market *m = MARKET(e, BID(e, bi)->market);
    uint32_t li = level_for(e, m, BID(e, bi)->limit);
    spot_level *l = LEVEL(e, li);
    BID(e, bi)->level = li;
    LEVEL_LINK(e, l, bi, BID);
    m->nbids++;
    m->rb_dirty = true;
}

static void bid_unlink(engine *e, uint32_t bi)
{
    spot_bid *b = BID(e, bi);
    market *m = MARKET(e, b->market);
    spot_level *l = LEVEL(e, b->level);
    LEVEL_UNLINK(e, l, bi, BID);
    m->nbids--;
    m->rb_dirty = true;
    if (--l->count == 0 && ++m->nempty > 64 && m->nempty * 2 > m->nlevels)
        levels_sweep(e, m);
}

static void bid_event(engine *e, const spot_bid *b, uint8_t kind, uint8_t reason, int64_t price)
{
    const market *m = MARKET(e, b->market);
    ev_fields f = {.kind = kind,
                   .reason = reason,
                   .order = b->id,
                   .buyer = b->account,
                   .model = m->model,
                   .region = m->region,
                   .gpus = b->gpus,
                   .price = price};
    if (b->running != NONE32) {
        const pool *p = POOL(e, b->running);
        f.pool = p->id;
        f.provider = p->account;
        f.offer = p->spot_offer != NONE32 ? OFFER(e, p->spot_offer)->id : 0;
    }
    emit(e, &f);
}

/* (Outside a round the caller marks the market's rb dirty.) */
static void bid_preempt(engine *e, spot_bid *b, uint8_t reason)
{
    bid_event(e, b, ENGINE_EV_SPOT_PREEMPTED, reason, 0);
    POOL(e, b->running)->spot_running -= b->gpus;
    b->running = NONE32;
}

void spot_cancel_bid(engine *e, uint32_t bi)
{
    spot_bid *b = BID(e, bi);
    bid_unlink(e, bi);
    b = BID(e, bi);
    if (b->running != NONE32)
        POOL(e, b->running)->spot_running -= b->gpus;
    bid_event(e, b, ENGINE_EV_SPOT_BID_DONE, ENGINE_R_CANCELLED, 0);
    b->live = 0; /* its id was taken out of order_ids by the caller */
    slab_del(&e->bids, bi);
}

/* Running bids of pool pi, from the lowest priority up (reverse=true) or the highest down. */
static void preempt_in_pool(engine *e, uint32_t pi, int32_t keep, bool lowest_first, uint8_t reason)
{
    pool *p = POOL(e, pi);
    market *m = MARKET(e, p->market);
    if (p->spot_running <= keep)
        return;
    m->rb_dirty = true;
    if (lowest_first) {
        for (uint32_t k = m->nlevels; k-- > 0 && p->spot_running > keep;) {
            uint32_t bi = LEVEL(e, m->levels[k])->tail;
            while (bi != NONE32 && p->spot_running > keep) {
                spot_bid *b = BID(e, bi);
                uint32_t prev = b->prev;
                if (b->running == pi)
                    bid_preempt(e, b, reason);
                bi = prev;
            }
        }
    } else {
        for (uint32_t k = 0; k < m->nlevels && p->spot_running > keep; k++) {
            for (uint32_t bi = LEVEL(e, m->levels[k])->head; bi != NONE32;) {
                spot_bid *b = BID(e, bi);
                uint32_t next = b->next;
                if (b->running == pi)
                    bid_preempt(e, b, reason);
                bi = next;
            }
        }
    }
    CAPX_ASSERT(p->spot_running <= keep);
}

void spot_offer_gone(engine *e, uint32_t oi)
{
    offer *of = OFFER(e, oi);
    pool *p = POOL(e, of->pool);
    market *m = MARKET(e, p->market);
    uint32_t pi = of->pool;
    ev_fields ev = {0};
    ev.kind = ENGINE_EV_OFFER_DONE;
    ev.reason = ENGINE_R_CANCELLED;
    ev.offer = of->id;
    ev.pool = p->id;
    ev.provider = p->account;
    ev.model = m->model;
    ev.region = m->region;
    emit(e, &ev);
    preempt_in_pool(e, pi, 0, false, ENGINE_R_RECLAIMED);
    p = POOL(e, pi);
    p->spot_offer = NONE32;
    m->sp_dirty = true;
    idmap_del(&e->offer_ids, of->id);
    of->live = 0;
    slab_del(&e->offers, oi);
}

static int spot_offer_check(engine *e, const engine_spot_offer_spec *s, uint32_t *pi_out)
{
    if (s->id == 0 || s->gpus < 1 || s->reserve < 1 || s->reserve > ENGINE_MAX_PRICE)
        return engine_fail(e, ENGINE_EINVAL);
    uint32_t pi = idmap_get(&e->pool_ids, s->pool);
    if (pi == IDMAP_NONE)
        return engine_fail(e, ENGINE_ENOTFOUND);
    if (s->gpus > POOL(e, pi)->gpus)
        return engine_fail(e, ENGINE_EINVAL);
    if (idmap_get(&e->offer_ids, s->id) != IDMAP_NONE)
        return engine_fail(e, ENGINE_EEXIST);
    if (POOL(e, pi)->spot_offer != NONE32)
        return engine_fail(e, ENGINE_ECONFLICT);
    *pi_out = pi;
    return CAPX_OK;
}

static void spot_offer_insert(engine *e, const engine_spot_offer_spec *s, uint32_t pi, uint64_t seq)
{
    uint32_t oi = offer_new(e, s->id, seq, pi, s->reserve, s->gpus, OFFER_SPOT);
    pool *p = POOL(e, pi);
    p->spot_offer = oi;
    MARKET(e, p->market)->sp_dirty = true;
}

int engine_spot_offer(engine *e, int64_t now, const engine_spot_offer_spec *s)
{
    if (engine_advance(e, now) < 0)
        return CAPX_ERR;
    uint32_t pi;
    if (spot_offer_check(e, s, &pi) < 0)
        return CAPX_ERR;
    uint64_t seq = e->next_seq++;
    spot_offer_insert(e, s, pi, seq);
    const pool *p = POOL(e, pi);
    const market *m = MARKET(e, p->market);
    ev_fields ev = {0};
    ev.kind = ENGINE_EV_OFFER_ACCEPTED;
    ev.offer = s->id;
    ev.pool = s->pool;
    ev.provider = p->account;
    ev.model = m->model;
    ev.region = m->region;
    ev.seq = seq;
    ev.gpus = s->gpus;
    ev.price = s->reserve;
    emit(e, &ev);
    return CAPX_OK;
}

int engine_restore_spot_offer(engine *e, const engine_spot_offer_spec *s, uint64_t seq)
{
    uint32_t pi;
    if (seq == 0)
        return engine_fail(e, ENGINE_EINVAL);
    if (spot_offer_check(e, s, &pi) < 0)
        return CAPX_ERR;
    spot_offer_insert(e, s, pi, seq);
    if (seq >= e->next_seq)
        e->next_seq = seq + 1;
    return CAPX_OK;
}

static int spot_bid_check(engine *e, const engine_spot_bid_spec *s)
{
    if (s->id == 0 || s->account == 0 || s->model == 0 || s->region == 0 || s->gpus < 1 ||
        s->gpus > ENGINE_MAX_GPUS || s->limit_price < 1 || s->limit_price > ENGINE_MAX_PRICE)
        return engine_fail(e, ENGINE_EINVAL);
    if (seqmap_get(&e->order_ids, s->id) != IDMAP_NONE)
        return engine_fail(e, ENGINE_EEXIST);
    return CAPX_OK;
}

/* A live bid of market mk, not running, not yet in a level. */
static inline spot_bid bid_of(const engine_spot_bid_spec *s, uint64_t seq, uint32_t mk)
{
    return (spot_bid){.id = s->id,
                      .account = s->account,
                      .seq = seq,
                      .limit = s->limit_price,
                      .gpus = s->gpus,
                      .market = mk,
                      .level = NONE32,
                      .prev = NONE32,
                      .next = NONE32,
                      .running = NONE32,
                      .live = 1};
}

static uint32_t spot_bid_new(engine *e, const engine_spot_bid_spec *s, uint64_t seq)
{
    uint32_t mk = engine_market_get(e, s->model, s->region, true);
    uint32_t bi = slab_take(&e->bids);
    CAPX_ASSERT(bi < SPOT_FLAG);
    *BID(e, bi) = bid_of(s, seq, mk);
    seqmap_put(&e->order_ids, s->id, bi | SPOT_FLAG);
    spot_bid_insert(e, bi);
    return bi;
}

int engine_spot_bid(engine *e, int64_t now, const engine_spot_bid_spec *s)
{
    if (engine_advance(e, now) < 0)
        return CAPX_ERR;
    if (s->id == 0 || s->account == 0 || s->model == 0 || s->region == 0 || s->gpus < 1 ||
        s->gpus > ENGINE_MAX_GPUS || s->limit_price < 1 || s->limit_price > ENGINE_MAX_PRICE)
        return engine_fail(e, ENGINE_EINVAL);
    bool existed;
    uint32_t *slot = seqmap_upsert(&e->order_ids, s->id, &existed); /* one probe */
    if (existed)
        return engine_fail(e, ENGINE_EEXIST);
    uint64_t seq = e->next_seq++;
    uint32_t mk =
        e->mcache != NONE32 && e->mcache_model == s->model && e->mcache_region == s->region
            ? e->mcache
            : engine_market_get(e, s->model, s->region, true);
    uint32_t bi = slab_take(&e->bids);
    CAPX_ASSERT(bi < SPOT_FLAG);
    *slot = bi | SPOT_FLAG;
    /* A new bid has the highest seq yet: it goes last in its level. */
    market *m = MARKET(e, mk);
    uint32_t li = level_for(e, m, s->limit_price);
    spot_level *l = LEVEL(e, li);
    spot_bid nb = bid_of(s, seq, mk);
    nb.level = li;
    nb.prev = l->tail;
    *BID(e, bi) = nb;
    if (l->tail == NONE32)
        l->head = bi;
    else
        BID(e, l->tail)->next = bi;
    l->tail = bi;
    l->count++;
    m->nbids++;
    m->rb_dirty = true;
    emit(e, &(ev_fields){.kind = ENGINE_EV_SPOT_BID_ACCEPTED,
                         .order = s->id,
                         .buyer = s->account,
                         .model = s->model,
                         .region = s->region,
                         .seq = seq,
                         .gpus = s->gpus,
                         .price = s->limit_price});
    return CAPX_OK;
}

int engine_restore_spot_bid(engine *e, const engine_spot_bid_spec *s, uint64_t seq,
                            uint64_t running_pool)
{
    if (seq == 0 || spot_bid_check(e, s) < 0)
        return engine_fail(e, ENGINE_EINVAL);
    uint32_t pi = NONE32;
    if (running_pool) {
        pi = idmap_get(&e->pool_ids, running_pool);
        if (pi == IDMAP_NONE)
            return engine_fail(e, ENGINE_ENOTFOUND);
        const market *m = MARKET(e, POOL(e, pi)->market);
        if (m->model != s->model || m->region != s->region || POOL(e, pi)->spot_offer == NONE32)
            return engine_fail(e, ENGINE_EINVAL);
    }
    uint32_t bi = spot_bid_new(e, s, seq);
    if (pi != NONE32) {
        BID(e, bi)->running = pi;
        POOL(e, pi)->spot_running += s->gpus;
    }
    if (seq >= e->next_seq)
        e->next_seq = seq + 1;
    return CAPX_OK;
}

int engine_spot_reclaim(engine *e, int64_t now, uint64_t pool_id, int32_t available)
{
    uint32_t pi = idmap_get(&e->pool_ids, pool_id);
    if (pi == IDMAP_NONE)
        return engine_fail(e, ENGINE_ENOTFOUND);
    if (available < 0)
        return engine_fail(e, ENGINE_EINVAL);
    if (engine_advance(e, now) < 0)
        return CAPX_ERR;
    preempt_in_pool(e, pi, available, true, ENGINE_R_RECLAIMED);
    return CAPX_OK;
}

/* ---------------------------------------------------------------- the round */

typedef struct sp_key {
    int64_t reserve;
    uint64_t seq;
    uint32_t pool;
} sp_key;

static int sp_cmp(const void *a, const void *b)
{
    const sp_key *x = a, *y = b;
    if (x->reserve != y->reserve)
        return x->reserve < y->reserve ? -1 : 1;
    return x->seq < y->seq ? -1 : x->seq > y->seq;
}

static void sp_rebuild(engine *e, market *m)
{
    uint32_t n = 0;
    for (uint32_t i = 0; i < m->npools; i++)
        n += POOL(e, m->pools[i])->spot_offer != NONE32;
    if (n > m->sp_cap) {
        m->sp = xrealloc(m->sp, n * sizeof(uint32_t));
        m->sp_res = xrealloc(m->sp_res, n * sizeof(int64_t));
        m->sp_ids = xrealloc(m->sp_ids, n * sizeof(*m->sp_ids));
        m->sp_cap = n;
    }
    sp_key *keys = xcalloc(n ? n : 1, sizeof(sp_key));
    uint32_t k = 0;
    for (uint32_t i = 0; i < m->npools; i++) {
        const pool *p = POOL(e, m->pools[i]);
        if (p->spot_offer != NONE32) {
            const offer *of = OFFER(e, p->spot_offer);
            keys[k++] = (sp_key){of->price, of->seq, m->pools[i]};
        }
    }
    qsort(keys, n, sizeof(sp_key), sp_cmp);
    for (uint32_t i = 0; i < n; i++) {
        m->sp[i] = keys[i].pool;
        m->sp_res[i] = keys[i].reserve;
        const pool *p = POOL(e, keys[i].pool);
        m->sp_ids[i][0] = p->id;
        m->sp_ids[i][1] = p->account;
        m->sp_ids[i][2] = OFFER(e, p->spot_offer)->id;
        POOL(e, keys[i].pool)->spot_pos = i;
    }
    free(keys);
    m->nsp = n;
    m->rb_dirty = true; /* positions moved */
    uint32_t size = 1;
    while (size < n)
        size *= 2;
    if (size != m->seg_size) {
        m->seg = xrealloc(m->seg, 2 * (size_t)size * sizeof(int32_t));
        m->seg_size = size;
    }
    m->sp_dirty = false;
}

static void seg_set(int32_t *seg, uint32_t size, uint32_t i, int32_t v)
{
    uint32_t n = size + i;
    seg[n] = v;
    for (n >>= 1; n >= 1; n >>= 1) {
        int32_t l = seg[2 * n], r = seg[2 * n + 1], m = l > r ? l : r;
        if (seg[n] == m)
            break; /* nothing above changes either */
        seg[n] = m;
    }
}

/* Leftmost position < bound whose value is >= g, or NONE32. */
static uint32_t seg_first(const int32_t *seg, uint32_t node, uint32_t lo, uint32_t hi,
                          uint32_t bound, int32_t g)
{
    if (lo >= bound || seg[node] < g)
        return NONE32;
    if (hi - lo == 1)
        return lo;
    uint32_t mid = (lo + hi) / 2;
    uint32_t r = seg_first(seg, 2 * node, lo, mid, bound, g);
    if (r != NONE32)
        return r;
    return seg_first(seg, 2 * node + 1, mid, hi, bound, g);
}

static void auction(engine *e, uint32_t mk)
{
    market *m = MARKET(e, mk);
    if (m->sp_dirty || m->seg_size == 0)
        sp_rebuild(e, m);
    uint32_t size = m->seg_size;
    int32_t *seg = m->seg;
    for (uint32_t i = 0; i < size; i++) {
        int32_t v = 0;
        if (i < m->nsp) {
            const pool *p = POOL(e, m->sp[i]);
            v = p->stamp == e->round ? p->spot_supply : 0;
        }
        seg[size + i] = v;
    }
    for (uint32_t n = size - 1; n >= 1; n--)
        seg[n] = seg[2 * n] > seg[2 * n + 1] ? seg[2 * n] : seg[2 * n + 1];
    grow((void **)&e->sc_losers, &e->sc_losers_cap, m->nbids, sizeof(int64_t));
    grow((void **)&e->sc_changes, &e->sc_changes_cap, 2 * (size_t)m->nbids, sizeof(uint32_t));
    uint32_t nchg = 0;
    int64_t running = 0;

    if (m->rb_dirty) { /* flatten the levels once; rounds without changes reuse it */
        if (m->nbids > m->rb_cap) {
            m->rb_cap = m->nbids;
            m->rb = xrealloc(m->rb, (size_t)m->rb_cap * sizeof(rb_ent));
        }
        uint32_t j = 0;
        for (uint32_t k = 0; k < m->nlevels; k++)
            for (uint32_t bi = LEVEL(e, m->levels[k])->head; bi != NONE32; bi = BID(e, bi)->next) {
                const spot_bid *b = BID(e, bi);
                m->rb[j++] =
                    (rb_ent){b->limit, bi, b->gpus,
                             b->running == NONE32 ? NONE32 : POOL(e, b->running)->spot_pos};
            }
        CAPX_ASSERT(j == m->nbids);
        m->nrb = j;
        m->rb_dirty = false;
    }
    int64_t maxres = 0, lmin = 0, lastL = -1;
    uint32_t nwin = 0, nlose = 0, bound = 0;
    for (uint32_t j = 0; j < m->nrb; j++) {
        const rb_ent *r = &m->rb[j];
        int64_t L = r->limit;
        uint32_t won = NONE32;
        if (L >= maxres && m->nsp > 0) {
            if (r->pos != NONE32) {
                if (m->sp_res[r->pos] <= L && seg[size + r->pos] >= r->gpus)
                    won = r->pos;
            } else {
                if (L != lastL) { /* pools with reserve <= L */
                    uint32_t lo = 0, hi = m->nsp;
                    while (lo < hi) {
                        uint32_t mid = (lo + hi) / 2;
                        if (m->sp_res[mid] <= L)
                            lo = mid + 1;
                        else
                            hi = mid;
                    }
                    bound = lo;
                    lastL = L;
                }
                won = seg_first(seg, 1, 0, size, bound, r->gpus);
            }
        }
        if (won != NONE32) {
            seg_set(seg, size, won, seg[size + won] - r->gpus);
            if (m->sp_res[won] > maxres)
                maxres = m->sp_res[won];
            lmin = L;
            nwin++;
            running += r->gpus;
            if (r->pos == NONE32) { /* starts running: an event */
                e->sc_changes[nchg++] = j;
                e->sc_changes[nchg++] = won;
            }
        } else {
            e->sc_losers[nlose++] = L;
            if (r->pos != NONE32) { /* loses its GPUs: an event */
                e->sc_changes[nchg++] = j;
                e->sc_changes[nchg++] = NONE32;
            }
        }
    }
    /* P = max(highest reserve used, highest losing limit <= lowest winning limit). */
    int64_t P = 0;
    if (nwin) {
        P = maxres;
        uint32_t lo = 0, hi = nlose; /* losers are highest first: first one <= lmin */
        while (lo < hi) {
            uint32_t mid = (lo + hi) / 2;
            if (e->sc_losers[mid] > lmin)
                lo = mid + 1;
            else
                hi = mid;
        }
        if (lo < nlose && e->sc_losers[lo] > P)
            P = e->sc_losers[lo];
        /* One price for all: within every winner's limit (all >= lmin), at or above every
         * reserve used (all <= maxres). */
        CAPX_ASSERT(P <= lmin && P >= maxres);
        m->spot_price = P;
    }
    /* Events in priority order; bids that keep running where they run say nothing. */
    for (uint32_t c = 0; c < nchg; c += 2) {
        rb_ent *re = &m->rb[e->sc_changes[c]];
        spot_bid *b = BID(e, re->bid);
        uint32_t won = e->sc_changes[c + 1];
        uint32_t pos = won != NONE32 ? won : re->pos; /* where it runs now, or ran */
        uint32_t pi = m->sp[pos];
        ev_fields ev = {.kind = won != NONE32 ? ENGINE_EV_SPOT_WON : ENGINE_EV_SPOT_PREEMPTED,
                        .reason = won != NONE32 ? ENGINE_R_NONE : ENGINE_R_OUTBID,
                        .order = b->id,
                        .buyer = b->account,
                        .model = m->model,
                        .region = m->region,
                        .gpus = b->gpus,
                        .price = won != NONE32 ? P : 0,
                        .pool = m->sp_ids[pos][0],
                        .provider = m->sp_ids[pos][1],
                        .offer = m->sp_ids[pos][2]};
        if (won != NONE32) {
            b->running = pi;
            POOL(e, pi)->spot_running += b->gpus;
        } else {
            POOL(e, pi)->spot_running -= b->gpus;
            b->running = NONE32;
        }
        re->pos = won;
        emit(e, &ev);
    }
    emit(e, &(ev_fields){.kind = ENGINE_EV_SPOT_ROUND,
                         .model = m->model,
                         .region = m->region,
                         .price = P,
                         .gpus = running,
                         .filled = nwin});
}

int engine_spot_round(engine *e, int64_t now, const engine_spot_supply *supply, size_t n)
{
    e->round++; /* a refused round burns its number, so its stamps never count */
    grow((void **)&e->sc_supply, &e->sc_supply_cap, n, sizeof(uint32_t));
    for (size_t i = 0; i < n; i++) {
        uint32_t pi = idmap_get(&e->pool_ids, supply[i].pool);
        if (pi == IDMAP_NONE)
            return engine_fail(e, ENGINE_ENOTFOUND);
        pool *p = POOL(e, pi);
        if (supply[i].idle < 0 || supply[i].lent < 0 || p->stamp == e->round)
            return engine_fail(e, ENGINE_EINVAL);
        p->stamp = e->round;
        e->sc_supply[i] = pi;
    }
    if (engine_advance(e, now) < 0)
        return CAPX_ERR;
    for (size_t i = 0; i < n; i++) {
        pool *p = POOL(e, e->sc_supply[i]);
        int32_t v = 0;
        if (p->spot_offer != NONE32) {
            int32_t cap = OFFER(e, p->spot_offer)->gpus;
            v = (supply[i].idle < cap ? supply[i].idle : cap) + supply[i].lent;
        }
        p->spot_supply = v;
    }
    for (uint32_t k = 0; k < e->nmarket_order; k++)
        if (MARKET(e, e->market_order[k])->nbids)
            auction(e, e->market_order[k]);
    return CAPX_OK;
}

uint64_t spot_digest(const engine *e, uint64_t h)
{
    for (uint32_t k = 0; k < e->nmarket_order; k++) {
        const market *m = MARKET(e, e->market_order[k]);
        for (uint32_t i = 0; i < m->npools; i++) {
            const pool *p = POOL(e, m->pools[i]);
            if (p->spot_offer == NONE32)
                continue;
            const offer *of = OFFER(e, p->spot_offer);
            h = dig(h, p->id);
            h = dig(h, of->id);
            h = dig(h, of->seq);
            h = dig(h, (uint64_t)of->price);
            h = dig(h, (uint64_t)of->gpus);
            h = dig(h, (uint64_t)p->spot_running);
        }
        for (uint32_t j = 0; j < m->nlevels; j++) {
            for (uint32_t bi = LEVEL(e, m->levels[j])->head; bi != NONE32; bi = BID(e, bi)->next) {
                const spot_bid *b = BID(e, bi);
                h = dig(h, b->id);
                h = dig(h, b->account);
                h = dig(h, b->seq);
                h = dig(h, (uint64_t)b->limit);
                h = dig(h, (uint64_t)b->gpus);
                h = dig(h, b->running == NONE32 ? 0 : POOL(e, b->running)->id);
            }
        }
    }
    return h;
}
