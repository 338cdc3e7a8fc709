/*
 * capx — the command-line client of buyers and providers.
 *
 * `capx NOUN VERB [ARGS] [flags]` makes one or a few HTTPS calls to capxd (clients/https.c,
 * certificate and host verified) and prints the answer as an aligned table, CSV, or the
 * server's JSON. Connection settings come from one config table (common/config.h): defaults,
 * then the config file (~/.config/capx/config, or $CAPX_CONFIG / --config; refused unless only
 * its owner can read it, since it holds the API key), then CAPX_URL / CAPX_API_KEY / ...,
 * then flags. Each command's own flags (--gpus, --price, ...) are taken first by cli_take_flags.
 *
 * Money is typed and shown in dollars and sent as exact micro-USD (clients/units.c); every
 * create and cancel carries an Idempotency-Key (fresh and random, or --idempotency-key to
 * retry an earlier attempt), so a retried command never orders twice.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <jansson.h>

#include "clients/cli.h"
#include "clients/units.h"
#include "common/config.h"
#include "common/timefmt.h"

/* ---- settings (one table: file, CAPX_* environment, flags, --help) ---- */

static char *o_url, *o_api_key, *o_cacert, *o_format;
static int64_t o_timeout;

static const struct cfg_entry capx_cfg[] = {
    {"url", CFG_STR, &o_url, "", 0, 0, "server URL, e.g. https://capx.example:8443"},
    {"api_key", CFG_STR, &o_api_key, "", 0, 0, "API key (capx_...)"},
    {"cacert", CFG_STR, &o_cacert, "", 0, 0,
     "PEM file of CAs to trust (the development certificate); default the system's"},
    {"format", CFG_STR, &o_format, "table", 0, 0, "output: table, csv or json"},
    {"timeout", CFG_INT, &o_timeout, "30", 1, 3600, "seconds to wait for each network step"},
};

/* ---- each command's flags ---- */

static const char *f_name, *f_gpu_model, *f_region, *f_nodes, *f_gpn, *f_npr, *f_pool, *f_gpus,
    *f_start, *f_end, *f_duration, *f_price, *f_limit_price, *f_kind, *f_latest_start, *f_partial,
    *f_single_pool, *f_ioc, *f_lend_idle, *f_idem, *f_status, *f_limit, *f_cursor, *f_all;

#define FLAG_IDEM                                                                                  \
    {                                                                                              \
        "idempotency-key", 0, &f_idem,                                                             \
            "retry an earlier attempt with its key (default: a fresh random key)"                  \
    }
#define FLAGS_LIST                                                                                 \
    {"limit", 0, &f_limit, "results per page, 1-500 (default 100)"},                               \
        {"cursor", 0, &f_cursor, "start after this cursor (from an earlier page)"},                \
    {                                                                                              \
        "all", 1, &f_all, "follow next_cursor to the end"                                          \
    }

static const struct cli_flag fl_pool_create[] = {
    {"name", 0, &f_name, "pool name (required)"},
    {"gpu-model", 0, &f_gpu_model, "GPU model, e.g. H100-SXM-80GB (required)"},
    {"region", 0, &f_region, "region, e.g. us-west (required)"},
    {"nodes", 0, &f_nodes, "number of nodes (required)"},
    {"gpus-per-node", 0, &f_gpn, "GPUs in each node (required)"},
    {"nodes-per-rack", 0, &f_npr, "nodes in each rack"},
    FLAG_IDEM,
};
static const struct cli_flag fl_list[] = {FLAGS_LIST};
static const struct cli_flag fl_cancel[] = {FLAG_IDEM};
static const struct cli_flag fl_offer_create[] = {
    {"pool", 0, &f_pool, "pool id (required)"},
    {"kind", 0, &f_kind, "reservation (default) or spot"},
    {"gpus", 0, &f_gpus, "GPUs offered (required)"},
    {"start", 0, &f_start, "first hour, RFC 3339 (reservation)"},
    {"end", 0, &f_end, "end, RFC 3339 (reservation; or --duration)"},
    {"duration", 0, &f_duration, "length instead of --end: 720h, 30d"},
    {"price", 0, &f_price, "dollars per GPU-hour: 2.10 or 2.10/gpu-hr (required)"},
    FLAG_IDEM,
};
#define FLAGS_ORDER                                                                                \
    {"kind", 0, &f_kind, "reservation (default) or spot"},                                         \
        {"gpu-model", 0, &f_gpu_model, "GPU model (required)"},                                    \
        {"region", 0, &f_region, "region"}, {"gpus", 0, &f_gpus, "GPUs wanted (required)"},        \
        {"start", 0, &f_start, "first hour, RFC 3339 (reservation, required)"},                    \
        {"duration", 0, &f_duration, "how long: 720h, 30d (reservation, required)"},               \
        {"latest-start", 0, &f_latest_start, "any whole-hour start up to this one will do"},       \
        {"limit-price", 0, &f_limit_price, "at most this many dollars per GPU-hour (required)"},   \
        {"partial", 1, &f_partial, "accept a partial fill (all_or_none false)"},                   \
        {"single-pool", 1, &f_single_pool, "all GPUs from one pool"},                              \
        {"ioc", 1, &f_ioc, "fill now or cancel (time_in_force ioc)"},                              \
    {                                                                                              \
        "lend-idle", 1, &f_lend_idle, "lend reserved GPUs to spot while idle"                      \
    }
static const struct cli_flag fl_order_create[] = {FLAGS_ORDER, FLAG_IDEM};
static const struct cli_flag fl_order_quote[] = {FLAGS_ORDER};
static const struct cli_flag fl_order_list[] = {
    {"status", 0, &f_status, "only orders in this status"},
    FLAGS_LIST,
};
static const struct cli_flag fl_book[] = {
    {"region", 0, &f_region, "region (needed when the model trades in several)"},
    {"start", 0, &f_start, "first hour, RFC 3339 (default the next hour)"},
    {"end", 0, &f_end, "end, RFC 3339 (default start + 24h)"},
};
static const struct cli_flag fl_trades[] = {
    {"region", 0, &f_region, "only this region"},
};

/* ---- what is shown of each object ---- */

static const struct cli_col pool_cols[] = {
    {"ID", "id", CK_STR, 0},
    {"NAME", "name", CK_STR, 0},
    {"MODEL", "gpu_model", CK_STR, 0},
    {"REGION", "region", CK_STR, 0},
    {"NODES", "nodes", CK_NUM, 0},
    {"GPUS/NODE", "gpus_per_node", CK_NUM, 0},
    {"NODES/RACK", "nodes_per_rack", CK_NUM, 0},
    {"GPUS", "gpus", CK_NUM, 0},
};
static const struct cli_col offer_cols[] = {
    {"ID", "id", CK_STR, 0},
    {"POOL", "pool_id", CK_STR, 0},
    {"KIND", "kind", CK_STR, 0},
    {"GPUS", "gpus", CK_NUM, 0},
    {"START", "start", CK_STR, 0},
    {"END", "end", CK_STR, 0},
    {"$/GPU-HR", "price", CK_USD, 0},
    {"STATUS", "status", CK_STR, 0},
    {"SOLD GPU-HR", "sold_gpu_hours", CK_NUM, 0},
};
static const struct cli_col order_cols[] = {
    {"ID", "id", CK_STR, 0},
    {"KIND", "kind", CK_STR, 0},
    {"STATUS", "status", CK_STR, 0},
    {"MODEL", "gpu_model", CK_STR, 0},
    {"REGION", "region", CK_STR, 0},
    {"GPUS", "gpus", CK_NUM, 0},
    {"FILLED", "filled_gpus", CK_NUM, 0},
    {"START", "start", CK_STR, 0},
    {"HOURS", "hours", CK_NUM, 0},
    {"LIMIT $/GPU-HR", "limit_price", CK_USD, 0},
    {"HOLD $", "hold", CK_USD, 0},
    {"CONTRACTS", "contracts", CK_LIST, 1},
    {"LATEST START", "latest_start", CK_STR, 1},
    {"TIME IN FORCE", "time_in_force", CK_STR, 1},
    {"ALL OR NONE", "all_or_none", CK_STR, 1},
    {"SINGLE POOL", "single_pool", CK_STR, 1},
    {"LEND IDLE", "lend_idle", CK_STR, 1},
    {"SPOT POOL", "pool_id", CK_STR, 1},
    {"SPOT $/GPU-HR", "price", CK_USD, 1},
    {"PREEMPT AT", "preempt_at", CK_STR, 1},
    {"CREATED", "created_at", CK_STR, 1},
};
static const struct cli_col quote_cols[] = {
    {"POOL", "pool_id", CK_STR, 0}, {"GPUS", "gpus", CK_NUM, 0},      {"START", "start", CK_STR, 0},
    {"END", "end", CK_STR, 0},      {"$/GPU-HR", "price", CK_USD, 0},
};
static const struct cli_col contract_cols[] = {
    {"ID", "id", CK_STR, 0},
    {"ORDER", "order_id", CK_STR, 0},
    {"POOL", "pool_id", CK_STR, 0},
    {"GPUS", "gpus", CK_NUM, 0},
    {"START", "start", CK_STR, 0},
    {"END", "end", CK_STR, 0},
    {"$/GPU-HR", "price", CK_USD, 0},
    {"AMOUNT $", "amount", CK_USD, 0},
    {"STATUS", "status", CK_STR, 0},
    {"OFFER", "offer_id", CK_STR, 1},
    {"BUYER", "buyer_id", CK_STR, 1},
    {"PROVIDER", "provider_id", CK_STR, 1},
    {"PLACEMENT", "placement", CK_PLACE, 1},
    {"LOST GPU-HR", "lost_gpu_hours", CK_NUM, 1},
};
static const struct cli_col market_cols[] = {
    {"MODEL", "gpu_model", CK_STR, 0},   {"REGION", "region", CK_STR, 0},
    {"BEST ASK", "best_ask", CK_USD, 0}, {"BEST BID", "best_bid", CK_USD, 0},
    {"SPOT", "spot_price", CK_USD, 0},   {"LAST", "last_price", CK_USD, 0},
};
static const struct cli_col level_cols[] = {
    {"SIDE", "side", CK_STR, 0},     {"$/GPU-HR", "price", CK_USD, 0},
    {"GPUS", "gpus", CK_NUM, 0},     {"GPU-HOURS", "gpu_hours", CK_NUM, 0},
    {"ORDERS", "orders", CK_NUM, 0},
};
static const struct cli_col trade_cols[] = {
    {"ID", "id", CK_STR, 0},     {"$/GPU-HR", "price", CK_USD, 0},
    {"GPUS", "gpus", CK_NUM, 0}, {"START", "start", CK_STR, 0},
    {"END", "end", CK_STR, 0},   {"EXECUTED", "executed_at", CK_STR, 0},
};
static const struct cli_col account_cols[] = {
    {"ID", "id", CK_STR, 0},
    {"NAME", "name", CK_STR, 0},
    {"ROLES", "roles", CK_LIST, 0},
    {"AVAILABLE $", "balance.available", CK_USD, 0},
    {"HELD $", "balance.held", CK_USD, 0},
};
static const struct cli_col transfer_cols[] = {
    {"ID", "id", CK_STR, 0},           {"CREATED", "created_at", CK_STR, 0},
    {"KIND", "kind", CK_STR, 0},       {"DIRECTION", "direction", CK_STR, 0},
    {"AMOUNT $", "amount", CK_USD, 0}, {"STATUS", "status", CK_STR, 0},
    {"REF", "ref", CK_STR, 0},
};

/* ---- argument helpers: each prints its own usage error ---- */

static int refuse(struct cli *c, const char *v, const char *flag, const char *why)
{
    if (!v)
        return 0;
    cli_fail(c, CLI_USAGE, "--%s %s", flag, why);
    return -1;
}

static int count_arg(struct cli *c, const char *v, const char *flag, int64_t *out)
{
    char err[256];
    if (cli_need(c, v, flag) < 0)
        return -1;
    if (units_parse_count(v, 1000000000000LL, out, err, sizeof err) < 0) {
        cli_fail(c, CLI_USAGE, "--%s: %s", flag, err);
        return -1;
    }
    return 0;
}

static int price_arg(struct cli *c, const char *v, const char *flag, int64_t *out)
{
    char err[256];
    if (cli_need(c, v, flag) < 0)
        return -1;
    if (units_parse_usd(v, UNITS_PRICE, out, err, sizeof err) < 0) {
        cli_fail(c, CLI_USAGE, "--%s: %s", flag, err);
        return -1;
    }
    return 0;
}

static int time_arg(struct cli *c, const char *v, const char *flag, int64_t *out)
{
    if (cli_need(c, v, flag) < 0)
        return -1;
    if (capx_time_parse(v, out) < 0) {
        cli_fail(c, CLI_USAGE, "--%s: \"%s\" is not an RFC 3339 UTC time like 2027-01-04T00:00:00Z",
                 flag, v);
        return -1;
    }
    return 0;
}

static int duration_arg(struct cli *c, const char *v, const char *flag, int64_t *hours)
{
    char err[256];
    if (cli_need(c, v, flag) < 0)
        return -1;
    if (units_parse_duration(v, hours, err, sizeof err) < 0) {
        cli_fail(c, CLI_USAGE, "--%s: %s", flag, err);
        return -1;
    }
    return 0;
}

/* The kind flag: 0 reservation, 1 spot, -1 after a usage error. */
static int kind_arg(struct cli *c)
{
    if (!f_kind || !strcmp(f_kind, "reservation"))
        return 0;
    if (!strcmp(f_kind, "spot"))
        return 1;
    cli_fail(c, CLI_USAGE, "--kind must be reservation or spot, got \"%s\"", f_kind);
    return -1;
}

static int show(struct cli *c, const char *method, const char *coll, const char *id,
                const struct cli_col *cols, size_t n)
{
    char path[1024], esc[512], kb[64];
    json_t *out = NULL;
    cli_escape(id, esc, sizeof esc);
    snprintf(path, sizeof path, "/v1/%s/%s", coll, esc);
    int rc = cli_call(c, method, path, NULL,
                      strcmp(method, "GET") ? cli_idem(f_idem, kb, sizeof kb) : NULL, &out);
    if (rc == CLI_OK && out)
        cli_print_one(c, out, cols, n);
    json_decref(out);
    return rc;
}

static int list(struct cli *c, const char *path, const char *query, const struct cli_col *cols,
                size_t n)
{
    json_t *out = NULL;
    int rc = cli_list(c, path, query, f_limit, f_cursor, cli_switch_on(f_all), &out);
    if (rc == CLI_OK)
        cli_print_list(c, out, cols, n);
    json_decref(out);
    return rc;
}

/* ---- commands ---- */

static int pools_create(struct cli *c, char **args)
{
    UNUSED(args);
    int64_t nodes, gpn, npr = 0;
    if (cli_need(c, f_name, "name") < 0 || cli_need(c, f_gpu_model, "gpu-model") < 0 ||
        cli_need(c, f_region, "region") < 0 || count_arg(c, f_nodes, "nodes", &nodes) < 0 ||
        count_arg(c, f_gpn, "gpus-per-node", &gpn) < 0 ||
        (f_npr && count_arg(c, f_npr, "nodes-per-rack", &npr) < 0))
        return CLI_USAGE;
    json_t *b =
        json_pack("{s:s,s:s,s:s,s:I,s:I}", "name", f_name, "gpu_model", f_gpu_model, "region",
                  f_region, "nodes", (json_int_t)nodes, "gpus_per_node", (json_int_t)gpn);
    if (f_npr)
        json_object_set_new(b, "nodes_per_rack", json_integer(npr));
    return cli_post(c, "/v1/pools", b, f_idem, pool_cols, ARRAY_LEN(pool_cols));
}

static int pools_list(struct cli *c, char **args)
{
    UNUSED(args);
    return list(c, "/v1/pools", "", pool_cols, ARRAY_LEN(pool_cols));
}

static int pools_show(struct cli *c, char **args)
{
    return show(c, "GET", "pools", args[0], pool_cols, ARRAY_LEN(pool_cols));
}

static int offers_create(struct cli *c, char **args)
{
    UNUSED(args);
    int64_t gpus, price, start, end, hours;
    int spot = kind_arg(c);
    if (spot < 0 || cli_need(c, f_pool, "pool") < 0 || count_arg(c, f_gpus, "gpus", &gpus) < 0 ||
        price_arg(c, f_price, "price", &price) < 0)
        return CLI_USAGE;
    json_t *b = json_pack("{s:s,s:I,s:I}", "pool_id", f_pool, "gpus", (json_int_t)gpus, "price",
                          (json_int_t)price);
    if (spot) {
        if (refuse(c, f_start, "start", "is for reservation offers") < 0 ||
            refuse(c, f_end, "end", "is for reservation offers") < 0 ||
            refuse(c, f_duration, "duration", "is for reservation offers") < 0)
            goto usage;
        json_object_set_new(b, "kind", json_string("spot"));
    } else {
        if (time_arg(c, f_start, "start", &start) < 0)
            goto usage;
        if (f_end && f_duration) {
            cli_fail(c, CLI_USAGE, "give --end or --duration, not both");
            goto usage;
        }
        if (f_duration) {
            if (duration_arg(c, f_duration, "duration", &hours) < 0)
                goto usage;
            if (capx_mul_i64(hours, 3600, &end) < 0 || capx_add_i64(start, end, &end) < 0 ||
                end > 253402300799LL) {
                cli_fail(c, CLI_USAGE, "--duration %s runs past the year 9999", f_duration);
                goto usage;
            }
        } else if (time_arg(c, f_end, "end", &end) < 0) {
            goto usage;
        }
        char es[CAPX_TIME_STRLEN];
        capx_time_format(end, es);
        json_object_set_new(b, "start", json_string(f_start));
        json_object_set_new(b, "end", json_string(f_duration ? es : f_end));
    }
    return cli_post(c, "/v1/offers", b, f_idem, offer_cols, ARRAY_LEN(offer_cols));
usage:
    json_decref(b);
    return CLI_USAGE;
}

static int offers_list(struct cli *c, char **args)
{
    UNUSED(args);
    return list(c, "/v1/offers", "", offer_cols, ARRAY_LEN(offer_cols));
}

static int offers_show(struct cli *c, char **args)
{
    return show(c, "GET", "offers", args[0], offer_cols, ARRAY_LEN(offer_cols));
}

static int offers_cancel(struct cli *c, char **args)
{
    return show(c, "DELETE", "offers", args[0], offer_cols, ARRAY_LEN(offer_cols));
}

/* The body of an order (or a quote) from the flags; NULL after a usage error. */
static json_t *order_body(struct cli *c)
{
    int64_t gpus, limit, start, hours;
    int spot = kind_arg(c);
    if (spot < 0 || cli_need(c, f_gpu_model, "gpu-model") < 0 ||
        count_arg(c, f_gpus, "gpus", &gpus) < 0 ||
        price_arg(c, f_limit_price, "limit-price", &limit) < 0)
        return NULL;
    json_t *b = json_pack("{s:s,s:s,s:I}", "kind", spot ? "spot" : "reservation", "gpu_model",
                          f_gpu_model, "gpus", (json_int_t)gpus);
    if (f_region)
        json_object_set_new(b, "region", json_string(f_region));
    if (spot) {
        static const char *const only[] = {"start",       "duration", "latest-start", "partial",
                                           "single-pool", "ioc",      "lend-idle"};
        const char *vals[] = {f_start,       f_duration, f_latest_start, f_partial,
                              f_single_pool, f_ioc,      f_lend_idle};
        for (size_t i = 0; i < ARRAY_LEN(only); i++)
            if (refuse(c, vals[i], only[i], "is for reservation orders") < 0)
                goto usage;
    } else {
        int64_t latest;
        if (time_arg(c, f_start, "start", &start) < 0 ||
            duration_arg(c, f_duration, "duration", &hours) < 0 ||
            (f_latest_start && time_arg(c, f_latest_start, "latest-start", &latest) < 0))
            goto usage;
        json_object_set_new(b, "start", json_string(f_start));
        json_object_set_new(b, "hours", json_integer(hours));
        if (f_latest_start)
            json_object_set_new(b, "latest_start", json_string(f_latest_start));
        if (f_partial)
            json_object_set_new(b, "all_or_none", json_boolean(!cli_switch_on(f_partial)));
        if (f_single_pool)
            json_object_set_new(b, "single_pool", json_boolean(cli_switch_on(f_single_pool)));
        if (f_ioc)
            json_object_set_new(b, "time_in_force",
                                json_string(cli_switch_on(f_ioc) ? "ioc" : "gtc"));
        if (f_lend_idle)
            json_object_set_new(b, "lend_idle", json_boolean(cli_switch_on(f_lend_idle)));
    }
    json_object_set_new(b, "limit_price", json_integer(limit));
    return b;
usage:
    json_decref(b);
    return NULL;
}

static int orders_create(struct cli *c, char **args)
{
    UNUSED(args);
    json_t *b = order_body(c);
    if (!b)
        return CLI_USAGE;
    return cli_post(c, "/v1/orders", b, f_idem, order_cols, ARRAY_LEN(order_cols));
}

static int orders_quote(struct cli *c, char **args)
{
    UNUSED(args);
    json_t *b = order_body(c), *out = NULL;
    if (!b)
        return CLI_USAGE;
    int rc = cli_call(c, "POST", "/v1/quotes", b, NULL, &out);
    if (rc == CLI_OK && c->format == CLI_JSON) {
        cli_print_json(out);
    } else if (rc == CLI_OK) {
        json_t *list = json_pack("{s:O}", "data", json_object_get(out, "pieces"));
        cli_print_list(c, list, quote_cols, ARRAY_LEN(quote_cols));
        json_decref(list);
        json_t *tot = json_object_get(out, "total");
        char t[UNITS_USD_STRLEN] = "-";
        if (json_is_integer(tot))
            units_format_usd(json_integer_value(tot), t);
        fprintf(stderr, "fillable: %s; total $%s\n",
                json_is_true(json_object_get(out, "fillable")) ? "yes" : "no", t);
    }
    json_decref(out);
    return rc;
}

static int orders_list(struct cli *c, char **args)
{
    UNUSED(args);
    char q[128] = "";
    if (f_status) {
        char esc[96];
        cli_escape(f_status, esc, sizeof esc);
        snprintf(q, sizeof q, "&status=%s", esc);
    }
    return list(c, "/v1/orders", q, order_cols, ARRAY_LEN(order_cols));
}

static int orders_show(struct cli *c, char **args)
{
    return show(c, "GET", "orders", args[0], order_cols, ARRAY_LEN(order_cols));
}

static int orders_cancel(struct cli *c, char **args)
{
    return show(c, "DELETE", "orders", args[0], order_cols, ARRAY_LEN(order_cols));
}

static int contracts_list(struct cli *c, char **args)
{
    UNUSED(args);
    return list(c, "/v1/contracts", "", contract_cols, ARRAY_LEN(contract_cols));
}

static int contracts_show(struct cli *c, char **args)
{
    return show(c, "GET", "contracts", args[0], contract_cols, ARRAY_LEN(contract_cols));
}

static int market_list(struct cli *c, char **args)
{
    UNUSED(args);
    json_t *out = NULL;
    int rc = cli_call(c, "GET", "/v1/markets", NULL, NULL, &out);
    if (rc == CLI_OK)
        cli_print_list(c, out, market_cols, ARRAY_LEN(market_cols));
    json_decref(out);
    return rc;
}

/* "?region=..&start=..&end=.." from the flags that are set (names as the API spells them). */
static void market_query(char *q, size_t qlen, const char *region, const char *start,
                         const char *end)
{
    const char *names[] = {"region", "start", "end"}, *vals[] = {region, start, end};
    size_t len = 0;
    q[0] = '\0';
    for (size_t i = 0; i < ARRAY_LEN(names); i++) {
        if (!vals[i])
            continue;
        char esc[256];
        cli_escape(vals[i], esc, sizeof esc);
        len += (size_t)snprintf(q + len, qlen - len, "%c%s=%s", len ? '&' : '?', names[i], esc);
        if (len >= qlen)
            len = qlen - 1;
    }
}

/* A string field of o, or dflt. */
static const char *str_of(json_t *o, const char *key, const char *dflt)
{
    const char *v = json_string_value(json_object_get(o, key));
    return v ? v : dflt;
}

/* "$2.10/gpu-hr" for a micro-USD integer; buf untouched otherwise. */
static void usd_or_none(json_t *v, char *buf, size_t size)
{
    char d[UNITS_USD_STRLEN];
    if (!json_is_integer(v))
        return;
    units_format_usd(json_integer_value(v), d);
    snprintf(buf, size, "$%s/gpu-hr", d);
}

static int market_book(struct cli *c, char **args)
{
    char path[2048], esc[256], q[768];
    int64_t t;
    if ((f_start && time_arg(c, f_start, "start", &t) < 0) ||
        (f_end && time_arg(c, f_end, "end", &t) < 0))
        return CLI_USAGE;
    cli_escape(args[0], esc, sizeof esc);
    market_query(q, sizeof q, f_region, f_start, f_end);
    snprintf(path, sizeof path, "/v1/markets/%s/book%s", esc, q);
    json_t *out = NULL;
    int rc = cli_call(c, "GET", path, NULL, NULL, &out);
    if (rc != CLI_OK || c->format == CLI_JSON) {
        if (rc == CLI_OK)
            cli_print_json(out);
        json_decref(out);
        return rc;
    }
    /* One table: asks from the dearest down, then bids, each level tagged with its side. */
    json_t *rows = json_array();
    const char *sides[] = {"asks", "bids"}, *tags[] = {"ask", "bid"};
    for (size_t s = 0; s < 2; s++) {
        json_t *levels = json_object_get(out, sides[s]), *lv;
        size_t n = json_array_size(levels);
        for (size_t i = 0; i < n; i++) {
            lv = json_array_get(levels, s == 0 ? n - 1 - i : i);
            json_t *row = json_deep_copy(lv);
            json_object_set_new(row, "side", json_string(tags[s]));
            json_array_append_new(rows, row);
        }
    }
    json_t *list = json_pack("{s:o}", "data", rows);
    if (c->format == CLI_TABLE) {
        json_t *spot = json_object_get(out, "spot");
        char sp[UNITS_USD_STRLEN + 8] = "none", lp[UNITS_USD_STRLEN + 8] = "none";
        usd_or_none(json_object_get(spot, "price"), sp, sizeof sp);
        usd_or_none(json_object_get(spot, "last_price"), lp, sizeof lp);
        printf("%s %s, hours %s to %s; spot price %s, last %s\n", str_of(out, "gpu_model", args[0]),
               str_of(out, "region", ""), str_of(out, "start", "?"), str_of(out, "end", "?"), sp,
               lp);
    }
    cli_print_list(c, list, level_cols, ARRAY_LEN(level_cols));
    json_decref(list);
    json_decref(out);
    return rc;
}

static int market_trades(struct cli *c, char **args)
{
    char path[2048], esc[256], q[300];
    cli_escape(args[0], esc, sizeof esc);
    market_query(q, sizeof q, f_region, NULL, NULL);
    snprintf(path, sizeof path, "/v1/markets/%s/trades%s", esc, q);
    json_t *out = NULL;
    int rc = cli_call(c, "GET", path, NULL, NULL, &out);
    if (rc == CLI_OK)
        cli_print_list(c, out, trade_cols, ARRAY_LEN(trade_cols));
    json_decref(out);
    return rc;
}

static int account_show(struct cli *c, char **args)
{
    UNUSED(args);
    json_t *acct = NULL, *tr = NULL;
    int rc = cli_call(c, "GET", "/v1/account", NULL, NULL, &acct);
    if (rc != CLI_OK)
        goto done;
    if (c->format == CLI_CSV) {
        cli_print_one(c, acct, account_cols, ARRAY_LEN(account_cols));
        goto done;
    }
    rc = cli_list(c, "/v1/account/transfers", "", "20", NULL, 0, &tr);
    if (rc != CLI_OK)
        goto done;
    if (c->format == CLI_JSON) {
        json_t *both =
            json_pack("{s:O,s:O}", "account", acct, "transfers", json_object_get(tr, "data"));
        cli_print_json(both);
        json_decref(both);
        goto done;
    }
    cli_print_one(c, acct, account_cols, ARRAY_LEN(account_cols));
    printf("\nRecent transfers (capx account transfers --all for every one):\n");
    json_object_set_new(tr, "next_cursor", json_null());
    cli_print_list(c, tr, transfer_cols, ARRAY_LEN(transfer_cols));
done:
    json_decref(acct);
    json_decref(tr);
    return rc;
}

static int account_transfers(struct cli *c, char **args)
{
    UNUSED(args);
    return list(c, "/v1/account/transfers", "", transfer_cols, ARRAY_LEN(transfer_cols));
}

/* ---- dispatch ---- */

struct command {
    const char *noun, *verb;
    const char *args; /* positional arguments after the verb, for usage ("ID") */
    int nargs;
    const char *summary;
    const struct cli_flag *flags;
    size_t nflags;
    int (*run)(struct cli *c, char **args);
};

#define FLAGS(t) t, ARRAY_LEN(t)
static const struct command commands[] = {
    {"pools", "create", "", 0, "register a pool of GPU nodes", FLAGS(fl_pool_create), pools_create},
    {"pools", "list", "", 0, "your pools", FLAGS(fl_list), pools_list},
    {"pools", "show", "ID", 1, "one pool", NULL, 0, pools_show},
    {"offers", "create", "", 0, "offer a pool's GPUs (reservation hours or spot)",
     FLAGS(fl_offer_create), offers_create},
    {"offers", "list", "", 0, "your offers", FLAGS(fl_list), offers_list},
    {"offers", "show", "ID", 1, "one offer", NULL, 0, offers_show},
    {"offers", "cancel", "ID", 1, "cancel an offer (hours sold stay sold)", FLAGS(fl_cancel),
     offers_cancel},
    {"orders", "create", "", 0, "order GPUs: a reservation or a spot bid", FLAGS(fl_order_create),
     orders_create},
    {"orders", "quote", "", 0, "what an order would get now (changes nothing)",
     FLAGS(fl_order_quote), orders_quote},
    {"orders", "list", "", 0, "your orders", FLAGS(fl_order_list), orders_list},
    {"orders", "show", "ID", 1, "one order", NULL, 0, orders_show},
    {"orders", "cancel", "ID", 1, "cancel an order and release its unfilled hold", FLAGS(fl_cancel),
     orders_cancel},
    {"contracts", "list", "", 0, "contracts you bought or sold", FLAGS(fl_list), contracts_list},
    {"contracts", "show", "ID", 1, "one contract with its placement", NULL, 0, contracts_show},
    {"market", "list", "", 0, "every market: best ask and bid, spot and last price", NULL, 0,
     market_list},
    {"market", "book", "MODEL", 1, "price levels of a market", FLAGS(fl_book), market_book},
    {"market", "trades", "MODEL", 1, "recent fills of a GPU model", FLAGS(fl_trades),
     market_trades},
    {"account", "show", "", 0, "your balance and recent transfers (also plain `capx account`)",
     NULL, 0, account_show},
    {"account", "transfers", "", 0, "ledger transfers of your account", FLAGS(fl_list),
     account_transfers},
};

static const char usage_tail[] =
    "\n\nMoney is in dollars: 2.35 or 2.35/gpu-hr (at most 6 decimals, exact). Durations: 12h, "
    "720h, 30d.\nTimes: RFC 3339 UTC, e.g. 2027-01-04T00:00:00Z. Creates and cancels carry an "
    "Idempotency-Key;\nafter a failure, rerun with --idempotency-key KEY (printed) to retry "
    "safely.\n\nSettings come from flags, then CAPX_* variables, then the config file "
    "($CAPX_CONFIG,\n--config, or ~/.config/capx/config: `name = value` lines; it must be mode "
    "0600).\n\n" CLI_EXIT_HELP;

static char *global_usage(void)
{
    size_t cap = 8192, len = 0;
    char *s = xmalloc(cap);
    len +=
        (size_t)snprintf(s + len, cap - len, "usage: capx NOUN VERB [ARGS] [flags]\n\nCommands:");
    for (size_t i = 0; i < ARRAY_LEN(commands); i++) {
        char left[64];
        snprintf(left, sizeof left, "%s %s %s", commands[i].noun, commands[i].verb,
                 commands[i].args);
        len = cli_appendf(s, cap, len, "\n  %-24s %s", left, commands[i].summary);
    }
    snprintf(s + len, cap - len, "\n\n`capx NOUN VERB --help` lists a command's flags.%s",
             usage_tail);
    return s;
}

static char *command_usage(const struct command *cmd)
{
    char head[1024];
    snprintf(head, sizeof head, "usage: capx %s %s%s%s [flags]\n\n%s.%s", cmd->noun, cmd->verb,
             cmd->args[0] ? " " : "", cmd->args, cmd->summary, usage_tail);
    return cli_usage(head, cmd->flags, cmd->nflags);
}

/* Flags that take no value, in any command: the scan for NOUN VERB must not skip a word. */
static int is_switch_flag(const char *a)
{
    const char *name = a + 2;
    size_t len = strcspn(name, "=");
    if (name[len] == '=')
        return 1;
    if (!strcmp(a, "--help"))
        return 1;
    for (size_t i = 0; i < ARRAY_LEN(commands); i++)
        for (size_t j = 0; j < commands[i].nflags; j++)
            if (commands[i].flags[j].is_switch && strlen(commands[i].flags[j].name) == len &&
                !strncmp(commands[i].flags[j].name, name, len))
                return 1;
    return 0;
}

/*
 * The config file to read, checked before anything reads it: --config, $CAPX_CONFIG, else
 * $XDG_CONFIG_HOME/capx/config or ~/.config/capx/config when it exists. It holds an API key,
 * so group or other access is refused. 0 ok, -1 after printing why.
 */
static int check_config_file(int argc, char **argv)
{
    const char *path = cli_config_arg(argc, argv);
    char def[4096];
    if (!path) {
        const char *xdg = getenv("XDG_CONFIG_HOME"), *home = getenv("HOME");
        if (xdg && *xdg)
            snprintf(def, sizeof def, "%s/capx/config", xdg);
        else if (home && *home)
            snprintf(def, sizeof def, "%s/.config/capx/config", home);
        else
            return 0;
        struct stat st;
        if (stat(def, &st) < 0)
            return 0;
        path = def;
        setenv("CAPX_CONFIG", def, 1);
    }
    return cli_config_private("capx", path, 0);
}

int main(int argc, char **argv)
{
    char err[1024];
    int rc = CLI_USAGE, nrest = 0, help = 0;
    const char *words[2] = {NULL, NULL};
    int nwords = 0;
    char *usage = NULL;
    struct cli c = {.prog = "capx"};

    /* NOUN and VERB: the first two words that are not flags or flag values. */
    for (int i = 1; i < argc && nwords < 2; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--help") || !strcmp(a, "-h"))
            help = 1;
        if (!strncmp(a, "--", 2) && a[2]) {
            if (!is_switch_flag(a))
                i++;
            continue;
        }
        if (a[0] == '-' && a[1])
            continue;
        words[nwords++] = a;
    }
    for (int i = 1; i < argc; i++)
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h"))
            help = 1;
    const struct command *cmd = NULL;
    int implicit_verb = 0;
    if (words[0] && !strcmp(words[0], "account") &&
        (!words[1] || (strcmp(words[1], "show") && strcmp(words[1], "transfers")))) {
        words[1] = "show";
        implicit_verb = 1;
    }
    for (size_t i = 0; words[0] && words[1] && i < ARRAY_LEN(commands); i++)
        if (!strcmp(commands[i].noun, words[0]) && !strcmp(commands[i].verb, words[1]))
            cmd = &commands[i];
    if (!cmd) {
        usage = global_usage();
        if (help) {
            cfg_help(capx_cfg, ARRAY_LEN(capx_cfg), stdout, usage);
            rc = CLI_OK;
        } else if (words[0]) {
            fprintf(stderr, "capx: unknown command \"%s%s%s\" (capx --help lists them)\n", words[0],
                    words[1] ? " " : "", words[1] ? words[1] : "");
        } else {
            fprintf(stderr, "%s\n", usage);
        }
        free(usage);
        return rc;
    }
    usage = command_usage(cmd);
    if (cli_take_flags(cmd->flags, cmd->nflags, &argc, argv, err, sizeof err) < 0 && !help) {
        fprintf(stderr, "capx: %s\n", err);
        goto out;
    }
    if (!help && check_config_file(argc, argv) < 0)
        goto out;
    int lr =
        cfg_load(capx_cfg, ARRAY_LEN(capx_cfg), argc, argv, &nrest, stdout, usage, err, sizeof err);
    if (lr == 1) {
        rc = CLI_OK;
        goto out;
    }
    if (lr < 0) {
        fprintf(stderr, "capx: %s\n", err);
        goto out;
    }
    int skip = implicit_verb ? 1 : 2;
    if (nrest != skip + cmd->nargs) {
        fprintf(stderr, "capx: %s %s takes %s%s (see capx %s %s --help)\n", cmd->noun, cmd->verb,
                cmd->nargs ? "the argument " : "no arguments", cmd->args, cmd->noun, cmd->verb);
        goto out;
    }
    rc = cli_init(&c, "capx", o_url, o_cacert, o_api_key, o_format, o_timeout);
    if (rc == CLI_OK)
        rc = cmd->run(&c, argv + skip);
out:
    free(usage);
    cfg_free(capx_cfg, ARRAY_LEN(capx_cfg));
    return rc;
}
