/*
 * routes.c — the route table and the operational handlers (health, readiness, metrics,
 * clock, OpenAPI). Market handlers live in their own files and are listed here.
 */
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/timefmt.h"
#include "server/app.h"
#include "server/log.h"
#include "server/metrics.h"
#include "server/api.h"
#include "server/market.h"
#include "server/routes.h"
#include "server/sched.h"

static void h_healthz(struct app_req *r)
{
    app_reply(r, 200, json_pack("{s:s}", "status", "ok"));
}

static void readyz_done(struct db_job *job, void *arg)
{
    struct app_req *r = arg;
    if (job->ok && job->nresults == 1 && PQntuples(job->results[0]) == 1)
        app_reply(r, 200, json_pack("{s:s}", "status", "ready"));
    else
        app_error(r, 503, "unavailable", NULL, "the database does not answer: %s",
                  job->err[0] ? job->err : "no result");
    db_job_free(job);
}

static void h_readyz(struct app_req *r)
{
    if (r->app->draining) {
        app_error(r, 503, "unavailable", NULL, "shutting down");
        return;
    }
    if (!market_ready(r->app->market)) { /* what the market routes would answer */
        app_error(r, 503, "unavailable", NULL, "the market is being rebuilt from the database");
        return;
    }
    struct db_job *j = db_job_new(readyz_done, r);
    db_job_add(j, "SELECT 1", 0, NULL);
    if (db_submit(r->app->db, j) < 0) {
        db_job_free(j);
        app_error(r, 503, "unavailable", NULL, "the database cannot be reached");
    }
}

static void h_metrics(struct app_req *r)
{
    struct db_pool_stats st;
    db_pool_stats(r->app->db, &st);
    struct metrics_gauge g[] = {
        {"capx_open_connections", "Open client connections.",
         (double)http_server_conns(r->app->http)},
        {"capx_db_pool_size", "Configured database connections.", st.size},
        {"capx_db_pool_up", "Database connections that are up.", st.up},
        {"capx_db_pool_busy", "Database connections running a job.", st.busy},
        {"capx_db_pool_queued", "Database jobs waiting for a connection.", st.queued},
        {"capx_db_connection_failures", "Database connection failures since start.",
         (double)st.failures},
    };
    struct evbuffer *b = evbuffer_new();
    metrics_render(b, g, (int)ARRAY_LEN(g));
    size_t len = evbuffer_get_length(b);
    char *text = (char *)evbuffer_pullup(b, (ev_ssize_t)len);
    http_reply(r->http, 200, "text/plain; version=0.0.4", text, len, NULL);
    evbuffer_free(b);
}

static json_t *clock_json(const struct capx_clock *c)
{
    char now[CAPX_TIME_STRLEN];
    capx_time_format(clock_now(c), now);
    return json_pack("{s:s,s:s}", "now", now, "mode", clock_mode(c));
}

static void h_clock(struct app_req *r)
{
    app_reply(r, 200, clock_json(&r->app->clock));
}

struct clock_req {
    int64_t advance_seconds;
};

static const struct jfield clock_fields[] = {
    {"advance_seconds", JF_INT, 1, 1, 31622400, offsetof(struct clock_req, advance_seconds), 0},
};

static void h_clock_advance(struct app_req *r)
{
    struct clock_req q = {0};
    uint64_t present;
    struct api_error e = {0};
    if (reqjson_decode(r->body, clock_fields, ARRAY_LEN(clock_fields), &q, &present, &e) < 0) {
        app_reply_err(r, &e);
        return;
    }
    if (!r->app->clock.simulated) {
        app_error(r, 409, "conflict", NULL, "the clock is real; only a simulated clock advances");
        return;
    }
    r->app->clock.sim_now += q.advance_seconds;
    log_info("msg=\"clock advanced\" req=%llu seconds=%lld", (unsigned long long)r->http->id,
             (long long)q.advance_seconds);
    market_advance(r->app->market, r->app->clock.sim_now);
    market_reply(r->app->market, r, 200, clock_json(&r->app->clock));
}

static void h_openapi(struct app_req *r)
{
    app_reply(r, 200, openapi_document());
}

struct route app_routes[] = {
    {HP_GET, "/healthz", "GET /healthz", 0, 0, 0, h_healthz, "Liveness", 0, 0},
    {HP_GET, "/readyz", "GET /readyz", 0, 0, 0, h_readyz,
     "Readiness: the database answers and the market is loaded", 0, 0},
    {HP_GET, "/metrics", "GET /metrics", 0, 0, 0, h_metrics, "Prometheus metrics", 0, 0},
    {HP_GET, "/v1/openapi.json", "GET /v1/openapi.json", 0, 0, 0, h_openapi,
     "This API's OpenAPI 3.1 document", 0, 0},
    {HP_GET, "/v1/clock", "GET /v1/clock", 1, 0, 0, h_clock, "The market clock", 0, 0},
    {HP_POST, "/v1/admin/clock", "POST /v1/admin/clock", 1, ROLE_ADMIN, 1, h_clock_advance,
     "Advance a simulated clock; everything due in between happens first", 1, 0},
    {HP_POST, "/v1/accounts", "POST /v1/accounts", 1, ROLE_ADMIN, 1, h_accounts_create,
     "Create an account and its first API key", 1, 0},
    {HP_GET, "/v1/accounts", "GET /v1/accounts", 1, ROLE_ADMIN, 0, h_accounts_list, "List accounts",
     1, 0},
    {HP_POST, "/v1/accounts/{id}/api-keys", "POST /v1/accounts/{id}/api-keys", 1, ROLE_ADMIN, 0,
     h_keys_create, "Create another API key for an account", 1, 0},
    {HP_DELETE, "/v1/api-keys/{id}", "DELETE /v1/api-keys/{id}", 1, ROLE_ADMIN, 0, h_keys_revoke,
     "Revoke an API key", 1, 0},
    {HP_POST, "/v1/accounts/{id}/deposits", "POST /v1/accounts/{id}/deposits", 1, ROLE_ADMIN, 1,
     h_deposit, "Money arriving from outside", 1, 0},
    {HP_POST, "/v1/accounts/{id}/withdrawals", "POST /v1/accounts/{id}/withdrawals", 1, ROLE_ADMIN,
     1, h_withdraw, "Money leaving to the outside", 1, 0},
    {HP_GET, "/v1/admin/ledger/check", "GET /v1/admin/ledger/check", 1, ROLE_ADMIN, 0,
     h_ledger_check, "Recompute every balance and check every money invariant", 0, 0},
    {HP_POST, "/v1/admin/payouts", "POST /v1/admin/payouts", 1, ROLE_ADMIN, 1, h_payouts,
     "Pay providers' settled earnings up to a time out to the outside world", 1, 0},
    {HP_GET, "/v1/admin/reports/settlement", "GET /v1/admin/reports/settlement", 1, ROLE_ADMIN, 0,
     h_report_settlement, "What settled in a period, tied to the ledger", 0, 0},
    {HP_GET, "/v1/account", "GET /v1/account", 1, 0, 0, h_account,
     "The caller's account and balance", 1, 0},
    {HP_GET, "/v1/account/transfers", "GET /v1/account/transfers", 1, 0, 0, h_transfers,
     "Ledger transfers touching the caller's account", 1, 0},
    {HP_POST, "/v1/pools", "POST /v1/pools", 1, ROLE_PROVIDER, 1, h_pools_create,
     "Register a hardware pool", 1, 0},
    {HP_GET, "/v1/pools", "GET /v1/pools", 1, ROLE_PROVIDER, 0, h_pools_list,
     "The provider's pools", 1, 0},
    {HP_GET, "/v1/pools/{id}", "GET /v1/pools/{id}", 1, ROLE_PROVIDER, 0, h_pools_get, "One pool",
     1, 0},
    {HP_POST, "/v1/offers", "POST /v1/offers", 1, ROLE_PROVIDER, 1, h_offers_create,
     "Offer reservation or spot capacity", 1, 0},
    {HP_GET, "/v1/offers", "GET /v1/offers", 1, ROLE_PROVIDER, 0, h_offers_list,
     "The provider's offers", 1, 0},
    {HP_GET, "/v1/offers/{id}", "GET /v1/offers/{id}", 1, ROLE_PROVIDER, 0, h_offers_get,
     "One offer", 1, 0},
    {HP_DELETE, "/v1/offers/{id}", "DELETE /v1/offers/{id}", 1, ROLE_PROVIDER, 0, h_offers_cancel,
     "Cancel an offer (hours sold stay sold)", 1, 0},
    {HP_POST, "/v1/orders", "POST /v1/orders", 1, ROLE_BUYER, 1, h_orders_create,
     "Place a reservation order or a spot bid", 1, 0},
    {HP_GET, "/v1/orders", "GET /v1/orders", 1, ROLE_BUYER, 0, h_orders_list,
     "The buyer's orders (?status=)", 1, 0},
    {HP_GET, "/v1/orders/{id}", "GET /v1/orders/{id}", 1, ROLE_BUYER, 0, h_orders_get, "One order",
     1, 0},
    {HP_DELETE, "/v1/orders/{id}", "DELETE /v1/orders/{id}", 1, ROLE_BUYER, 0, h_orders_cancel,
     "Cancel an order and release its unfilled hold", 1, 0},
    {HP_POST, "/v1/quotes", "POST /v1/quotes", 1, ROLE_BUYER, 1, h_quotes,
     "What an order would get now; holds and changes nothing", 1, 0},
    {HP_GET, "/v1/contracts", "GET /v1/contracts", 1, ROLE_BUYER | ROLE_PROVIDER, 0,
     h_contracts_list, "Contracts of the caller as buyer or provider", 1, 0},
    {HP_GET, "/v1/contracts/{id}", "GET /v1/contracts/{id}", 1, ROLE_BUYER | ROLE_PROVIDER, 0,
     h_contracts_get, "One contract", 1, 0},
    {HP_POST, "/v1/contracts/{id}/jobs", "POST /v1/contracts/{id}/jobs", 1, ROLE_BUYER, 1,
     h_jobs_create, "Run a job on the contract's GPUs (queued when they are busy)", 1, 0},
    {HP_GET, "/v1/contracts/{id}/jobs", "GET /v1/contracts/{id}/jobs", 1, ROLE_BUYER, 0,
     h_jobs_list, "The contract's jobs", 1, 0},
    {HP_GET, "/v1/jobs/{id}", "GET /v1/jobs/{id}", 1, ROLE_BUYER, 0, h_jobs_get, "One job", 1, 0},
    {HP_DELETE, "/v1/jobs/{id}", "DELETE /v1/jobs/{id}", 1, ROLE_BUYER, 0, h_jobs_stop,
     "Stop a job", 1, 0},
    {HP_POST, "/v1/admin/pools/{id}/nodes/{node}/fail",
     "POST /v1/admin/pools/{id}/nodes/{node}/fail", 1, ROLE_ADMIN, 0, h_node_fail,
     "Fail a node (drill): its work is re-placed or lost", 1, 0},
    {HP_POST, "/v1/admin/pools/{id}/nodes/{node}/repair",
     "POST /v1/admin/pools/{id}/nodes/{node}/repair", 1, ROLE_ADMIN, 0, h_node_repair,
     "Repair a failed node", 1, 0},
    {HP_POST, "/v1/admin/pools/{id}/nodes/{node}/gpus/{gpu}/fail",
     "POST /v1/admin/pools/{id}/nodes/{node}/gpus/{gpu}/fail", 1, ROLE_ADMIN, 0, h_gpu_fail,
     "Fail one GPU (drill)", 1, 0},
    {HP_POST, "/v1/admin/pools/{id}/nodes/{node}/gpus/{gpu}/repair",
     "POST /v1/admin/pools/{id}/nodes/{node}/gpus/{gpu}/repair", 1, ROLE_ADMIN, 0, h_gpu_repair,
     "Repair a failed GPU", 1, 0},
    {HP_GET, "/v1/markets", "GET /v1/markets", 1, 0, 0, h_markets,
     "Every market's best bid, ask, spot and last price", 1, 0},
    {HP_GET, "/v1/markets/{gpu_model}/book", "GET /v1/markets/{gpu_model}/book", 1, 0, 0, h_book,
     "Aggregated reservation book and spot state", 1, 0},
    {HP_GET, "/v1/markets/{gpu_model}/trades", "GET /v1/markets/{gpu_model}/trades", 1, 0, 0,
     h_trades, "Recent fills", 1, 0},
};
const int app_nroutes = (int)ARRAY_LEN(app_routes);

json_t *openapi_document(void)
{
    json_t *paths = json_object();
    for (int i = 0; i < app_nroutes; i++) {
        const struct route *rt = &app_routes[i];
        const char *m = rt->method == HP_GET      ? "get"
                        : rt->method == HP_POST   ? "post"
                        : rt->method == HP_DELETE ? "delete"
                                                  : "put";
        json_t *item = json_object_get(paths, rt->pattern);
        if (!item) {
            item = json_object();
            json_object_set_new(paths, rt->pattern, item);
        }
        json_t *op = json_pack("{s:s,s:{s:{s:s}}}", "summary", rt->summary, "responses", "default",
                               "description", "See the capx API contract");
        if (!rt->auth)
            json_object_set_new(op, "security", json_array());
        json_object_set_new(item, m, op);
    }
    return json_pack("{s:s,s:{s:s,s:s},s:o,s:{s:{s:{s:s,s:s}}},s:[{s:[]}]}", "openapi", "3.1.0",
                     "info", "title", "capx API", "version", "1", "paths", paths, "components",
                     "securitySchemes", "bearer", "type", "http", "scheme", "bearer", "security",
                     "bearer");
}
