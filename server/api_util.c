/* api_util.c — see api.h. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "server/api.h"

static int hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

int api_query(const char *query, const char *name, char *buf, size_t size)
{
    size_t nl = strlen(name);
    const char *p = query;
    while (p && *p) {
        const char *amp = strchr(p, '&');
        size_t len = amp ? (size_t)(amp - p) : strlen(p);
        if (len > nl && !strncmp(p, name, nl) && p[nl] == '=') {
            size_t o = 0;
            for (size_t i = nl + 1; i < len; i++) {
                char c = p[i];
                if (c == '%') {
                    if (i + 2 >= len)
                        return -1;
                    int h = hexval(p[i + 1]), l = hexval(p[i + 2]);
                    if (h < 0 || l < 0)
                        return -1;
                    c = (char)(h * 16 + l);
                    i += 2;
                } else if (c == '+') {
                    c = ' ';
                }
                if (c == '\0' || o + 1 >= size)
                    return -1;
                buf[o++] = c;
            }
            buf[o] = '\0';
            return 1;
        }
        p = amp ? amp + 1 : NULL;
    }
    return 0;
}

/* A query value that is a decimal number, digits only (no sign, space or exponent), at most
   INT64_MAX: 0 with the value, -1 otherwise. */
static int query_uint(const char *s, int64_t *out)
{
    int64_t v = 0;
    if (!*s)
        return -1;
    for (; *s; s++) {
        if (*s < '0' || *s > '9' || v > (INT64_MAX - (*s - '0')) / 10)
            return -1;
        v = v * 10 + (*s - '0');
    }
    *out = v;
    return 0;
}

int api_page(struct app_req *r, int64_t *limit, uint64_t *cursor)
{
    char b[32];
    const char *q = r->http->hp->query;
    int64_t v;
    *limit = 100;
    *cursor = 0;
    int f = api_query(q, "limit", b, sizeof b);
    if (f != 0) {
        if (f < 0 || query_uint(b, &v) < 0 || v < 1 || v > 500) {
            app_error(r, 400, "invalid_request", "limit", "limit must be an integer from 1 to 500");
            return -1;
        }
        *limit = v;
    }
    f = api_query(q, "cursor", b, sizeof b);
    if (f != 0) {
        if (f < 0 || query_uint(b, &v) < 0) {
            app_error(r, 400, "invalid_request", "cursor", "malformed cursor");
            return -1;
        }
        *cursor = (uint64_t)v;
    }
    return 0;
}

int api_decode(struct app_req *r, const struct jfield *f, size_t n, void *dst, uint64_t *present)
{
    struct api_error e = {0};
    if (reqjson_decode(r->body, f, n, dst, present, &e) < 0) {
        app_reply_err(r, &e);
        return -1;
    }
    return 0;
}

json_t *api_list(json_t *items, uint64_t next)
{
    json_t *o = json_pack("{s:o}", "data", items);
    if (next) {
        char b[24];
        snprintf(b, sizeof b, "%llu", (unsigned long long)next);
        json_object_set_new(o, "next_cursor", json_string(b));
    } else {
        json_object_set_new(o, "next_cursor", json_null());
    }
    return o;
}
