/*
 * app.c — see app.h: routing, authentication, roles and rate limits, then the handler.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "common/ids.h"
#include "server/app.h"
#include "server/log.h"
#include "server/metrics.h"

void app_init(struct app *a, struct event_base *base, const struct app_config *cfg)
{
    memset(a, 0, sizeof *a);
    a->base = base;
    a->cfg = *cfg;
    hmap_init(&a->accounts);
    hmap_init(&a->keys);
    for (int i = 0; i < app_nroutes; i++)
        app_routes[i].metric = metrics_route(app_routes[i].label);
}

void app_free(struct app *a)
{
    size_t i = 0;
    const char *k;
    void *v;
    while (hmap_next(&a->keys, &i, &k, &v))
        free(v);
    i = 0;
    while (hmap_next(&a->accounts, &i, &k, &v))
        free(v);
    hmap_free(&a->keys);
    hmap_free(&a->accounts);
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

int app_load(struct app *a, const char *conninfo, char *err, size_t errlen)
{
    int rc = -1;
    PGresult *r = NULL;
    PGconn *c = PQconnectdb(conninfo);
    if (PQstatus(c) != CONNECTION_OK) {
        snprintf(err, errlen, "database: %s", PQerrorMessage(c));
        goto done;
    }
    r = PQexec(c, "SELECT id, name, roles::text FROM accounts");
    if (PQresultStatus(r) != PGRES_TUPLES_OK) {
        snprintf(err, errlen, "loading accounts: %s", PQresultErrorMessage(r));
        goto done;
    }
    for (int i = 0; i < PQntuples(r); i++) {
        struct account *ac = xcalloc(1, sizeof *ac);
        snprintf(ac->id, sizeof ac->id, "%s", PQgetvalue(r, i, 0));
        snprintf(ac->name, sizeof ac->name, "%s", PQgetvalue(r, i, 1));
        ac->roles = roles_of(PQgetvalue(r, i, 2));
        ac->tokens = (double)a->cfg.rate_burst;
        free(hmap_put(&a->accounts, ac->id, ac));
    }
    PQclear(r);
    r = PQexec(c, "SELECT id, account_id, encode(key_hash, 'hex') FROM api_keys "
                  "WHERE revoked_at IS NULL");
    if (PQresultStatus(r) != PGRES_TUPLES_OK) {
        snprintf(err, errlen, "loading keys: %s", PQresultErrorMessage(r));
        goto done;
    }
    for (int i = 0; i < PQntuples(r); i++) {
        struct account *ac = hmap_get(&a->accounts, PQgetvalue(r, i, 1));
        if (!ac)
            continue;
        struct api_key *k = xcalloc(1, sizeof *k);
        snprintf(k->id, sizeof k->id, "%s", PQgetvalue(r, i, 0));
        k->acct = ac;
        free(hmap_put(&a->keys, PQgetvalue(r, i, 2), k));
    }
    log_info("msg=\"loaded accounts\" accounts=%zu keys=%zu", a->accounts.len, a->keys.len);
    rc = 0;
done:
    PQclear(r);
    PQfinish(c);
    return rc;
}

/* ---- answers ---- */

void app_reply(struct app_req *r, int status, json_t *body)
{
    http_reply_json(r->http, status, body, NULL);
}

void app_reply_err(struct app_req *r, const struct api_error *e)
{
    char extra[64] = "";
    if (e->status == 429)
        snprintf(extra, sizeof extra, "Retry-After: 1\r\n");
    else if (e->status == 405 && r->route == NULL)
        extra[0] = '\0';
    http_reply_error(r->http, e, extra[0] ? extra : NULL);
}

void app_error(struct app_req *r, int status, const char *code, const char *field, const char *fmt,
               ...)
{
    struct api_error e = {0};
    va_list ap;
    e.status = status;
    e.code = code;
    va_start(ap, fmt);
    vsnprintf(e.message, sizeof e.message, fmt, ap);
    va_end(ap);
    snprintf(e.field, sizeof e.field, "%s", field ? field : "");
    app_reply_err(r, &e);
}

/* ---- routing ---- */

/* Matches path against pattern, capturing {x} segments. 1 on match. */
static int match(const char *pattern, const char *path, struct app_req *r)
{
    int n = 0;
    const char *p = pattern, *s = path;
    while (*p && *s) {
        if (*p == '{') {
            const char *pe = strchr(p, '}');
            const char *se = strchr(s, '/');
            size_t len = se ? (size_t)(se - s) : strlen(s);
            if (!pe || len == 0 || len >= sizeof r->params[0] || n >= APP_MAX_PARAMS)
                return 0;
            memcpy(r->params[n], s, len);
            r->params[n][len] = '\0';
            n++;
            p = pe + 1;
            s += len;
            continue;
        }
        if (*p != *s)
            return 0;
        p++;
        s++;
    }
    if (*p || *s)
        return 0;
    r->nparams = n;
    return 1;
}

static void free_app_req(void *p)
{
    struct app_req *r = p;
    json_decref(r->body);
    free(r);
}

static struct app_req *app_req_of(struct http_req *req, struct app *a)
{
    if (!req->app) {
        struct app_req *r = xcalloc(1, sizeof *r);
        r->app = a;
        r->http = req;
        req->app = r;
        req->app_free = free_app_req;
    }
    return req->app;
}

static int rate_ok(struct app *a, struct account *ac)
{
    double now = http_now();
    double rate = (double)a->cfg.rate_limit, burst = (double)a->cfg.rate_burst;
    ac->tokens += (now - ac->last_refill) * rate;
    if (ac->tokens > burst)
        ac->tokens = burst;
    ac->last_refill = now;
    if (ac->tokens < 1.0)
        return 0;
    ac->tokens -= 1.0;
    return 1;
}

static int authenticate(struct app *a, struct app_req *r, struct api_error *err)
{
    const char *h = hp_header(r->http->hp, "authorization");
    if (!h || strncasecmp(h, "Bearer ", 7) != 0) {
        api_error_set(err, 401, "unauthenticated", NULL, "missing Authorization: Bearer key");
        return -1;
    }
    const char *key = h + 7;
    while (*key == ' ')
        key++;
    size_t len = strlen(key);
    if (!capx_key_wellformed(key, len)) {
        api_error_set(err, 401, "unauthenticated", NULL, "malformed API key");
        return -1;
    }
    unsigned char hash[32];
    char hex[65];
    capx_key_hash(key, len, hash);
    for (int i = 0; i < 32; i++)
        snprintf(hex + 2 * i, 3, "%02x", hash[i]);
    /* The map is keyed by the hash, so the secret itself is never compared byte by byte. */
    struct api_key *k = hmap_get(&a->keys, hex);
    if (!k) {
        api_error_set(err, 401, "unauthenticated", NULL, "unknown or revoked API key");
        return -1;
    }
    r->acct = k->acct;
    return 0;
}

static int precheck(struct app *a, struct app_req *r, struct api_error *err)
{
    struct hp_request *hp = r->http->hp;
    const struct route *found = NULL;
    int path_known = 0;
    for (int i = 0; i < app_nroutes; i++) {
        if (!match(app_routes[i].pattern, hp->path, r))
            continue;
        path_known = 1;
        if (app_routes[i].method == hp->method ||
            (hp->method == HP_HEAD && app_routes[i].method == HP_GET)) {
            found = &app_routes[i];
            break;
        }
    }
    if (!found) {
        if (path_known)
            api_error_set(err, 405, "method_not_allowed", NULL, "%s is not allowed on %s",
                          hp->method_name, hp->path);
        else
            api_error_set(err, 404, "not_found", NULL, "no such route");
        return -1;
    }
    if (!match(found->pattern, hp->path, r))
        return -1;
    r->route = found;
    r->http->route = found->metric;
    if (found->auth) {
        if (authenticate(a, r, err) < 0)
            return -1;
        if (found->roles && !(r->acct->roles & found->roles)) {
            api_error_set(err, 403, "forbidden", NULL, "this account lacks the role for this call");
            return -1;
        }
        if (!rate_ok(a, r->acct)) {
            api_error_set(err, 429, "rate_limited", NULL, "over the account's request rate");
            return -1;
        }
    }
    int has_body = hp->content_length > 0 || hp->chunked;
    if (has_body && hp->content_length > a->cfg.body_limit) {
        api_error_set(err, 413, "payload_too_large", NULL, "request body is larger than %lld bytes",
                      (long long)a->cfg.body_limit);
        return -1;
    }
    if (has_body) {
        const char *ct = hp_header(hp, "content-type");
        size_t tl = ct ? strcspn(ct, "; \t") : 0;
        if (!ct || tl != 16 || strncasecmp(ct, "application/json", 16) != 0) {
            api_error_set(err, 415, "unsupported_media_type", NULL,
                          "request bodies must be application/json");
            return -1;
        }
    }
    return 0;
}

int app_precheck(struct http_req *req, struct api_error *err, void *arg)
{
    struct app *a = arg;
    struct app_req *r = app_req_of(req, a);
    r->prechecked = 1;
    if (precheck(a, r, &r->pre_err) < 0) {
        *err = r->pre_err;
        return -1;
    }
    return 0;
}

void app_handle(struct http_req *req, void *arg)
{
    struct app *a = arg;
    struct app_req *r = app_req_of(req, a);
    struct hp_request *hp = req->hp;
    if (!r->prechecked) {
        r->prechecked = 1;
        if (precheck(a, r, &r->pre_err) < 0) {
            app_reply_err(r, &r->pre_err);
            return;
        }
    }
    if (r->route->body) {
        struct api_error e = {0};
        if (reqjson_parse(hp->body, hp->body_len, &r->body, &e) < 0) {
            app_reply_err(r, &e);
            return;
        }
    } else if (hp->body_len > 0) {
        /* A route without a body accepts only an empty object. */
        struct api_error e = {0};
        json_t *o = NULL;
        if (reqjson_parse(hp->body, hp->body_len, &o, &e) < 0) {
            app_reply_err(r, &e);
            return;
        }
        size_t n = json_object_size(o);
        json_decref(o);
        if (n) {
            app_error(r, 400, "invalid_request", NULL, "this call takes no request body");
            return;
        }
    }
    r->route->fn(r);
}
