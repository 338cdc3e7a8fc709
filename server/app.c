/*
 * app.c — see app.h: routing, authentication, roles and rate limits, then the handler.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "common/ids.h"
#include "server/app.h"
#include "server/log.h"
#include "server/market.h"
#include "server/metrics.h"

void app_init(struct app *a, struct event_base *base, const struct app_config *cfg)
{
    memset(a, 0, sizeof *a);
    a->base = base;
    a->cfg = *cfg;
    hmap_init(&a->accounts);
    hmap_init(&a->keys);
    hmap_init(&a->idem);
    for (int i = 0; i < app_nroutes; i++)
        app_routes[i].metric = metrics_route(app_routes[i].label);
}

void app_free(struct app *a)
{
    app_clear(a, 1);
}

void app_clear(struct app *a, int all)
{
    size_t i = 0;
    const char *k;
    void *v;
    while (hmap_next(&a->keys, &i, &k, &v))
        free(v);
    hmap_free(&a->keys);
    hmap_init(&a->keys);
    /* Saved answers are reloaded from the database; keys still in flight stay in flight. */
    struct hmap keep;
    hmap_init(&keep);
    i = 0;
    while (hmap_next(&a->idem, &i, &k, &v)) {
        struct idem *d = v;
        if (d->status == 0 && !all) {
            hmap_put(&keep, k, d);
            continue;
        }
        free(d->body);
        free(d);
    }
    hmap_free(&a->idem);
    a->idem = keep;
    if (!all)
        return; /* accounts are never deleted: requests may hold pointers to them */
    i = 0;
    while (hmap_next(&a->accounts, &i, &k, &v)) {
        struct account *ac = v;
        for (int t = 0; t < APP_OBJ_TYPES; t++)
            free(ac->owned[t]);
        free(ac);
    }
    hmap_free(&a->accounts);
    hmap_init(&a->accounts);
}

/* ---- idempotency ---- */

#define IDEM_TTL_S (24 * 3600)

void app_idem_finish(struct app_req *r, int status, const char *body)
{
    if (!r->idem_key[0])
        return;
    struct idem *d = hmap_get(&r->app->idem, r->idem_key);
    if (d && d->status == 0) {
        if (status >= 200 && status < 300) {
            d->status = status;
            d->body = xstrdup(body ? body : "");
        } else {
            hmap_del(&r->app->idem, r->idem_key);
            free(d->body);
            free(d);
        }
    }
    r->idem_key[0] = '\0';
}

size_t app_idem_purge(struct app *a, int64_t now)
{
    /* Collect first: deleting while iterating would move the iteration. */
    size_t i = 0, n = 0, cap = 0;
    const char *k;
    void *v;
    char **dead = NULL;
    while (hmap_next(&a->idem, &i, &k, &v)) {
        struct idem *d = v;
        if (d->status == 0 || now - d->created <= IDEM_TTL_S)
            continue;
        if (n == cap) {
            cap = cap ? cap * 2 : 64;
            dead = xrealloc(dead, cap * sizeof *dead);
        }
        dead[n++] = xstrdup(k);
    }
    for (size_t j = 0; j < n; j++) {
        struct idem *d = hmap_del(&a->idem, dead[j]);
        free(d->body);
        free(d);
        free(dead[j]);
    }
    free(dead);
    return n;
}

static int idem_key_ok(const char *k)
{
    size_t n = strlen(k);
    if (n < 1 || n > 255)
        return 0;
    for (size_t i = 0; i < n;
         i++) /* printable ASCII, space included (inside: HTTP trims the ends) */
        if (k[i] < 0x20 || k[i] > 0x7e)
            return 0;
    return 1;
}

/* 1: answered here (replay or refusal); 0: go on (the key is now in flight, or none). */
static int idem_begin(struct app *a, struct app_req *r)
{
    struct hp_request *hp = r->http->hp;
    const char *k = hp_header(hp, "idempotency-key");
    if (!k || !r->acct || (hp->method != HP_POST && hp->method != HP_DELETE))
        return 0;
    if (!idem_key_ok(k)) {
        app_error(r, 400, "invalid_request", "Idempotency-Key",
                  "Idempotency-Key must be 1-255 printable ASCII characters");
        return 1;
    }
    unsigned char h[32];
    size_t ml = strlen(hp->method_name), pl = strlen(hp->path);
    char *buf = xmalloc(ml + pl + hp->body_len + 3);
    memcpy(buf, hp->method_name, ml);
    buf[ml] = '\n';
    memcpy(buf + ml + 1, hp->path, pl);
    buf[ml + 1 + pl] = '\n';
    if (hp->body_len)
        memcpy(buf + ml + pl + 2, hp->body, hp->body_len);
    capx_key_hash(buf, ml + pl + 2 + hp->body_len, h);
    free(buf);
    char key[sizeof r->idem_key];
    snprintf(key, sizeof key, "%s\n%s", r->acct->id, k);
    struct idem *d = hmap_get(&a->idem, key);
    int64_t now = (int64_t)time(NULL);
    if (d && d->status != 0 && now - d->created > IDEM_TTL_S) {
        hmap_del(&a->idem, key);
        free(d->body);
        free(d);
        d = NULL;
    }
    if (d) {
        if (d->status == 0) {
            app_error(r, 409, "idempotency_key_in_flight", NULL,
                      "a request with this Idempotency-Key is still in flight");
            return 1;
        }
        if (memcmp(d->hash, h, 32) != 0) {
            app_error(r, 422, "idempotency_key_reused", NULL,
                      "this Idempotency-Key was used with a different request");
            return 1;
        }
        http_reply(r->http, d->status, "application/json", d->body, strlen(d->body),
                   "Idempotent-Replayed: true\r\n");
        return 1;
    }
    d = xcalloc(1, sizeof *d);
    memcpy(d->hash, h, 32);
    d->created = now;
    hmap_put(&a->idem, key, d);
    snprintf(r->idem_key, sizeof r->idem_key, "%s", key);
    memcpy(r->idem_hash, h, 32);
    return 0;
}

/* ---- answers ---- */

void app_reply(struct app_req *r, int status, json_t *body)
{
    char *s = json_dumps(body, JSON_COMPACT);
    json_decref(body);
    if (!s)
        capx_fatal("json_dumps failed");
    app_idem_finish(r, status, s);
    http_reply(r->http, status, "application/json", s, strlen(s), NULL);
    free(s);
}

void app_reply_err(struct app_req *r, const struct api_error *e)
{
    char extra[64] = "";
    if (e->status == 429)
        snprintf(extra, sizeof extra, "Retry-After: 1\r\n");
    app_idem_finish(r, e->status, NULL);
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

/* The parameters after application/json: none, or charset=utf-8 (JSON is UTF-8, RFC 8259). */
static int json_params_ok(const char *p)
{
    p += strspn(p, " \t");
    if (!*p)
        return 1;
    if (*p++ != ';')
        return 0;
    p += strspn(p, " \t");
    const char *v = !strncasecmp(p, "charset=", 8) ? p + 8 : NULL;
    if (!v)
        return 0;
    if (!strncasecmp(v, "utf-8", 5))
        v += 5;
    else if (!strncasecmp(v, "\"utf-8\"", 7))
        v += 7;
    else
        return 0;
    return v[strspn(v, " \t")] == '\0';
}

/* The methods some route takes on this path, as an Allow header lists them. */
static void allowed_methods(const char *path, struct app_req *r, char *out, size_t size)
{
    static const struct {
        enum hp_method m;
        const char *name;
    } names[] = {{HP_GET, "GET"}, {HP_HEAD, "HEAD"},     {HP_POST, "POST"},
                 {HP_PUT, "PUT"}, {HP_DELETE, "DELETE"}, {HP_PATCH, "PATCH"}};
    size_t len = 0;
    out[0] = '\0';
    for (size_t k = 0; k < ARRAY_LEN(names); k++) {
        int takes = 0;
        for (int i = 0; i < app_nroutes && !takes; i++)
            takes = match(app_routes[i].pattern, path, r) &&
                    (app_routes[i].method == names[k].m ||
                     (names[k].m == HP_HEAD && app_routes[i].method == HP_GET));
        if (takes && len + strlen(names[k].name) + 3 < size)
            len += (size_t)snprintf(out + len, size - len, "%s%s", len ? ", " : "", names[k].name);
    }
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
        if (path_known) {
            api_error_set(err, 405, "method_not_allowed", NULL, "%s is not allowed on %s",
                          hp->method_name, hp->path);
            allowed_methods(hp->path, r, err->allow, sizeof err->allow);
        } else {
            api_error_set(err, 404, "not_found", NULL, "no such route");
        }
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
        if (!ct || tl != 16 || strncasecmp(ct, "application/json", 16) != 0 ||
            !json_params_ok(ct + 16)) {
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
    if (idem_begin(a, r))
        return;
    if (r->route->needs_market && !market_ready(a->market)) {
        app_error(r, 503, "unavailable", NULL, "the market is being rebuilt from the database");
        return;
    }
    r->route->fn(r);
}
