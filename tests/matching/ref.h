/*
 * ref.h — a deliberately simple reference matcher for the tests: the rules of
 * docs/matching.md written the obvious way (dense hourly arrays, linear scans,
 * brute force over starts, pools and fill sizes). Fine for tiny books only.
 * It takes the same commands as the engine and produces the same events.
 */
#ifndef CAPX_TESTS_MATCHING_REF_H
#define CAPX_TESTS_MATCHING_REF_H

#include "matching/engine.h"

#define REF_HOURS 512  /* hours 0 .. REF_HOURS-1 */
#define REF_MAX   4096 /* entities of each kind ever */

typedef struct ref_pool {
    uint64_t id, account, model, region;
    int32_t gpus;
    int32_t sold[REF_HOURS];
    int spot;        /* index into spot offers, or -1 */
    int32_t supply;  /* this round */
    int32_t running; /* GPUs of running bids */
} ref_pool;

typedef struct rf_offer {
    uint64_t id, seq;
    int pool;
    int64_t start, end, price;
    int32_t gpus;
    bool spot, live;
} rf_offer;

typedef struct rf_order {
    engine_order_spec s;
    uint64_t seq;
    int64_t latest, fixed;
    int fixed_pool;       /* pool index, or -1 */
    int32_t gpus, filled; /* unfilled, filled */
    bool live;
} rf_order;

typedef struct ref_bid {
    engine_spot_bid_spec s;
    uint64_t seq;
    int running; /* pool index or -1 */
    bool live;
} ref_bid;

typedef struct ref {
    ref_pool *pools;
    int npools;
    rf_offer offers[REF_MAX];
    int noffers;
    rf_order orders[REF_MAX];
    int norders;
    ref_bid bids[REF_MAX];
    int nbids;
    int64_t now, cur;
    uint64_t next_seq, next_trade;
    enum engine_error err;
    engine_event *ev; /* events of the last command */
    size_t nev, ev_cap;
} ref;

ref *ref_new(void);
void ref_free(ref *r);
void ref_clear_events(ref *r);

int ref_add_pool(ref *r, uint64_t pool, uint64_t account, uint64_t model, uint64_t region,
                 int32_t gpus);
int ref_tick(ref *r, int64_t now);
int ref_offer(ref *r, int64_t now, const engine_offer_spec *s);
int ref_order(ref *r, int64_t now, const engine_order_spec *s);
int ref_cancel_order(ref *r, int64_t now, uint64_t id);
int ref_cancel_offer(ref *r, int64_t now, uint64_t id);
int ref_quote(ref *r, int64_t now, const engine_order_spec *s, engine_quote_result *q,
              engine_piece *pieces, size_t cap);
int ref_spot_offer(ref *r, int64_t now, const engine_spot_offer_spec *s);
int ref_spot_bid(ref *r, int64_t now, const engine_spot_bid_spec *s);
int ref_spot_round(ref *r, int64_t now, const engine_spot_supply *supply, size_t n);
int ref_spot_reclaim(ref *r, int64_t now, uint64_t pool, int32_t available);

/* Rebuild an engine from the reference's open entities (what the server's database holds). */
engine *ref_rebuild(const ref *r, engine_sink_fn sink, void *ctx);
/* Some resting order could fill now (the book is not at rest): its id in *which. */
bool ref_resting_fillable(const ref *r, uint64_t *which);

#endif
