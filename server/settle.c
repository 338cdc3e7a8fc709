/*
 * settle.c — see settle.h.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/ids.h"
#include "server/log.h"
#include "server/sched.h"
#include "server/settle.h"

#define HOUR 3600

/* An SLA credit a provider could not pay yet. */
struct debt {
    char id[112];
    struct account *provider, *buyer;
    int64_t remaining;
};

static struct debt *debts;
static int ndebts, capdebts;

/* A provider's earnings per delivered hour (dense by hour from `base`), what this turn adds
   to the provider_earnings table, and what was paid out. */
struct slot {
    int64_t net;                         /* gross less fees, all turns */
    int64_t d_gpu_hours, d_gross, d_fee; /* this turn's additions, not yet written */
};
struct earnings {
    int64_t base; /* hour index (Unix seconds / 3600) of s[0] */
    struct slot *s;
    int64_t n;
    int64_t dmin, dmax; /* hour indices this turn touched, dmin > dmax when none */
    int64_t paid;       /* Σ payouts */
    int64_t paid_until; /* latest payout period end */
    char provider[40];
};
static struct hmap earnings; /* provider id -> struct earnings * */

/* This turn's settlement records (table settlements). */
struct srow {
    char id[160];
    const char *kind;
    char ref[128];
    struct account *provider, *buyer;
    int64_t h1, h2, gpu_hours, lost, gross, fee, refund, sla_paid, sla_debt, at;
};
static struct srow *srows;
static int nsrows, capsrows;

static struct srow *srow_new(void)
{
    if (nsrows == capsrows) {
        capsrows = capsrows ? capsrows * 2 : 256;
        srows = xrealloc(srows, (size_t)capsrows * sizeof *srows);
    }
    struct srow *r = &srows[nsrows++];
    memset(r, 0, sizeof *r);
    return r;
}

void settle_reset(void)
{
    free(debts);
    debts = NULL;
    ndebts = capdebts = 0;
    size_t i = 0;
    const char *k;
    void *v;
    while (hmap_next(&earnings, &i, &k, &v)) {
        free(((struct earnings *)v)->s);
        free(v);
    }
    hmap_free(&earnings);
    hmap_init(&earnings);
    nsrows = 0;
}

static struct earnings *earnings_of(const char *provider)
{
    struct earnings *e = hmap_get(&earnings, provider);
    if (!e) {
        e = xcalloc(1, sizeof *e);
        e->dmin = INT64_MAX;
        e->dmax = INT64_MIN;
        snprintf(e->provider, sizeof e->provider, "%s", provider);
        hmap_put(&earnings, provider, e);
    }
    return e;
}

/* A century of hours: one provider's earnings spanning more is a bug, not a market (the
   simulated clock moves at most 366 days a call). */
#define EARN_MAX_HOURS (24 * 366 * 100)

/* The slot of an hour (Unix seconds of its start), growing the dense array as needed. */
static struct slot *slot_of(struct earnings *e, int64_t hour)
{
    int64_t h = hour / HOUR;
    if (e->n == 0) {
        e->base = h;
        e->n = 1;
        e->s = xcalloc(1, sizeof *e->s);
    } else if (h < e->base) {
        int64_t add = e->base - h;
        e->s = xrealloc(e->s, (size_t)(e->n + add) * sizeof *e->s);
        memmove(e->s + add, e->s, (size_t)e->n * sizeof *e->s);
        memset(e->s, 0, (size_t)add * sizeof *e->s);
        e->n += add;
        e->base = h;
    } else if (h >= e->base + e->n) {
        int64_t n = h - e->base + 1, cap = e->n;
        while (cap < n)
            cap *= 2;
        if (cap > EARN_MAX_HOURS && n <= EARN_MAX_HOURS)
            cap = EARN_MAX_HOURS; /* (doubling must not trip the bound below by itself) */
        e->s = xrealloc(e->s, (size_t)cap * sizeof *e->s);
        memset(e->s + e->n, 0, (size_t)(cap - e->n) * sizeof *e->s);
        e->n = cap;
    }
    CAPX_ASSERT(e->n <= EARN_MAX_HOURS);
    return &e->s[h - e->base];
}

static void earned_mem(struct earnings *e, int64_t hour, int64_t net)
{
    slot_of(e, hour)->net += net;
}

/* Records a delivered hour's earnings (memory now, the database with this turn). */
static void earned(struct earnings *e, int64_t hour, int64_t gpu_hours, int64_t gross, int64_t fee)
{
    struct slot *sl = slot_of(e, hour);
    sl->net += gross - fee;
    sl->d_gpu_hours += gpu_hours;
    sl->d_gross += gross;
    sl->d_fee += fee;
    if (hour / HOUR < e->dmin)
        e->dmin = hour / HOUR;
    if (hour / HOUR > e->dmax)
        e->dmax = hour / HOUR;
}

/* Appends "x," to a growing buffer. */
static void arr_add(char **buf, size_t *len, size_t *cap, const char *x)
{
    size_t n = strlen(x);
    if (*len + n + 3 > *cap) {
        *cap = (*len + n + 3) * 2;
        *buf = xrealloc(*buf, *cap);
    }
    memcpy(*buf + *len, x, n);
    *len += n;
    (*buf)[(*len)++] = ',';
    (*buf)[*len] = '\0';
}

/* A PostgreSQL array literal built column by column. */
struct col {
    char *buf;
    size_t len, cap;
};

static void col_start(struct col *c)
{
    memset(c, 0, sizeof *c);
    arr_add(&c->buf, &c->len, &c->cap, "{");
}

static void col_i64(struct col *c, int64_t v)
{
    char b[24];
    snprintf(b, sizeof b, "%" PRId64, v);
    arr_add(&c->buf, &c->len, &c->cap, b);
}

static void col_str(struct col *c, const char *s)
{
    arr_add(&c->buf, &c->len, &c->cap, s); /* ids and kinds: [a-z0-9_:-] only */
}

/* Closes "{,a,b," into "{a,b}" (or "{}"). */
static const char *col_end(struct col *c)
{
    memmove(c->buf + 1, c->buf + 2, c->len - 1);
    c->len--;
    c->buf[c->len - 1] = '}';
    if (c->len == 1) { /* no items: "{" became "}" */
        c->buf[0] = '{';
        c->buf[1] = '}';
        c->buf[2] = '\0';
    }
    return c->buf;
}

static void emit_settlements(struct market *m)
{
    if (nsrows == 0)
        return;
    struct col c[15];
    for (int i = 0; i < 15; i++)
        col_start(&c[i]);
    for (int i = 0; i < nsrows; i++) {
        struct srow *r = &srows[i];
        col_str(&c[0], r->id);
        col_str(&c[1], r->kind);
        col_str(&c[2], r->ref);
        col_str(&c[3], r->provider->id);
        col_str(&c[4], r->buyer->id);
        col_i64(&c[5], r->h1);
        col_i64(&c[6], r->h2);
        col_i64(&c[7], r->gpu_hours);
        col_i64(&c[8], r->lost);
        col_i64(&c[9], r->gross);
        col_i64(&c[10], r->fee);
        col_i64(&c[11], r->refund);
        col_i64(&c[12], r->sla_paid);
        col_i64(&c[13], r->sla_debt);
        col_i64(&c[14], r->at);
    }
    const char *v[15];
    for (int i = 0; i < 15; i++)
        v[i] = col_end(&c[i]);
    market_sql(m,
               "INSERT INTO settlements (id, kind, ref, provider_id, buyer_id, hours_from, "
               "hours_to, gpu_hours, lost_gpu_hours, gross, fee, refund, sla_paid, sla_debt, "
               "settled_at) SELECT a, b, c, d, e, to_timestamp(f), to_timestamp(g), h, i, j, k, "
               "l, n, o, to_timestamp(p) FROM unnest($1::text[], $2::text[], $3::text[], "
               "$4::text[], $5::text[], $6::bigint[], $7::bigint[], $8::bigint[], $9::bigint[], "
               "$10::bigint[], $11::bigint[], $12::bigint[], $13::bigint[], $14::bigint[], "
               "$15::bigint[]) AS u(a, b, c, d, e, f, g, h, i, j, k, l, n, o, p)",
               15, v);
    for (int i = 0; i < 15; i++)
        free(c[i].buf);
    nsrows = 0;
}

/* Writes this turn's earnings rows as one statement over arrays. */
static void emit_earnings(struct market *m)
{
    struct col c[5];
    int rows = 0;
    size_t it = 0;
    const char *k;
    void *v;
    for (int i = 0; i < 5; i++)
        col_start(&c[i]);
    while (hmap_next(&earnings, &it, &k, &v)) {
        struct earnings *e = v;
        for (int64_t h = e->dmin; h <= e->dmax; h++) {
            struct slot *sl = &e->s[h - e->base];
            if (sl->d_gross == 0 && sl->d_gpu_hours == 0)
                continue;
            col_str(&c[0], e->provider);
            col_i64(&c[1], h * HOUR);
            col_i64(&c[2], sl->d_gpu_hours);
            col_i64(&c[3], sl->d_gross);
            col_i64(&c[4], sl->d_fee);
            sl->d_gpu_hours = sl->d_gross = sl->d_fee = 0;
            rows++;
        }
        e->dmin = INT64_MAX;
        e->dmax = INT64_MIN;
    }
    const char *vals[5];
    for (int i = 0; i < 5; i++)
        vals[i] = col_end(&c[i]);
    if (rows)
        market_sql(m,
                   "INSERT INTO provider_earnings (provider_id, hour, gpu_hours, gross, fees) "
                   "SELECT p, to_timestamp(h), g, gr, f FROM unnest($1::text[], $2::bigint[], "
                   "$3::bigint[], $4::bigint[], $5::bigint[]) AS u(p, h, g, gr, f) "
                   "ON CONFLICT (provider_id, hour) DO UPDATE SET gpu_hours = "
                   "provider_earnings.gpu_hours + EXCLUDED.gpu_hours, gross = "
                   "provider_earnings.gross + EXCLUDED.gross, fees = provider_earnings.fees + "
                   "EXCLUDED.fees",
                   5, vals);
    for (int i = 0; i < 5; i++)
        free(c[i].buf);
}

enum side { CASH, ESCROW, FEES };

/* One posted transfer between participants' accounts (or to the fee account), keeping the
   mirror: money leaving escrow leaves `held`, leaving cash leaves `available`. */
static void move(struct market *m, const char *id, struct account *from, enum side fs,
                 struct account *to, enum side ts, int64_t amount, const char *kind,
                 const char *ref)
{
    char dr[LEDGER_ACCOUNT_MAX + 1], cr[LEDGER_ACCOUNT_MAX + 1];
    if (amount <= 0)
        return;
    CAPX_ASSERT(fs != FEES);
    if (fs == CASH) {
        ledger_cash_id(from->id, dr, sizeof dr);
        from->available -= amount;
    } else {
        ledger_escrow_id(from->id, dr, sizeof dr);
        from->held -= amount;
    }
    if (ts == FEES) {
        snprintf(cr, sizeof cr, "%s", LEDGER_FEES);
    } else if (ts == CASH) {
        ledger_cash_id(to->id, cr, sizeof cr);
        CAPX_ASSERT(capx_add_i64(to->available, amount, &to->available) == 0);
    } else {
        ledger_escrow_id(to->id, cr, sizeof cr);
        CAPX_ASSERT(capx_add_i64(to->held, amount, &to->held) == 0);
    }
    market_check_mirror(from);
    if (to)
        market_check_mirror(to);
    struct ledger_transfer x = {.id = id,
                                .debit_account = dr,
                                .credit_account = cr,
                                .amount = amount,
                                .kind = kind,
                                .ref = ref,
                                .flags = LEDGER_POSTED};
    market_transfer(m, &x);
}

static int64_t fee_of(struct market *m, int64_t cost)
{
    int64_t x;
    CAPX_ASSERT(capx_mul_i64(cost, market_app(m)->cfg.fee_bps, &x) == 0);
    return x / 10000;
}

/* Pays the provider's open debts from its available cash, oldest first. */
/* Pays the provider's open debts from its available cash, oldest first; each repayment is a
   settlement record of its own (kind debt_payment) so reports count the credit when paid. */
static void pay_debts(struct market *m, struct account *p, const char *tag, int64_t h1, int64_t h2)
{
    for (int i = 0; i < ndebts && p->available > 0; i++) {
        struct debt *d = &debts[i];
        if (d->provider != p || d->remaining == 0)
            continue;
        int64_t pay = d->remaining < p->available ? d->remaining : p->available;
        char id[128], rem[24];
        snprintf(id, sizeof id, "debt:%s:%s", d->id, tag);
        move(m, id, p, CASH, d->buyer, CASH, pay, "sla_credit", d->id);
        d->remaining -= pay;
        struct srow *row = srow_new();
        snprintf(row->id, sizeof row->id, "%s:%s", d->id, tag);
        row->kind = "debt_payment";
        snprintf(row->ref, sizeof row->ref, "%s", d->id);
        row->provider = p;
        row->buyer = d->buyer;
        row->h1 = h1;
        row->h2 = h2;
        row->sla_paid = pay;
        row->at = market_now(m);
        snprintf(rem, sizeof rem, "%" PRId64, d->remaining);
        const char *v[] = {d->id, rem};
        market_sql(m, "UPDATE provider_debts SET remaining = $2 WHERE id = $1", 2, v);
    }
}

/* Settles the contract's hours [settled_until, until). */
static void settle_range(struct market *m, struct contract *c, int64_t until)
{
    int64_t h1 = c->settled_until, h2 = until;
    if (h2 <= h1)
        return;
    CAPX_ASSERT(h1 % HOUR == 0 && h2 % HOUR == 0 && h1 >= c->start && h2 <= c->end);
    int64_t delivered = 0, fee = 0, refund = 0, gpu_hours = 0, lost_hours = 0;
    struct earnings *pe = earnings_of(c->provider->id);
    for (int64_t h = h1; h < h2; h += HOUR) {
        int64_t lost = market_contract_lost(c, h), cost, back;
        CAPX_ASSERT(lost >= 0 && lost <= c->gpus);
        CAPX_ASSERT(capx_mul_i64(c->price, c->gpus - lost, &cost) == 0);
        CAPX_ASSERT(capx_mul_i64(c->price, lost, &back) == 0);
        CAPX_ASSERT(capx_add_i64(delivered, cost, &delivered) == 0);
        CAPX_ASSERT(capx_add_i64(fee, fee_of(m, cost), &fee) == 0);
        CAPX_ASSERT(capx_add_i64(refund, back, &refund) == 0);
        if (cost > 0)
            earned(pe, h, c->gpus - lost, cost, fee_of(m, cost));
        gpu_hours += c->gpus - lost;
        lost_hours += lost;
    }
    char tag[64], id[128];
    snprintf(tag, sizeof tag, "%" PRId64 "-%" PRId64, h1 / HOUR, h2 / HOUR);
    snprintf(id, sizeof id, "dlv:%s:%s", c->o.id, tag);
    move(m, id, c->buyer, ESCROW, c->provider, CASH, delivered - fee, "delivery", c->o.id);
    snprintf(id, sizeof id, "fee:%s:%s", c->o.id, tag);
    move(m, id, c->buyer, ESCROW, NULL, FEES, fee, "fee", c->o.id);
    snprintf(id, sizeof id, "rfd:%s:%s", c->o.id, tag);
    move(m, id, c->buyer, ESCROW, c->buyer, CASH, refund, "refund", c->o.id);
    snprintf(id, sizeof id, "%s:%s", c->o.id, tag);
    pay_debts(m, c->provider, id, h1, h2);
    /* floor(refund × pct / 100) without the product: a contract's amount is up to ≈ 8.8e17
       and pct up to 1,000, so refund × pct alone could pass INT64_MAX. */
    int64_t pct = market_app(m)->cfg.sla_credit_pct, credit = 0, frac = (refund % 100) * pct / 100;
    CAPX_ASSERT(capx_mul_i64(refund / 100, pct, &credit) == 0 &&
                capx_add_i64(credit, frac, &credit) == 0);
    struct srow *row = srow_new();
    snprintf(row->id, sizeof row->id, "%s:%s", c->o.id, tag);
    row->kind = "reservation";
    snprintf(row->ref, sizeof row->ref, "%s", c->o.id);
    row->provider = c->provider;
    row->buyer = c->buyer;
    row->h1 = h1;
    row->h2 = h2;
    row->gpu_hours = gpu_hours;
    row->lost = lost_hours;
    row->gross = delivered;
    row->fee = fee;
    row->refund = refund;
    row->at = market_now(m);
    if (credit > 0) {
        int64_t pay = credit < c->provider->available ? credit : c->provider->available;
        snprintf(id, sizeof id, "sla:%s:%s", c->o.id, tag);
        move(m, id, c->provider, CASH, c->buyer, CASH, pay, "sla_credit", c->o.id);
        row->sla_paid = pay;
        row->sla_debt = credit - pay;
        if (credit > pay) {
            if (ndebts == capdebts) {
                capdebts = capdebts ? capdebts * 2 : 16;
                debts = xrealloc(debts, (size_t)capdebts * sizeof *debts);
            }
            struct debt *d = &debts[ndebts++];
            snprintf(d->id, sizeof d->id, "debt_%.27s_%.60s", c->o.id + 4, tag);
            d->provider = c->provider;
            d->buyer = c->buyer;
            d->remaining = credit - pay;
            char amt[24], now[24];
            snprintf(amt, sizeof amt, "%" PRId64, d->remaining);
            snprintf(now, sizeof now, "%" PRId64, market_now(m));
            const char *v[] = {d->id, d->provider->id, d->buyer->id, c->o.id, amt, now};
            market_sql(
                m,
                "INSERT INTO provider_debts (id, provider_id, buyer_id, contract_id, amount, "
                "remaining, created_at) VALUES ($1, $2, $3, $4, $5, $5, to_timestamp($6))",
                6, v);
        }
    }
    CAPX_ASSERT(capx_add_i64(c->settled, delivered + refund, &c->settled) == 0);
    CAPX_ASSERT(c->settled <= c->amount);
    c->settled_until = h2;
    if (h2 == c->end)
        CAPX_ASSERT(c->settled == c->amount);
    market_dirty(m, &c->o);
}

static int settles(const struct contract *c)
{
    return !strcmp(c->status, "active") || !strcmp(c->status, "completed");
}

void settle_flush(struct market *m, int64_t t)
{
    int64_t until = t - t % HOUR;
    uint64_t cur = 0;
    struct obj *o;
    while ((o = market_next(m, OBJ_CONTRACT, &cur)) != NULL) {
        struct contract *c = (struct contract *)o;
        if (settles(c) && c->settled_until < c->end)
            settle_range(m, c, until < c->end ? until : c->end);
    }
    emit_earnings(m);
    emit_settlements(m);
}

void settle_spot_minute(struct market *m, int64_t t)
{
    UNUSED(t);
    uint64_t cur = 0;
    struct obj *o;
    while ((o = market_next(m, OBJ_ORDER, &cur)) != NULL) {
        struct order *b = (struct order *)o;
        if (!b->spot || strcmp(b->status, "running") != 0 || !b->running_pool)
            continue;
        int64_t add;
        CAPX_ASSERT(capx_mul3_i64(b->spot_price, b->gpus, 60, &add) == 0);
        CAPX_ASSERT(capx_add_i64(b->spot_acc, add, &b->spot_acc) == 0);
        b->meter_pool = b->running_pool;
        market_dirty(m, &b->o);
    }
}

static int live_bid(const struct order *b)
{
    return !strcmp(b->status, "running") || !strcmp(b->status, "pending") ||
           !strcmp(b->status, "preempted");
}

/* Pays `amount` of a bid's hour ending at t from its escrow to `to` (the pool's provider, or a
   holder who lent GPUs: `lender` names that contract) less the fee, with its record. part: the
   charge of a stretch that ended inside the hour (the bid was preempted or cancelled), named
   apart from the hour's own charge by the number of the hold it came from. */
static void spot_pay(struct market *m, struct order *b, struct account *to, int64_t amount,
                     int64_t t, const char *lender, int64_t part)
{
    char rid[160], id[192], seg[32] = "";
    int64_t fee = fee_of(m, amount);
    if (part)
        snprintf(seg, sizeof seg, ":p%" PRId64, part);
    if (lender)
        snprintf(rid, sizeof rid, "%s:%" PRId64 "%s:%s", b->o.id, t / HOUR, seg, lender);
    else
        snprintf(rid, sizeof rid, "%s:%" PRId64 "%s", b->o.id, t / HOUR, seg);
    snprintf(id, sizeof id, "spot:%s", rid);
    move(m, id, b->acct, ESCROW, to, CASH, amount - fee, "spot_delivery", b->o.id);
    earned(earnings_of(to->id), t - HOUR, 0, amount, fee);
    struct srow *row = srow_new();
    snprintf(row->id, sizeof row->id, "%s", rid);
    row->kind = "spot";
    snprintf(row->ref, sizeof row->ref, "%s", b->o.id);
    row->provider = to;
    row->buyer = b->acct;
    row->h1 = t - HOUR;
    row->h2 = t;
    row->gross = amount;
    row->fee = fee;
    row->at = market_now(m);
    snprintf(id, sizeof id, "spotfee:%s", rid);
    move(m, id, b->acct, ESCROW, NULL, FEES, fee, "fee", b->o.id);
    pay_debts(m, to, id, t - HOUR, t);
}

/* Charges what a bid's meter holds in whole micro-dollars (the rest stays for later) from its
   hold, for the hour ending at t, to whoever supplied the GPUs: the pool's unsold ones pay its
   provider; GPUs an idle holder lent pay that holder. The charge is split by the GPUs each
   supplies when it is charged (the last minute's placement: call this before the placement
   goes), the provider taking the rounding. part: see spot_pay. */
static void spot_charge(struct market *m, struct order *b, int64_t t, int64_t part)
{
    int64_t charge = b->spot_acc / HOUR;
    struct pool *p = b->meter_pool ? b->meter_pool : b->running_pool;
    if (charge <= 0 || !p || !b->hold_id[0])
        return;
    b->spot_acc -= charge * HOUR;
    market_money_post(m, b, charge);
    struct contract *hosts[64];
    int64_t hgpus[64];
    int nh = b->running_pool == p ? sched_spot_hosts(m, b, hosts, hgpus, 64) : 0;
    int64_t rest = charge;
    for (int k = 0; k < nh; k++) {
        if (!hosts[k] || hgpus[k] <= 0 || b->gpus <= 0)
            continue;
        int64_t share;
        CAPX_ASSERT(capx_mul_i64(charge, hgpus[k], &share) == 0);
        share /= b->gpus;
        if (share <= 0 || share > rest)
            continue;
        rest -= share;
        spot_pay(m, b, hosts[k]->buyer, share, t, hosts[k]->o.id, part);
    }
    if (rest > 0)
        spot_pay(m, b, p->acct, rest, t, NULL, part);
    market_dirty(m, &b->o);
}

/* A live bid without a hold takes a new one for an hour at its limit; 0 when it cannot fund
   it (the caller then stops it: never on credit). */
static int spot_rehold(struct market *m, struct order *b)
{
    if (!live_bid(b) || b->hold_id[0])
        return 1;
    int64_t need;
    CAPX_ASSERT(capx_mul_i64(b->limit_price, b->gpus, &need) == 0);
    if (need > b->acct->available)
        return 0;
    market_money_hold(m, b, need);
    return 1;
}

void settle_spot_unfunded(struct market *m, struct order *b, int64_t t)
{
    if (engine_cancel_order(market_engine(m), t, b->o.num) == 0)
        market_apply_events(m);
    b->status = "stopped";
    b->running_pool = NULL;
    market_dirty(m, &b->o);
    log_info("msg=\"spot bid stopped: cannot fund the next hour\" order=%s", b->o.id);
}

int settle_spot_stop(struct market *m, struct order *b, int64_t now, int bids_on)
{
    spot_charge(m, b, (now + HOUR - 1) / HOUR * HOUR, b->hold_count);
    b->meter_pool = NULL;
    return bids_on ? spot_rehold(m, b) : 1;
}

/* Charges one bid's hour ending at t and renews its hold (or stops it). */
static void spot_hour(struct market *m, struct order *b, int64_t t)
{
    spot_charge(m, b, t, 0);
    if (!spot_rehold(m, b))
        settle_spot_unfunded(m, b, t);
}

void settle_hour(struct market *m, int64_t t)
{
    uint64_t cur = 0;
    struct obj *o;
    while ((o = market_next(m, OBJ_ORDER, &cur)) != NULL) {
        struct order *b = (struct order *)o;
        if (b->spot && (b->spot_acc >= HOUR || live_bid(b)))
            spot_hour(m, b, t);
    }
    /* Contracts that end now settle now, so settlement follows time across contracts. */
    cur = 0;
    while ((o = market_next(m, OBJ_CONTRACT, &cur)) != NULL) {
        struct contract *c = (struct contract *)o;
        if (c->end == t && settles(c))
            settle_range(m, c, t);
    }
    emit_earnings(m);
    emit_settlements(m);
}

int settle_load(struct market *m, PGconn *c, char *err, size_t errlen)
{
    settle_reset();
    PGresult *r = PQexec(c, "SELECT id, provider_id, buyer_id, remaining FROM provider_debts "
                            "WHERE remaining > 0 ORDER BY created_at, id");
    if (PQresultStatus(r) != PGRES_TUPLES_OK) {
        snprintf(err, errlen, "loading provider debts: %s", PQresultErrorMessage(r));
        PQclear(r);
        return -1;
    }
    struct app *a = market_app(m);
    for (int i = 0; i < PQntuples(r); i++) {
        if (ndebts == capdebts) {
            capdebts = capdebts ? capdebts * 2 : 16;
            debts = xrealloc(debts, (size_t)capdebts * sizeof *debts);
        }
        struct debt *d = &debts[ndebts++];
        snprintf(d->id, sizeof d->id, "%s", PQgetvalue(r, i, 0));
        d->provider = hmap_get(&a->accounts, PQgetvalue(r, i, 1));
        d->buyer = hmap_get(&a->accounts, PQgetvalue(r, i, 2));
        d->remaining = strtoll(PQgetvalue(r, i, 3), NULL, 10);
        CAPX_ASSERT(d->provider && d->buyer);
    }
    PQclear(r);
    r = PQexec(c, "SELECT provider_id, extract(epoch FROM hour)::bigint, gross - fees FROM "
                  "provider_earnings ORDER BY provider_id, hour");
    if (PQresultStatus(r) != PGRES_TUPLES_OK) {
        snprintf(err, errlen, "loading earnings: %s", PQresultErrorMessage(r));
        PQclear(r);
        return -1;
    }
    for (int i = 0; i < PQntuples(r); i++)
        earned_mem(earnings_of(PQgetvalue(r, i, 0)), strtoll(PQgetvalue(r, i, 1), NULL, 10),
                   strtoll(PQgetvalue(r, i, 2), NULL, 10));
    PQclear(r);
    r = PQexec(c, "SELECT provider_id, sum(amount)::bigint, "
                  "max(extract(epoch FROM until))::bigint FROM payouts GROUP BY provider_id");
    if (PQresultStatus(r) != PGRES_TUPLES_OK) {
        snprintf(err, errlen, "loading payouts: %s", PQresultErrorMessage(r));
        PQclear(r);
        return -1;
    }
    for (int i = 0; i < PQntuples(r); i++) {
        struct earnings *e = earnings_of(PQgetvalue(r, i, 0));
        e->paid = strtoll(PQgetvalue(r, i, 1), NULL, 10);
        e->paid_until = strtoll(PQgetvalue(r, i, 2), NULL, 10);
    }
    PQclear(r);
    return 0;
}

int64_t settle_payout(struct market *m, struct account *p, int64_t until, char *id, size_t idlen)
{
    struct earnings *e = earnings_of(p->id);
    if (until <= e->paid_until)
        return -1; /* this period (or a later one) was paid out already */
    int64_t earned_until = 0;
    for (int64_t i = 0; i < e->n && (e->base + i + 1) * HOUR <= until; i++)
        earned_until += e->s[i].net;
    int64_t amount = earned_until - e->paid;
    if (amount > p->available)
        amount = p->available;
    if (amount < 0)
        amount = 0;
    snprintf(id, idlen, "payout:%s:%" PRId64, p->id, until / HOUR);
    if (amount > 0) {
        struct ledger_transfer x = {
            .id = id, .amount = amount, .kind = "payout", .ref = p->id, .flags = LEDGER_POSTED};
        char cash[LEDGER_ACCOUNT_MAX + 1];
        ledger_cash_id(p->id, cash, sizeof cash);
        x.debit_account = cash;
        x.credit_account = LEDGER_WORLD;
        p->available -= amount;
        market_check_mirror(p);
        market_transfer(m, &x);
    }
    e->paid += amount;
    e->paid_until = until;
    char amt[24], u[24], now[24];
    snprintf(amt, sizeof amt, "%" PRId64, amount);
    snprintf(u, sizeof u, "%" PRId64, until);
    snprintf(now, sizeof now, "%" PRId64, market_now(m));
    const char *v[] = {p->id, u, amt, amount > 0 ? id : NULL, now};
    market_sql(m,
               "INSERT INTO payouts (provider_id, until, amount, transfer_id, created_at) VALUES "
               "($1, to_timestamp($2), $3, $4, to_timestamp($5))",
               5, v);
    return amount;
}
