/*
 * settle.c — see settle.h.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/ids.h"
#include "server/log.h"
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

void settle_reset(void)
{
    free(debts);
    debts = NULL;
    ndebts = capdebts = 0;
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
static void pay_debts(struct market *m, struct account *p, const char *tag)
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
    int64_t delivered = 0, fee = 0, refund = 0;
    for (int64_t h = h1; h < h2; h += HOUR) {
        int64_t lost = market_contract_lost(c, h), cost, back;
        CAPX_ASSERT(lost >= 0 && lost <= c->gpus);
        CAPX_ASSERT(capx_mul_i64(c->price, c->gpus - lost, &cost) == 0);
        CAPX_ASSERT(capx_mul_i64(c->price, lost, &back) == 0);
        CAPX_ASSERT(capx_add_i64(delivered, cost, &delivered) == 0);
        CAPX_ASSERT(capx_add_i64(fee, fee_of(m, cost), &fee) == 0);
        CAPX_ASSERT(capx_add_i64(refund, back, &refund) == 0);
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
    pay_debts(m, c->provider, id);
    int64_t credit = 0;
    CAPX_ASSERT(capx_mul_i64(refund, market_app(m)->cfg.sla_credit_pct, &credit) == 0);
    credit /= 100;
    if (credit > 0) {
        int64_t pay = credit < c->provider->available ? credit : c->provider->available;
        snprintf(id, sizeof id, "sla:%s:%s", c->o.id, tag);
        move(m, id, c->provider, CASH, c->buyer, CASH, pay, "sla_credit", c->o.id);
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

/* Charges one bid's hour ending at t and renews its hold (or stops it). */
static void spot_hour(struct market *m, struct order *b, int64_t t)
{
    int64_t charge = b->spot_acc / HOUR;
    struct pool *p = b->meter_pool ? b->meter_pool : b->running_pool;
    if (charge > 0 && p && b->hold_id[0]) {
        b->spot_acc -= charge * HOUR;
        market_money_post(m, b, charge);
        char id[128];
        int64_t fee = fee_of(m, charge);
        snprintf(id, sizeof id, "spot:%s:%" PRId64, b->o.id, t / HOUR);
        move(m, id, b->acct, ESCROW, p->acct, CASH, charge - fee, "spot_delivery", b->o.id);
        snprintf(id, sizeof id, "spotfee:%s:%" PRId64, b->o.id, t / HOUR);
        move(m, id, b->acct, ESCROW, NULL, FEES, fee, "fee", b->o.id);
        pay_debts(m, p->acct, id);
        market_dirty(m, &b->o);
    }
    if (!live_bid(b) || b->hold_id[0])
        return;
    int64_t need;
    CAPX_ASSERT(capx_mul_i64(b->limit_price, b->gpus, &need) == 0);
    if (need <= b->acct->available) {
        market_money_hold(m, b, need);
        return;
    }
    /* Cannot fund the next hour: stopped, never on credit. */
    if (engine_cancel_order(market_engine(m), t, b->o.num) == 0)
        market_apply_events(m);
    b->status = "stopped";
    b->running_pool = NULL;
    market_dirty(m, &b->o);
    log_info("msg=\"spot bid stopped: cannot fund the next hour\" order=%s", b->o.id);
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
    return 0;
}
