/*
 * engine.h — capx's matching engine: reservation books over whole-hour time
 * blocks and a uniform-price spot auction, for every market in one object.
 *
 * Pure C: no I/O, no clock, no JSON, no SQL. Every command carries the caller's
 * "now" (Unix seconds) and produces events, delivered in order to the sink the
 * engine was created with; the same commands in the same order always give the
 * same events. The rules are stated in docs/matching.md.
 *
 * Ids: pools, offers, orders (reservation orders and spot bids share one id
 * space, like the API's ord_ ids), accounts, gpu models and regions are the
 * caller's non-zero 64-bit ids; the engine never invents them. It does assign a
 * sequence number to every order, offer and spot bid on entry (events carry
 * it); the server stores it and passes it back when it rebuilds the book with
 * the engine_restore_* calls, so time priority survives a restart.
 *
 * Time: reservation hours are hour indices (Unix seconds / 3600). A start hour
 * s is usable while s * 3600 > now.
 *
 * Status convention: 0 ok, -1 refused (nothing changed except expiries that
 * were due at "now", whose events were already delivered); engine_error()
 * says why.
 */
#ifndef CAPX_MATCHING_ENGINE_H
#define CAPX_MATCHING_ENGINE_H

#include "common/capx.h"

/* Limits the engine enforces (the API's limits). */
#define ENGINE_MAX_GPUS        100000     /* per order or bid */
#define ENGINE_MAX_POOL_GPUS   1600000    /* 100,000 nodes x 16 */
#define ENGINE_MAX_HOURS       8784       /* per order */
#define ENGINE_MAX_PRICE       1000000000 /* micro-USD per GPU-hour, limits and asks */
#define ENGINE_MAX_AHEAD_HOURS (366 * 24) /* order start / offer start after "now" */
#define ENGINE_MAX_WINDOW      (366 * 24) /* latest_start - start */
#define ENGINE_MAX_OFFER_HOURS (2 * 8784) /* end - start of one offer */
#define ENGINE_TRADES_KEPT     64         /* last trades remembered per market */

typedef struct engine engine;

enum engine_error {
    ENGINE_OK = 0,
    ENGINE_EINVAL,    /* a field out of range (the server checks these first: 400) */
    ENGINE_ENOTFOUND, /* unknown pool, order or offer id */
    ENGINE_EEXIST,    /* the id is already in use */
    ENGINE_ECONFLICT, /* overlapping open offer of the pool, second spot offer of a pool */
    ENGINE_EPAST,     /* no usable start hour left: start not in the future */
};

enum engine_tif {
    ENGINE_GTC = 0, /* rests until filled, cancelled or its last usable start passes */
    ENGINE_IOC = 1, /* fill what can be filled now, cancel the rest */
};

enum engine_event_kind {
    ENGINE_EV_ORDER_ACCEPTED = 1, /* order, seq: a reservation order entered the book */
    ENGINE_EV_FILL,               /* one contract: order, offer, pool, gpus, [start,end), price */
    ENGINE_EV_ORDER_DONE,         /* order leaves: reason, filled, gpus (unfilled), start, pool */
    ENGINE_EV_OFFER_ACCEPTED,     /* offer, seq (reservation or spot offer) */
    ENGINE_EV_OFFER_DONE,         /* offer leaves the book: reason */
    ENGINE_EV_SPOT_BID_ACCEPTED,  /* order (the bid), seq */
    ENGINE_EV_SPOT_WON,           /* bid starts running: pool, gpus, price (this round's P) */
    ENGINE_EV_SPOT_PREEMPTED,     /* running bid must stop: pool, gpus, reason; it bids again */
    ENGINE_EV_SPOT_BID_DONE,      /* bid cancelled (reason); pool set if it was running */
    ENGINE_EV_SPOT_ROUND,         /* per market after a round: price P, gpus running, bids won */
};

enum engine_reason {
    ENGINE_R_NONE = 0,
    ENGINE_R_FILLED,    /* ORDER_DONE: every GPU filled */
    ENGINE_R_CANCELLED, /* ORDER_DONE / OFFER_DONE / SPOT_BID_DONE: caller cancelled */
    ENGINE_R_EXPIRED,   /* ORDER_DONE: last usable start passed; OFFER_DONE: last hour passed */
    ENGINE_R_IOC,       /* ORDER_DONE: immediate-or-cancel order, unfilled rest cancelled */
    ENGINE_R_OUTBID,    /* SPOT_PREEMPTED: lost a round */
    ENGINE_R_RECLAIMED, /* SPOT_PREEMPTED: its pool's GPUs are needed (reservation, offer gone) */
};

/*
 * One event. Fields a kind does not use are zero, so events compare with memcmp. By kind:
 *   ORDER_ACCEPTED   order buyer model region seq gpus start end(=latest start) price(=limit)
 *   FILL             order offer pool buyer provider model region seq(=trade number) gpus
 *                    filled [start,end) price amount(= price * gpus * (end - start))
 *   ORDER_DONE       reason order buyer model region gpus(=unfilled) filled
 *                    start(=start its fills fixed, or -1) pool(=pool a single_pool order's
 *                    fills fixed, or 0)
 *   OFFER_ACCEPTED   offer pool provider model region seq gpus start end price (spot: price =
 *                    reserve, start = end = 0)
 *   OFFER_DONE       reason offer pool provider model region
 *   SPOT_BID_ACCEPTED order buyer model region seq gpus price(=limit)
 *   SPOT_WON         order buyer model region gpus price(=P) pool provider offer
 *   SPOT_PREEMPTED   reason order buyer model region gpus pool provider offer
 *   SPOT_BID_DONE    reason order buyer model region gpus [pool provider offer if running]
 *   SPOT_ROUND       model region price(=P, 0 without winners) gpus(=running) filled(=winners)
 * and every event carries the command's now.
 */
typedef struct engine_event {
    uint8_t kind;      /* enum engine_event_kind */
    uint8_t reason;    /* enum engine_reason */
    uint8_t pad[6];    /* zero */
    uint64_t order;    /* order or spot bid id */
    uint64_t offer;    /* offer id */
    uint64_t pool;     /* pool id */
    uint64_t buyer;    /* buyer account id */
    uint64_t provider; /* provider account id */
    uint64_t model;    /* gpu model id (SPOT_ROUND: the market) */
    uint64_t region;   /* region id */
    uint64_t seq;      /* *_ACCEPTED: the entity's sequence number; FILL: the trade number */
    int64_t gpus;      /* FILL/WON/PREEMPTED: GPUs; ORDER_DONE: unfilled; ROUND: running */
    int64_t filled;    /* ORDER_DONE/FILL: GPUs filled so far; ROUND: bids that won */
    int64_t start;     /* FILL: first hour; ORDER_DONE: the fixed start, or -1 (pool: fixed pool) */
    int64_t end;       /* FILL: hour after the last */
    int64_t price;     /* FILL: ask; WON/ROUND: clearing price */
    int64_t amount;    /* FILL: price * gpus * hours */
    int64_t now;       /* the command's now */
} engine_event;

/* The sink receives every event in order; it must not call back into the engine. */
typedef void (*engine_sink_fn)(void *ctx, const engine_event *ev);

typedef struct engine_order_spec {
    uint64_t id;          /* caller's order id */
    uint64_t account;     /* buyer */
    uint64_t model;       /* gpu model */
    uint64_t region;      /* region, or 0: any region of the model */
    int64_t start;        /* earliest start hour */
    int64_t latest_start; /* latest start hour (< start means = start) */
    int64_t limit_price;  /* micro-USD per GPU-hour, 1..ENGINE_MAX_PRICE */
    int32_t gpus;         /* 1..ENGINE_MAX_GPUS */
    int32_t hours;        /* 1..ENGINE_MAX_HOURS */
    bool all_or_none;     /* pieces cover exactly gpus x hours, or nothing */
    bool single_pool;     /* exactly one piece */
    uint8_t tif;          /* enum engine_tif */
} engine_order_spec;

typedef struct engine_offer_spec {
    uint64_t id;   /* caller's offer id */
    uint64_t pool; /* the pool (its account is the provider) */
    int64_t start; /* first hour */
    int64_t end;   /* hour after the last */
    int64_t price; /* micro-USD per GPU-hour, 1..ENGINE_MAX_PRICE */
    int32_t gpus;  /* 1..pool size */
} engine_offer_spec;

typedef struct engine_spot_offer_spec {
    uint64_t id;     /* caller's offer id (same id space as reservation offers) */
    uint64_t pool;   /* at most one open spot offer per pool */
    int64_t reserve; /* lowest price per GPU-hour, 1..ENGINE_MAX_PRICE */
    int32_t gpus;    /* at most this many of the pool's idle GPUs, 1..pool size */
} engine_spot_offer_spec;

typedef struct engine_spot_bid_spec {
    uint64_t id;         /* caller's order id (same id space as reservation orders) */
    uint64_t account;    /* buyer */
    uint64_t model;      /* the market: model and region (both required) */
    uint64_t region;     /* */
    int64_t limit_price; /* 1..ENGINE_MAX_PRICE per GPU-hour */
    int32_t gpus;        /* gang size, 1..ENGINE_MAX_GPUS, all from one pool */
} engine_spot_bid_spec;

/* A pool's GPUs for spot in one round: min(idle, offer gpus) + lent. */
typedef struct engine_spot_supply {
    uint64_t pool;
    int32_t idle; /* unsold, unreserved GPUs of the pool free for spot now (incl. spot-run) */
    int32_t lent; /* reserved GPUs their idle holders lend to spot now */
} engine_spot_supply;

/* A quote piece (one per contract the order would get). */
typedef struct engine_piece {
    uint64_t pool, offer;
    int64_t start, end, price, amount;
    int32_t gpus;
} engine_piece;

typedef struct engine_quote_result {
    bool fillable;  /* the order would fill now (all of it with all_or_none, else some) */
    int32_t gpus;   /* GPUs it would get */
    int64_t start;  /* the start it would get, or -1 */
    int64_t total;  /* sum of the pieces' amounts */
    size_t npieces; /* pieces it would get (may exceed the caller's capacity) */
} engine_quote_result;

typedef struct engine_top {
    int64_t best_bid;   /* highest limit of a resting order that can use the market, or 0 */
    int64_t best_ask;   /* lowest price of an open offer with a GPU unsold in [from,to), or 0 */
    int64_t last_price; /* price of the last fill in the market, or 0 */
    int64_t spot_price; /* clearing price of the last spot round with winners, or 0 */
} engine_top;

typedef struct engine_level {
    int64_t price; /* limit (bids) or ask */
    int64_t gpus;  /* bids: unfilled GPUs; asks: GPUs unsold in every hour of [from,to)∩offer */
    int64_t gpu_hours; /* bids: unfilled GPUs x hours; asks: unsold GPU-hours in [from,to) */
    int32_t count;     /* orders or offers at this level */
} engine_level;

typedef struct engine_trade {
    uint64_t seq;                        /* trade number */
    int64_t price, gpus, start, end, at; /* at: the command's now */
} engine_trade;

/* ---- lifecycle ---- */
engine *engine_new(engine_sink_fn sink, void *ctx);
void engine_free(engine *e);
enum engine_error engine_error(const engine *e);
const char *engine_strerror(enum engine_error err);
size_t engine_memory(const engine *e); /* bytes the engine holds (its pools and maps) */

/* ---- pools (not events: the server adds every pool at start and when created) ---- */
MUSTCHECK int engine_add_pool(engine *e, uint64_t pool, uint64_t account, uint64_t model,
                              uint64_t region, int32_t gpus);

/* ---- commands ---- */
MUSTCHECK int engine_tick(engine *e, int64_t now); /* only expiries */
MUSTCHECK int engine_offer(engine *e, int64_t now, const engine_offer_spec *s);
MUSTCHECK int engine_order(engine *e, int64_t now, const engine_order_spec *s);
MUSTCHECK int engine_cancel_order(engine *e, int64_t now, uint64_t order); /* also spot bids */
MUSTCHECK int engine_cancel_offer(engine *e, int64_t now, uint64_t offer); /* also spot offers */
/* What the order would get now; no event, no change (expiries are not run either). Fills
 * pieces[0..min(cap, q->npieces)). */
MUSTCHECK int engine_quote(engine *e, int64_t now, const engine_order_spec *s,
                           engine_quote_result *q, engine_piece *pieces, size_t cap);

MUSTCHECK int engine_spot_offer(engine *e, int64_t now, const engine_spot_offer_spec *s);
MUSTCHECK int engine_spot_bid(engine *e, int64_t now, const engine_spot_bid_spec *s);
/* One auction round in every market that has spot bids. Pools not listed supply nothing. */
MUSTCHECK int engine_spot_round(engine *e, int64_t now, const engine_spot_supply *supply, size_t n);
/* The pool has only `available` GPUs for spot now: preempt its running bids, lowest priority
 * first, until the rest fit. */
MUSTCHECK int engine_spot_reclaim(engine *e, int64_t now, uint64_t pool, int32_t available);

/* ---- rebuild: re-enter what the database holds, no matching, no events ---- */
MUSTCHECK int engine_restore_offer(engine *e, const engine_offer_spec *s, uint64_t seq);
/* GPUs sold in [start,end) of the pool (every contract, under any offer, cancelled ones too). */
MUSTCHECK int engine_restore_sold(engine *e, uint64_t pool, int64_t start, int64_t end,
                                  int32_t gpus);
/* An open order: s->gpus is the original size, filled the GPUs filled so far, fixed_start the
 * start its fills fixed (or -1), fixed_pool the pool of a partly filled single_pool order (or
 * 0) — both as the ORDER_DONE / FILL events reported them. */
MUSTCHECK int engine_restore_order(engine *e, const engine_order_spec *s, uint64_t seq,
                                   int32_t filled, int64_t fixed_start, uint64_t fixed_pool);
MUSTCHECK int engine_restore_spot_offer(engine *e, const engine_spot_offer_spec *s, uint64_t seq);
/* running_pool: the pool a running bid runs in, or 0 when it is bidding. */
MUSTCHECK int engine_restore_spot_bid(engine *e, const engine_spot_bid_spec *s, uint64_t seq,
                                      uint64_t running_pool);
/* Counters after a rebuild: the next sequence and trade numbers (the stored maximum + 1), and
 * the clock. */
void engine_restore_counters(engine *e, uint64_t next_seq, uint64_t next_trade, int64_t now);
/* A market's data after a rebuild: its last trades, oldest first (the last ENGINE_TRADES_KEPT
 * count; the last one sets last_price), and the clearing price of its last spot round with
 * winners (0: none known). */
void engine_restore_market_data(engine *e, uint64_t model, uint64_t region,
                                const engine_trade *trades, size_t n, int64_t spot_price);

/* ---- market data (reads only) ---- */
MUSTCHECK int engine_top_of(const engine *e, uint64_t model, uint64_t region, int64_t from,
                            int64_t to, engine_top *out);
/* side 'b' bids (highest first) or 'a' asks (lowest first); returns the number of levels,
 * writing at most cap. */
size_t engine_depth(const engine *e, uint64_t model, uint64_t region, int64_t from, int64_t to,
                    char side, engine_level *out, size_t cap);
size_t engine_trades(const engine *e, uint64_t model, uint64_t region, engine_trade *out,
                     size_t cap); /* newest first */

/* A hash of the whole book (pools, open offers, sold hours from now on, resting orders in
 * priority, spot offers and bids, counters): equal books give equal digests. */
uint64_t engine_digest(const engine *e);

#endif
