/*
 * api_market.c — pools, offers, orders, quotes, contracts and market data.
 *
 * Every handler checks in the contract's order: fields (400, from the request alone), then
 * objects (404 for a path object that is unknown or another account's; 422 for one named
 * inside a body, the same answer for both), then the market and the clock (422), money
 * (402), state (409). Only then does it change anything, so a refusal changes nothing.
 */
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/timefmt.h"
#include "server/api.h"
#include "server/reqspec.h"
#include "server/log.h"
#include "server/sched.h"

#define HOUR        3600
#define MAX_AHEAD_S (366LL * 24 * HOUR)
#define TIME_MAX_S  253402300799LL /* 9999-12-31T23:59:59Z: the last instant RFC 3339 writes */

static struct market *mk(struct app_req *r)
{
    return r->app->market;
}

static int64_t now_of(struct app_req *r)
{
    return market_now(mk(r));
}

/* The caller's object of a type by path id, or NULL after answering 404. */
static struct obj *own(struct app_req *r, int type)
{
    struct obj *o = market_get(mk(r), r->params[0]);
    struct account *owner = NULL, *other = NULL;
    if (o && o->type == type) {
        switch (type) {
        case OBJ_POOL:
            owner = ((struct pool *)o)->acct;
            break;
        case OBJ_OFFER:
            owner = ((struct offer *)o)->pool->acct;
            break;
        case OBJ_ORDER:
            owner = ((struct order *)o)->acct;
            break;
        case OBJ_CONTRACT:
            owner = ((struct contract *)o)->buyer;
            other = ((struct contract *)o)->provider;
            break;
        }
    }
    if (!owner || (owner != r->acct && other != r->acct)) {
        app_error(r, 404, "not_found", NULL, "no such object");
        return NULL;
    }
    return o;
}

/* Lists the caller's objects of a type, filtered by keep(). */
static void list(struct app_req *r, int type, int (*keep)(struct app_req *, struct obj *),
                 json_t *(*view)(struct obj *))
{
    int64_t limit;
    uint64_t cursor;
    if (api_page(r, &limit, &cursor) < 0)
        return;
    json_t *items = json_array();
    uint64_t next = 0, cur = cursor;
    struct obj *o;
    while ((o = market_next_owned(mk(r), r->acct, type, &cur)) != NULL) {
        if (!keep(r, o))
            continue;
        if ((int64_t)json_array_size(items) == limit) {
            next = cursor;
            break;
        }
        json_array_append_new(items, view(o));
        cursor = cur;
    }
    market_reply(mk(r), r, 200, api_list(items, next));
}

/* ---- pools ---- */

struct pool_req {
    const char *name, *gpu_model, *region;
    int64_t nodes, gpus_per_node, nodes_per_rack;
};

static const struct jfield pool_fields[] = {
    {"name", JF_STR, 1, 1, 64, offsetof(struct pool_req, name), JC_ANY},
    {"gpu_model", JF_STR, 1, 1, 32, offsetof(struct pool_req, gpu_model), JC_TOKEN},
    {"region", JF_STR, 1, 1, 32, offsetof(struct pool_req, region), JC_TOKEN},
    {"nodes", JF_INT, 1, 1, 100000, offsetof(struct pool_req, nodes), 0},
    {"gpus_per_node", JF_INT, 1, 1, 16, offsetof(struct pool_req, gpus_per_node), 0},
    {"nodes_per_rack", JF_INT, 0, 1, 100000, offsetof(struct pool_req, nodes_per_rack), 0},
};

void h_pools_create(struct app_req *r)
{
    struct pool_req q = {.nodes_per_rack = 4};
    uint64_t present;
    if (api_decode(r, pool_fields, ARRAY_LEN(pool_fields), &q, &present) < 0)
        return;
    /* Every node is simulated in memory: a provider's hardware is bounded by configuration. */
    if (r->acct->pool_nodes + q.nodes > r->app->cfg.max_nodes_per_account) {
        app_error(r, 409, "conflict", "nodes",
                  "the account's pools would exceed %lld nodes, the configured limit",
                  (long long)r->app->cfg.max_nodes_per_account);
        return;
    }
    struct market *m = mk(r);
    r->acct->pool_nodes += q.nodes;
    struct pool *p = market_new_obj(m, sizeof *p, OBJ_POOL, "pool_");
    p->acct = r->acct;
    snprintf(p->name, sizeof p->name, "%s", q.name);
    snprintf(p->gpu_model, sizeof p->gpu_model, "%s", q.gpu_model);
    snprintf(p->region, sizeof p->region, "%s", q.region);
    p->nodes = q.nodes;
    p->gpus_per_node = q.gpus_per_node;
    p->nodes_per_rack = q.nodes_per_rack;
    p->gpus = q.nodes * q.gpus_per_node;
    p->model = market_intern(m, p->gpu_model);
    p->region_num = market_intern(m, p->region);
    CAPX_ASSERT(engine_add_pool(market_engine(m), p->o.num, r->acct->num, p->model, p->region_num,
                                (int32_t)p->gpus) == 0);
    sched_pool_added(m, p);
    market_reply(m, r, 201, pool_json(p));
}

static int mine_pool(struct app_req *r, struct obj *o)
{
    return ((struct pool *)o)->acct == r->acct;
}

static json_t *view_pool(struct obj *o)
{
    return pool_json((struct pool *)o);
}

void h_pools_list(struct app_req *r)
{
    list(r, OBJ_POOL, mine_pool, view_pool);
}

void h_pools_get(struct app_req *r)
{
    struct obj *o = own(r, OBJ_POOL);
    if (o)
        market_reply(mk(r), r, 200, pool_json((struct pool *)o));
}

/* ---- offers ---- */

struct offer_req {
    const char *pool_id, *kind;
    int64_t gpus, start, end, price;
};

static const struct jfield offer_fields[] = {
    {"pool_id", JF_STR, 1, 1, 64, offsetof(struct offer_req, pool_id), JC_ID},
    {"kind", JF_STR, 0, 1, 16, offsetof(struct offer_req, kind), JC_TOKEN},
    {"gpus", JF_INT, 1, 1, 1600000, offsetof(struct offer_req, gpus), 0},
    {"start", JF_HOUR, 0, 0, 0, offsetof(struct offer_req, start), 0},
    {"end", JF_HOUR, 0, 0, 0, offsetof(struct offer_req, end), 0},
    {"price", JF_INT, 1, 1, 1000000000, offsetof(struct offer_req, price), 0},
};

/* Answers an engine refusal with the contract's status. */
static void engine_refused(struct app_req *r, const char *what)
{
    enum engine_error e = engine_error(market_engine(mk(r)));
    switch (e) {
    case ENGINE_ECONFLICT:
        app_error(r, 409, "conflict", NULL, "%s: %s", what, engine_strerror(e));
        break;
    case ENGINE_EPAST:
        app_error(r, 422, "unprocessable", "start", "%s: no start in the future is left", what);
        break;
    default:
        app_error(r, 422, "unprocessable", NULL, "%s: %s", what, engine_strerror(e));
        break;
    }
}

void h_offers_create(struct app_req *r)
{
    struct offer_req q = {0};
    uint64_t present;
    if (api_decode(r, offer_fields, ARRAY_LEN(offer_fields), &q, &present) < 0)
        return;
    int spot = 0;
    if (q.kind && !strcmp(q.kind, "spot"))
        spot = 1;
    else if (q.kind && strcmp(q.kind, "reservation") != 0) {
        app_error(r, 400, "invalid_request", "kind", "kind must be reservation or spot");
        return;
    }
    if (spot && (present & ((1u << 3) | (1u << 4)))) {
        app_error(r, 400, "invalid_request", (present & (1u << 3)) ? "start" : "end",
                  "a spot offer has no start or end");
        return;
    }
    if (!spot) {
        if (!(present & (1u << 3)) || !(present & (1u << 4))) {
            app_error(r, 400, "invalid_request", !(present & (1u << 3)) ? "start" : "end",
                      "a reservation offer needs start and end");
            return;
        }
        if (q.end <= q.start) {
            app_error(r, 400, "invalid_request", "end", "end must be after start");
            return;
        }
        if (q.end - q.start > 2LL * 8784 * HOUR) {
            app_error(r, 400, "invalid_request", "end", "an offer spans at most 17,568 hours");
            return;
        }
    }
    struct market *m = mk(r);
    struct obj *po = market_get(m, q.pool_id);
    struct pool *p = po && po->type == OBJ_POOL ? (struct pool *)po : NULL;
    if (!p || p->acct != r->acct) {
        app_error(r, 422, "unprocessable", "pool_id", "no such pool");
        return;
    }
    if (q.gpus > p->gpus) {
        app_error(r, 422, "unprocessable", "gpus", "the pool has only %lld GPUs",
                  (long long)p->gpus);
        return;
    }
    int64_t now = now_of(r);
    if (!spot && q.start <= now) {
        app_error(r, 422, "unprocessable", "start", "start must be in the future");
        return;
    }
    if (!spot && q.start > now + MAX_AHEAD_S) {
        app_error(r, 422, "unprocessable", "start", "start is more than 366 days ahead");
        return;
    }
    if (spot && p->spot_offer) {
        app_error(r, 409, "conflict", "pool_id", "the pool has an open spot offer already");
        return;
    }
    uint64_t num = market_peek_num(m);
    int rc;
    if (spot) {
        engine_spot_offer_spec s = {num, p->o.num, q.price, (int32_t)q.gpus};
        rc = engine_spot_offer(market_engine(m), now, &s);
    } else {
        engine_offer_spec s = {num,          p->o.num, q.start / HOUR,
                               q.end / HOUR, q.price,  (int32_t)q.gpus};
        rc = engine_offer(market_engine(m), now, &s);
    }
    if (rc < 0) {
        market_apply_events(m); /* expiries that were due */
        engine_refused(r, "offer refused");
        return;
    }
    struct offer *f = market_new_obj(m, sizeof *f, OBJ_OFFER, "ofr_");
    CAPX_ASSERT(f->o.num == num);
    f->pool = p;
    f->spot = spot;
    f->gpus = q.gpus;
    f->start = spot ? 0 : q.start;
    f->end = spot ? 0 : q.end;
    f->price = q.price;
    f->status = "open";
    if (spot)
        p->spot_offer = f;
    market_apply_events(m);
    market_reply(m, r, 201, offer_json(f));
}

static int mine_offer(struct app_req *r, struct obj *o)
{
    return ((struct offer *)o)->pool->acct == r->acct;
}

static json_t *view_offer(struct obj *o)
{
    return offer_json((struct offer *)o);
}

void h_offers_list(struct app_req *r)
{
    list(r, OBJ_OFFER, mine_offer, view_offer);
}

void h_offers_get(struct app_req *r)
{
    struct obj *o = own(r, OBJ_OFFER);
    if (o)
        market_reply(mk(r), r, 200, offer_json((struct offer *)o));
}

void h_offers_cancel(struct app_req *r)
{
    struct offer *f = (struct offer *)own(r, OBJ_OFFER);
    if (!f)
        return;
    if (strcmp(f->status, "open") != 0) {
        app_error(r, 409, "conflict", NULL, "the offer is %s", f->status);
        return;
    }
    struct market *m = mk(r);
    if (engine_cancel_offer(market_engine(m), now_of(r), f->o.num) < 0) {
        market_apply_events(m);
        engine_refused(r, "cancel refused");
        return;
    }
    market_apply_events(m);
    if (!strcmp(f->status, "open")) {
        f->status = "cancelled";
        market_dirty(m, &f->o);
    }
    if (f->spot && f->pool->spot_offer == f)
        f->pool->spot_offer = NULL;
    market_reply(m, r, 200, offer_json(f));
}

/* ---- orders and quotes ---- */

#define HAS(f) (present & (1ull << (f)))

/* Decodes and checks an order body (400 and 422 from the clock). 0 ok, -1 answered. */
static int order_body(struct app_req *r, struct order_req *q, int *spot)
{
    uint64_t present;
    memset(q, 0, sizeof *q);
    q->all_or_none = 1;
    if (api_decode(r, order_fields, order_nfields, q, &present) < 0)
        return -1;
    *spot = 0;
    if (!strcmp(q->kind, "spot"))
        *spot = 1;
    else if (strcmp(q->kind, "reservation") != 0) {
        app_error(r, 400, "invalid_request", "kind", "kind must be reservation or spot");
        return -1;
    }
    if (*spot) {
        static const int not_spot[] = {F_START, F_HOURS, F_LATEST, F_AON, F_SINGLE, F_TIF, F_LEND};
        for (size_t i = 0; i < ARRAY_LEN(not_spot); i++)
            if (HAS(not_spot[i])) {
                app_error(r, 400, "invalid_request", order_fields[not_spot[i]].name,
                          "%s does not apply to a spot order", order_fields[not_spot[i]].name);
                return -1;
            }
        if (!HAS(F_REGION)) {
            app_error(r, 400, "invalid_request", "region", "a spot order needs a region");
            return -1;
        }
        return 0;
    }
    if (!HAS(F_START) || !HAS(F_HOURS)) {
        app_error(r, 400, "invalid_request", HAS(F_START) ? "hours" : "start", "%s is required",
                  HAS(F_START) ? "hours" : "start");
        return -1;
    }
    if (!HAS(F_LATEST))
        q->latest_start = q->start;
    if (q->latest_start < q->start) {
        app_error(r, 400, "invalid_request", "latest_start", "latest_start is before start");
        return -1;
    }
    if (q->latest_start - q->start > MAX_AHEAD_S) {
        app_error(r, 400, "invalid_request", "latest_start", "the start window is over 366 days");
        return -1;
    }
    if (q->tif && strcmp(q->tif, "gtc") && strcmp(q->tif, "ioc")) {
        app_error(r, 400, "invalid_request", "time_in_force", "time_in_force is gtc or ioc");
        return -1;
    }
    int64_t now = now_of(r);
    if (q->start <= now) {
        app_error(r, 422, "unprocessable", "start", "start must be in the future");
        return -1;
    }
    if (q->start > now + MAX_AHEAD_S || q->latest_start > now + MAX_AHEAD_S) {
        const char *f = q->start > now + MAX_AHEAD_S ? "start" : "latest_start";
        app_error(r, 422, "unprocessable", f, "%s is more than 366 days ahead", f);
        return -1;
    }
    return 0;
}

static engine_order_spec spec_of(struct market *m, const struct order_req *q, uint64_t num,
                                 struct account *a)
{
    engine_order_spec s = {
        .id = num,
        .account = a->num,
        .model = market_intern(m, q->gpu_model),
        .region = q->region ? market_intern(m, q->region) : 0,
        .start = q->start / HOUR,
        .latest_start = q->latest_start / HOUR,
        .limit_price = q->limit_price,
        .gpus = (int32_t)q->gpus,
        .hours = (int32_t)q->hours,
        .all_or_none = q->all_or_none,
        .single_pool = q->single_pool,
        .tif = (uint8_t)(q->tif && !strcmp(q->tif, "ioc") ? ENGINE_IOC : ENGINE_GTC),
    };
    return s;
}

void h_orders_create(struct app_req *r)
{
    struct order_req q;
    int spot;
    if (order_body(r, &q, &spot) < 0)
        return;
    struct market *m = mk(r);
    struct account *a = r->acct;
    int64_t hold;
    if (capx_mul3_i64(q.limit_price, q.gpus, spot ? 1 : q.hours, &hold) < 0) {
        app_error(r, 400, "invalid_request", "limit_price", "the order's value overflows");
        return;
    }
    if (hold > a->available) {
        app_error(r, 402, "insufficient_funds", NULL,
                  "the order needs a hold of %lld; available is %lld", (long long)hold,
                  (long long)a->available);
        return;
    }
    if (a->open_orders >= r->app->cfg.max_open_orders) {
        app_error(r, 409, "conflict", NULL, "the account has %lld open orders, the limit",
                  (long long)a->open_orders);
        return;
    }
    int64_t now = now_of(r);
    uint64_t num = market_peek_num(m);
    int rc;
    if (spot) {
        engine_spot_bid_spec s = {num,
                                  a->num,
                                  market_intern(m, q.gpu_model),
                                  market_intern(m, q.region),
                                  q.limit_price,
                                  (int32_t)q.gpus};
        rc = engine_spot_bid(market_engine(m), now, &s);
    } else {
        engine_order_spec s = spec_of(m, &q, num, a);
        rc = engine_order(market_engine(m), now, &s);
    }
    if (rc < 0) {
        market_apply_events(m);
        engine_refused(r, "order refused");
        return;
    }
    struct order *o = market_new_obj(m, sizeof *o, OBJ_ORDER, "ord_");
    CAPX_ASSERT(o->o.num == num);
    o->acct = a;
    o->spot = spot;
    snprintf(o->gpu_model, sizeof o->gpu_model, "%s", q.gpu_model);
    snprintf(o->region, sizeof o->region, "%s", q.region ? q.region : "");
    o->model = market_intern(m, q.gpu_model);
    o->region_num = q.region ? market_intern(m, q.region) : 0;
    o->gpus = q.gpus;
    o->start = spot ? 0 : q.start;
    o->latest_start = spot ? 0 : q.latest_start;
    o->fixed_start = -1;
    o->hours = spot ? 0 : q.hours * HOUR;
    o->limit_price = q.limit_price;
    o->all_or_none = q.all_or_none;
    o->single_pool = q.single_pool;
    o->ioc = q.tif && !strcmp(q.tif, "ioc");
    o->lend_idle = q.lend_idle;
    o->status = spot ? "pending" : "open";
    o->updated = now;
    a->open_orders++;
    if (spot)
        market_spot_live(m, +1);
    market_money_hold(m, o, hold);
    market_apply_events(m);
    market_reply(m, r, 201, order_json(o));
}

void h_quotes(struct app_req *r)
{
    struct order_req q;
    int spot;
    if (order_body(r, &q, &spot) < 0)
        return;
    if (spot) {
        app_error(r, 400, "invalid_request", "kind", "quotes are for reservation orders");
        return;
    }
    struct market *m = mk(r);
    engine_order_spec s = spec_of(m, &q, market_peek_num(m), r->acct);
    engine_quote_result res;
    engine_piece pieces[256];
    if (engine_quote(market_engine(m), now_of(r), &s, &res, pieces, ARRAY_LEN(pieces)) < 0) {
        engine_refused(r, "quote refused");
        return;
    }
    json_t *arr = json_array();
    size_t n = res.npieces < ARRAY_LEN(pieces) ? res.npieces : ARRAY_LEN(pieces);
    for (size_t i = 0; i < n; i++) {
        struct obj *p = market_by_num(m, pieces[i].pool);
        char st[CAPX_TIME_STRLEN], en[CAPX_TIME_STRLEN];
        capx_time_format(pieces[i].start * HOUR, st);
        capx_time_format(pieces[i].end * HOUR, en);
        json_array_append_new(arr, json_pack("{s:s,s:I,s:s,s:s,s:I,s:I}", "pool_id", p ? p->id : "",
                                             "gpus", (json_int_t)pieces[i].gpus, "start", st, "end",
                                             en, "price", (json_int_t)pieces[i].price, "amount",
                                             (json_int_t)pieces[i].amount));
    }
    market_reply(m, r, 200,
                 json_pack("{s:b,s:I,s:o,s:I}", "fillable", res.fillable, "gpus",
                           (json_int_t)res.gpus, "pieces", arr, "total", (json_int_t)res.total));
}

static int mine_order(struct app_req *r, struct obj *o)
{
    struct order *x = (struct order *)o;
    if (x->acct != r->acct)
        return 0;
    return r->aux == 0 || !strcmp(x->status, r->filter);
}

static json_t *view_order(struct obj *o)
{
    return order_json((struct order *)o);
}

void h_orders_list(struct app_req *r)
{
    char st[32];
    int f = api_query(r->http->hp->query, "status", st, sizeof st);
    static const char *const ok[] = {"open",      "filled",    "partially_filled",
                                     "cancelled", "expired",   "pending",
                                     "running",   "preempted", "stopped"};
    r->aux = 0;
    if (f != 0) {
        size_t i;
        for (i = 0; f > 0 && i < ARRAY_LEN(ok); i++)
            if (!strcmp(ok[i], st))
                break;
        if (f < 0 || i == ARRAY_LEN(ok)) {
            app_error(r, 400, "invalid_request", "status", "unknown order status");
            return;
        }
        r->aux = 1;
        snprintf(r->filter, sizeof r->filter, "%s", st);
    }
    list(r, OBJ_ORDER, mine_order, view_order);
}

void h_orders_get(struct app_req *r)
{
    struct obj *o = own(r, OBJ_ORDER);
    if (o)
        market_reply(mk(r), r, 200, order_json((struct order *)o));
}

void h_orders_cancel(struct app_req *r)
{
    struct order *o = (struct order *)own(r, OBJ_ORDER);
    if (!o)
        return;
    static const char *const live[] = {"open", "partially_filled", "pending", "running",
                                       "preempted"};
    int is_live = 0;
    for (size_t i = 0; i < ARRAY_LEN(live); i++)
        is_live |= !strcmp(o->status, live[i]);
    if (!is_live) {
        app_error(r, 409, "conflict", NULL, "the order is %s", o->status);
        return;
    }
    struct market *m = mk(r);
    if (engine_cancel_order(market_engine(m), now_of(r), o->o.num) < 0) {
        market_apply_events(m);
        engine_refused(r, "cancel refused");
        return;
    }
    market_apply_events(m);
    market_reply(m, r, 200, order_json(o));
}

/* ---- contracts ---- */

static int mine_contract(struct app_req *r, struct obj *o)
{
    struct contract *c = (struct contract *)o;
    return c->buyer == r->acct || c->provider == r->acct;
}

static json_t *view_contract(struct obj *o)
{
    return contract_json((struct contract *)o);
}

void h_contracts_list(struct app_req *r)
{
    list(r, OBJ_CONTRACT, mine_contract, view_contract);
}

void h_contracts_get(struct app_req *r)
{
    struct obj *o = own(r, OBJ_CONTRACT);
    if (o)
        market_reply(mk(r), r, 200, contract_json((struct contract *)o));
}

/* ---- market data ---- */

void h_markets(struct app_req *r)
{
    struct market *m = mk(r);
    json_t *data = json_array(), *seen = json_object();
    int64_t from = now_of(r) / HOUR + 1, to = from + 366 * 24;
    uint64_t cur = 0;
    struct obj *o;
    while ((o = market_next(m, OBJ_POOL, &cur)) != NULL) {
        struct pool *p = (struct pool *)o;
        char key[80];
        snprintf(key, sizeof key, "%s|%s", p->gpu_model, p->region);
        if (json_object_get(seen, key))
            continue;
        json_object_set_new(seen, key, json_true());
        engine_top t = {0};
        if (engine_top_of(market_engine(m), p->model, p->region_num, from, to, &t) < 0)
            continue;
        json_t *e = json_pack("{s:s,s:s}", "gpu_model", p->gpu_model, "region", p->region);
        json_object_set_new(e, "best_ask", t.best_ask ? json_integer(t.best_ask) : json_null());
        json_object_set_new(e, "best_bid", t.best_bid ? json_integer(t.best_bid) : json_null());
        json_object_set_new(e, "spot_price",
                            t.spot_price ? json_integer(t.spot_price) : json_null());
        json_object_set_new(e, "last_price",
                            t.last_price ? json_integer(t.last_price) : json_null());
        json_array_append_new(data, e);
    }
    json_decref(seen);
    market_reply(m, r, 200, json_pack("{s:o}", "data", data));
}

/* The market named by the path's model and ?region= (optional when the model has one). */
static int market_of(struct app_req *r, const char **region_out, uint64_t *model, uint64_t *region)
{
    struct market *m = mk(r);
    char reg[40];
    int f = api_query(r->http->hp->query, "region", reg, sizeof reg);
    if (f < 0) {
        app_error(r, 400, "invalid_request", "region", "malformed region");
        return -1;
    }
    const struct pool *found = NULL;
    int regions = 0;
    uint64_t cur = 0;
    struct obj *o;
    const char *first = NULL;
    while ((o = market_next(m, OBJ_POOL, &cur)) != NULL) {
        struct pool *p = (struct pool *)o;
        if (strcmp(p->gpu_model, r->params[0]) != 0)
            continue;
        if (f > 0 && !strcmp(p->region, reg))
            found = p;
        if (!first || strcmp(first, p->region) != 0) {
            if (!first)
                first = p->region;
            regions++;
        }
        if (f == 0 && !found)
            found = p;
    }
    if (!found) {
        app_error(r, 404, "not_found", NULL, "no such market");
        return -1;
    }
    if (f == 0 && regions > 1) {
        app_error(r, 400, "invalid_request", "region",
                  "this GPU model trades in several regions: "
                  "name one with ?region=");
        return -1;
    }
    *model = found->model;
    *region = found->region_num;
    *region_out = found->region;
    return 0;
}

static int time_param(struct app_req *r, const char *name, int64_t dflt, int64_t *out)
{
    char b[40];
    int f = api_query(r->http->hp->query, name, b, sizeof b);
    if (f == 0) {
        *out = dflt;
        return 0;
    }
    if (f < 0 || capx_time_parse(b, out) < 0 || *out % HOUR) {
        app_error(r, 400, "invalid_request", name, "%s must be a whole-hour RFC 3339 time", name);
        return -1;
    }
    return 0;
}

static json_t *levels(engine *e, uint64_t model, uint64_t region, int64_t from, int64_t to,
                      char side)
{
    engine_level lv[200];
    size_t n = engine_depth(e, model, region, from, to, side, lv, ARRAY_LEN(lv));
    if (n > ARRAY_LEN(lv))
        n = ARRAY_LEN(lv);
    json_t *a = json_array();
    for (size_t i = 0; i < n; i++)
        json_array_append_new(a, json_pack("{s:I,s:I,s:I,s:i}", "price", (json_int_t)lv[i].price,
                                           "gpus", (json_int_t)lv[i].gpus, "gpu_hours",
                                           (json_int_t)lv[i].gpu_hours, "orders", lv[i].count));
    return a;
}

/* Book answers cached per market and window, valid while the market's version is unchanged:
   a read-heavy client polling the book costs one lookup, not a walk of the resting orders. */
#define BOOK_CACHE 32
static struct {
    uint64_t model, region, version;
    int64_t from, to;
    char *body;
} book_cache[BOOK_CACHE];
static unsigned book_next;

void h_book(struct app_req *r)
{
    uint64_t model, region;
    const char *rname;
    if (market_of(r, &rname, &model, &region) < 0)
        return;
    int64_t from, to, first = (now_of(r) / HOUR + 1) * HOUR;
    if (time_param(r, "start", first, &from) < 0)
        return;
    if (from > TIME_MAX_S - 24 * HOUR) { /* its default end could not be written */
        app_error(r, 400, "invalid_request", "start", "start is too far ahead");
        return;
    }
    if (time_param(r, "end", from + 24 * HOUR, &to) < 0)
        return;
    if (to <= from) {
        app_error(r, 400, "invalid_request", "end", "end must be after start");
        return;
    }
    if (to - from > MAX_AHEAD_S) {
        app_error(r, 400, "invalid_request", "end", "a book window spans at most 366 days");
        return;
    }
    struct market *m = mk(r);
    uint64_t ver = market_version(m);
    for (int i = 0; i < BOOK_CACHE; i++)
        if (book_cache[i].body && book_cache[i].model == model && book_cache[i].region == region &&
            book_cache[i].from == from && book_cache[i].to == to && book_cache[i].version == ver) {
            market_reply_text(m, r, 200, book_cache[i].body);
            return;
        }
    engine *e = market_engine(m);
    engine_top t = {0};
    if (engine_top_of(e, model, region, from / HOUR, to / HOUR, &t) < 0)
        memset(&t, 0, sizeof t);
    char fs[CAPX_TIME_STRLEN], ts[CAPX_TIME_STRLEN];
    capx_time_format(from, fs);
    capx_time_format(to, ts);
    json_t *o =
        json_pack("{s:s,s:s,s:s,s:s,s:o,s:o}", "gpu_model", r->params[0], "region", rname, "start",
                  fs, "end", ts, "bids", levels(e, model, region, from / HOUR, to / HOUR, 'b'),
                  "asks", levels(e, model, region, from / HOUR, to / HOUR, 'a'));
    json_object_set_new(
        o, "spot",
        json_pack("{s:o,s:o}", "price", t.spot_price ? json_integer(t.spot_price) : json_null(),
                  "last_price", t.last_price ? json_integer(t.last_price) : json_null()));
    char *body = json_dumps(o, JSON_COMPACT);
    json_decref(o);
    if (!body)
        capx_fatal("json_dumps failed");
    unsigned slot = book_next++ % BOOK_CACHE;
    free(book_cache[slot].body);
    book_cache[slot].model = model;
    book_cache[slot].region = region;
    book_cache[slot].from = from;
    book_cache[slot].to = to;
    book_cache[slot].version = ver;
    book_cache[slot].body = body;
    market_reply_text(m, r, 200, body);
}

static int trade_newer(const void *a, const void *b)
{
    const engine_trade *x = a, *y = b;
    return x->seq < y->seq ? 1 : x->seq > y->seq ? -1 : 0;
}

/* Recent fills of the model: of one region with ?region=, else of all its regions. */
void h_trades(struct app_req *r)
{
    struct market *m = mk(r);
    char reg[40];
    int64_t limit;
    uint64_t cursor; /* a trade number: the page holds older ones */
    int f = api_query(r->http->hp->query, "region", reg, sizeof reg);
    if (f < 0) {
        app_error(r, 400, "invalid_request", "region", "malformed region");
        return;
    }
    if (api_page(r, &limit, &cursor) < 0)
        return;
    engine_trade *all = NULL;
    size_t n = 0, cap = 0;
    int known = 0;
    json_t *seen = json_object();
    uint64_t cur = 0;
    struct obj *o;
    while ((o = market_next(m, OBJ_POOL, &cur)) != NULL) {
        struct pool *p = (struct pool *)o;
        if (strcmp(p->gpu_model, r->params[0]) != 0 || (f > 0 && strcmp(p->region, reg) != 0))
            continue;
        known = 1;
        if (json_object_get(seen, p->region))
            continue;
        json_object_set_new(seen, p->region, json_true());
        if (cap < n + ENGINE_TRADES_KEPT) {
            cap = n + ENGINE_TRADES_KEPT;
            all = xrealloc(all, cap * sizeof *all);
        }
        size_t k =
            engine_trades(market_engine(m), p->model, p->region_num, all + n, ENGINE_TRADES_KEPT);
        n += k < ENGINE_TRADES_KEPT ? k : ENGINE_TRADES_KEPT;
    }
    json_decref(seen);
    if (!known) {
        free(all);
        app_error(r, 404, "not_found", NULL, "no such market");
        return;
    }
    if (n)
        qsort(all, n, sizeof *all, trade_newer);
    if (n > ENGINE_TRADES_KEPT)
        n = ENGINE_TRADES_KEPT;
    /* Newest first; a page starts below the cursor's trade number. */
    size_t from = 0, to;
    while (cursor && from < n && all[from].seq >= cursor)
        from++;
    to = from + (size_t)limit < n ? from + (size_t)limit : n;
    json_t *data = json_array();
    for (size_t i = from; i < to; i++) {
        char id[32], st[CAPX_TIME_STRLEN], en[CAPX_TIME_STRLEN], at[CAPX_TIME_STRLEN];
        snprintf(id, sizeof id, "trd_%llu", (unsigned long long)all[i].seq);
        capx_time_format(all[i].start * HOUR, st);
        capx_time_format(all[i].end * HOUR, en);
        capx_time_format(all[i].at, at);
        json_array_append_new(data,
                              json_pack("{s:s,s:I,s:I,s:s,s:s,s:s}", "id", id, "price",
                                        (json_int_t)all[i].price, "gpus", (json_int_t)all[i].gpus,
                                        "start", st, "end", en, "executed_at", at));
    }
    uint64_t next = to < n ? all[to - 1].seq : 0;
    free(all);
    market_reply(m, r, 200, api_list(data, next));
}
