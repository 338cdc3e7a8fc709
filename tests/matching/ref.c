/*
 * ref.c — the reference matcher (see ref.h). Written from docs/matching.md,
 * not from the engine: every figure is recomputed hour by hour, the fill size
 * is found by trying every size from the largest down, the auction scans every
 * pool for every bid. Slow on purpose, obviously right on purpose.
 */
#include "tests/matching/ref.h"

#include <stdlib.h>
#include <string.h>

static int fail(ref *r, enum engine_error e)
{
    r->err = e;
    return -1;
}

static void push(ref *r, engine_event ev)
{
    ev.now = r->now;
    if (r->nev == r->ev_cap) {
        r->ev_cap = r->ev_cap ? r->ev_cap * 2 : 64;
        r->ev = realloc(r->ev, r->ev_cap * sizeof(engine_event));
    }
    r->ev[r->nev++] = ev;
}

ref *ref_new(void)
{
    ref *r = calloc(1, sizeof(*r));
    r->pools = calloc(64, sizeof(ref_pool));
    r->next_seq = 1;
    r->next_trade = 1;
    r->cur = 1;
    return r;
}

void ref_free(ref *r)
{
    free(r->pools);
    free(r->ev);
    free(r);
}

void ref_clear_events(ref *r)
{
    r->nev = 0;
}

static int pool_ix(const ref *r, uint64_t id)
{
    for (int i = 0; i < r->npools; i++)
        if (r->pools[i].id == id)
            return i;
    return -1;
}

static bool order_id_used(const ref *r, uint64_t id)
{
    for (int i = 0; i < r->norders; i++)
        if (r->orders[i].live && r->orders[i].s.id == id)
            return true;
    for (int i = 0; i < r->nbids; i++)
        if (r->bids[i].live && r->bids[i].s.id == id)
            return true;
    return false;
}

static int offer_ix(const ref *r, uint64_t id)
{
    for (int i = 0; i < r->noffers; i++)
        if (r->offers[i].live && r->offers[i].id == id)
            return i;
    return -1;
}

int ref_add_pool(ref *r, uint64_t id, uint64_t account, uint64_t model, uint64_t region,
                 int32_t gpus)
{
    if (id == 0 || account == 0 || model == 0 || region == 0 || gpus < 1 ||
        gpus > ENGINE_MAX_POOL_GPUS)
        return fail(r, ENGINE_EINVAL);
    if (pool_ix(r, id) >= 0)
        return fail(r, ENGINE_EEXIST);
    ref_pool *p = &r->pools[r->npools++];
    memset(p, 0, sizeof(*p));
    p->id = id;
    p->account = account;
    p->model = model;
    p->region = region;
    p->gpus = gpus;
    p->spot = -1;
    return 0;
}

/* ---------------------------------------------------------------- events */

static void order_done_ev(ref *r, rf_order *o, uint8_t reason)
{
    engine_event ev = {0};
    ev.kind = ENGINE_EV_ORDER_DONE;
    ev.reason = reason;
    ev.order = o->s.id;
    ev.buyer = o->s.account;
    ev.model = o->s.model;
    ev.region = o->s.region;
    ev.gpus = o->gpus;
    ev.filled = o->filled;
    ev.start = o->fixed;
    ev.pool = o->fixed_pool >= 0 ? r->pools[o->fixed_pool].id : 0;
    o->live = false;
    push(r, ev);
}

static void offer_done_ev(ref *r, rf_offer *of, uint8_t reason)
{
    const ref_pool *p = &r->pools[of->pool];
    engine_event ev = {0};
    ev.kind = ENGINE_EV_OFFER_DONE;
    ev.reason = reason;
    ev.offer = of->id;
    ev.pool = p->id;
    ev.provider = p->account;
    ev.model = p->model;
    ev.region = p->region;
    of->live = false;
    push(r, ev);
}

static int64_t dead_at(const rf_order *o)
{
    return (o->fixed >= 0 ? o->fixed : o->latest) + 1;
}

static int advance(ref *r, int64_t now)
{
    if (now < 0)
        return fail(r, ENGINE_EINVAL);
    if (now > r->now)
        r->now = now;
    r->cur = r->now / 3600 + 1;
    /* everything due, by (dead_at, seq) */
    for (;;) {
        int64_t bd = INT64_MAX;
        uint64_t bs = UINT64_MAX;
        int bo = -1, bf = -1;
        for (int i = 0; i < r->norders; i++) {
            rf_order *o = &r->orders[i];
            if (o->live && dead_at(o) <= r->cur &&
                (dead_at(o) < bd || (dead_at(o) == bd && o->seq < bs))) {
                bd = dead_at(o);
                bs = o->seq;
                bo = i;
                bf = -1;
            }
        }
        for (int i = 0; i < r->noffers; i++) {
            rf_offer *of = &r->offers[i];
            if (of->live && !of->spot && of->end <= r->cur &&
                (of->end < bd || (of->end == bd && of->seq < bs))) {
                bd = of->end;
                bs = of->seq;
                bf = i;
                bo = -1;
            }
        }
        if (bo >= 0)
            order_done_ev(r, &r->orders[bo], ENGINE_R_EXPIRED);
        else if (bf >= 0)
            offer_done_ev(r, &r->offers[bf], ENGINE_R_EXPIRED);
        else
            break;
    }
    return 0;
}

int ref_tick(ref *r, int64_t now)
{
    return advance(r, now);
}

/* ---------------------------------------------------------------- the search */

typedef struct rcand {
    int pool;
    int32_t c;
    int64_t k;
    uint64_t seq;
} rcand;

/* The open reservation offer of pool p covering hour h, or -1. */
static int covering(const ref *r, int p, int64_t h)
{
    for (int i = 0; i < r->noffers; i++) {
        const rf_offer *of = &r->offers[i];
        if (of->live && !of->spot && of->pool == p && of->start <= h && h < of->end)
            return i;
    }
    return -1;
}

static rcand figures(const ref *r, int p, int64_t s, int32_t hours)
{
    rcand c = {p, 0, 0, 0};
    int first = covering(r, p, s);
    if (first < 0)
        return c;
    c.seq = r->offers[first].seq;
    int32_t mn = INT32_MAX;
    for (int64_t h = s; h < s + hours; h++) {
        int o = covering(r, p, h);
        if (o < 0)
            return (rcand){p, 0, 0, 0};
        CAPX_ASSERT(h < REF_HOURS);
        int32_t a = r->offers[o].gpus - r->pools[p].sold[h];
        if (a < 0)
            a = 0;
        mn = a < mn ? a : mn;
        c.k += r->offers[o].price;
    }
    c.c = mn;
    return c;
}

static int rcand_cmp(const void *a, const void *b)
{
    const rcand *x = a, *y = b;
    if (x->k != y->k)
        return x->k < y->k ? -1 : 1;
    return x->seq < y->seq ? -1 : x->seq > y->seq;
}

typedef struct rpiece {
    int pool;
    int32_t gpus;
} rpiece;

typedef struct rplan {
    int64_t start;
    int32_t gpus;
    int64_t cost;
    int npieces;
    rpiece pieces[64];
} rplan;

typedef struct rwant {
    uint64_t account, model, region;
    int64_t lo, hi;
    int32_t gpus, hours;
    int64_t limit;
    bool aon, single;
    int only_pool; /* -1 or the one pool allowed */
} rwant;

/* Best fill at one start s (gpus 0 when none). */
static void at_start(const ref *r, const rwant *w, int64_t s, rplan *out)
{
    memset(out, 0, sizeof(*out));
    out->start = s;
    rcand cs[64];
    int n = 0;
    for (int p = 0; p < r->npools; p++) {
        const ref_pool *pl = &r->pools[p];
        if (pl->model != w->model || (w->region && pl->region != w->region) ||
            pl->account == w->account || (w->only_pool >= 0 && p != w->only_pool))
            continue;
        rcand c = figures(r, p, s, w->hours);
        if (c.c > 0)
            cs[n++] = c;
    }
    int64_t LH = w->limit * w->hours;
    if (w->single) {
        uint64_t bseq = 0;
        for (int i = 0; i < n; i++) {
            int32_t q = cs[i].c < w->gpus ? cs[i].c : w->gpus;
            if ((w->aon && q < w->gpus) || cs[i].k * q > LH * q)
                continue;
            int64_t cost = cs[i].k * q;
            if (q > out->gpus ||
                (q == out->gpus && (cost < out->cost || (cost == out->cost && cs[i].seq < bseq)))) {
                out->gpus = q;
                out->cost = cost;
                out->npieces = 1;
                out->pieces[0] = (rpiece){cs[i].pool, q};
                bseq = cs[i].seq;
            }
        }
        return;
    }
    qsort(cs, n, sizeof(rcand), rcand_cmp);
    int64_t total = 0;
    for (int i = 0; i < n; i++)
        total += cs[i].c;
    int32_t top = total < w->gpus ? (int32_t)total : w->gpus;
    for (int32_t Q = top; Q >= 1; Q--) {
        if (w->aon && Q != w->gpus)
            break;
        /* the cheapest Q GPUs */
        int64_t cost = 0;
        int32_t left = Q;
        for (int i = 0; i < n && left > 0; i++) {
            int32_t x = cs[i].c < left ? cs[i].c : left;
            cost += x * cs[i].k;
            left -= x;
        }
        if (cost > LH * Q)
            continue;
        out->gpus = Q;
        out->cost = cost;
        left = Q;
        for (int i = 0; i < n && left > 0; i++) {
            int32_t x = cs[i].c < left ? cs[i].c : left;
            out->pieces[out->npieces++] = (rpiece){cs[i].pool, x};
            left -= x;
        }
        return;
    }
}

static void search(const ref *r, const rwant *w, rplan *best)
{
    memset(best, 0, sizeof(*best));
    best->start = -1;
    for (int64_t s = w->lo; s <= w->hi; s++) {
        rplan p;
        at_start(r, w, s, &p);
        if (p.gpus > 0 && (p.gpus > best->gpus || (p.gpus == best->gpus && p.cost < best->cost)))
            *best = p;
    }
}

/* Walk the contracts of a plan; apply when o is given, else write quote pieces. */
static int64_t contracts(ref *r, const rplan *p, int32_t hours, rf_order *o, engine_piece *out,
                         size_t cap, size_t *nout)
{
    int64_t total = 0;
    size_t n = 0;
    for (int k = 0; k < p->npieces; k++) {
        int pi = p->pieces[k].pool;
        ref_pool *pl = &r->pools[pi];
        int32_t q = p->pieces[k].gpus;
        if (o) {
            o->gpus -= q;
            o->filled += q;
        }
        int64_t h = p->start, end = p->start + hours;
        while (h < end) {
            int oi = covering(r, pi, h);
            CAPX_ASSERT(oi >= 0);
            const rf_offer *of = &r->offers[oi];
            int64_t s1 = of->end < end ? of->end : end;
            int64_t amount = of->price * q * (s1 - h);
            total += amount;
            if (o) {
                for (int64_t t = h; t < s1; t++)
                    CAPX_ASSERT(pl->sold[t] + q <= of->gpus);
                engine_event ev = {0};
                ev.kind = ENGINE_EV_FILL;
                ev.order = o->s.id;
                ev.offer = of->id;
                ev.pool = pl->id;
                ev.buyer = o->s.account;
                ev.provider = pl->account;
                ev.model = pl->model;
                ev.region = pl->region;
                ev.seq = r->next_trade++;
                ev.gpus = q;
                ev.filled = o->filled;
                ev.start = h;
                ev.end = s1;
                ev.price = of->price;
                ev.amount = amount;
                push(r, ev);
            } else {
                if (n < cap)
                    out[n] = (engine_piece){pl->id, of->id, h, s1, of->price, amount, q};
                n++;
            }
            h = s1;
        }
        if (o)
            for (int64_t t = p->start; t < end; t++)
                pl->sold[t] += q;
    }
    if (nout)
        *nout = n;
    return total;
}

static bool try_fill(ref *r, rf_order *o)
{
    rwant w = {o->s.account,
               o->s.model,
               o->s.region,
               0,
               0,
               o->gpus,
               o->s.hours,
               o->s.limit_price,
               o->s.all_or_none,
               o->s.single_pool,
               o->fixed_pool};
    w.lo = o->fixed >= 0 ? o->fixed : o->s.start;
    w.hi = o->fixed >= 0 ? o->fixed : o->latest;
    if (w.lo < r->cur)
        w.lo = r->cur;
    rplan p;
    search(r, &w, &p);
    if (p.start < 0)
        return false;
    contracts(r, &p, o->s.hours, o, NULL, 0, NULL);
    if (o->gpus == 0) {
        order_done_ev(r, o, ENGINE_R_FILLED);
        return true;
    }
    if (o->s.single_pool && o->fixed_pool < 0)
        o->fixed_pool = p.pieces[0].pool;
    if (o->fixed < 0)
        o->fixed = p.start;
    return false;
}

static bool check_order(ref *r, const engine_order_spec *s, bool need_id)
{
    int64_t latest = s->latest_start < s->start ? s->start : s->latest_start;
    if ((need_id && s->id == 0) || s->account == 0 || s->model == 0 || s->gpus < 1 ||
        s->gpus > ENGINE_MAX_GPUS || s->hours < 1 || s->hours > ENGINE_MAX_HOURS ||
        s->limit_price < 1 || s->limit_price > ENGINE_MAX_PRICE || s->start < 0 ||
        latest - s->start > ENGINE_MAX_WINDOW || s->tif > ENGINE_IOC) {
        fail(r, ENGINE_EINVAL);
        return false;
    }
    if (need_id && order_id_used(r, s->id)) {
        fail(r, ENGINE_EEXIST);
        return false;
    }
    return true;
}

int ref_order(ref *r, int64_t now, const engine_order_spec *s)
{
    if (advance(r, now) < 0 || !check_order(r, s, true))
        return -1;
    int64_t latest = s->latest_start < s->start ? s->start : s->latest_start;
    if (latest < r->cur)
        return fail(r, ENGINE_EPAST);
    if (s->start > r->cur + ENGINE_MAX_AHEAD_HOURS)
        return fail(r, ENGINE_EINVAL);
    CAPX_ASSERT(r->norders < REF_MAX);
    rf_order *o = &r->orders[r->norders++];
    memset(o, 0, sizeof(*o));
    o->s = *s;
    o->seq = r->next_seq++;
    o->latest = latest;
    o->fixed = -1;
    o->fixed_pool = -1;
    o->gpus = s->gpus;
    o->live = true;
    engine_event ev = {0};
    ev.kind = ENGINE_EV_ORDER_ACCEPTED;
    ev.order = s->id;
    ev.buyer = s->account;
    ev.model = s->model;
    ev.region = s->region;
    ev.seq = o->seq;
    ev.gpus = s->gpus;
    ev.start = s->start;
    ev.end = latest;
    ev.price = s->limit_price;
    push(r, ev);
    if (try_fill(r, o))
        return 0;
    if (s->tif == ENGINE_IOC)
        order_done_ev(r, o, ENGINE_R_IOC);
    return 0;
}

int ref_quote(ref *r, int64_t now, const engine_order_spec *s, engine_quote_result *q,
              engine_piece *pieces, size_t cap)
{
    memset(q, 0, sizeof(*q));
    q->start = -1;
    if (now < 0 || !check_order(r, s, false))
        return fail(r, ENGINE_EINVAL);
    int64_t n = now > r->now ? now : r->now;
    rwant w = {s->account,     s->model,       s->region,      0, 0, s->gpus, s->hours,
               s->limit_price, s->all_or_none, s->single_pool, -1};
    w.lo = s->start < n / 3600 + 1 ? n / 3600 + 1 : s->start;
    w.hi = s->latest_start < s->start ? s->start : s->latest_start;
    rplan p;
    search(r, &w, &p);
    if (p.start < 0)
        return 0;
    q->fillable = true;
    q->gpus = p.gpus;
    q->start = p.start;
    q->total = contracts(r, &p, s->hours, NULL, pieces, cap, &q->npieces);
    return 0;
}

/* ---------------------------------------------------------------- offers */

int ref_offer(ref *r, int64_t now, const engine_offer_spec *s)
{
    if (advance(r, now) < 0)
        return -1;
    if (s->id == 0 || s->start < 0 || s->start >= s->end ||
        s->end - s->start > ENGINE_MAX_OFFER_HOURS || s->price < 1 || s->price > ENGINE_MAX_PRICE ||
        s->gpus < 1)
        return fail(r, ENGINE_EINVAL);
    int p = pool_ix(r, s->pool);
    if (p < 0)
        return fail(r, ENGINE_ENOTFOUND);
    if (s->gpus > r->pools[p].gpus)
        return fail(r, ENGINE_EINVAL);
    if (offer_ix(r, s->id) >= 0)
        return fail(r, ENGINE_EEXIST);
    if (s->start < r->cur)
        return fail(r, ENGINE_EPAST);
    if (s->start > r->cur + ENGINE_MAX_AHEAD_HOURS)
        return fail(r, ENGINE_EINVAL);
    for (int i = 0; i < r->noffers; i++) {
        const rf_offer *of = &r->offers[i];
        if (of->live && !of->spot && of->pool == p && of->start < s->end && s->start < of->end)
            return fail(r, ENGINE_ECONFLICT);
    }
    CAPX_ASSERT(r->noffers < REF_MAX);
    rf_offer *of = &r->offers[r->noffers++];
    *of = (rf_offer){s->id, r->next_seq++, p, s->start, s->end, s->price, s->gpus, false, true};
    const ref_pool *pl = &r->pools[p];
    engine_event ev = {0};
    ev.kind = ENGINE_EV_OFFER_ACCEPTED;
    ev.offer = s->id;
    ev.pool = s->pool;
    ev.provider = pl->account;
    ev.model = pl->model;
    ev.region = pl->region;
    ev.seq = of->seq;
    ev.gpus = s->gpus;
    ev.start = s->start;
    ev.end = s->end;
    ev.price = s->price;
    push(r, ev);
    /* resting orders the new hours could serve, by (limit desc, seq asc) */
    int list[REF_MAX], n = 0;
    for (int i = 0; i < r->norders; i++) {
        rf_order *o = &r->orders[i];
        if (!o->live || o->s.model != pl->model || (o->s.region && o->s.region != pl->region) ||
            o->s.account == pl->account)
            continue;
        int64_t lo = o->fixed >= 0 ? o->fixed : o->s.start;
        int64_t hi = o->fixed >= 0 ? o->fixed : o->latest;
        if (lo < r->cur)
            lo = r->cur;
        if (lo > hi || hi + o->s.hours <= s->start || lo >= s->end)
            continue;
        int j = n++;
        while (j > 0) {
            rf_order *x = &r->orders[list[j - 1]];
            if (x->s.limit_price > o->s.limit_price ||
                (x->s.limit_price == o->s.limit_price && x->seq < o->seq))
                break;
            list[j] = list[j - 1];
            j--;
        }
        list[j] = i;
    }
    for (int i = 0; i < n; i++)
        try_fill(r, &r->orders[list[i]]);
    return 0;
}

static void bid_ev(ref *r, const ref_bid *b, uint8_t kind, uint8_t reason, int64_t price)
{
    engine_event ev = {0};
    ev.kind = kind;
    ev.reason = reason;
    ev.order = b->s.id;
    ev.buyer = b->s.account;
    ev.model = b->s.model;
    ev.region = b->s.region;
    ev.gpus = b->s.gpus;
    ev.price = price;
    if (b->running >= 0) {
        const ref_pool *p = &r->pools[b->running];
        ev.pool = p->id;
        ev.provider = p->account;
        ev.offer = p->spot >= 0 ? r->offers[p->spot].id : 0;
    }
    push(r, ev);
}

static void preempt(ref *r, ref_bid *b, uint8_t reason)
{
    bid_ev(r, b, ENGINE_EV_SPOT_PREEMPTED, reason, 0);
    r->pools[b->running].running -= b->s.gpus;
    b->running = -1;
}

/* Live bids of a market by priority (limit desc, seq asc). */
static int market_bids(const ref *r, uint64_t model, uint64_t region, int *out)
{
    int n = 0;
    for (int i = 0; i < r->nbids; i++) {
        const ref_bid *b = &r->bids[i];
        if (!b->live || b->s.model != model || b->s.region != region)
            continue;
        int j = n++;
        while (j > 0) {
            const ref_bid *x = &r->bids[out[j - 1]];
            if (x->s.limit_price > b->s.limit_price ||
                (x->s.limit_price == b->s.limit_price && x->seq < b->seq))
                break;
            out[j] = out[j - 1];
            j--;
        }
        out[j] = i;
    }
    return n;
}

int ref_cancel_order(ref *r, int64_t now, uint64_t id)
{
    if (advance(r, now) < 0)
        return -1;
    for (int i = 0; id && i < r->norders; i++)
        if (r->orders[i].live && r->orders[i].s.id == id) {
            order_done_ev(r, &r->orders[i], ENGINE_R_CANCELLED);
            return 0;
        }
    for (int i = 0; id && i < r->nbids; i++)
        if (r->bids[i].live && r->bids[i].s.id == id) {
            ref_bid *b = &r->bids[i];
            if (b->running >= 0)
                r->pools[b->running].running -= b->s.gpus;
            bid_ev(r, b, ENGINE_EV_SPOT_BID_DONE, ENGINE_R_CANCELLED, 0);
            b->live = false;
            return 0;
        }
    return fail(r, ENGINE_ENOTFOUND);
}

int ref_cancel_offer(ref *r, int64_t now, uint64_t id)
{
    if (advance(r, now) < 0)
        return -1;
    int i = id ? offer_ix(r, id) : -1;
    if (i < 0)
        return fail(r, ENGINE_ENOTFOUND);
    rf_offer *of = &r->offers[i];
    if (!of->spot) {
        offer_done_ev(r, of, ENGINE_R_CANCELLED);
        return 0;
    }
    ref_pool *p = &r->pools[of->pool];
    engine_event ev = {0};
    ev.kind = ENGINE_EV_OFFER_DONE;
    ev.reason = ENGINE_R_CANCELLED;
    ev.offer = of->id;
    ev.pool = p->id;
    ev.provider = p->account;
    ev.model = p->model;
    ev.region = p->region;
    push(r, ev);
    int list[REF_MAX];
    int n = market_bids(r, p->model, p->region, list);
    for (int k = 0; k < n; k++)
        if (r->bids[list[k]].running == of->pool)
            preempt(r, &r->bids[list[k]], ENGINE_R_RECLAIMED);
    p->spot = -1;
    of->live = false;
    return 0;
}

/* ---------------------------------------------------------------- spot */

int ref_spot_offer(ref *r, int64_t now, const engine_spot_offer_spec *s)
{
    if (advance(r, now) < 0)
        return -1;
    if (s->id == 0 || s->gpus < 1 || s->reserve < 1 || s->reserve > ENGINE_MAX_PRICE)
        return fail(r, ENGINE_EINVAL);
    int p = pool_ix(r, s->pool);
    if (p < 0)
        return fail(r, ENGINE_ENOTFOUND);
    if (s->gpus > r->pools[p].gpus)
        return fail(r, ENGINE_EINVAL);
    if (offer_ix(r, s->id) >= 0)
        return fail(r, ENGINE_EEXIST);
    if (r->pools[p].spot >= 0)
        return fail(r, ENGINE_ECONFLICT);
    CAPX_ASSERT(r->noffers < REF_MAX);
    rf_offer *of = &r->offers[r->noffers];
    *of = (rf_offer){s->id, r->next_seq++, p, 0, 0, s->reserve, s->gpus, true, true};
    r->pools[p].spot = r->noffers++;
    const ref_pool *pl = &r->pools[p];
    engine_event ev = {0};
    ev.kind = ENGINE_EV_OFFER_ACCEPTED;
    ev.offer = s->id;
    ev.pool = s->pool;
    ev.provider = pl->account;
    ev.model = pl->model;
    ev.region = pl->region;
    ev.seq = of->seq;
    ev.gpus = s->gpus;
    ev.price = s->reserve;
    push(r, ev);
    return 0;
}

int ref_spot_bid(ref *r, int64_t now, const engine_spot_bid_spec *s)
{
    if (advance(r, now) < 0)
        return -1;
    if (s->id == 0 || s->account == 0 || s->model == 0 || s->region == 0 || s->gpus < 1 ||
        s->gpus > ENGINE_MAX_GPUS || s->limit_price < 1 || s->limit_price > ENGINE_MAX_PRICE)
        return fail(r, ENGINE_EINVAL);
    if (order_id_used(r, s->id))
        return fail(r, ENGINE_EEXIST);
    CAPX_ASSERT(r->nbids < REF_MAX);
    ref_bid *b = &r->bids[r->nbids++];
    b->s = *s;
    b->seq = r->next_seq++;
    b->running = -1;
    b->live = true;
    engine_event ev = {0};
    ev.kind = ENGINE_EV_SPOT_BID_ACCEPTED;
    ev.order = s->id;
    ev.buyer = s->account;
    ev.model = s->model;
    ev.region = s->region;
    ev.seq = b->seq;
    ev.gpus = s->gpus;
    ev.price = s->limit_price;
    push(r, ev);
    return 0;
}

int ref_spot_reclaim(ref *r, int64_t now, uint64_t pool, int32_t available)
{
    int p = pool_ix(r, pool);
    if (p < 0)
        return fail(r, ENGINE_ENOTFOUND);
    if (available < 0)
        return fail(r, ENGINE_EINVAL);
    if (advance(r, now) < 0)
        return -1;
    int list[REF_MAX];
    int n = market_bids(r, r->pools[p].model, r->pools[p].region, list);
    for (int k = n - 1; k >= 0 && r->pools[p].running > available; k--)
        if (r->bids[list[k]].running == p)
            preempt(r, &r->bids[list[k]], ENGINE_R_RECLAIMED);
    return 0;
}

static void round_market(ref *r, uint64_t model, uint64_t region)
{
    int list[REF_MAX];
    int n = market_bids(r, model, region, list);
    int sp[64], nsp = 0;
    int32_t left[64];
    for (int p = 0; p < r->npools; p++) {
        const ref_pool *pl = &r->pools[p];
        if (pl->model != model || pl->region != region || pl->spot < 0)
            continue;
        int j = nsp++;
        while (j > 0) {
            const rf_offer *x = &r->offers[r->pools[sp[j - 1]].spot];
            const rf_offer *y = &r->offers[pl->spot];
            if (x->price < y->price || (x->price == y->price && x->seq < y->seq))
                break;
            sp[j] = sp[j - 1];
            j--;
        }
        sp[j] = p;
    }
    for (int i = 0; i < nsp; i++)
        left[i] = r->pools[sp[i]].supply;
    int won[REF_MAX];
    int64_t maxres = 0, lmin = 0, P = 0;
    int nwin = 0;
    for (int k = 0; k < n; k++) {
        ref_bid *b = &r->bids[list[k]];
        int64_t L = b->s.limit_price;
        won[k] = -1;
        if (L >= maxres) {
            for (int i = 0; i < nsp; i++) {
                if (b->running >= 0 && sp[i] != b->running)
                    continue;
                if (r->offers[r->pools[sp[i]].spot].price <= L && left[i] >= b->s.gpus) {
                    won[k] = i;
                    break;
                }
            }
        }
        if (won[k] >= 0) {
            left[won[k]] -= b->s.gpus;
            int64_t res = r->offers[r->pools[sp[won[k]]].spot].price;
            maxres = res > maxres ? res : maxres;
            lmin = L;
            nwin++;
        }
    }
    if (nwin) {
        P = maxres;
        for (int k = 0; k < n; k++) {
            int64_t L = r->bids[list[k]].s.limit_price;
            if (won[k] < 0 && L <= lmin && L > P)
                P = L;
        }
    }
    int64_t running = 0;
    for (int k = 0; k < n; k++) {
        ref_bid *b = &r->bids[list[k]];
        if (won[k] >= 0) {
            if (b->running != sp[won[k]]) {
                b->running = sp[won[k]];
                r->pools[b->running].running += b->s.gpus;
                bid_ev(r, b, ENGINE_EV_SPOT_WON, ENGINE_R_NONE, P);
            }
            running += b->s.gpus;
        } else if (b->running >= 0) {
            preempt(r, b, ENGINE_R_OUTBID);
        }
    }
    engine_event ev = {0};
    ev.kind = ENGINE_EV_SPOT_ROUND;
    ev.model = model;
    ev.region = region;
    ev.price = P;
    ev.gpus = running;
    ev.filled = nwin;
    push(r, ev);
}

int ref_spot_round(ref *r, int64_t now, const engine_spot_supply *supply, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (pool_ix(r, supply[i].pool) < 0)
            return fail(r, ENGINE_ENOTFOUND);
        bool dup = false;
        for (size_t j = 0; j < i; j++)
            dup |= supply[j].pool == supply[i].pool;
        if (supply[i].idle < 0 || supply[i].lent < 0 || dup)
            return fail(r, ENGINE_EINVAL);
    }
    if (advance(r, now) < 0)
        return -1;
    for (int p = 0; p < r->npools; p++)
        r->pools[p].supply = 0;
    for (size_t i = 0; i < n; i++) {
        ref_pool *p = &r->pools[pool_ix(r, supply[i].pool)];
        if (p->spot >= 0) {
            int32_t cap = r->offers[p->spot].gpus;
            p->supply = (supply[i].idle < cap ? supply[i].idle : cap) + supply[i].lent;
        }
    }
    /* markets with live bids, by (model, region) */
    uint64_t mk[REF_MAX][2];
    int nm = 0;
    for (int i = 0; i < r->nbids; i++) {
        const ref_bid *b = &r->bids[i];
        if (!b->live)
            continue;
        bool seen = false;
        for (int j = 0; j < nm; j++)
            seen |= mk[j][0] == b->s.model && mk[j][1] == b->s.region;
        if (!seen) {
            mk[nm][0] = b->s.model;
            mk[nm][1] = b->s.region;
            nm++;
        }
    }
    for (int i = 0; i < nm; i++)
        for (int j = i + 1; j < nm; j++)
            if (mk[j][0] < mk[i][0] || (mk[j][0] == mk[i][0] && mk[j][1] < mk[i][1])) {
                uint64_t t0 = mk[i][0], t1 = mk[i][1];
                mk[i][0] = mk[j][0];
                mk[i][1] = mk[j][1];
                mk[j][0] = t0;
                mk[j][1] = t1;
            }
    for (int i = 0; i < nm; i++)
        round_market(r, mk[i][0], mk[i][1]);
    return 0;
}

/* ---------------------------------------------------------------- rebuild */

engine *ref_rebuild(const ref *r, engine_sink_fn sink, void *ctx)
{
    engine *e = engine_new(sink, ctx);
    engine_restore_counters(e, r->next_seq, r->next_trade, r->now);
    for (int i = 0; i < r->npools; i++) {
        const ref_pool *p = &r->pools[i];
        CAPX_ASSERT(engine_add_pool(e, p->id, p->account, p->model, p->region, p->gpus) == 0);
    }
    for (int i = 0; i < r->noffers; i++) {
        const rf_offer *of = &r->offers[i];
        if (!of->live)
            continue;
        if (of->spot) {
            engine_spot_offer_spec s = {of->id, r->pools[of->pool].id, of->price, of->gpus};
            CAPX_ASSERT(engine_restore_spot_offer(e, &s, of->seq) == 0);
        } else {
            engine_offer_spec s = {of->id,  r->pools[of->pool].id, of->start, of->end, of->price,
                                   of->gpus};
            CAPX_ASSERT(engine_restore_offer(e, &s, of->seq) == 0);
        }
    }
    for (int i = 0; i < r->npools; i++) {
        const ref_pool *p = &r->pools[i];
        for (int64_t h = r->cur; h < REF_HOURS;) {
            int64_t j = h;
            while (j < REF_HOURS && p->sold[j] == p->sold[h])
                j++;
            if (p->sold[h] > 0)
                CAPX_ASSERT(engine_restore_sold(e, p->id, h, j, p->sold[h]) == 0);
            h = j;
        }
    }
    for (int i = 0; i < r->norders; i++) {
        const rf_order *o = &r->orders[i];
        if (o->live)
            CAPX_ASSERT(engine_restore_order(e, &o->s, o->seq, o->filled, o->fixed,
                                             o->fixed_pool >= 0 ? r->pools[o->fixed_pool].id : 0) ==
                        0);
    }
    for (int i = 0; i < r->nbids; i++) {
        const ref_bid *b = &r->bids[i];
        if (b->live)
            CAPX_ASSERT(engine_restore_spot_bid(
                            e, &b->s, b->seq, b->running >= 0 ? r->pools[b->running].id : 0) == 0);
    }
    return e;
}

/* ---------------------------------------------------------------- invariants */

bool ref_resting_fillable(const ref *r, uint64_t *which)
{
    for (int i = 0; i < r->norders; i++) {
        const rf_order *o = &r->orders[i];
        if (!o->live)
            continue;
        rwant w = {o->s.account,
                   o->s.model,
                   o->s.region,
                   0,
                   0,
                   o->gpus,
                   o->s.hours,
                   o->s.limit_price,
                   o->s.all_or_none,
                   o->s.single_pool,
                   o->fixed_pool};
        w.lo = o->fixed >= 0 ? o->fixed : o->s.start;
        w.hi = o->fixed >= 0 ? o->fixed : o->latest;
        if (w.lo < r->cur)
            w.lo = r->cur;
        rplan p;
        search(r, &w, &p);
        if (p.start >= 0) {
            *which = o->s.id;
            return true;
        }
    }
    return false;
}
