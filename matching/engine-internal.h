/*
 * engine-internal.h — the engine's state, shared by engine.c (lifecycle,
 * reservation orders and offers, expiry, market data), resv.c (the fill
 * search) and spot.c (the spot auction). Nothing here is for the server.
 *
 * Every entity lives in a slab (one growable array per type, free list,
 * 32-bit indices), so a command allocates nothing once the slabs have grown to
 * the book's size; the caller's ids map to slab indices through idmaps.
 */
#ifndef CAPX_MATCHING_ENGINE_INTERNAL_H
#define CAPX_MATCHING_ENGINE_INTERNAL_H

#include "matching/engine.h"
#include "matching/idmap.h"
#include "matching/soldmap.h"

#include <stddef.h>
#include <string.h>

#define NONE32       UINT32_MAX
#define SEARCH_CHUNK 64 /* start hours evaluated together by the fill search */

/* A growable array of fixed-size items with a free list. */
typedef struct slab {
    char *items;     /* n items of `size` bytes */
    uint32_t size;   /* item size */
    uint32_t n, cap; /* items handed out (incl. free ones), capacity */
    uint32_t *free;  /* free indices */
    uint32_t nfree, free_cap;
} slab;

enum offer_kind { OFFER_RESV = 0, OFFER_SPOT = 1 };

typedef struct offer {
    uint64_t id;        /* caller's id */
    uint64_t seq;       /* sequence number */
    int64_t start, end; /* reservation hours [start, end) */
    int64_t price;      /* ask per GPU-hour, or the spot reserve */
    uint32_t pool;      /* pool index */
    int32_t gpus;       /* GPUs offered per hour (spot: cap on idle GPUs) */
    uint8_t kind;       /* enum offer_kind */
    uint8_t live;       /* 1 while open */
} offer;

/*
 * Open reservation offers by ask, for the search's cheapest-first scan: the entries meeting
 * an order's hours, in this order, visit every pool that can serve it at its lowest ask there
 * first, so the ask of the next entry bounds every pool not yet visited.
 */
typedef struct lbent {
    int64_t price;      /* the offer's ask */
    int64_t start, end; /* its hours */
    uint32_t pool;      /* pool index */
    uint32_t offer;     /* offer index */
    int64_t gpus;       /* the offer's GPUs */
    int64_t rest;       /* GPUs of this entry and every later one: a bound on what is left */
} lbent;

#ifndef LB_BUCKET_SHIFT    /* (the tests build a variant with tiny buckets) */
#define LB_BUCKET_SHIFT 10 /* buckets of 1024 hours */
#endif
#define LB_BUCKETS 64 /* buckets kept from the first one asked for (7 years) */

typedef struct lblist {
    lbent *v; /* sorted by (price, offer) */
    uint32_t n, cap;
    bool dirty; /* not built yet */
} lblist;

typedef struct lbset {
    lblist all;   /* every open offer */
    lblist *bkt;  /* bkt[i]: the offers meeting bucket base + i */
    int64_t base; /* first bucket */
    uint32_t nbkt;
} lbset;

typedef struct pool {
    uint64_t id, account; /* caller's pool id, provider account */
    uint32_t market;      /* market index */
    int32_t gpus;         /* physical size */
    uint32_t *offers;     /* open reservation offers, sorted by start (never overlapping) */
    uint32_t noffers, offers_cap;
    soldmap sold;         /* GPUs sold per hour */
    uint32_t spot_offer;  /* open spot offer index, or NONE32 */
    uint32_t spot_pos;    /* position in the market's sorted spot pools */
    int32_t spot_supply;  /* this round's spot GPUs */
    int32_t spot_running; /* GPUs of bids running here */
    uint32_t stamp;       /* round number the supply was given in */
} pool;

enum order_kind { ORDER_RESV = 0, ORDER_SPOT = 1 };

typedef struct order {
    uint64_t id, account; /* caller's order id, buyer */
    uint64_t seq;         /* sequence number */
    uint64_t region;      /* region id, 0 = any */
    int64_t start;        /* earliest start */
    int64_t latest;       /* latest start */
    int64_t fixed;        /* start fixed by a partial fill, or -1 */
    int64_t limit;        /* limit price per GPU-hour */
    int64_t dead_at;      /* first `cur` at which it has no usable start */
    int32_t gpus;         /* unfilled GPUs */
    int32_t filled;       /* GPUs filled */
    int32_t hours;        /* contract length */
    /* all_or_none over several pools, from its last failed searches (see engine_offer): */
    int32_t shortfall;   /* at starts short of GPUs, at least this many missing (INT32_MAX: none) */
    int64_t kg_hi;       /* at the other starts, the G-th cheapest GPU cost at most this */
    uint32_t model;      /* model index */
    uint32_t fixed_pool; /* single_pool order partly filled: its pool, else NONE32 */
    uint32_t level;      /* resting level (limit price) index */
    uint32_t prev, next; /* FIFO (sequence order) within the level */
    uint8_t aon, single, tif, live;
} order;

typedef struct spot_bid {
    uint64_t id, account, seq;
    int64_t limit;
    int32_t gpus;
    uint32_t market;     /* market index */
    uint32_t level;      /* level index */
    uint32_t prev, next; /* FIFO within the level */
    uint32_t running;    /* pool index it runs in, or NONE32 */
    uint8_t live;
} spot_bid;

/* A price level: spot bids of a market, or resting orders of a model, at one limit. */
typedef struct spot_level {
    int64_t price;       /* limit */
    uint32_t head, tail; /* bids or orders in sequence order */
    uint32_t count;
} spot_level;

/*
 * Link entity i (an order with ORDER, a spot bid with BID: both have seq, prev and next) into
 * level l in sequence order: a new one goes last; a rebuild may bring one out of order.
 */
#define LEVEL_LINK(e, l, i, AT)                                                                    \
    do {                                                                                           \
        uint32_t after_ = (l)->tail;                                                               \
        while (after_ != NONE32 && AT(e, after_)->seq > AT(e, i)->seq)                             \
            after_ = AT(e, after_)->prev;                                                          \
        AT(e, i)->prev = after_;                                                                   \
        AT(e, i)->next = after_ == NONE32 ? (l)->head : AT(e, after_)->next;                       \
        if (after_ == NONE32)                                                                      \
            (l)->head = (i);                                                                       \
        else                                                                                       \
            AT(e, after_)->next = (i);                                                             \
        if (AT(e, i)->next == NONE32)                                                              \
            (l)->tail = (i);                                                                       \
        else                                                                                       \
            AT(e, AT(e, i)->next)->prev = (i);                                                     \
        (l)->count++;                                                                              \
    } while (0)

/* Unlink entity i from level l (the caller decrements l->count and handles an empty level). */
#define LEVEL_UNLINK(e, l, i, AT)                                                                  \
    do {                                                                                           \
        uint32_t prev_ = AT(e, i)->prev, next_ = AT(e, i)->next;                                   \
        if (prev_ == NONE32)                                                                       \
            (l)->head = next_;                                                                     \
        else                                                                                       \
            AT(e, prev_)->next = next_;                                                            \
        if (next_ == NONE32)                                                                       \
            (l)->tail = prev_;                                                                     \
        else                                                                                       \
            AT(e, next_)->prev = prev_;                                                            \
    } while (0)

/* Every resting order of model md, highest limit first, then by seq. */
#define FOR_RESTING(e, md, oi)                                                                     \
    for (uint32_t k_ = 0; k_ < (md)->nlevels; k_++)                                                \
        for (uint32_t oi = LEVEL(e, (md)->levels[k_])->head; oi != NONE32; oi = ORDER(e, oi)->next)

/* A bid as a round sees it, in priority order: a flat array walked without pointer chasing. */
typedef struct rb_ent {
    int64_t limit;
    uint32_t bid; /* bid index */
    int32_t gpus;
    uint32_t pos; /* where it runs: position in the market's spot pools, or NONE32 */
} rb_ent;

typedef struct market {
    uint64_t model, region;
    uint32_t model_idx;
    uint32_t *pools; /* pool indices in add order */
    uint32_t npools, pools_cap;
    /* spot */
    uint32_t *levels;  /* level indices, highest price first */
    int64_t *level_px; /* their prices, for a search that stays in one cache line or two */
    uint32_t nlevels, levels_cap;
    uint32_t nempty; /* levels without bids (kept until swept: see spot.c) */
    idmap level_of;  /* price -> level index */
    struct {
        int64_t price; /* 0: empty */
        uint32_t level;
    } level_cache[64]; /* direct-mapped in front of level_of; emptied when levels are swept */
    uint32_t nbids;
    uint32_t *sp;          /* pools with an open spot offer, by (reserve, offer seq) */
    int64_t *sp_res;       /* their reserves */
    uint64_t (*sp_ids)[3]; /* their pool id, provider account, spot offer id (for events) */
    int32_t *seg;          /* segment tree of GPUs left this round over sp, size 2*seg_size */
    uint32_t nsp, sp_cap, seg_size;
    bool sp_dirty; /* sp must be rebuilt */
    rb_ent *rb;    /* the bids for rounds, rebuilt when bids come, go or move outside one */
    uint32_t nrb, rb_cap;
    bool rb_dirty;
    lbset lb; /* its pools by lowest ask */
    /* market data */
    engine_trade trades[ENGINE_TRADES_KEPT]; /* ring */
    uint32_t ntrades, trade_head;
    int64_t last_price, spot_price;
} market;

typedef struct model {
    uint64_t id;
    uint32_t *markets; /* market indices */
    uint32_t nmarkets, markets_cap;
    uint32_t *levels; /* resting orders' levels, highest limit first (each a FIFO by seq) */
    uint32_t nlevels, levels_cap;
    uint32_t nresting; /* resting orders */
    lbset lb;          /* all its markets' pools by lowest ask */
} model;

typedef struct heap_ent {
    int64_t dead_at; /* `cur` at which the entity expires */
    uint64_t seq;    /* tie-break and validity check */
    uint32_t idx;    /* order or offer index */
    uint8_t is_offer;
} heap_ent;

/* The search's per-(start, pool) figures. */
typedef struct cand {
    int64_t k;    /* price of one GPU for the whole interval */
    uint64_t seq; /* seq of the offer covering the start hour */
    int32_t c;    /* GPUs unsold in every hour (clamped to the order's gpus) */
    uint32_t pool;
} cand;

/* A visited pool's price of one GPU and its GPUs, for one start (the search's stop rule). */
typedef struct kc_ent {
    int64_t k;
    int64_t c;
} kc_ent;

typedef struct piece {
    uint32_t pool;
    int32_t gpus;
} piece;

/* What the search found. */
typedef struct plan {
    int64_t start; /* -1: nothing */
    int32_t gpus;
    int64_t cost;
    uint32_t npieces;  /* in e->pieces, greedy order */
    int32_t shortfall; /* fewest GPUs missing at a start short of them (INT32_MAX: none) */
    int64_t kg_hi;     /* highest G-th cheapest GPU cost at the other starts (0: none) */
} plan;

/* The search's view of an order. */
typedef struct want {
    uint64_t account, region;
    uint32_t model;
    uint32_t only_pool; /* NONE32, or the one pool a partly filled single_pool order may use */
    int64_t lo, hi;     /* start hours to try */
    int32_t gpus, hours;
    int64_t limit;
    bool aon, single;
} want;

struct engine {
    engine_sink_fn sink;
    void *sink_ctx;
    enum engine_error err;
    int64_t now;       /* latest now seen */
    int64_t cur;       /* first usable start hour: now / 3600 + 1 */
    uint64_t next_seq; /* next sequence number */
    uint64_t next_trade;
    uint32_t round;   /* spot round counter */
    bool clock_dirty; /* a rebuild call came: the next command runs expiry even at the same now */
    uint32_t mcache;  /* last market looked up (markets are never removed), or NONE32 */
    uint64_t mcache_model, mcache_region;

    slab pools, offers, orders, bids, levels, markets, models;
    idmap pool_ids, offer_ids, model_ids;
    seqmap order_ids;       /* the server numbers its orders in sequence */
    uint32_t *market_order; /* market indices by (model, region) */
    uint32_t nmarket_order, market_order_cap;
    sold_arena arena;

    heap_ent *heap; /* expiry min-heap by (dead_at, seq) */
    uint32_t nheap, heap_cap;

    /* scratch, grown geometrically */
    uint32_t *sc_pools; /* search: candidate pools */
    cand *sc_cand;      /* search: [start][pool] */
    cand *sc_sel;       /* search: one start's candidates */
    kc_ent *sc_kc;      /* search: per start, a heap of visited pools' (k, c) (sc_cand's layout) */
    size_t sc_pools_cap, sc_cand_cap, sc_sel_cap, sc_kc_cap;
    int32_t *sc_avail, *sc_sold, *sc_dq; /* hourly windows, SEARCH_CHUNK + MAX_HOURS */
    int64_t *sc_price;
    piece *pieces; /* the plan's pieces */
    size_t pieces_cap;
    uint32_t *stamp; /* search: per pool index, the scan that visited it */
    size_t stamp_cap;
    uint32_t scan_no;
    uint32_t *sc_retry; /* resting orders to retry */
    size_t sc_retry_cap;
    int64_t *sc_losers; /* spot round: losing limits */
    size_t sc_losers_cap;
    uint32_t *sc_changes; /* spot round: (bid, won position or NONE32) of bids that change */
    size_t sc_changes_cap;
    uint32_t *sc_supply; /* spot round: pool index of each supply entry */
    size_t sc_supply_cap;
};

/* slab */
void slab_init(slab *s, uint32_t size);
void slab_free(slab *s);
void slab_grow(slab *s);
void slab_grow_free(slab *s);
size_t slab_memory(const slab *s);
static inline void *slab_at(const slab *s, uint32_t i)
{
    return s->items + (size_t)i * s->size;
}
/* A zeroed item (freed ones first). */
static inline uint32_t slab_new(slab *s)
{
    uint32_t i;
    if (s->nfree) {
        i = s->free[--s->nfree];
    } else {
        if (s->n == s->cap)
            slab_grow(s);
        i = s->n++;
    }
    memset(slab_at(s, i), 0, s->size);
    return i;
}
/* An item with whatever it held before: the caller sets every field. */
static inline uint32_t slab_take(slab *s)
{
    if (s->nfree)
        return s->free[--s->nfree];
    if (s->n == s->cap)
        slab_grow(s);
    return s->n++;
}
static inline void slab_del(slab *s, uint32_t i)
{
    if (s->nfree == s->free_cap)
        slab_grow_free(s);
    s->free[s->nfree++] = i;
}
#define POOL(e, i)   ((pool *)slab_at(&(e)->pools, (i)))
#define OFFER(e, i)  ((offer *)slab_at(&(e)->offers, (i)))
#define ORDER(e, i)  ((order *)slab_at(&(e)->orders, (i)))
#define BID(e, i)    ((spot_bid *)slab_at(&(e)->bids, (i)))
#define LEVEL(e, i)  ((spot_level *)slab_at(&(e)->levels, (i)))
#define MARKET(e, i) ((market *)slab_at(&(e)->markets, (i)))
#define MODEL(e, i)  ((model *)slab_at(&(e)->models, (i)))

/* Index in p->offers of the first open offer with end > hour. */
static inline uint32_t pool_offer_from(const engine *e, const pool *p, int64_t hour)
{
    uint32_t lo = 0, hi = p->noffers;
    while (lo < hi) {
        uint32_t mid = (lo + hi) / 2;
        if (OFFER(e, p->offers[mid])->end <= hour)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

/* Grow *arr (of elem bytes) so it holds at least need items. */
void grow(void **arr, size_t *cap, size_t need, size_t elem);
void grow32(void **arr, uint32_t *cap, uint32_t need, size_t elem);

/*
 * emit: hand an event to the sink, stamped with the command's now. It is written as eight 16-byte
 * stores, the width a consumer's struct copy reads it with, so the copy is forwarded from the
 * store buffer; filling it field by field and copying it at once stalls every such load for
 * tens of cycles (each load would span two pending 8-byte stores). The fields are in pairs in
 * engine_event's order.
 */
typedef uint64_t ev_pair __attribute__((vector_size(16)));
_Static_assert(sizeof(engine_event) == 128 && offsetof(engine_event, order) == 8 &&
                   offsetof(engine_event, seq) == 64 && offsetof(engine_event, now) == 120,
               "engine_event layout is what emit writes");
_Static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__, "kind and reason fill the low bytes");
typedef struct ev_fields {
    uint8_t kind, reason;
    uint64_t order, offer, pool, buyer, provider, model, region, seq;
    int64_t gpus, filled, start, end, price, amount;
} ev_fields;
static inline void emit(engine *e, const ev_fields *f)
{
    _Alignas(16) engine_event ev;
    const ev_pair p[8] = {
        {(uint64_t)f->kind | (uint64_t)f->reason << 8, f->order},
        {f->offer, f->pool},
        {f->buyer, f->provider},
        {f->model, f->region},
        {f->seq, (uint64_t)f->gpus},
        {(uint64_t)f->filled, (uint64_t)f->start},
        {(uint64_t)f->end, (uint64_t)f->price},
        {(uint64_t)f->amount, (uint64_t)e->now},
    };
    memcpy(&ev, p, sizeof(ev));
    e->sink(e->sink_ctx, &ev);
}

/* engine.c */
/* A live offer (id registered); a reservation offer's hours are the caller's to set. */
uint32_t offer_new(engine *e, uint64_t id, uint64_t seq, uint32_t pi, int64_t price, int32_t gpus,
                   uint8_t kind);
uint32_t engine_market_get(engine *e, uint64_t model, uint64_t region, bool create);
uint32_t engine_market_find(engine *e, uint64_t model, uint64_t region, bool create);
uint32_t engine_model_get(engine *e, uint64_t model, bool create);
int engine_fail(engine *e, enum engine_error err);
int engine_advance_slow(engine *e, int64_t now);
/* Move the clock to now and expire what is due (in (expiry hour, seq) order). */
static inline int engine_advance(engine *e, int64_t now)
{
    if (now == e->now && !e->clock_dirty)
        return CAPX_OK; /* nothing can have come due since the last command */
    return engine_advance_slow(e, now);
}
/* Lists (one or two) that hold every open offer of `markets` meeting [a, b), each by ask. */
int engine_lb_lists(engine *e, lbset *s, const uint32_t *markets, uint32_t nmarkets, int64_t a,
                    int64_t b, const lblist *out[2]);

/* resv.c */
void resv_search(engine *e, const want *w, plan *out);
/* The lowest price of one GPU pool pi alone offers w at a start with a GPU unsold (INT64_MAX:
 * none). */
int64_t resv_pool_kmin(engine *e, uint32_t pi, const want *w);
/* Turn a plan into fills for order o (events, sold hours, trades). */
void resv_apply(engine *e, order *o, const want *w, const plan *p);
/* Quote pieces for a plan. */
void resv_pieces(engine *e, const want *w, const plan *p, engine_quote_result *q, engine_piece *out,
                 size_t cap);

/* spot.c */
void spot_cancel_bid(engine *e, uint32_t bi); /* its id already out of order_ids */
void spot_offer_gone(engine *e, uint32_t oi);
void spot_bid_insert(engine *e, uint32_t bi);
uint64_t spot_digest(const engine *e, uint64_t h);

static inline uint64_t dig(uint64_t h, uint64_t v)
{
    h ^= v + 0x9e3779b97f4a7c15ULL + (h << 6) + (h >> 2);
    h *= 0x100000001b3ULL;
    return h;
}

#endif
