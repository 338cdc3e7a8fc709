/*
 * resv.c — the reservation fill search and how a fill is applied.
 *
 * For every usable start s and every candidate pool (the order's markets, not
 * the buyer's own pools) the search needs three figures: c = GPUs unsold in
 * every hour of [s, s+hours) (0 if an hour has no open offer), k = the price
 * of one GPU over the interval (Σ hourly asks), and the sequence number of the
 * offer covering hour s (the tie-break). It computes them for up to
 * SEARCH_CHUNK starts at once per pool: with one offer covering the whole span
 * and enough GPUs (the usual case) that is one range-max over the sold map;
 * otherwise hourly arrays over the span and sliding windows (min of unsold,
 * sum of prices). c is clamped to the order's gpus: no pool gives more.
 *
 * Per start, the cheapest fill of Q GPUs takes pools by (k, offer seq); the
 * average price rises with Q, so the largest Q whose total stays within
 * limit × Q × hours is found greedily in the same walk. Starts compare by
 * (most GPUs, lowest total, earliest start). docs/matching.md states the rules.
 */
#include "matching/engine-internal.h"

#include <stdlib.h>
#include <string.h>

/* The hourly scratch arrays, made on first use (a rebuilt engine that never needs them is
 * cheap to make). */
static void hourly_scratch(engine *e)
{
    if (e->sc_sold)
        return;
    size_t hourly = SEARCH_CHUNK + ENGINE_MAX_HOURS + 1;
    e->sc_avail = xmalloc(hourly * sizeof(int32_t));
    e->sc_sold = xmalloc(hourly * sizeof(int32_t));
    e->sc_dq = xmalloc(hourly * sizeof(int32_t));
    e->sc_price = xmalloc((hourly + 1) * sizeof(int64_t));
}

/* out[i] = max(v[i .. i+win)) for i in [0, len-win]; dq: len ints of scratch. */
static void sliding_max(const int32_t *v, int len, int win, int32_t *out, int32_t *dq)
{
    int head = 0, tail = 0;
    for (int i = 0; i < len; i++) {
        while (tail > head && v[dq[tail - 1]] <= v[i])
            tail--;
        dq[tail++] = i;
        if (dq[head] <= i - win)
            head++;
        if (i >= win - 1)
            out[i - win + 1] = v[dq[head]];
    }
}

static void sliding_min(const int32_t *v, int len, int win, int32_t *out, int32_t *dq)
{
    int head = 0, tail = 0;
    for (int i = 0; i < len; i++) {
        while (tail > head && v[dq[tail - 1]] >= v[i])
            tail--;
        dq[tail++] = i;
        if (dq[head] <= i - win)
            head++;
        if (i >= win - 1)
            out[i - win + 1] = v[dq[head]];
    }
}

/*
 * Figures of pool pi for starts cs .. cs+wn-1 into out[i * stride]. Returns false (and writes
 * nothing) when no open offer of the pool overlaps the span.
 */
static bool pool_window(engine *e, uint32_t pi, int64_t cs, int wn, const want *w, cand *out,
                        size_t stride)
{
    const pool *p = POOL(e, pi);
    int32_t H = w->hours, G = w->gpus;
    int64_t a = cs, b = cs + wn - 1 + H;
    uint32_t i0 = pool_offer_from(e, p, a);
    if (i0 == p->noffers || OFFER(e, p->offers[i0])->start >= b)
        return false;
    const offer *o0 = OFFER(e, p->offers[i0]);
    int32_t win[SEARCH_CHUNK];
    if (o0->start <= a && o0->end >= b) {
        /* One offer covers the whole span. */
        int64_t k = o0->price * H;
        int32_t mx = soldmap_max(&p->sold, &e->arena, a, b);
        if (o0->gpus - mx >= G || wn == 1) {
            int32_t c = o0->gpus - mx;
            c = c < 0 ? 0 : c > G ? G : c;
            for (int i = 0; i < wn; i++)
                out[i * stride] = (cand){k, o0->seq, c, pi};
            return true;
        }
        int len = wn - 1 + H;
        hourly_scratch(e);
        soldmap_hourly(&p->sold, &e->arena, a, b, e->sc_sold);
        sliding_max(e->sc_sold, len, H, win, e->sc_dq);
        for (int i = 0; i < wn; i++) {
            int32_t c = o0->gpus - win[i];
            c = c < 0 ? 0 : c > G ? G : c;
            out[i * stride] = (cand){k, o0->seq, c, pi};
        }
        return true;
    }
    if (wn <= 4) {
        /* Few starts: walk the offers each start's interval meets (usually one or two). */
        for (int i = 0; i < wn; i++) {
            int64_t s = cs + i, end = s + H, at = s, k = 0;
            int32_t c = G;
            uint64_t seq = 0;
            for (uint32_t j = pool_offer_from(e, p, s); j < p->noffers && at < end; j++) {
                const offer *of = OFFER(e, p->offers[j]);
                if (of->start > at) /* an hour without an offer */
                    break;
                int64_t s1 = of->end < end ? of->end : end;
                if (seq == 0)
                    seq = of->seq;
                int32_t v = of->gpus - soldmap_max(&p->sold, &e->arena, at, s1);
                c = v < c ? v : c;
                k += of->price * (s1 - at);
                at = s1;
            }
            if (at < end || c < 0)
                c = 0;
            out[i * stride] = (cand){k, seq, c, pi};
        }
        return true;
    }
    /* Many starts: hourly unsold GPUs and prices over the span, sliding windows. */
    int len = wn - 1 + H;
    hourly_scratch(e);
    int32_t *avail = e->sc_avail;
    int64_t *pre = e->sc_price; /* prefix sums of prices */
    memset(avail, 0, (size_t)len * sizeof(int32_t));
    soldmap_hourly(&p->sold, &e->arena, a, b, e->sc_sold);
    pre[0] = 0;
    int64_t t = a;
    for (uint32_t j = i0; j < p->noffers; j++) {
        const offer *of = OFFER(e, p->offers[j]);
        if (of->start >= b)
            break;
        int64_t s0 = of->start > a ? of->start : a, s1 = of->end < b ? of->end : b;
        for (; t < s0; t++)
            pre[t - a + 1] = pre[t - a];
        for (; t < s1; t++) {
            int32_t v = of->gpus - e->sc_sold[t - a];
            avail[t - a] = v < 0 ? 0 : v;
            pre[t - a + 1] = pre[t - a] + of->price;
        }
    }
    for (; t < b; t++)
        pre[t - a + 1] = pre[t - a];
    sliding_min(avail, len, H, win, e->sc_dq);
    uint32_t j = i0;
    for (int i = 0; i < wn; i++) {
        int64_t s = cs + i;
        while (j < p->noffers && OFFER(e, p->offers[j])->end <= s)
            j++;
        uint64_t seq = 0;
        if (j < p->noffers && OFFER(e, p->offers[j])->start <= s)
            seq = OFFER(e, p->offers[j])->seq;
        int32_t c = win[i] > G ? G : win[i];
        if (seq == 0)
            c = 0;
        out[i * stride] = (cand){pre[i + H] - pre[i], seq, c, pi};
    }
    return true;
}

static bool lbent_before(const lbent *x, const lbent *y)
{
    return x->price < y->price || (x->price == y->price && x->offer < y->offer);
}

static bool cand_less(const cand *x, const cand *y)
{
    return x->k < y->k || (x->k == y->k && x->seq < y->seq);
}

static int cand_cmp(const void *a, const void *b)
{
    const cand *x = a, *y = b;
    return cand_less(x, y) ? -1 : cand_less(y, x) ? 1 : 0;
}

/*
 * The fill at one start from its candidates row[0..np): GPUs and total; the pieces go to
 * e->pieces when want_pieces.
 */
static void eval_start(engine *e, const want *w, const cand *row, size_t stride, uint32_t np,
                       int32_t *q_out, int64_t *cost_out, bool want_pieces, uint32_t *npieces)
{
    int64_t LH = w->limit * w->hours;
    *q_out = 0;
    *cost_out = 0;
    if (npieces)
        *npieces = 0;
    if (w->single) {
        int32_t bq = 0;
        int64_t bc = 0;
        uint64_t bseq = 0;
        uint32_t bpool = NONE32;
        for (uint32_t j = 0; j < np; j++) {
            const cand *c = &row[j * stride];
            if (c->c <= 0 || c->k > LH || (w->aon && c->c < w->gpus))
                continue;
            int64_t cost = c->k * c->c;
            if (c->c > bq || (c->c == bq && (cost < bc || (cost == bc && c->seq < bseq)))) {
                bq = c->c;
                bc = cost;
                bseq = c->seq;
                bpool = c->pool;
            }
        }
        *q_out = bq;
        *cost_out = bc;
        if (want_pieces && bq > 0) {
            e->pieces[0] = (piece){bpool, bq};
            *npieces = 1;
        }
        return;
    }
    cand *sel = e->sc_sel;
    uint32_t n = 0;
    int64_t total = 0;
    for (uint32_t j = 0; j < np; j++)
        if (row[j * stride].c > 0) {
            sel[n++] = row[j * stride];
            total += row[j * stride].c;
        }
    if (w->aon && total < w->gpus)
        return;
    int32_t rem = w->gpus, Q = 0;
    int64_t cost = 0;
    bool sorted = false;
    for (uint32_t t = 0; t < n && rem > 0; t++) {
        if (!sorted && t == 8) {
            qsort(sel + t, n - t, sizeof(cand), cand_cmp);
            sorted = true;
        }
        if (!sorted) {
            uint32_t m = t;
            for (uint32_t u = t + 1; u < n; u++)
                if (cand_less(&sel[u], &sel[m]))
                    m = u;
            cand tmp = sel[t];
            sel[t] = sel[m];
            sel[m] = tmp;
        }
        const cand *c = &sel[t];
        int64_t x = c->c < rem ? c->c : rem;
        if (c->k > LH) {
            int64_t slack = LH * Q - cost;
            int64_t lim = slack / (c->k - LH);
            x = x < lim ? x : lim;
            if (x <= 0)
                break;
        }
        Q += (int32_t)x;
        cost += x * c->k;
        rem -= (int32_t)x;
        if (want_pieces)
            e->pieces[(*npieces)++] = (piece){c->pool, (int32_t)x};
    }
    if (w->aon && Q < w->gpus)
        return;
    *q_out = Q;
    *cost_out = cost;
}

/* The offers an order may use: one or two lists, each cheapest first. */
static int offer_lists(engine *e, const want *w, const lblist *out[2], lblist *one_list, lbent *one)
{
    int64_t a = w->lo, b = w->hi + w->hours;
    if (w->only_pool != NONE32) {
        /* one pool: its cheapest offer meeting the span stands for it */
        const pool *p = POOL(e, w->only_pool);
        one_list->v = one;
        one_list->n = 0;
        for (uint32_t t = 0; t < p->noffers; t++) {
            const offer *of = OFFER(e, p->offers[t]);
            if (of->start < b && of->end > a && (one_list->n == 0 || of->price < one->price)) {
                *one = (lbent){of->price, a, b, w->only_pool, p->offers[t], p->gpus, p->gpus};
                one_list->n = 1;
            }
        }
        out[0] = one_list;
        return 1;
    }
    model *md = MODEL(e, w->model);
    if (w->region == 0)
        return engine_lb_lists(e, &md->lb, md->markets, md->nmarkets, a, b, out);
    for (uint32_t i = 0; i < md->nmarkets; i++)
        if (MARKET(e, md->markets[i])->region == w->region)
            return engine_lb_lists(e, &MARKET(e, md->markets[i])->lb, &md->markets[i], 1, a, b,
                                   out);
    return 0;
}

/*
 * Figures for starts cs..cs+wn-1 into e->sc_cand (pool j's column at j * SEARCH_CHUNK) for the
 * pools of the offers in `list` (cheapest first) that meet the span, each pool once, stopping
 * once no further pool can enter any start's fill: a start is settled when the pools seen hold
 * at least gpus GPUs all strictly cheaper than the next entry's ask (for single_pool: one full
 * pool that is, or no pool left within the limit). Returns the number of pools evaluated
 * (their indices in e->sc_pools).
 */
/*
 * Per start, the (k, c) of visited pools not yet known to be cheaper than the walk's bound: a
 * min-heap by k, its j-th element at heap[j * SEARCH_CHUNK + start] (sc_cand's layout).
 */
static void kc_push(kc_ent *heap, int i, uint32_t *n, kc_ent v)
{
    size_t j = (*n)++;
    while (j > 0) {
        size_t up = (j - 1) / 2;
        if (heap[up * SEARCH_CHUNK + i].k <= v.k)
            break;
        heap[j * SEARCH_CHUNK + i] = heap[up * SEARCH_CHUNK + i];
        j = up;
    }
    heap[j * SEARCH_CHUNK + i] = v;
}

static void kc_pop(kc_ent *heap, int i, uint32_t *n)
{
    kc_ent v = heap[(size_t)--(*n) * SEARCH_CHUNK + i];
    size_t j = 0, m = *n;
    for (;;) {
        size_t c = 2 * j + 1;
        if (c >= m)
            break;
        if (c + 1 < m && heap[(c + 1) * SEARCH_CHUNK + i].k < heap[c * SEARCH_CHUNK + i].k)
            c++;
        if (v.k <= heap[c * SEARCH_CHUNK + i].k)
            break;
        heap[j * SEARCH_CHUNK + i] = heap[c * SEARCH_CHUNK + i];
        j = c;
    }
    if (m > 0)
        heap[j * SEARCH_CHUNK + i] = v;
}

static uint32_t scan(engine *e, const want *w, int64_t cs, int wn, const lblist *const *lists,
                     int nl, int64_t *cap_out)
{
    /* cap: GPUs of the pools seen; below: of those whose k is under the walk's current bound */
    int64_t cap[SEARCH_CHUNK], below[SEARCH_CHUNK], bestfull[SEARCH_CHUNK];
    uint32_t npend[SEARCH_CHUNK];
    bool done[SEARCH_CHUNK];
    int open = wn;
    int64_t LH = w->limit * w->hours;
    int64_t a = cs, b = cs + wn - 1 + w->hours;
    for (int i = 0; i < wn; i++) {
        cap[i] = below[i] = 0;
        npend[i] = 0;
        bestfull[i] = INT64_MAX;
        done[i] = false;
    }
    if (e->stamp_cap < e->pools.n) {
        size_t old = e->stamp_cap;
        grow((void **)&e->stamp, &e->stamp_cap, e->pools.n, sizeof(uint32_t));
        memset(e->stamp + old, 0, (e->stamp_cap - old) * sizeof(uint32_t));
    }
    if (++e->scan_no == 0) { /* wrapped: forget old stamps */
        memset(e->stamp, 0, e->stamp_cap * sizeof(uint32_t));
        e->scan_no = 1;
    }
    uint32_t np = 0;
    uint32_t i0 = 0, i1 = 0, n0 = lists[0]->n, n1 = nl > 1 ? lists[1]->n : 0;
    bool aon_multi = w->aon && !w->single;
    int64_t left_ub = 0; /* when the walk gave up: GPUs the unvisited entries hold at most */
    while (i0 < n0 || i1 < n1) { /* merge the lists by (ask, offer) */
        int64_t ub = (i0 < n0 ? lists[0]->v[i0].rest : 0) + (i1 < n1 ? lists[1]->v[i1].rest : 0);
        const lbent *x;
        if (i1 >= n1 || (i0 < n0 && lbent_before(&lists[0]->v[i0], &lists[1]->v[i1])))
            x = &lists[0]->v[i0++];
        else
            x = &lists[1]->v[i1++];
        if (x->start >= b || x->end <= a)
            continue;                      /* meets none of the span's hours */
        int64_t lbh = x->price * w->hours; /* no pool not yet visited is cheaper per GPU */
        int hopeless = 0;
        for (int i = 0; i < wn; i++) {
            if (done[i])
                continue;
            while (npend[i] > 0 && e->sc_kc[i].k < lbh) {
                below[i] += e->sc_kc[i].c;
                kc_pop(e->sc_kc, i, &npend[i]);
            }
            /* Settled: the pools seen hold gpus GPUs strictly cheaper than any other pool, so
             * the greedy fill takes no other (and ties none). */
            if (w->single ? (bestfull[i] < lbh || lbh > LH) : below[i] >= w->gpus) {
                done[i] = true;
                open--;
            } else if (aon_multi && cap[i] + ub < w->gpus) {
                hopeless++; /* all or none, and not enough GPUs left anywhere */
            }
        }
        if (open == 0)
            break;
        if (hopeless == open) {
            left_ub = ub;
            break;
        }
        uint32_t pi = x->pool;
        if (e->stamp[pi] == e->scan_no)
            continue;
        e->stamp[pi] = e->scan_no;
        const pool *p = POOL(e, pi);
        if (p->account == w->account)
            continue;
        grow((void **)&e->sc_cand, &e->sc_cand_cap, (size_t)(np + 1) * SEARCH_CHUNK, sizeof(cand));
        grow((void **)&e->sc_kc, &e->sc_kc_cap, (size_t)(np + 1) * SEARCH_CHUNK, sizeof(kc_ent));
        grow((void **)&e->sc_pools, &e->sc_pools_cap, np + 1, sizeof(uint32_t));
        cand *col = &e->sc_cand[(size_t)np * SEARCH_CHUNK];
        if (!pool_window(e, pi, cs, wn, w, col, 1))
            for (int i = 0; i < wn; i++)
                col[i] = (cand){0, 0, 0, pi};
        for (int i = 0; i < wn; i++) {
            if (col[i].c <= 0)
                continue;
            cap[i] += col[i].c;
            if (!done[i] && !w->single)
                kc_push(e->sc_kc, i, &npend[i], (kc_ent){col[i].k, col[i].c});
            if (col[i].c >= w->gpus && col[i].k <= LH && col[i].k < bestfull[i])
                bestfull[i] = col[i].k;
        }
        e->sc_pools[np++] = pi;
    }
    /* A start short of GPUs was never settled: it saw every pool, or gave up when even all the
     * rest could not make up the difference; cap (+ that rest) bounds what it can have. */
    if (cap_out)
        for (int i = 0; i < wn; i++)
            cap_out[i] = done[i] ? cap[i] : cap[i] + left_ub;
    return np;
}

int64_t resv_pool_kmin(engine *e, uint32_t pi, const want *w)
{
    int64_t kmin = INT64_MAX;
    cand col[SEARCH_CHUNK];
    for (int64_t cs = w->lo; cs <= w->hi; cs += SEARCH_CHUNK) {
        int wn = (int)(w->hi - cs + 1 < SEARCH_CHUNK ? w->hi - cs + 1 : SEARCH_CHUNK);
        if (!pool_window(e, pi, cs, wn, w, col, 1))
            continue;
        for (int i = 0; i < wn; i++)
            if (col[i].c > 0 && col[i].k < kmin)
                kmin = col[i].k;
    }
    return kmin;
}

/* Price of the G-th cheapest GPU among a start's candidates (they hold at least G). */
static int64_t kth_gpu(engine *e, const cand *row, size_t stride, uint32_t np, int32_t g)
{
    cand *sel = e->sc_sel;
    uint32_t n = 0;
    for (uint32_t j = 0; j < np; j++)
        if (row[j * stride].c > 0)
            sel[n++] = row[j * stride];
    qsort(sel, n, sizeof(cand), cand_cmp);
    int64_t cum = 0;
    for (uint32_t t = 0; t < n; t++) {
        cum += sel[t].c;
        if (cum >= g)
            return sel[t].k;
    }
    CAPX_ASSERT(!"kth_gpu: fewer than g GPUs");
    return 0;
}

void resv_search(engine *e, const want *w, plan *out)
{
    memset(out, 0, sizeof(*out));
    out->start = -1;
    out->shortfall = INT32_MAX;
    out->kg_hi = 0;
    lbent one;
    lblist one_list;
    const lblist *lists[2];
    if (w->lo > w->hi)
        return;
    int nl = offer_lists(e, w, lists, &one_list, &one);
    uint32_t n = 0;
    for (int i = 0; i < nl; i++)
        n += lists[i]->n;
    if (n == 0) {
        out->shortfall = w->gpus;
        return;
    }
    grow((void **)&e->sc_sel, &e->sc_sel_cap, n, sizeof(cand));
    grow((void **)&e->pieces, &e->pieces_cap, n, sizeof(piece));

    int32_t bq = 0;
    int64_t bc = 0, bs = -1, last_cs = -1;
    uint32_t last_np = 0;
    for (int64_t cs = w->lo; cs <= w->hi; cs += SEARCH_CHUNK) {
        int wn = (int)(w->hi - cs + 1 < SEARCH_CHUNK ? w->hi - cs + 1 : SEARCH_CHUNK);
        int64_t cap[SEARCH_CHUNK];
        uint32_t np = scan(e, w, cs, wn, lists, nl, cap);
        last_cs = cs;
        last_np = np;
        for (int i = 0; i < wn; i++) {
            int32_t q;
            int64_t cost;
            eval_start(e, w, &e->sc_cand[i], SEARCH_CHUNK, np, &q, &cost, false, NULL);
            if (q == 0 && w->aon && !w->single && bs < 0) {
                /* why it fails here, for the re-try rule in engine_offer */
                if (cap[i] < w->gpus) {
                    int32_t sf = (int32_t)(w->gpus - cap[i]);
                    out->shortfall = sf < out->shortfall ? sf : out->shortfall;
                } else {
                    int64_t kg = kth_gpu(e, &e->sc_cand[i], SEARCH_CHUNK, np, w->gpus);
                    out->kg_hi = kg > out->kg_hi ? kg : out->kg_hi;
                }
            }
            if (q > 0 && (q > bq || (q == bq && cost < bc))) {
                bq = q;
                bc = cost;
                bs = cs + i;
            }
        }
    }
    if (bs < 0)
        return;
    /*
     * The pieces at the best start. When it lies in the last chunk scanned (always, for an order
     * with at most SEARCH_CHUNK starts), that scan's figures are still in sc_cand: the pools it
     * visited beyond what this start needed cost strictly more than every pool the start takes,
     * so the greedy fill is the same. Otherwise the same scan for that start alone.
     */
    const cand *row = e->sc_cand;
    uint32_t np = last_np;
    if (bs >= last_cs)
        row = &e->sc_cand[bs - last_cs];
    else
        np = scan(e, w, bs, 1, lists, nl, NULL);
    int32_t q;
    int64_t cost;
    eval_start(e, w, row, SEARCH_CHUNK, np, &q, &cost, true, &out->npieces);
    CAPX_ASSERT(q == bq && cost == bc);
    out->start = bs;
    out->gpus = q;
    out->cost = cost;
}

/* Walk the contracts of a plan: one per (piece, offer segment). */
typedef void (*segment_fn)(engine *e, void *ctx, uint32_t pi, const offer *of, int32_t gpus,
                           int64_t s0, int64_t s1);

static void walk_piece(engine *e, piece pc, int64_t s, int64_t end, segment_fn fn, void *ctx)
{
    const pool *pl = POOL(e, pc.pool);
    int64_t at = s;
    for (uint32_t j = pool_offer_from(e, pl, s); j < pl->noffers && at < end; j++) {
        const offer *of = OFFER(e, pl->offers[j]);
        CAPX_ASSERT(of->start <= at); /* every hour of a piece is offered */
        int64_t s1 = of->end < end ? of->end : end;
        fn(e, ctx, pc.pool, of, pc.gpus, at, s1);
        at = s1;
    }
    CAPX_ASSERT(at == end);
}

typedef struct apply_ctx {
    order *o;
    int64_t total;
    uint32_t cur_pool;
} apply_ctx;

static void apply_segment(engine *e, void *vctx, uint32_t pi, const offer *of, int32_t gpus,
                          int64_t s0, int64_t s1)
{
    apply_ctx *ac = vctx;
    pool *p = POOL(e, pi);
    market *m = MARKET(e, p->market);
    /* No pool-hour oversold (release assertion). */
    CAPX_ASSERT(soldmap_max(&p->sold, &e->arena, s0, s1) + gpus <= of->gpus);
    int64_t amount;
    CAPX_ASSERT(capx_mul3_i64(of->price, gpus, s1 - s0, &amount) == 0);
    ac->total += amount;
    ev_fields ev = {0};
    ev.kind = ENGINE_EV_FILL;
    ev.order = ac->o->id;
    ev.offer = of->id;
    ev.pool = p->id;
    ev.buyer = ac->o->account;
    ev.provider = p->account;
    ev.model = m->model;
    ev.region = m->region;
    ev.seq = e->next_trade++;
    ev.gpus = gpus;
    ev.filled = ac->o->filled;
    ev.start = s0;
    ev.end = s1;
    ev.price = of->price;
    ev.amount = amount;
    engine_trade *tr = &m->trades[m->trade_head];
    *tr = (engine_trade){ev.seq, of->price, gpus, s0, s1, e->now};
    m->trade_head = (m->trade_head + 1) % ENGINE_TRADES_KEPT;
    if (m->ntrades < ENGINE_TRADES_KEPT)
        m->ntrades++;
    m->last_price = of->price;
    emit(e, &ev);
}

void resv_apply(engine *e, order *o, const want *w, const plan *p)
{
    apply_ctx ac = {o, 0, NONE32};
    int64_t end = p->start + w->hours;
    for (uint32_t k = 0; k < p->npieces; k++) {
        piece pc = e->pieces[k];
        o->gpus -= pc.gpus;
        o->filled += pc.gpus;
        CAPX_ASSERT(o->gpus >= 0);
        walk_piece(e, pc, p->start, end, apply_segment, &ac);
        soldmap_add(&POOL(e, pc.pool)->sold, &e->arena, p->start, end, pc.gpus);
    }
    /* Every fill within its limit; all-or-none respected. */
    CAPX_ASSERT(ac.total == p->cost);
    CAPX_ASSERT(ac.total <= w->limit * w->hours * p->gpus);
    CAPX_ASSERT(!w->aon || p->gpus == w->gpus);
}

typedef struct pieces_ctx {
    engine_piece *out;
    size_t cap, n;
    int64_t total;
} pieces_ctx;

static void piece_segment(engine *e, void *vctx, uint32_t pi, const offer *of, int32_t gpus,
                          int64_t s0, int64_t s1)
{
    pieces_ctx *pc = vctx;
    int64_t amount = of->price * gpus * (s1 - s0);
    if (pc->n < pc->cap)
        pc->out[pc->n] = (engine_piece){POOL(e, pi)->id, of->id, s0, s1, of->price, amount, gpus};
    pc->n++;
    pc->total += amount;
}

void resv_pieces(engine *e, const want *w, const plan *p, engine_quote_result *q, engine_piece *out,
                 size_t cap)
{
    pieces_ctx pc = {out, cap, 0, 0};
    for (uint32_t k = 0; k < p->npieces; k++)
        walk_piece(e, e->pieces[k], p->start, p->start + w->hours, piece_segment, &pc);
    q->fillable = true;
    q->gpus = p->gpus;
    q->start = p->start;
    q->total = pc.total;
    q->npieces = pc.n;
}
