/*
 * market.h — capxd's in-memory market: pools, offers, orders and contracts, the matching
 * engine, the mirror of every account's balance, and the group commit that makes each turn
 * of the loop durable before anyone hears about it.
 *
 * How a write request flows (server/api_market.c, server/api_accounts.c):
 *   1. the handler checks the request (400/404/422/402/409) against memory;
 *   2. it applies the change to memory and the engine; every object it touches is marked
 *      dirty, every money movement is added to the turn's ledger batch (market_money_*);
 *   3. it queues its answer with market_reply (nothing is sent yet);
 *   4. at the end of the loop turn market_flush writes every dirty object, the ledger
 *      batch and the idempotency records in ONE transaction (a db_job: pipelined statements,
 *      one Sync); only after COMMIT are the queued answers sent.
 * If the commit fails, every answer of that turn (and of any turn applied after it) becomes
 * 503 unavailable and memory is rebuilt from the database (market_load, also used at
 * start), so memory never holds what the database does not.
 * Only one turn's transaction is in flight at a time; requests arriving meanwhile gather into
 * the next one (which is what makes it a group commit under load).
 */
#ifndef CAPX_SERVER_MARKET_H
#define CAPX_SERVER_MARKET_H

#include <stdint.h>

#include <jansson.h>

#include "ledger/ledger.h"
#include "matching/engine.h"
#include "server/app.h"

enum obj_type { OBJ_POOL = 1, OBJ_OFFER, OBJ_ORDER, OBJ_CONTRACT };

/* Every market object starts with this header. */
struct obj {
    int type;        /* enum obj_type */
    uint64_t num;    /* engine id; index in market.objs */
    char id[32];     /* pool_…, ofr_…, ord_…, ctr_… */
    int dirty;       /* changed in the open turn: written at flush */
    int64_t created; /* Unix seconds (market clock) */
};

struct pool {
    struct obj o;
    struct account *acct;
    char name[65];
    char gpu_model[33], region[33];
    int64_t nodes, gpus_per_node, nodes_per_rack, gpus;
    uint64_t model, region_num; /* interned for the engine */
    struct offer *spot_offer;   /* its open spot offer, if any */
};

struct offer {
    struct obj o;
    struct pool *pool;
    int spot; /* 0 reservation, 1 spot */
    int64_t gpus;
    int64_t start, end; /* seconds; reservation only */
    int64_t price;
    const char *status; /* open, cancelled, expired */
    uint64_t seq;
    int64_t sold_gpu_hours;
};

struct contract;

struct order {
    struct obj o;
    struct account *acct;
    int spot;
    char gpu_model[33], region[33]; /* region "" = any */
    uint64_t model, region_num;
    int64_t gpus, filled;
    int64_t start, latest_start, fixed_start, hours; /* seconds; fixed_start -1 if none */
    int64_t limit_price;
    int all_or_none, single_pool, ioc, lend_idle;
    const char *status;
    char hold_id[64]; /* the ledger hold reserving the unfilled part, "" if none */
    int64_t hold_amount;
    int64_t hold_count;
    struct pool *running_pool; /* spot */
    int64_t spot_price;
    int64_t preempt_at;
    uint64_t seq;
    int64_t updated;
    struct contract **contracts;
    int ncontracts, capcontracts;
    /* Within one command: fills to settle with the hold. */
    int64_t spot_acc; /* spot: Σ price × gpus × seconds not yet charged (micro-USD·s/h) */
    struct pool *meter_pool; /* spot: the pool its metered seconds ran in */
    int64_t turn_cost;
    int touched;
};

struct contract {
    struct obj o;
    struct order *order;
    struct offer *offer;
    struct pool *pool;
    struct account *buyer, *provider;
    int64_t gpus, start, end, price, amount;
    const char *status; /* scheduled, active, completed, cancelled */
    uint64_t trade_seq;
    /* Settlement (settle.c). */
    int64_t settled_until; /* hours before this instant are settled */
    int64_t settled;       /* micro-USD moved out of escrow for it so far */
    int64_t range_start;   /* first hour of the range waiting to be settled, or -1 */
    /* GPU-hours lost to failures (the scheduler records them with market_contract_loss). */
    struct contract_loss *losses;
    int nlosses, caplosses;
};

/* GPUs of a contract that were not delivered in one hour. */
struct contract_loss {
    int64_t hour; /* Unix seconds of the hour's start */
    int64_t gpus;
};

/* Records that `gpus` GPUs of the contract were lost in the hour starting at `hour` (adds to
   what is recorded for that hour, never above the contract's GPUs). Memory only: the caller
   persists it in the same turn. */
void market_contract_loss(struct contract *c, int64_t hour, int64_t gpus);
/* GPUs lost in that hour. */
int64_t market_contract_lost(const struct contract *c, int64_t hour);

struct market;

/* The market state, owned by struct app. */
struct market *market_new(struct app *a);
void market_free(struct market *m);
/* Rebuilds memory from the database (blocking). 0 ok, -1 with err. */
MUSTCHECK int market_load(struct market *m, const char *conninfo, char *err, size_t errlen);
int market_ready(const struct market *m);

/* Objects. */
struct obj *market_get(struct market *m, const char *id);
struct obj *market_by_num(struct market *m, uint64_t num);
uint64_t market_intern(struct market *m, const char *name);
/* The num the next new object will get. */
uint64_t market_peek_num(const struct market *m);
/* A new object (zeroed beyond its header), registered and dirty. */
void *market_new_obj(struct market *m, size_t size, int type, const char *prefix);

/* Turn handling. */
void market_dirty(struct market *m, struct obj *o);
/* Queue an answer to be sent after COMMIT (steals body). */
void market_reply(struct market *m, struct app_req *r, int status, json_t *body);
/* The same, for an answer already serialized (a cached one). */
void market_reply_text(struct market *m, struct app_req *r, int status, const char *body);
/* A counter bumped by every change to the market (objects or engine): caches key on it. */
uint64_t market_version(const struct market *m);

/* Queue a statement for this turn's transaction. */
void market_sql(struct market *m, const char *sql, int n, const char *const *values);

/* Money (checked against the mirror; the caller checked availability first). */
void market_money_deposit(struct market *m, struct account *a, int64_t amount, const char *txn);
void market_money_withdraw(struct market *m, struct account *a, int64_t amount, const char *txn);
void market_money_hold(struct market *m, struct order *o, int64_t amount);
/* Posts `amount` of the order's hold into escrow and releases the rest. */
void market_money_post(struct market *m, struct order *o, int64_t amount);
void market_money_void(struct market *m, struct order *o);

/* Any ledger transfer, in this turn's transaction; the caller keeps the mirror. */
void market_transfer(struct market *m, const struct ledger_transfer *x);
/* Asserts a mirrored balance is not negative. */
void market_check_mirror(const struct account *a);

/* Engine access and event processing (events are applied as they come). */
engine *market_engine(struct market *m);
struct app *market_app(struct market *m);
int64_t market_now(struct market *m);
/* Applies the events the last engine command produced. */
void market_apply_events(struct market *m);
/* Runs everything due up to `now` (expiries, contract starts/ends, spot rounds). */
void market_advance(struct market *m, int64_t now);

/* JSON views. */
json_t *pool_json(const struct pool *p);
json_t *offer_json(const struct offer *o);
json_t *order_json(const struct order *o);
json_t *contract_json(const struct contract *c);

/* A spot bid became live (+1) or left (-1); minutes with no live bid hold no work. */
void market_spot_live(struct market *m, int delta);

/* Iterate objects of a type in creation order from after `cursor` (0: from the start). */
struct obj *market_next(struct market *m, int type, uint64_t *cursor);
/* The same over the objects account a owns (a contract: as buyer or as provider). */
struct obj *market_next_owned(struct market *m, struct account *a, int type, uint64_t *cursor);

/* Accounts created in this turn. */
struct account *market_account_new(struct market *m, const char *id, const char *name,
                                   unsigned roles);

#endif
