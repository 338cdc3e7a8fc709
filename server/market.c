/*
 * market.c — see market.h: the state, its rebuild from the database, the group commit,
 * money through the ledger, and the engine's events applied to the objects.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/ids.h"
#include "common/timefmt.h"
#include "server/db.h"
#include "server/log.h"
#include "server/market.h"
#include "server/sched.h"
#include "server/settle.h"

#define HOUR 3600

/* A queued answer. */
struct pending_reply {
    struct app_req *r;
    int status;
    char *body;
    char *kept; /* what is saved for replays when it differs from body (no secret), or NULL */
};

/* One turn: everything to commit together. */
struct turn {
    struct db_job *job;          /* market_sql statements, in order */
    struct ledger_batch *ledger; /* the turn's transfers, one ledger_submit; NULL if none */
    struct pending_reply *replies;
    int nreplies, capreplies;
    struct obj **dirty;
    int ndirty, capdirty;
    int64_t sim_now; /* simulated clock to persist, or -1 */
    int used;
};

struct order_list {
    struct order **v;
    int n, cap;
};

static void order_list_add(struct order_list *l, struct order *o)
{
    if (l->n == l->cap) {
        l->cap = l->cap ? l->cap * 2 : 8;
        l->v = xrealloc(l->v, (size_t)l->cap * sizeof *l->v);
    }
    l->v[l->n++] = o;
}

struct spot_price {
    uint64_t model, region;
    int64_t price;
};

struct market {
    struct app *app;
    engine *eng;
    struct obj **objs; /* by num */
    uint64_t nobjs, capobjs;
    struct hmap by_id;
    struct hmap interns; /* gpu model / region name -> (void *)num */
    uint64_t next_intern, next_account_num;
    engine_event *events;
    size_t nevents, capevents;
    struct turn *open;     /* collecting */
    struct turn *inflight; /* committing */
    struct event *flush_ev, *retry_ev;
    int ready;
    int64_t now;                        /* last time everything due was run */
    uint64_t *bytype[OBJ_CONTRACT + 1]; /* nums of each type, ascending */
    size_t nbytype[OBJ_CONTRACT + 1], capbytype[OBJ_CONTRACT + 1];
    /* bytype[t][0..owned_upto[t]) are in their owners' account.owned[t]; owned_gen changes
     * whenever the objects are dropped (a rebuild), which empties every account's lists. */
    size_t owned_upto[OBJ_CONTRACT + 1];
    uint64_t owned_gen;
    int64_t live_spot;   /* spot bids pending, running or preempted */
    uint64_t version;    /* bumped by every change to the market: caches key on it */
    struct sched *sched; /* placements, jobs, failures (sched.c) */
    /* Gathered while the engine's events are applied, acted on after them: spot bids that
       must stop (their next hold cannot be funded), and each market's new spot price. */
    struct order_list unfunded;
    struct spot_price *prices;
    int nprices, capprices;
    /* The price every running bid of a market pays now (set when a round changes it; a rebuild
       empties it, so the first round after one sets every running bid's price). */
    struct spot_price *paid;
    int npaid, cappaid;
};

/* ---- basics ---- */

static void sink(void *ctx, const engine_event *ev)
{
    struct market *m = ctx;
    if (m->nevents == m->capevents) {
        m->capevents = m->capevents ? m->capevents * 2 : 256;
        m->events = xrealloc(m->events, m->capevents * sizeof *m->events);
    }
    m->events[m->nevents++] = *ev;
}

struct app *market_app(struct market *m)
{
    return m->app;
}

engine *market_engine(struct market *m)
{
    return m->eng;
}

int market_ready(const struct market *m)
{
    return m->ready;
}

int64_t market_now(struct market *m)
{
    return clock_now(&m->app->clock);
}

uint64_t market_intern(struct market *m, const char *name)
{
    void *v = hmap_get(&m->interns, name);
    if (v)
        return (uint64_t)(uintptr_t)v;
    uint64_t n = ++m->next_intern;
    hmap_put(&m->interns, name, (void *)(uintptr_t)n);
    return n;
}

static void add_obj(struct market *m, struct obj *o)
{
    if (o->num >= m->capobjs) {
        uint64_t cap = m->capobjs ? m->capobjs : 1024;
        while (cap <= o->num)
            cap *= 2;
        m->objs = xrealloc(m->objs, cap * sizeof *m->objs);
        memset(m->objs + m->capobjs, 0, (cap - m->capobjs) * sizeof *m->objs);
        m->capobjs = cap;
    }
    CAPX_ASSERT(m->objs[o->num] == NULL);
    m->objs[o->num] = o;
    if (o->num >= m->nobjs)
        m->nobjs = o->num + 1;
    int t = o->type;
    CAPX_ASSERT(t >= OBJ_POOL && t <= OBJ_CONTRACT);
    CAPX_ASSERT(m->nbytype[t] == 0 || m->bytype[t][m->nbytype[t] - 1] < o->num);
    if (m->nbytype[t] == m->capbytype[t]) {
        m->capbytype[t] = m->capbytype[t] ? m->capbytype[t] * 2 : 256;
        m->bytype[t] = xrealloc(m->bytype[t], m->capbytype[t] * sizeof *m->bytype[t]);
    }
    m->bytype[t][m->nbytype[t]++] = o->num;
    hmap_put(&m->by_id, o->id, o);
}

static uint64_t new_num(struct market *m)
{
    return m->nobjs ? m->nobjs : 1;
}

/* A fresh object of the given size, type and id prefix, registered and dirty. */
void *market_new_obj(struct market *m, size_t size, int type, const char *prefix)
{
    struct obj *o = xcalloc(1, size);
    o->type = type;
    o->num = new_num(m);
    capx_id_new(prefix, o->id, sizeof o->id);
    o->created = market_now(m);
    add_obj(m, o);
    market_dirty(m, o);
    return o;
}

uint64_t market_peek_num(const struct market *m)
{
    return m->nobjs ? m->nobjs : 1;
}

struct obj *market_get(struct market *m, const char *id)
{
    return hmap_get(&m->by_id, id);
}

struct obj *market_by_num(struct market *m, uint64_t num)
{
    return num < m->nobjs ? m->objs[num] : NULL;
}

_Static_assert(OBJ_CONTRACT < APP_OBJ_TYPES, "account.owned has a list per object type");

static void owned_add(struct market *m, struct account *a, int t, uint64_t num)
{
    CAPX_ASSERT(a != NULL);
    if (a->owned_gen != m->owned_gen) {
        for (int k = 0; k < APP_OBJ_TYPES; k++)
            a->nowned[k] = 0;
        a->owned_gen = m->owned_gen;
    }
    CAPX_ASSERT(a->nowned[t] == 0 || a->owned[t][a->nowned[t] - 1] < num);
    if (a->nowned[t] == a->capowned[t]) {
        a->capowned[t] = a->capowned[t] ? a->capowned[t] * 2 : 16;
        a->owned[t] = xrealloc(a->owned[t], a->capowned[t] * sizeof *a->owned[t]);
    }
    a->owned[t][a->nowned[t]++] = num;
}

/* Files the objects of a type created since the last call under their owners (a contract
 * under its buyer and its provider). Owners are set by then: a handler that creates an object
 * sets its owner before it returns. */
static void owned_catch_up(struct market *m, int t)
{
    for (; m->owned_upto[t] < m->nbytype[t]; m->owned_upto[t]++) {
        struct obj *o = m->objs[m->bytype[t][m->owned_upto[t]]];
        switch (t) {
        case OBJ_POOL:
            owned_add(m, ((struct pool *)o)->acct, t, o->num);
            break;
        case OBJ_OFFER:
            owned_add(m, ((struct offer *)o)->pool->acct, t, o->num);
            break;
        case OBJ_ORDER:
            owned_add(m, ((struct order *)o)->acct, t, o->num);
            break;
        case OBJ_CONTRACT: {
            struct contract *c = (struct contract *)o;
            owned_add(m, c->buyer, t, o->num);
            if (c->provider != c->buyer)
                owned_add(m, c->provider, t, o->num);
            break;
        }
        }
    }
}

/* The object of the first num above *cursor in v[0..n) (ascending), moving the cursor to it. */
static struct obj *next_after(struct market *m, const uint64_t *v, size_t n, uint64_t *cursor)
{
    size_t lo = 0, hi = n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (v[mid] <= *cursor)
            lo = mid + 1;
        else
            hi = mid;
    }
    if (lo == n)
        return NULL;
    *cursor = v[lo];
    return m->objs[v[lo]];
}

struct obj *market_next_owned(struct market *m, struct account *a, int type, uint64_t *cursor)
{
    CAPX_ASSERT(type >= OBJ_POOL && type <= OBJ_CONTRACT);
    owned_catch_up(m, type);
    if (a->owned_gen != m->owned_gen)
        return NULL; /* it owns nothing */
    return next_after(m, a->owned[type], a->nowned[type], cursor);
}

struct obj *market_next(struct market *m, int type, uint64_t *cursor)
{
    return next_after(m, m->bytype[type], m->nbytype[type], cursor);
}

void market_spot_live(struct market *m, int delta)
{
    m->live_spot += delta;
    CAPX_ASSERT(m->live_spot >= 0);
}

static void free_objs(struct market *m)
{
    for (uint64_t n = 0; n < m->nobjs; n++) {
        struct obj *o = m->objs[n];
        if (o && o->type == OBJ_ORDER)
            free(((struct order *)o)->contracts);
        if (o && o->type == OBJ_CONTRACT)
            free(((struct contract *)o)->losses);
        free(o);
    }
    free(m->objs);
    m->objs = NULL;
    m->nobjs = m->capobjs = 0;
    for (int t = 0; t <= OBJ_CONTRACT; t++) {
        free(m->bytype[t]);
        m->bytype[t] = NULL;
        m->nbytype[t] = m->capbytype[t] = 0;
        m->owned_upto[t] = 0;
    }
    m->owned_gen++; /* every account's owned lists are stale */
    m->live_spot = 0;
    hmap_free(&m->by_id);
    hmap_free(&m->interns);
    m->next_intern = 0;
}

/* ---- the turn ---- */

static void on_flush(evutil_socket_t fd, short what, void *arg);

static struct turn *turn_new(void)
{
    struct turn *t = xcalloc(1, sizeof *t);
    t->sim_now = -1;
    return t;
}

static void turn_free(struct turn *t)
{
    if (!t)
        return;
    if (t->job)
        db_job_free(t->job);
    if (t->ledger)
        ledger_batch_free(t->ledger);
    for (int i = 0; i < t->nreplies; i++) {
        free(t->replies[i].body);
        free(t->replies[i].kept);
    }
    free(t->replies);
    free(t->dirty);
    free(t);
}

static struct turn *turn(struct market *m)
{
    if (!m->open) {
        m->open = turn_new();
        if (!m->inflight)
            event_active(m->flush_ev, EV_TIMEOUT, 0);
    }
    m->open->used = 1;
    return m->open;
}

uint64_t market_version(const struct market *m)
{
    return m->version;
}

void market_dirty(struct market *m, struct obj *o)
{
    m->version++;
    struct turn *t = turn(m);
    if (o->dirty)
        return;
    o->dirty = 1;
    if (t->ndirty == t->capdirty) {
        t->capdirty = t->capdirty ? t->capdirty * 2 : 64;
        t->dirty = xrealloc(t->dirty, (size_t)t->capdirty * sizeof *t->dirty);
    }
    t->dirty[t->ndirty++] = o;
}

void market_sql(struct market *m, const char *sql, int n, const char *const *values)
{
    struct turn *t = turn(m);
    if (!t->job)
        t->job = db_job_new(NULL, NULL);
    db_job_add(t->job, sql, n, values);
}

static void rows_add(struct db_job *job, const char *types, const char *sql, int n,
                     const char *const *v);

void market_reply_text(struct market *m, struct app_req *r, int status, const char *body)
{
    if (!m->open && !m->inflight) {
        app_idem_finish(r, status, body);
        http_reply(r->http, status, "application/json", body, strlen(body), NULL);
        return;
    }
    json_error_t je;
    market_reply(m, r, status, json_loads(body, 0, &je));
}

void market_reply(struct market *m, struct app_req *r, int status, json_t *body)
{
    if (!m->open && !m->inflight && body) {
        /* Nothing was changed for this request and nothing uncommitted is in memory: a read
           answers at once. (A handler that changes anything opens the turn before replying.) */
        app_reply(r, status, body);
        return;
    }
    struct turn *t = turn(m);
    char *s = body ? json_dumps(body, JSON_COMPACT) : xstrdup(""), *kept = NULL;
    /* An answer that shows a secret once (a new API key) is saved for replays without it: the
       database keeps only the key's hash, and so does the replay. */
    if (s && body && json_object_get(body, "api_key")) {
        json_object_set_new(body, "api_key", json_null());
        if (!(kept = json_dumps(body, JSON_COMPACT)))
            capx_fatal("json_dumps failed");
    }
    json_decref(body);
    if (!s)
        capx_fatal("json_dumps failed");
    if (r->idem_key[0] && status >= 200 && status < 300) {
        char st[8], hex[65];
        const char *acct = r->acct->id, *nl = strchr(r->idem_key, '\n');
        for (int i = 0; i < 32; i++)
            snprintf(hex + 2 * i, 3, "%02x", r->idem_hash[i]);
        snprintf(st, sizeof st, "%d", status);
        const char *v[] = {acct, nl ? nl + 1 : "", hex, st, kept ? kept : s};
        rows_add(NULL, "tttit",
                 "INSERT INTO idempotency_keys (account_id, key, request_hash, status, body) "
                 "VALUES ($1, $2, decode($3, 'hex'), $4, $5) ON CONFLICT (account_id, key) DO "
                 "UPDATE SET request_hash = EXCLUDED.request_hash, status = EXCLUDED.status, "
                 "body = EXCLUDED.body, created_at = now()",
                 5, v);
    }
    if (t->nreplies == t->capreplies) {
        t->capreplies = t->capreplies ? t->capreplies * 2 : 16;
        t->replies = xrealloc(t->replies, (size_t)t->capreplies * sizeof *t->replies);
    }
    t->replies[t->nreplies++] = (struct pending_reply){r, status, s, kept};
}

/* ---- money ---- */

static void add_transfer(struct market *m, const struct ledger_transfer *x)
{
    struct turn *t = turn(m);
    /* ledger_submit resolves holds created earlier in the same batch: one batch per turn. */
    if (!t->ledger)
        t->ledger = ledger_batch_new();
    ledger_batch_add(t->ledger, x);
}

void market_transfer(struct market *m, const struct ledger_transfer *x)
{
    add_transfer(m, x);
}

void market_contract_loss(struct contract *c, int64_t hour, int64_t gpus)
{
    for (int i = 0; i < c->nlosses; i++)
        if (c->losses[i].hour == hour) {
            c->losses[i].gpus += gpus;
            if (c->losses[i].gpus > c->gpus)
                c->losses[i].gpus = c->gpus;
            return;
        }
    if (c->nlosses == c->caplosses) {
        c->caplosses = c->caplosses ? c->caplosses * 2 : 8;
        c->losses = xrealloc(c->losses, (size_t)c->caplosses * sizeof *c->losses);
    }
    c->losses[c->nlosses++] = (struct contract_loss){hour, gpus < c->gpus ? gpus : c->gpus};
}

int64_t market_contract_lost(const struct contract *c, int64_t hour)
{
    for (int i = 0; i < c->nlosses; i++)
        if (c->losses[i].hour == hour)
            return c->losses[i].gpus;
    return 0;
}

void market_check_mirror(const struct account *a)
{
    CAPX_ASSERT(a->available >= 0);
    CAPX_ASSERT(a->held >= 0);
}

static void check_mirror(const struct account *a)
{
    CAPX_ASSERT(a->available >= 0);
    CAPX_ASSERT(a->held >= 0);
}

void market_money_deposit(struct market *m, struct account *a, int64_t amount, const char *txn)
{
    char cash[LEDGER_ACCOUNT_MAX + 1];
    ledger_cash_id(a->id, cash, sizeof cash);
    struct ledger_transfer x = {.id = txn,
                                .debit_account = LEDGER_WORLD,
                                .credit_account = cash,
                                .amount = amount,
                                .kind = "deposit",
                                .ref = a->id,
                                .flags = LEDGER_POSTED};
    CAPX_ASSERT(capx_add_i64(a->available, amount, &a->available) == 0);
    add_transfer(m, &x);
}

void market_money_withdraw(struct market *m, struct account *a, int64_t amount, const char *txn)
{
    char cash[LEDGER_ACCOUNT_MAX + 1];
    ledger_cash_id(a->id, cash, sizeof cash);
    struct ledger_transfer x = {.id = txn,
                                .debit_account = cash,
                                .credit_account = LEDGER_WORLD,
                                .amount = amount,
                                .kind = "withdrawal",
                                .ref = a->id,
                                .flags = LEDGER_POSTED};
    a->available -= amount;
    check_mirror(a);
    add_transfer(m, &x);
}

void market_money_hold(struct market *m, struct order *o, int64_t amount)
{
    struct account *a = o->acct;
    char cash[LEDGER_ACCOUNT_MAX + 1], escrow[LEDGER_ACCOUNT_MAX + 1];
    CAPX_ASSERT(o->hold_id[0] == '\0' && amount > 0);
    ledger_cash_id(a->id, cash, sizeof cash);
    ledger_escrow_id(a->id, escrow, sizeof escrow);
    snprintf(o->hold_id, sizeof o->hold_id, "hold:%s:%" PRId64, o->o.id, ++o->hold_count);
    o->hold_amount = amount;
    struct ledger_transfer x = {.id = o->hold_id,
                                .debit_account = cash,
                                .credit_account = escrow,
                                .amount = amount,
                                .kind = "hold",
                                .ref = o->o.id,
                                .flags = LEDGER_PENDING};
    a->available -= amount;
    a->held += amount;
    check_mirror(a);
    add_transfer(m, &x);
    market_dirty(m, &o->o);
}

void market_money_post(struct market *m, struct order *o, int64_t amount)
{
    struct account *a = o->acct;
    char id[96];
    CAPX_ASSERT(o->hold_id[0] && amount > 0 && amount <= o->hold_amount);
    snprintf(id, sizeof id, "fill:%s", o->hold_id);
    struct ledger_transfer x = {.id = id,
                                .amount = amount,
                                .kind = "fill",
                                .ref = o->o.id,
                                .flags = LEDGER_POST,
                                .pending_id = o->hold_id};
    add_transfer(m, &x);
    /* The hold leaves held; the posted part comes back as escrow; the rest is spendable. */
    a->available += o->hold_amount - amount;
    a->held -= o->hold_amount - amount;
    check_mirror(a);
    o->hold_id[0] = '\0';
    o->hold_amount = 0;
    market_dirty(m, &o->o);
}

void market_money_void(struct market *m, struct order *o)
{
    struct account *a = o->acct;
    char id[96];
    if (!o->hold_id[0])
        return;
    snprintf(id, sizeof id, "void:%s", o->hold_id);
    struct ledger_transfer x = {.id = id,
                                .amount = 0,
                                .kind = "release",
                                .ref = o->o.id,
                                .flags = LEDGER_VOID,
                                .pending_id = o->hold_id};
    add_transfer(m, &x);
    a->available += o->hold_amount;
    a->held -= o->hold_amount;
    check_mirror(a);
    o->hold_id[0] = '\0';
    o->hold_amount = 0;
    market_dirty(m, &o->o);
}

/* ---- writing objects ---- */

static void fmt_i64(char *buf, int64_t v)
{
    snprintf(buf, 24, "%" PRId64, v);
}

static void write_pool(struct db_job *job, struct pool *p)
{
    char num[24], nodes[24], gpn[24], npr[24], cr[24];
    fmt_i64(num, (int64_t)p->o.num);
    fmt_i64(nodes, p->nodes);
    fmt_i64(gpn, p->gpus_per_node);
    fmt_i64(npr, p->nodes_per_rack);
    fmt_i64(cr, p->o.created);
    const char *v[] = {p->o.id,   num,   p->acct->id, p->name, p->gpu_model,
                       p->region, nodes, gpn,         npr,     cr};
    db_job_add(job,
               "INSERT INTO pools (id, num, account_id, name, gpu_model, region, nodes, "
               "gpus_per_node, nodes_per_rack, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, "
               "$8, $9, to_timestamp($10)) ON CONFLICT (id) DO NOTHING",
               10, v);
}

/* ---- set-based writes ----
 * Rows of one kind written in a turn go to the database as ONE statement over arrays
 * (INSERT ... SELECT ... FROM unnest($1::text[], ...)), not one statement per row: the statement
 * is derived from the single-row form (its column list, VALUES tuple and ON CONFLICT clause),
 * with `types` naming each parameter's type (t text, b bigint, i int, o boolean). */

struct rowset {
    const char *sql;   /* the single-row statement: the rowset's identity */
    const char *types; /* one letter per parameter */
    int n, rows;
    char **col; /* per parameter: "{…" array literal being built */
    size_t *len, *cap;
};

static struct rowset rowsets[8];
static int nrowsets;

static void col_put(struct rowset *rs, int i, const char *s, size_t n)
{
    if (rs->len[i] + n + 1 > rs->cap[i]) {
        rs->cap[i] = (rs->len[i] + n + 1) * 2;
        rs->col[i] = xrealloc(rs->col[i], rs->cap[i]);
    }
    memcpy(rs->col[i] + rs->len[i], s, n);
    rs->len[i] += n;
    rs->col[i][rs->len[i]] = '\0';
}

/* Appends one row; text values are quoted and escaped, NULLs stay NULL. */
static void rows_add(struct db_job *job, const char *types, const char *sql, int n,
                     const char *const *v)
{
    UNUSED(job);
    struct rowset *rs = NULL;
    for (int k = 0; k < nrowsets; k++)
        if (rowsets[k].sql == sql)
            rs = &rowsets[k];
    if (!rs) {
        CAPX_ASSERT(nrowsets < (int)ARRAY_LEN(rowsets) && (int)strlen(types) == n);
        rs = &rowsets[nrowsets++];
        memset(rs, 0, sizeof *rs);
        rs->sql = sql;
        rs->types = types;
        rs->n = n;
        rs->col = xcalloc((size_t)n, sizeof *rs->col);
        rs->len = xcalloc((size_t)n, sizeof *rs->len);
        rs->cap = xcalloc((size_t)n, sizeof *rs->cap);
    }
    for (int i = 0; i < n; i++) {
        col_put(rs, i, rs->rows ? "," : "{", 1);
        if (!v[i]) {
            col_put(rs, i, "NULL", 4);
        } else if (types[i] == 't') {
            col_put(rs, i, "\"", 1);
            for (const char *p = v[i]; *p; p++) {
                if (*p == '"' || *p == '\\')
                    col_put(rs, i, "\\", 1);
                col_put(rs, i, p, 1);
            }
            col_put(rs, i, "\"", 1);
        } else {
            col_put(rs, i, v[i], strlen(v[i]));
        }
    }
    rs->rows++;
}

static void rows_reset(void)
{
    for (int k = 0; k < nrowsets; k++) {
        for (int i = 0; i < rowsets[k].n; i++)
            rowsets[k].len[i] = 0;
        rowsets[k].rows = 0;
    }
}

/* Emits every rowset with rows as one statement each, then empties them. */
static void rows_flush(struct db_job *job)
{
    for (int k = 0; k < nrowsets; k++) {
        struct rowset *rs = &rowsets[k];
        if (!rs->rows)
            continue;
        const char *vals = strstr(rs->sql, " VALUES (");
        CAPX_ASSERT(vals);
        const char *p = vals + 9;
        int depth = 1;
        while (*p && depth) {
            depth += *p == '(' ? 1 : *p == ')' ? -1 : 0;
            p++;
        }
        size_t cap = strlen(rs->sql) + (size_t)rs->n * 32 + 256, len = 0;
        char *sql = xmalloc(cap);
        len +=
            (size_t)snprintf(sql + len, cap - len, "%.*s SELECT ", (int)(vals - rs->sql), rs->sql);
        for (const char *q = vals + 9; q < p - 1; q++) {
            if (*q == '$') {
                sql[len++] = 'c';
                continue;
            }
            sql[len++] = *q;
        }
        len += (size_t)snprintf(sql + len, cap - len, " FROM unnest(");
        for (int i = 0; i < rs->n; i++) {
            const char *t = rs->types[i] == 't'   ? "text"
                            : rs->types[i] == 'i' ? "int"
                            : rs->types[i] == 'o' ? "boolean"
                                                  : "bigint";
            len += (size_t)snprintf(sql + len, cap - len, "%s$%d::%s[]", i ? ", " : "", i + 1, t);
        }
        len += (size_t)snprintf(sql + len, cap - len, ") AS u(");
        for (int i = 0; i < rs->n; i++)
            len += (size_t)snprintf(sql + len, cap - len, "%sc%d", i ? ", " : "", i + 1);
        len += (size_t)snprintf(sql + len, cap - len, ")%s", p);
        CAPX_ASSERT(len < cap);
        const char **v = xcalloc((size_t)rs->n, sizeof *v);
        for (int i = 0; i < rs->n; i++) {
            col_put(rs, i, "}", 1);
            v[i] = rs->col[i];
        }
        db_job_add(job, sql, rs->n, v);
        free(v);
        free(sql);
        for (int i = 0; i < rs->n; i++)
            rs->len[i] = 0;
        rs->rows = 0;
    }
}

static void write_offer(struct db_job *job, struct offer *o)
{
    char num[24], gpus[24], st[24], en[24], price[24], seq[24], cr[24];
    fmt_i64(num, (int64_t)o->o.num);
    fmt_i64(gpus, o->gpus);
    fmt_i64(st, o->start);
    fmt_i64(en, o->end);
    fmt_i64(price, o->price);
    fmt_i64(seq, (int64_t)o->seq);
    fmt_i64(cr, o->o.created);
    const char *v[] = {o->o.id,
                       num,
                       o->pool->o.id,
                       o->pool->acct->id,
                       o->spot ? "spot" : "reservation",
                       gpus,
                       o->spot ? NULL : st,
                       o->spot ? NULL : en,
                       price,
                       o->status,
                       seq,
                       cr};
    rows_add(job, "tbtttibbbtbb",
             "INSERT INTO offers (id, num, pool_id, account_id, kind, gpus, start_at, end_at, "
             "price, status, seq, created_at) VALUES ($1, $2, $3, $4, $5, $6, "
             "to_timestamp($7), to_timestamp($8), $9, $10, $11, to_timestamp($12)) "
             "ON CONFLICT (id) DO UPDATE SET status = EXCLUDED.status, seq = EXCLUDED.seq",
             12, v);
}

static void write_order(struct db_job *job, struct order *o)
{
    char num[24], gpus[24], filled[24], st[24], ls[24], fs[24], hours[24], lim[24], ha[24], hc[24],
        sp[24], pa[24], seq[24], cr[24], up[24];
    fmt_i64(num, (int64_t)o->o.num);
    fmt_i64(gpus, o->gpus);
    fmt_i64(filled, o->filled);
    fmt_i64(st, o->start);
    fmt_i64(ls, o->latest_start);
    fmt_i64(fs, o->fixed_start);
    fmt_i64(hours, o->hours / HOUR);
    fmt_i64(lim, o->limit_price);
    fmt_i64(ha, o->hold_amount);
    fmt_i64(hc, o->hold_count);
    fmt_i64(sp, o->spot_price);
    fmt_i64(pa, o->preempt_at);
    fmt_i64(seq, (int64_t)o->seq);
    fmt_i64(cr, o->o.created);
    fmt_i64(up, o->updated);
    char acc[24];
    fmt_i64(acc, o->spot_acc);
    const char *v[] = {o->o.id,
                       num,
                       o->acct->id,
                       o->spot ? "spot" : "reservation",
                       o->gpu_model,
                       o->region[0] ? o->region : NULL,
                       gpus,
                       filled,
                       o->spot ? NULL : st,
                       o->spot ? NULL : ls,
                       o->fixed_start >= 0 ? fs : NULL,
                       o->spot ? NULL : hours,
                       lim,
                       o->all_or_none ? "t" : "f",
                       o->single_pool ? "t" : "f",
                       o->ioc ? "ioc" : "gtc",
                       o->lend_idle ? "t" : "f",
                       o->status,
                       o->hold_id[0] ? o->hold_id : NULL,
                       ha,
                       hc,
                       o->running_pool ? o->running_pool->o.id : NULL,
                       o->spot_price ? sp : NULL,
                       o->preempt_at ? pa : NULL,
                       seq,
                       cr,
                       up,
                       acc};
    CAPX_ASSERT(ARRAY_LEN(v) == 28);
    rows_add(job, "tbttttiibbbibootottbitbbbbbb",
             "INSERT INTO orders (id, num, account_id, kind, gpu_model, region, gpus, "
             "filled_gpus, start_at, latest_start, fixed_start, hours, limit_price, "
             "all_or_none, single_pool, time_in_force, lend_idle, status, hold_id, "
             "hold_amount, hold_count, running_pool, spot_price, preempt_at, seq, created_at, "
             "updated_at, spot_acc) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, to_timestamp($9), "
             "to_timestamp($10), to_timestamp($11), $12, $13, $14, $15, $16, $17, $18, $19, "
             "$20, $21, $22, $23, to_timestamp($24), $25, to_timestamp($26), "
             "to_timestamp($27), $28) ON CONFLICT (id) DO UPDATE SET spot_acc = "
             "EXCLUDED.spot_acc, filled_gpus = "
             "EXCLUDED.filled_gpus, fixed_start = EXCLUDED.fixed_start, status = "
             "EXCLUDED.status, hold_id = EXCLUDED.hold_id, hold_amount = EXCLUDED.hold_amount, "
             "hold_count = EXCLUDED.hold_count, running_pool = EXCLUDED.running_pool, "
             "spot_price = EXCLUDED.spot_price, preempt_at = EXCLUDED.preempt_at, seq = "
             "EXCLUDED.seq, updated_at = EXCLUDED.updated_at",
             28, v);
}

static void write_contract(struct db_job *job, struct contract *c)
{
    char num[24], gpus[24], st[24], en[24], price[24], amount[24], ts[24], cr[24], settled[24],
        until[24];
    fmt_i64(num, (int64_t)c->o.num);
    fmt_i64(gpus, c->gpus);
    fmt_i64(st, c->start);
    fmt_i64(en, c->end);
    fmt_i64(price, c->price);
    fmt_i64(amount, c->amount);
    fmt_i64(ts, (int64_t)c->trade_seq);
    fmt_i64(cr, c->o.created);
    fmt_i64(settled, c->settled);
    fmt_i64(until, c->settled_until);
    const char *v[] = {c->o.id,
                       num,
                       c->order->o.id,
                       c->offer->o.id,
                       c->pool->o.id,
                       c->buyer->id,
                       c->provider->id,
                       gpus,
                       st,
                       en,
                       price,
                       amount,
                       c->status,
                       ts,
                       c->order->lend_idle ? "t" : "f",
                       cr,
                       settled,
                       c->settled_until > c->start ? until : NULL};
    CAPX_ASSERT(ARRAY_LEN(v) == 18);
    rows_add(job, "tbtttttibbbbtbobbb",
             "INSERT INTO contracts (id, num, order_id, offer_id, pool_id, buyer_id, "
             "provider_id, gpus, start_at, end_at, price, amount, status, trade_seq, lend_idle, "
             "created_at, settled, settled_until) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, "
             "to_timestamp($9), to_timestamp($10), $11, $12, $13, $14, $15, to_timestamp($16), "
             "$17, to_timestamp($18)) ON CONFLICT (id) DO UPDATE SET status = EXCLUDED.status, "
             "settled = EXCLUDED.settled, settled_until = EXCLUDED.settled_until",
             18, v);
}

/* ---- flush and commit ---- */

static void turn_done(struct db_job *job, void *arg);

static void rows_reset(void);

static void fail_turn(struct market *m, struct turn *t, const char *why)
{
    rows_reset(); /* rows gathered for a turn that will not commit */
    for (int i = 0; i < t->nreplies; i++) {
        app_error(t->replies[i].r, 503, "unavailable", NULL, "%s; nothing was done, retry later",
                  why);
    }
    turn_free(t); /* (the answers that were not sent too) */
    UNUSED(m);
}

static void rebuild(struct market *m);

static void flush(struct market *m)
{
    struct turn *t = m->open;
    if (!t || m->inflight)
        return;
    m->open = NULL;
    if (!t->job && t->ndirty == 0 && !t->ledger && t->sim_now < 0) {
        /* Only reads: nothing to commit, and nothing uncommitted is in memory any more. */
        for (int i = 0; i < t->nreplies; i++) {
            struct pending_reply *p = &t->replies[i];
            app_idem_finish(p->r, p->status, p->kept ? p->kept : p->body);
            http_reply(p->r->http, p->status, "application/json", p->body, strlen(p->body), NULL);
        }
        turn_free(t);
        return;
    }
    if (!t->job)
        t->job = db_job_new(NULL, NULL);
    struct db_job *job = t->job;
    /* Objects in dependency order: pools, offers, orders, contracts. */
    for (int type = OBJ_POOL; type <= OBJ_CONTRACT; type++) {
        for (int i = 0; i < t->ndirty; i++) {
            struct obj *o = t->dirty[i];
            if (o->type != type)
                continue;
            switch (type) {
            case OBJ_POOL:
                write_pool(job, (struct pool *)o);
                break;
            case OBJ_OFFER:
                write_offer(job, (struct offer *)o);
                break;
            case OBJ_ORDER:
                write_order(job, (struct order *)o);
                break;
            case OBJ_CONTRACT:
                write_contract(job, (struct contract *)o);
                break;
            }
        }
        /* Each kind's rows go out before the next kind's are gathered: a statement per kind
           in this order, whatever order the rowsets were first used in. */
        rows_flush(job);
    }
    for (int i = 0; i < t->ndirty; i++)
        t->dirty[i]->dirty = 0;
    if (t->ledger && ledger_batch_count(t->ledger) > 0) {
        struct ledger_stmt st;
        ledger_batch_set_time(t->ledger, market_now(m));
        ledger_batch_stmt(t->ledger, &st);
        char *sql = xmalloc(strlen(st.sql) + 96);
        sprintf(sql, "SELECT capx_require_ok(array_agg(result ORDER BY idx)) FROM (%s) s", st.sql);
        db_job_add(job, sql, st.nparams, st.values);
        free(sql);
    }
    if (t->sim_now >= 0) {
        char now[24];
        fmt_i64(now, t->sim_now);
        const char *v[] = {now};
        db_job_add(job,
                   "INSERT INTO clock_state (one, sim_now) VALUES (true, $1) ON CONFLICT (one) "
                   "DO UPDATE SET sim_now = EXCLUDED.sim_now",
                   1, v);
    }
    job->cb = turn_done;
    job->arg = m;
    m->inflight = t;
    if (db_submit(m->app->db, job) < 0) {
        t->job = NULL;
        db_job_free(job);
        m->inflight = NULL;
        fail_turn(m, t, "the database cannot be reached");
        rebuild(m);
    }
}

static void on_flush(evutil_socket_t fd, short what, void *arg)
{
    UNUSED(fd);
    UNUSED(what);
    flush(arg);
}

static void turn_done(struct db_job *job, void *arg)
{
    struct market *m = arg;
    struct turn *t = m->inflight;
    m->inflight = NULL;
    CAPX_ASSERT(t && t->job == job);
    if (!job->ok) {
        log_error("msg=\"group commit failed\" sqlstate=%s err=\"%s\" replies=%d", job->sqlstate,
                  job->err, t->nreplies);
        fail_turn(m, t, "the database did not commit");
        if (m->open) {
            struct turn *o = m->open;
            m->open = NULL;
            fail_turn(m, o, "the database did not commit");
        }
        rebuild(m);
        return;
    }
    for (int i = 0; i < t->nreplies; i++) {
        struct pending_reply *p = &t->replies[i];
        app_idem_finish(p->r, p->status, p->kept ? p->kept : p->body);
        http_reply(p->r->http, p->status, "application/json", p->body, strlen(p->body), NULL);
    }
    turn_free(t);
    if (m->open)
        flush(m);
}

/* ---- rebuild ---- */

static void on_retry(evutil_socket_t fd, short what, void *arg)
{
    UNUSED(fd);
    UNUSED(what);
    rebuild(arg);
}

static void rebuild(struct market *m)
{
    char err[512];
    m->ready = 0;
    if (db_pool_ready(m->app->db) && market_load(m, m->app->conninfo, err, sizeof err) == 0) {
        log_info("msg=\"market rebuilt from the database\"");
        return;
    }
    log_warn("msg=\"market rebuild failed; retrying\" err=\"%s\"",
             db_pool_ready(m->app->db) ? err : "database unavailable");
    struct timeval tv = {1, 0};
    evtimer_add(m->retry_ev, &tv);
}

struct market *market_new(struct app *a)
{
    struct market *m = xcalloc(1, sizeof *m);
    m->app = a;
    m->owned_gen = 1; /* accounts start at 0: their (empty) lists count as stale */
    hmap_init(&m->by_id);
    hmap_init(&m->interns);
    m->flush_ev = event_new(a->base, -1, 0, on_flush, m);
    m->retry_ev = evtimer_new(a->base, on_retry, m);
    return m;
}

void market_free(struct market *m)
{
    if (!m)
        return;
    turn_free(m->open);
    turn_free(m->inflight);
    sched_free(m->sched);
    free_objs(m);
    engine_free(m->eng);
    free(m->events);
    free(m->unfunded.v);
    free(m->prices);
    free(m->paid);
    event_free(m->flush_ev);
    event_free(m->retry_ev);
    free(m);
}

/* ---- the engine's events ---- */

static struct order *order_of(struct market *m, uint64_t num)
{
    struct obj *o = market_by_num(m, num);
    CAPX_ASSERT(o && o->type == OBJ_ORDER);
    return (struct order *)o;
}

static struct offer *offer_of(struct market *m, uint64_t num)
{
    struct obj *o = market_by_num(m, num);
    CAPX_ASSERT(o && o->type == OBJ_OFFER);
    return (struct offer *)o;
}

static struct pool *pool_of(struct market *m, uint64_t num)
{
    struct obj *o = market_by_num(m, num);
    CAPX_ASSERT(o && o->type == OBJ_POOL);
    return (struct pool *)o;
}

static void order_add_contract(struct order *o, struct contract *c)
{
    if (o->ncontracts == o->capcontracts) {
        o->capcontracts = o->capcontracts ? o->capcontracts * 2 : 4;
        o->contracts = xrealloc(o->contracts, (size_t)o->capcontracts * sizeof *o->contracts);
    }
    o->contracts[o->ncontracts++] = c;
}

static void order_done(struct market *m, struct order *o, const char *status)
{
    if (o->spot)
        market_spot_live(m, -1);
    o->status = status;
    o->updated = market_now(m);
    if (o->acct->open_orders > 0)
        o->acct->open_orders--;
    market_dirty(m, &o->o);
}

static void apply_event(struct market *m, const engine_event *ev, struct order ***touched,
                        int *ntouched, int *captouched)
{
    switch (ev->kind) {
    case ENGINE_EV_ORDER_ACCEPTED:
    case ENGINE_EV_SPOT_BID_ACCEPTED: {
        struct order *o = order_of(m, ev->order);
        o->seq = ev->seq;
        market_dirty(m, &o->o);
        break;
    }
    case ENGINE_EV_OFFER_ACCEPTED: {
        struct offer *f = offer_of(m, ev->offer);
        f->seq = ev->seq;
        market_dirty(m, &f->o);
        break;
    }
    case ENGINE_EV_FILL: {
        struct order *o = order_of(m, ev->order);
        struct offer *f = offer_of(m, ev->offer);
        struct contract *c = market_new_obj(m, sizeof *c, OBJ_CONTRACT, "ctr_");
        c->order = o;
        c->offer = f;
        c->pool = pool_of(m, ev->pool);
        c->buyer = o->acct;
        c->provider = c->pool->acct;
        c->gpus = ev->gpus;
        c->start = ev->start * HOUR;
        c->end = ev->end * HOUR;
        c->price = ev->price;
        c->amount = ev->amount;
        c->status = "scheduled";
        c->trade_seq = ev->seq;
        c->settled_until = c->start;
        c->range_start = -1;
        int64_t check;
        CAPX_ASSERT(capx_mul3_i64(c->price, c->gpus, ev->end - ev->start, &check) == 0 &&
                    check == c->amount);
        order_add_contract(o, c);
        f->sold_gpu_hours += ev->gpus * (ev->end - ev->start);
        o->filled = ev->filled;
        o->fixed_start = ev->start * HOUR;
        CAPX_ASSERT(capx_add_i64(o->turn_cost, c->amount, &o->turn_cost) == 0);
        if (!o->touched) {
            o->touched = 1;
            if (*ntouched == *captouched) {
                *captouched = *captouched ? *captouched * 2 : 16;
                *touched = xrealloc(*touched, (size_t)*captouched * sizeof **touched);
            }
            (*touched)[(*ntouched)++] = o;
        }
        if (o->filled < o->gpus)
            o->status = "partially_filled";
        o->updated = market_now(m);
        market_dirty(m, &o->o);
        market_dirty(m, &f->o);
        break;
    }
    case ENGINE_EV_ORDER_DONE: {
        struct order *o = order_of(m, ev->order);
        const char *st = ev->reason == ENGINE_R_FILLED    ? "filled"
                         : ev->reason == ENGINE_R_EXPIRED ? "expired"
                                                          : "cancelled";
        order_done(m, o, st);
        if (!o->touched) {
            o->touched = 1;
            if (*ntouched == *captouched) {
                *captouched = *captouched ? *captouched * 2 : 16;
                *touched = xrealloc(*touched, (size_t)*captouched * sizeof **touched);
            }
            (*touched)[(*ntouched)++] = o;
        }
        break;
    }
    case ENGINE_EV_OFFER_DONE: {
        struct offer *f = offer_of(m, ev->offer);
        f->status = ev->reason == ENGINE_R_EXPIRED ? "expired" : "cancelled";
        if (f->spot && f->pool->spot_offer == f)
            f->pool->spot_offer = NULL;
        market_dirty(m, &f->o);
        break;
    }
    case ENGINE_EV_SPOT_WON: {
        struct order *o = order_of(m, ev->order);
        o->status = "running";
        o->running_pool = pool_of(m, ev->pool);
        o->spot_price = ev->price;
        o->preempt_at = 0;
        o->updated = market_now(m);
        market_dirty(m, &o->o);
        sched_spot_won(m, o);
        break;
    }
    case ENGINE_EV_SPOT_PREEMPTED: {
        struct order *o = order_of(m, ev->order);
        if (!settle_spot_stop(m, o, m->now, 1))
            order_list_add(&m->unfunded, o);
        o->status = "preempted";
        o->preempt_at = m->now + m->app->cfg.preempt_notice_s; /* the minute being run */
        o->updated = market_now(m);
        market_dirty(m, &o->o);
        sched_spot_stopped(m, o);
        break;
    }
    case ENGINE_EV_SPOT_BID_DONE: {
        struct order *o = order_of(m, ev->order);
        (void)settle_spot_stop(m, o, m->now, 0);
        o->running_pool = NULL;
        order_done(m, o, "cancelled");
        market_money_void(m, o);
        sched_spot_stopped(m, o);
        break;
    }
    case ENGINE_EV_SPOT_ROUND:
        /* Bids that keep running pay the round's price from now on (docs/matching.md). */
        if (ev->gpus > 0) {
            if (m->nprices == m->capprices) {
                m->capprices = m->capprices ? m->capprices * 2 : 8;
                m->prices = xrealloc(m->prices, (size_t)m->capprices * sizeof *m->prices);
            }
            m->prices[m->nprices++] = (struct spot_price){ev->model, ev->region, ev->price};
        }
        break;
    default:
        break;
    }
}

void market_apply_events(struct market *m)
{
    m->version++;
    struct order **touched = NULL;
    int ntouched = 0, captouched = 0;
    for (size_t i = 0; i < m->nevents; i++)
        apply_event(m, &m->events[i], &touched, &ntouched, &captouched);
    m->nevents = 0;
    /* Settle each order's hold once for everything this command did to it. */
    for (int i = 0; i < ntouched; i++) {
        struct order *o = touched[i];
        int resting = !strcmp(o->status, "open") || !strcmp(o->status, "partially_filled");
        if (o->turn_cost > 0)
            market_money_post(m, o, o->turn_cost);
        else if (!resting)
            market_money_void(m, o);
        if (resting && o->turn_cost > 0) {
            int64_t rest;
            CAPX_ASSERT(
                capx_mul3_i64(o->limit_price, o->gpus - o->filled, o->hours / HOUR, &rest) == 0);
            market_money_hold(m, o, rest);
        }
        o->turn_cost = 0;
        o->touched = 0;
    }
    free(touched);
    /* Rounds that changed a market's price: its running bids pay the new one (one pass over
       the orders, only then; bids that win meanwhile got it with SPOT_WON). */
    int changed = 0;
    for (int k = 0; k < m->nprices; k++) {
        const struct spot_price *p = &m->prices[k];
        int j = 0;
        while (j < m->npaid && (m->paid[j].model != p->model || m->paid[j].region != p->region))
            j++;
        if (j == m->npaid) {
            if (m->npaid == m->cappaid) {
                m->cappaid = m->cappaid ? m->cappaid * 2 : 8;
                m->paid = xrealloc(m->paid, (size_t)m->cappaid * sizeof *m->paid);
            }
            m->paid[m->npaid++] = (struct spot_price){p->model, p->region, 0};
        }
        if (m->paid[j].price != p->price) {
            m->paid[j].price = p->price;
            changed = 1;
        }
    }
    m->nprices = 0;
    if (changed) {
        uint64_t cur = 0;
        struct obj *x;
        while ((x = market_next(m, OBJ_ORDER, &cur)) != NULL) {
            struct order *b = (struct order *)x;
            if (!b->spot || strcmp(b->status, "running") != 0)
                continue;
            for (int k = 0; k < m->npaid; k++)
                if (m->paid[k].model == b->model && m->paid[k].region == b->region_num &&
                    m->paid[k].price != b->spot_price) {
                    b->spot_price = m->paid[k].price;
                    b->updated = market_now(m);
                    market_dirty(m, &b->o);
                }
        }
    }
    /* Bids that must stop: taken off the market's list first, since stopping one runs the
       engine again and this function with it (which then finds the list empty). */
    if (m->unfunded.n) {
        struct order_list l = m->unfunded;
        m->unfunded = (struct order_list){0};
        for (int i = 0; i < l.n; i++)
            if (!strcmp(l.v[i]->status, "pending") || !strcmp(l.v[i]->status, "preempted"))
                settle_spot_unfunded(m, l.v[i], m->now);
        free(l.v);
    }
}

/* ---- time ---- */

static void spot_round(struct market *m, int64_t t)
{
    engine_spot_supply *sup = NULL;
    size_t n = 0, cap = 0;
    uint64_t cur = 0;
    struct obj *o;
    sched_minute(m, t);
    while ((o = market_next(m, OBJ_POOL, &cur)) != NULL) {
        struct pool *p = (struct pool *)o;
        if (!p->spot_offer)
            continue;
        if (n == cap) {
            cap = cap ? cap * 2 : 16;
            sup = xrealloc(sup, cap * sizeof *sup);
        }
        int32_t idle, lent; /* unsold healthy GPUs, and GPUs idle holders lend */
        sched_spot_supply(m, p, t, &idle, &lent);
        sup[n++] = (engine_spot_supply){p->o.num, idle, lent};
    }
    if (engine_spot_round(m->eng, t, sup, n) == 0)
        market_apply_events(m);
    free(sup);
    sched_round_done(m, t);
    /* Notice periods that ran out: the bid is back to bidding. */
    cur = 0;
    while ((o = market_next(m, OBJ_ORDER, &cur)) != NULL) {
        struct order *b = (struct order *)o;
        if (b->spot && !strcmp(b->status, "preempted") && b->preempt_at <= t) {
            b->status = "pending";
            b->running_pool = NULL;
            b->updated = t;
            market_dirty(m, &b->o);
        }
    }
}

static void hour_boundary(struct market *m, int64_t t)
{
    if (engine_tick(m->eng, t) == 0)
        market_apply_events(m);
    uint64_t cur = 0;
    struct obj *o;
    while ((o = market_next(m, OBJ_CONTRACT, &cur)) != NULL) {
        struct contract *c = (struct contract *)o;
        if (!strcmp(c->status, "scheduled") && c->start <= t) {
            c->status = "active";
            market_dirty(m, &c->o);
            sched_contract_started(m, c, t); /* placed, spot reclaimed, in sched_hour */
        }
        if (!strcmp(c->status, "active") && c->end <= t) {
            c->status = "completed";
            market_dirty(m, &c->o);
            sched_contract_ended(m, c, t);
        }
    }
    sched_hour(m, t);
}

void market_advance(struct market *m, int64_t target)
{
    int64_t t = m->now;
    if (target <= t)
        return;
    /* Every whole minute in (t, target], in time order: the minute's spot metering, then at
       whole hours the hour's settlement and the hourly work, then the minute's spot round.
       While no spot bid is live, minutes hold no work: jump from hour to hour. */
    int64_t minute = (t / 60 + 1) * 60;
    int worked = minute <= target;
    while (minute <= target) {
        if (m->live_spot == 0 && minute % HOUR != 0) {
            /* ...and the minutes where a job's hours run out (sched.c). */
            int64_t next = (minute / HOUR + 1) * HOUR, due = sched_next_due(m);
            if (due > minute) {
                minute = due < next ? (due + 59) / 60 * 60 : next;
                continue;
            }
        }
        m->now = minute; /* events of this minute are stamped with it */
        settle_spot_minute(m, minute);
        if (minute % HOUR == 0) {
            settle_hour(m, minute);
            hour_boundary(m, minute);
        }
        spot_round(m, minute);
        m->now = minute;
        minute += 60;
    }
    m->now = target;
    if (worked)
        settle_flush(m, target);
    /* How far the clock's work is done, saved with it; a simulated clock's every advance (it
       moves only by them) so that a rebuild finds it where the last committed one left it. */
    if (worked || m->app->clock.simulated)
        turn(m)->sim_now = target;
}

/* ---- JSON ---- */

static json_t *ts(int64_t t)
{
    char b[CAPX_TIME_STRLEN];
    capx_time_format(t, b);
    return json_string(b);
}

json_t *pool_json(const struct pool *p)
{
    json_t *j =
        json_pack("{s:s,s:s,s:s,s:s,s:I,s:I,s:I,s:I}", "id", p->o.id, "name", p->name, "gpu_model",
                  p->gpu_model, "region", p->region, "nodes", (json_int_t)p->nodes, "gpus_per_node",
                  (json_int_t)p->gpus_per_node, "nodes_per_rack", (json_int_t)p->nodes_per_rack,
                  "gpus", (json_int_t)p->gpus);
    sched_pool_json(p, j); /* node states and utilization */
    return j;
}

json_t *offer_json(const struct offer *f)
{
    json_t *j = json_pack("{s:s,s:s,s:s,s:I,s:I,s:s,s:I}", "id", f->o.id, "pool_id", f->pool->o.id,
                          "kind", f->spot ? "spot" : "reservation", "gpus", (json_int_t)f->gpus,
                          "price", (json_int_t)f->price, "status", f->status, "sold_gpu_hours",
                          (json_int_t)f->sold_gpu_hours);
    if (!f->spot) {
        json_object_set_new(j, "start", ts(f->start));
        json_object_set_new(j, "end", ts(f->end));
    }
    return j;
}

json_t *order_json(const struct order *o)
{
    json_t *ids = json_array();
    for (int i = 0; i < o->ncontracts; i++)
        json_array_append_new(ids, json_string(o->contracts[i]->o.id));
    json_t *j =
        json_pack("{s:s,s:s,s:s,s:s,s:I,s:I,s:I,s:I,s:o}", "id", o->o.id, "kind",
                  o->spot ? "spot" : "reservation", "status", o->status, "gpu_model", o->gpu_model,
                  "gpus", (json_int_t)o->gpus, "filled_gpus", (json_int_t)o->filled, "limit_price",
                  (json_int_t)o->limit_price, "hold", (json_int_t)o->hold_amount, "contracts", ids);
    json_object_set_new(j, "region", o->region[0] ? json_string(o->region) : json_null());
    if (!o->spot) {
        json_object_set_new(j, "start", ts(o->start));
        json_object_set_new(j, "latest_start", ts(o->latest_start));
        json_object_set_new(j, "hours", json_integer(o->hours / HOUR));
        json_object_set_new(j, "all_or_none", json_boolean(o->all_or_none));
        json_object_set_new(j, "single_pool", json_boolean(o->single_pool));
        json_object_set_new(j, "time_in_force", json_string(o->ioc ? "ioc" : "gtc"));
        json_object_set_new(j, "lend_idle", json_boolean(o->lend_idle));
    } else {
        json_object_set_new(j, "pool_id",
                            o->running_pool ? json_string(o->running_pool->o.id) : json_null());
        json_object_set_new(j, "price", o->spot_price ? json_integer(o->spot_price) : json_null());
        json_object_set_new(j, "preempt_at", o->preempt_at ? ts(o->preempt_at) : json_null());
    }
    json_object_set_new(j, "created_at", ts(o->o.created));
    return j;
}

json_t *contract_json(const struct contract *c)
{
    json_t *j = json_pack(
        "{s:s,s:s,s:s,s:s,s:s,s:s,s:I,s:o,s:o,s:I,s:I,s:s,s:[],s:I}", "id", c->o.id, "order_id",
        c->order->o.id, "offer_id", c->offer->o.id, "pool_id", c->pool->o.id, "buyer_id",
        c->buyer->id, "provider_id", c->provider->id, "gpus", (json_int_t)c->gpus, "start",
        ts(c->start), "end", ts(c->end), "price", (json_int_t)c->price, "amount",
        (json_int_t)c->amount, "status", c->status, "placement", "lost_gpu_hours", (json_int_t)0);
    sched_contract_json(c, j); /* placement, lost GPU-hours */
    return j;
}

/* ---- loading (start-up and rebuild) ---- */

static int64_t ts_or(PGresult *r, int row, int col, int64_t dflt)
{
    return PQgetisnull(r, row, col) ? dflt : strtoll(PQgetvalue(r, row, col), NULL, 10);
}

static void copy(char *dst, size_t n, PGresult *r, int row, int col)
{
    snprintf(dst, n, "%s", PQgetisnull(r, row, col) ? "" : PQgetvalue(r, row, col));
}

static const char *intern_status(const char *s)
{
    static const char *const all[] = {"open",    "filled",    "partially_filled", "cancelled",
                                      "expired", "pending",   "running",          "preempted",
                                      "stopped", "scheduled", "active",           "completed"};
    for (size_t i = 0; i < ARRAY_LEN(all); i++)
        if (!strcmp(all[i], s))
            return all[i];
    capx_fatal("unknown status %s in the database", s);
}

static struct account *acct_of(struct market *m, const char *id)
{
    struct account *a = hmap_get(&m->app->accounts, id);
    if (!a)
        capx_fatal("account %s referenced but not loaded", id);
    return a;
}

struct account *market_account_new(struct market *m, const char *id, const char *name,
                                   unsigned roles)
{
    struct account *a = hmap_get(&m->app->accounts, id);
    if (a) {
        /* Reloaded: same object (requests may point at it), balances from the ledger. */
        a->roles = roles;
        a->available = a->held = a->open_orders = a->pool_nodes = 0;
        return a;
    }
    a = xcalloc(1, sizeof *a);
    snprintf(a->id, sizeof a->id, "%s", id);
    snprintf(a->name, sizeof a->name, "%s", name);
    a->roles = roles;
    a->num = ++m->next_account_num;
    a->tokens = (double)m->app->cfg.rate_burst;
    a->created = market_now(m);
    hmap_put(&m->app->accounts, a->id, a);
    return a;
}

static unsigned roles_of(const char *pgarray)
{
    unsigned r = 0;
    if (strstr(pgarray, "buyer"))
        r |= ROLE_BUYER;
    if (strstr(pgarray, "provider"))
        r |= ROLE_PROVIDER;
    if (strstr(pgarray, "admin"))
        r |= ROLE_ADMIN;
    return r;
}

static int load_accounts(struct market *m, PGconn *c, char *err, size_t errlen)
{
    PGresult *r = db_rows(c,
                          "SELECT id, name, roles::text, extract(epoch FROM created_at)::bigint "
                          "FROM accounts ORDER BY created_at, id",
                          err, errlen);
    if (!r)
        return -1;
    for (int i = 0; i < PQntuples(r); i++) {
        struct account *a = market_account_new(m, PQgetvalue(r, i, 0), PQgetvalue(r, i, 1),
                                               roles_of(PQgetvalue(r, i, 2)));
        a->created = db_i64(r, i, 3);
    }
    PQclear(r);
    r = db_rows(
        c,
        "SELECT owner, coalesce(sum(CASE WHEN kind = 'cash' THEN credits_posted - "
        "debits_posted - debits_pending ELSE 0 END), 0)::bigint, coalesce(sum(CASE WHEN kind = "
        "'cash' THEN debits_pending ELSE credits_posted - debits_posted END), 0)::bigint "
        "FROM ledger_accounts WHERE owner IS NOT NULL GROUP BY owner",
        err, errlen);
    if (!r)
        return -1;
    for (int i = 0; i < PQntuples(r); i++) {
        struct account *a = hmap_get(&m->app->accounts, PQgetvalue(r, i, 0));
        if (!a)
            continue;
        a->available = db_i64(r, i, 1);
        a->held = db_i64(r, i, 2);
        check_mirror(a);
    }
    PQclear(r);
    r = db_rows(
        c, "SELECT id, account_id, encode(key_hash, 'hex') FROM api_keys WHERE revoked_at IS NULL",
        err, errlen);
    if (!r)
        return -1;
    for (int i = 0; i < PQntuples(r); i++) {
        struct api_key *k = xcalloc(1, sizeof *k);
        snprintf(k->id, sizeof k->id, "%s", PQgetvalue(r, i, 0));
        k->acct = acct_of(m, PQgetvalue(r, i, 1));
        hmap_put(&m->app->keys, PQgetvalue(r, i, 2), k);
    }
    PQclear(r);
    r = db_rows(c,
                "SELECT account_id || E'\\n' || key, encode(request_hash, 'hex'), status, body, "
                "extract(epoch FROM created_at)::bigint FROM idempotency_keys "
                "WHERE created_at > now() - interval '24 hours'",
                err, errlen);
    if (!r)
        return -1;
    for (int i = 0; i < PQntuples(r); i++) {
        struct idem *d = xcalloc(1, sizeof *d);
        const char *hex = PQgetvalue(r, i, 1);
        for (int k = 0; k < 32; k++) {
            unsigned v;
            sscanf(hex + 2 * k, "%2x", &v);
            d->hash[k] = (unsigned char)v;
        }
        d->status = (int)db_i64(r, i, 2);
        d->body = xstrdup(PQgetvalue(r, i, 3));
        d->created = db_i64(r, i, 4);
        struct idem *prev = hmap_put(&m->app->idem, PQgetvalue(r, i, 0), d);
        if (prev) {
            free(prev->body);
            free(prev);
        }
    }
    PQclear(r);
    return 0;
}

static void restore_market_data(struct market *m);

static int load_market(struct market *m, PGconn *c, char *err, size_t errlen)
{
    uint64_t max_seq = 0, max_trade = 0;
    PGresult *r =
        db_rows(c,
                "SELECT id, num, account_id, name, gpu_model, region, nodes, gpus_per_node, "
                "nodes_per_rack, extract(epoch FROM created_at)::bigint FROM pools ORDER BY num",
                err, errlen);
    if (!r)
        return -1;
    for (int i = 0; i < PQntuples(r); i++) {
        struct pool *p = xcalloc(1, sizeof *p);
        p->o.type = OBJ_POOL;
        copy(p->o.id, sizeof p->o.id, r, i, 0);
        p->o.num = (uint64_t)db_i64(r, i, 1);
        p->acct = acct_of(m, PQgetvalue(r, i, 2));
        copy(p->name, sizeof p->name, r, i, 3);
        copy(p->gpu_model, sizeof p->gpu_model, r, i, 4);
        copy(p->region, sizeof p->region, r, i, 5);
        p->nodes = db_i64(r, i, 6);
        p->gpus_per_node = db_i64(r, i, 7);
        p->nodes_per_rack = db_i64(r, i, 8);
        p->gpus = p->nodes * p->gpus_per_node;
        p->o.created = db_i64(r, i, 9);
        p->acct->pool_nodes += p->nodes;
        p->model = market_intern(m, p->gpu_model);
        p->region_num = market_intern(m, p->region);
        add_obj(m, &p->o);
        if (engine_add_pool(m->eng, p->o.num, p->acct->num, p->model, p->region_num,
                            (int32_t)p->gpus) < 0) {
            snprintf(err, errlen, "engine refused pool %s", p->o.id);
            PQclear(r);
            return -1;
        }
    }
    PQclear(r);
    r = db_rows(c,
                "SELECT id, num, pool_id, kind, gpus, extract(epoch FROM start_at)::bigint, "
                "extract(epoch FROM end_at)::bigint, price, status, seq, "
                "extract(epoch FROM created_at)::bigint FROM offers ORDER BY num",
                err, errlen);
    if (!r)
        return -1;
    for (int i = 0; i < PQntuples(r); i++) {
        struct offer *f = xcalloc(1, sizeof *f);
        f->o.type = OBJ_OFFER;
        copy(f->o.id, sizeof f->o.id, r, i, 0);
        f->o.num = (uint64_t)db_i64(r, i, 1);
        f->pool = (struct pool *)market_get(m, PQgetvalue(r, i, 2));
        CAPX_ASSERT(f->pool && f->pool->o.type == OBJ_POOL);
        f->spot = !strcmp(PQgetvalue(r, i, 3), "spot");
        f->gpus = db_i64(r, i, 4);
        f->start = db_i64(r, i, 5);
        f->end = db_i64(r, i, 6);
        f->price = db_i64(r, i, 7);
        f->status = intern_status(PQgetvalue(r, i, 8));
        f->seq = (uint64_t)db_i64(r, i, 9);
        f->o.created = db_i64(r, i, 10);
        if (f->seq > max_seq)
            max_seq = f->seq;
        add_obj(m, &f->o);
        if (strcmp(f->status, "open") != 0)
            continue;
        int rc;
        if (f->spot) {
            engine_spot_offer_spec s = {f->o.num, f->pool->o.num, f->price, (int32_t)f->gpus};
            rc = engine_restore_spot_offer(m->eng, &s, f->seq);
            f->pool->spot_offer = f;
        } else {
            engine_offer_spec s = {f->o.num,      f->pool->o.num, f->start / HOUR,
                                   f->end / HOUR, f->price,       (int32_t)f->gpus};
            rc = engine_restore_offer(m->eng, &s, f->seq);
        }
        if (rc < 0) {
            snprintf(err, errlen, "engine refused offer %s: %s", f->o.id,
                     engine_strerror(engine_error(m->eng)));
            PQclear(r);
            return -1;
        }
    }
    PQclear(r);
    r = db_rows(c,
                "SELECT id, num, account_id, kind, gpu_model, region, gpus, filled_gpus, "
                "extract(epoch FROM start_at)::bigint, extract(epoch FROM latest_start)::bigint, "
                "extract(epoch FROM fixed_start)::bigint, hours, limit_price, all_or_none, "
                "single_pool, time_in_force, lend_idle, status, hold_id, hold_amount, hold_count, "
                "running_pool, spot_price, extract(epoch FROM preempt_at)::bigint, seq, "
                "extract(epoch FROM created_at)::bigint, extract(epoch FROM updated_at)::bigint, "
                "spot_acc FROM orders ORDER BY num",
                err, errlen);
    if (!r)
        return -1;
    for (int i = 0; i < PQntuples(r); i++) {
        struct order *o = xcalloc(1, sizeof *o);
        o->o.type = OBJ_ORDER;
        copy(o->o.id, sizeof o->o.id, r, i, 0);
        o->o.num = (uint64_t)db_i64(r, i, 1);
        o->acct = acct_of(m, PQgetvalue(r, i, 2));
        o->spot = !strcmp(PQgetvalue(r, i, 3), "spot");
        copy(o->gpu_model, sizeof o->gpu_model, r, i, 4);
        copy(o->region, sizeof o->region, r, i, 5);
        o->model = market_intern(m, o->gpu_model);
        o->region_num = o->region[0] ? market_intern(m, o->region) : 0;
        o->gpus = db_i64(r, i, 6);
        o->filled = db_i64(r, i, 7);
        o->start = db_i64(r, i, 8);
        o->latest_start = db_i64(r, i, 9);
        o->fixed_start = ts_or(r, i, 10, -1);
        o->hours = db_i64(r, i, 11) * HOUR;
        o->limit_price = db_i64(r, i, 12);
        o->all_or_none = PQgetvalue(r, i, 13)[0] == 't';
        o->single_pool = PQgetvalue(r, i, 14)[0] == 't';
        o->ioc = !strcmp(PQgetvalue(r, i, 15), "ioc");
        o->lend_idle = PQgetvalue(r, i, 16)[0] == 't';
        o->status = intern_status(PQgetvalue(r, i, 17));
        copy(o->hold_id, sizeof o->hold_id, r, i, 18);
        o->hold_amount = db_i64(r, i, 19);
        o->hold_count = db_i64(r, i, 20);
        o->running_pool =
            PQgetisnull(r, i, 21) ? NULL : (struct pool *)market_get(m, PQgetvalue(r, i, 21));
        o->spot_price = db_i64(r, i, 22);
        o->preempt_at = db_i64(r, i, 23);
        o->seq = (uint64_t)db_i64(r, i, 24);
        o->o.created = db_i64(r, i, 25);
        o->updated = db_i64(r, i, 26);
        o->spot_acc = db_i64(r, i, 27);
        if (o->seq > max_seq)
            max_seq = o->seq;
        add_obj(m, &o->o);
    }
    PQclear(r);
    r = db_rows(c,
                "SELECT id, num, order_id, offer_id, pool_id, buyer_id, provider_id, gpus, "
                "extract(epoch FROM start_at)::bigint, extract(epoch FROM end_at)::bigint, price, "
                "amount, status, trade_seq, extract(epoch FROM created_at)::bigint, settled, "
                "extract(epoch FROM settled_until)::bigint FROM contracts ORDER BY num",
                err, errlen);
    if (!r)
        return -1;
    for (int i = 0; i < PQntuples(r); i++) {
        struct contract *k = xcalloc(1, sizeof *k);
        k->o.type = OBJ_CONTRACT;
        copy(k->o.id, sizeof k->o.id, r, i, 0);
        k->o.num = (uint64_t)db_i64(r, i, 1);
        k->order = (struct order *)market_get(m, PQgetvalue(r, i, 2));
        k->offer = (struct offer *)market_get(m, PQgetvalue(r, i, 3));
        k->pool = (struct pool *)market_get(m, PQgetvalue(r, i, 4));
        CAPX_ASSERT(k->order && k->offer && k->pool);
        k->buyer = acct_of(m, PQgetvalue(r, i, 5));
        k->provider = acct_of(m, PQgetvalue(r, i, 6));
        k->gpus = db_i64(r, i, 7);
        k->start = db_i64(r, i, 8);
        k->end = db_i64(r, i, 9);
        k->price = db_i64(r, i, 10);
        k->amount = db_i64(r, i, 11);
        k->status = intern_status(PQgetvalue(r, i, 12));
        k->trade_seq = (uint64_t)db_i64(r, i, 13);
        k->o.created = db_i64(r, i, 14);
        k->settled = db_i64(r, i, 15);
        k->settled_until = ts_or(r, i, 16, k->start);
        k->range_start = -1;
        if (k->trade_seq > max_trade)
            max_trade = k->trade_seq;
        add_obj(m, &k->o);
        order_add_contract(k->order, k);
        k->offer->sold_gpu_hours += k->gpus * ((k->end - k->start) / HOUR);
        if (strcmp(k->status, "cancelled") != 0 &&
            engine_restore_sold(m->eng, k->pool->o.num, k->start / HOUR, k->end / HOUR,
                                (int32_t)k->gpus) < 0) {
            snprintf(err, errlen, "engine refused contract %s", k->o.id);
            PQclear(r);
            return -1;
        }
    }
    PQclear(r);
    /* Open orders and bids go back into the engine once their contracts are known. */
    uint64_t cur = 0;
    struct obj *ob;
    while ((ob = market_next(m, OBJ_ORDER, &cur)) != NULL) {
        struct order *o = (struct order *)ob;
        int rc = 0, open = 0;
        if (o->spot) {
            open = !strcmp(o->status, "pending") || !strcmp(o->status, "running") ||
                   !strcmp(o->status, "preempted");
            if (open) {
                engine_spot_bid_spec s = {o->o.num,      o->acct->num,   o->model,
                                          o->region_num, o->limit_price, (int32_t)o->gpus};
                uint64_t running =
                    !strcmp(o->status, "running") && o->running_pool ? o->running_pool->o.num : 0;
                rc = engine_restore_spot_bid(m->eng, &s, o->seq, running);
            }
        } else {
            open = !strcmp(o->status, "open") || !strcmp(o->status, "partially_filled");
            if (open) {
                engine_order_spec s = {
                    o->o.num,       o->acct->num,     o->model,
                    o->region_num,  o->start / HOUR,  o->latest_start / HOUR,
                    o->limit_price, (int32_t)o->gpus, (int32_t)(o->hours / HOUR),
                    o->all_or_none, o->single_pool,   o->ioc ? ENGINE_IOC : ENGINE_GTC};
                uint64_t fixed_pool =
                    o->single_pool && o->ncontracts ? o->contracts[0]->pool->o.num : 0;
                rc = engine_restore_order(m->eng, &s, o->seq, (int32_t)o->filled,
                                          o->fixed_start >= 0 ? o->fixed_start / HOUR : -1,
                                          fixed_pool);
            }
        }
        if (open)
            o->acct->open_orders++;
        if (open && o->spot)
            m->live_spot++;
        if (rc < 0) {
            snprintf(err, errlen, "engine refused order %s: %s", o->o.id,
                     engine_strerror(engine_error(m->eng)));
            return -1;
        }
    }
    engine_restore_counters(m->eng, max_seq + 1, max_trade + 1, market_now(m));
    restore_market_data(m);
    return sched_load(m, c, err, errlen); /* placements, jobs, failures, losses */
}

struct trade_row {
    uint64_t model, region;
    engine_trade t;
};

static int trade_older(const void *a, const void *b)
{
    const struct trade_row *x = a, *y = b;
    return x->t.seq < y->t.seq ? -1 : x->t.seq > y->t.seq;
}

/* The engine keeps each market's last trades, last price and spot price in memory only: they
   come back from the contracts (one per trade) and from the spot price most recently paid. */
static void restore_market_data(struct market *m)
{
    struct trade_row *rows = NULL;
    size_t n = 0, cap = 0;
    uint64_t cur = 0;
    struct obj *o;
    while ((o = market_next(m, OBJ_CONTRACT, &cur)) != NULL) {
        const struct contract *c = (const struct contract *)o;
        if (n == cap) {
            cap = cap ? cap * 2 : 64;
            rows = xrealloc(rows, cap * sizeof *rows);
        }
        rows[n++] = (struct trade_row){
            c->pool->model,
            c->pool->region_num,
            {c->trade_seq, c->price, c->gpus, c->start / HOUR, c->end / HOUR, c->o.created}};
    }
    if (n)
        qsort(rows, n, sizeof *rows, trade_older);
    for (size_t i = 0; i < n; i++) /* (the engine keeps the newest of each market) */
        engine_restore_market_data(m->eng, rows[i].model, rows[i].region, &rows[i].t, 1, 0);
    free(rows);
    /* Per market, the price its running bids pay (they all pay the last round's), else the
       price of the spot bid updated last (orders in num order: a later one wins a tie). */
    struct order **last = NULL;
    size_t nl = 0, capl = 0;
    cur = 0;
    while ((o = market_next(m, OBJ_ORDER, &cur)) != NULL) {
        struct order *b = (struct order *)o;
        if (!b->spot || b->spot_price <= 0)
            continue;
        size_t k = 0;
        while (k < nl && (last[k]->model != b->model || last[k]->region_num != b->region_num))
            k++;
        if (k == nl) {
            if (nl == capl) {
                capl = capl ? capl * 2 : 8;
                last = xrealloc(last, capl * sizeof *last);
            }
            last[nl++] = b;
        } else {
            int run = !strcmp(b->status, "running"), was = !strcmp(last[k]->status, "running");
            if (run > was || (run == was && b->updated >= last[k]->updated))
                last[k] = b;
        }
    }
    for (size_t k = 0; k < nl; k++)
        engine_restore_market_data(m->eng, last[k]->model, last[k]->region_num, NULL, 0,
                                   last[k]->spot_price);
    free(last);
}

int market_load(struct market *m, const char *conninfo, char *err, size_t errlen)
{
    int rc = -1;
    PGconn *c = PQconnectdb(conninfo);
    if (PQstatus(c) != CONNECTION_OK) {
        snprintf(err, errlen, "database: %s", PQerrorMessage(c));
        err[strcspn(err, "\n")] = '\0';
        goto done;
    }
    PGresult *r = PQexec(c, "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY");
    PQclear(r);
    turn_free(m->open);
    m->open = NULL;
    app_clear(m->app, 0);
    sched_free(m->sched);
    m->sched = sched_new(m);
    free_objs(m);
    hmap_init(&m->by_id);
    hmap_init(&m->interns);
    engine_free(m->eng);
    m->eng = engine_new(sink, m);
    m->nevents = 0;
    m->npaid = 0;
    int64_t processed = -1;
    r = db_rows(c, "SELECT sim_now FROM clock_state", err, errlen);
    if (!r)
        goto done;
    if (PQntuples(r) == 1)
        processed = db_i64(r, 0, 0);
    PQclear(r);
    /* A simulated clock is where its last committed advance left it (or where it started):
       an advance whose turn did not commit (it was answered 503) moved nothing. */
    if (m->app->clock.simulated)
        m->app->clock.sim_now =
            processed > m->app->clock.sim_start ? processed : m->app->clock.sim_start;
    if (load_accounts(m, c, err, errlen) < 0 || load_market(m, c, err, errlen) < 0 ||
        settle_load(m, c, err, errlen) < 0)
        goto done;
    /* With the real clock, work due while capxd was down is done by the next tick. */
    m->now = market_now(m);
    if (processed > 0 && processed < m->now)
        m->now = processed;
    m->ready = 1;
    m->version++; /* everything cached before is stale */
    rc = 0;
    log_info("msg=\"market loaded\" accounts=%zu objects=%llu engine_bytes=%zu",
             m->app->accounts.len, (unsigned long long)m->nobjs, engine_memory(m->eng));
done:
    PQfinish(c);
    return rc;
}
