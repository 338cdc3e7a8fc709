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
#include "server/routes.h"

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
    app_reply(r, 200, clock_json(&r->app->clock));
}

static void h_openapi(struct app_req *r)
{
    app_reply(r, 200, openapi_document());
}

struct route app_routes[] = {
    {HP_GET, "/healthz", "GET /healthz", 0, 0, 0, h_healthz, "Liveness", 0},
    {HP_GET, "/readyz", "GET /readyz", 0, 0, 0, h_readyz, "Readiness: the database answers", 0},
    {HP_GET, "/metrics", "GET /metrics", 0, 0, 0, h_metrics, "Prometheus metrics", 0},
    {HP_GET, "/v1/openapi.json", "GET /v1/openapi.json", 0, 0, 0, h_openapi,
     "This API's OpenAPI 3.1 document", 0},
    {HP_GET, "/v1/clock", "GET /v1/clock", 1, 0, 0, h_clock, "The market clock", 0},
    {HP_POST, "/v1/admin/clock", "POST /v1/admin/clock", 1, ROLE_ADMIN, 1, h_clock_advance,
     "Advance a simulated clock", 0},
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
