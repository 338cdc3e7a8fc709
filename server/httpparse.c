/*
 * httpparse.c — see httpparse.h. http_parser does the tokenizing and the chunked
 * decoding; every callback here adds capx's bounds and smuggling checks. A callback that
 * finds a problem records the answer with hp_fail and returns non-zero, which stops
 * http_parser at once.
 */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "server/httpparse.h"

static struct hp_request *req_of(http_parser *p)
{
    return p->data;
}

void hp_fail(struct hp_request *r, int status, const char *code, const char *message)
{
    if (r->state == HP_ERROR)
        return;
    r->state = HP_ERROR;
    r->err_status = status;
    r->err_code = code;
    snprintf(r->err_buf, sizeof r->err_buf, "%s", message ? message : "malformed request");
    r->err_message = r->err_buf;
}

/* A header byte that may not appear: NUL and other controls except tab. */
static int bad_bytes(const char *at, size_t len)
{
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)at[i];
        if ((c < 0x20 && c != '\t') || c == 0x7f)
            return 1;
    }
    return 0;
}

static int append(char **buf, size_t *len, const char *at, size_t n)
{
    char *p = xrealloc(*buf, *len + n + 1);
    memcpy(p + *len, at, n);
    *len += n;
    p[*len] = '\0';
    *buf = p;
    return 0;
}

static int cb_message_begin(http_parser *p)
{
    req_of(p)->state = HP_HEADERS;
    return 0;
}

static int cb_url(http_parser *p, const char *at, size_t len)
{
    struct hp_request *r = req_of(p);
    r->state = HP_HEADERS;
    if (r->url_len + len > r->lim.max_url) {
        hp_fail(r, 414, "invalid_request", "request target too long");
        return -1;
    }
    if (bad_bytes(at, len)) {
        hp_fail(r, 400, "invalid_request", "control byte in request target");
        return -1;
    }
    return append(&r->url, &r->url_len, at, len);
}

static int count_header_bytes(struct hp_request *r, size_t len)
{
    r->header_bytes += len;
    if (r->header_bytes > r->lim.max_header_bytes) {
        hp_fail(r, 431, "invalid_request", "request headers too large");
        return -1;
    }
    return 0;
}

static int cb_header_field(http_parser *p, const char *at, size_t len)
{
    struct hp_request *r = req_of(p);
    if (count_header_bytes(r, len) < 0)
        return -1;
    if (r->headers_done)
        return 0; /* a trailer field: never merged into the header (RFC 9110 6.5.1) */
    if (bad_bytes(at, len)) {
        hp_fail(r, 400, "invalid_request", "control byte in a header name");
        return -1;
    }
    if (r->nheaders == 0 || r->in_value) {
        if (r->nheaders == HP_MAX_HEADERS) {
            hp_fail(r, 431, "invalid_request", "too many request headers");
            return -1;
        }
        r->nheaders++;
        r->in_value = 0;
    }
    struct hp_header *h = &r->headers[r->nheaders - 1];
    size_t old = h->name ? strlen(h->name) : 0;
    append(&h->name, &old, at, len);
    for (char *c = h->name; *c; c++)
        *c = (char)tolower((unsigned char)*c);
    return 0;
}

static int cb_header_value(http_parser *p, const char *at, size_t len)
{
    struct hp_request *r = req_of(p);
    if (count_header_bytes(r, len) < 0)
        return -1;
    if (r->headers_done)
        return 0;
    if (bad_bytes(at, len)) {
        hp_fail(r, 400, "invalid_request", "control or NUL byte in a header value");
        return -1;
    }
    struct hp_header *h = &r->headers[r->nheaders - 1];
    r->in_value = 1;
    if (!h->value)
        h->value = xcalloc(1, 1);
    return append(&h->value, &h->value_len, at, len);
}

static enum hp_method method_of(unsigned m)
{
    switch (m) {
    case HTTP_GET:
        return HP_GET;
    case HTTP_HEAD:
        return HP_HEAD;
    case HTTP_POST:
        return HP_POST;
    case HTTP_PUT:
        return HP_PUT;
    case HTTP_DELETE:
        return HP_DELETE;
    case HTTP_PATCH:
        return HP_PATCH;
    case HTTP_OPTIONS:
        return HP_OPTIONS;
    default:
        return HP_OTHER;
    }
}

/* Strict decimal Content-Length: digits only, no sign, no overflow. */
static int parse_length(const char *v, int64_t *out)
{
    int64_t n = 0;
    if (!*v)
        return -1;
    for (; *v; v++) {
        if (*v < '0' || *v > '9')
            return -1;
        if (capx_mul_i64(n, 10, &n) < 0 || capx_add_i64(n, *v - '0', &n) < 0)
            return -1;
    }
    *out = n;
    return 0;
}

/* RFC 9110 5.6.2: a field name is a token. */
static int is_token(const char *s)
{
    if (!*s)
        return 0;
    for (; *s; s++)
        if (!isalnum((unsigned char)*s) && !strchr("!#$%&'*+-.^_`|~", *s))
            return 0;
    return 1;
}

/* Host is a host name or address and an optional port: no space, path, query, fragment or
   user part (RFC 9112 3.2: anything else is 400). */
static int host_ok(const char *s)
{
    return *s && strcspn(s, " \t/?#@\\") == strlen(s);
}

static int cb_headers_complete(http_parser *p)
{
    struct hp_request *r = req_of(p);
    r->headers_done = 1;
    r->method = method_of(p->method);
    r->method_name = http_method_str((enum http_method)p->method);
    r->http_major = p->http_major;
    r->http_minor = p->http_minor;
    r->keep_alive = http_should_keep_alive(p);
    r->content_length = -1;
    if (!r->url) {
        hp_fail(r, 400, "invalid_request", "empty request target");
        return -1;
    }
    /* Path and query. The absolute form (https://host:port/path?query) is accepted as its path
       and query (RFC 9112 3.2.2: a server MUST accept it). */
    const char *u = r->url, *end = r->url + r->url_len;
    size_t skip = !strncasecmp(u, "https://", 8) ? 8 : !strncasecmp(u, "http://", 7) ? 7 : 0;
    if (skip && r->url_len > skip) {
        const char *slash = memchr(u + skip, '/', (size_t)(end - u - skip));
        const char *qm = memchr(u + skip, '?', (size_t)(end - u - skip));
        u = slash && (!qm || slash < qm) ? slash : qm ? qm : end;
    }
    size_t ulen = (size_t)(end - u);
    const char *q = memchr(u, '?', ulen);
    size_t plen = q ? (size_t)(q - u) : ulen;
    r->path = plen ? xstrndup(u, plen) : xstrdup("/");
    r->query = q ? xstrndup(q + 1, ulen - plen - 1) : xstrdup("");
    if (r->path[0] != '/') {
        hp_fail(r, 400, "invalid_request", "request target must be an absolute path");
        return -1;
    }
    if (memchr(r->url, '#', r->url_len)) {
        hp_fail(r, 400, "invalid_request", "a request target has no fragment");
        return -1;
    }
    for (int i = 0; i < r->nheaders; i++) {
        struct hp_header *h = &r->headers[i];
        if (!h->value)
            h->value = xcalloc(1, 1);
        /* Whitespace around a value is not part of it (RFC 9110 5.5). */
        while (h->value_len &&
               (h->value[h->value_len - 1] == ' ' || h->value[h->value_len - 1] == '\t'))
            h->value[--h->value_len] = '\0';
        if (!is_token(h->name)) {
            hp_fail(r, 400, "invalid_request", "malformed header name");
            return -1;
        }
        if (!strcmp(h->name, "content-length")) {
            r->ncontent_length++;
            if (parse_length(h->value, &r->content_length) < 0) {
                hp_fail(r, 400, "invalid_request", "malformed Content-Length");
                return -1;
            }
        } else if (!strcmp(h->name, "transfer-encoding")) {
            r->ntransfer_encoding++;
            if (strcasecmp(h->value, "chunked") != 0) {
                hp_fail(r, 400, "invalid_request", "only Transfer-Encoding: chunked is accepted");
                return -1;
            }
            r->chunked = 1;
        } else if (!strcmp(h->name, "host")) {
            if (r->has_host++) {
                hp_fail(r, 400, "invalid_request", "more than one Host header");
                return -1;
            }
            if (!host_ok(h->value)) {
                hp_fail(r, 400, "invalid_request", "malformed Host header");
                return -1;
            }
        } else if (!strcmp(h->name, "expect")) {
            if (strcasecmp(h->value, "100-continue") != 0) {
                hp_fail(r, 417, "invalid_request", "only Expect: 100-continue is supported");
                return -1;
            }
            r->expect_continue = 1;
        }
    }
    if (r->ncontent_length > 1) {
        hp_fail(r, 400, "invalid_request", "more than one Content-Length header");
        return -1;
    }
    /* Headers capx reads once: two would leave which one counts to whoever reads them. */
    static const char *const once[] = {"authorization", "idempotency-key", "content-type"};
    for (size_t k = 0; k < sizeof once / sizeof *once; k++) {
        int n = 0;
        for (int i = 0; i < r->nheaders; i++)
            n += !strcmp(r->headers[i].name, once[k]);
        if (n > 1) {
            hp_fail(r, 400, "invalid_request", "a header that may appear once appears twice");
            return -1;
        }
    }
    if (r->ncontent_length && r->ntransfer_encoding) {
        hp_fail(r, 400, "invalid_request", "both Content-Length and Transfer-Encoding");
        return -1;
    }
    if (r->ntransfer_encoding > 1) {
        hp_fail(r, 400, "invalid_request", "more than one Transfer-Encoding header");
        return -1;
    }
    if (r->http_major != 1) {
        hp_fail(r, 505, "invalid_request", "only HTTP/1.x is served");
        return -1;
    }
    if (r->http_minor >= 1 && !r->has_host) {
        hp_fail(r, 400, "invalid_request", "HTTP/1.1 request without Host");
        return -1;
    }
    if (r->on_headers && r->on_headers(r, r->arg) != 0) {
        if (r->state != HP_ERROR)
            hp_fail(r, 400, "invalid_request", "request refused");
        return -1;
    }
    if (r->content_length > 0 && (uint64_t)r->content_length > r->lim.max_body) {
        hp_fail(r, 413, "payload_too_large", "request body is larger than the limit");
        return -1;
    }
    r->state = HP_BODY;
    return 0;
}

static int cb_body(http_parser *p, const char *at, size_t len)
{
    struct hp_request *r = req_of(p);
    if (r->body_len + len > r->lim.max_body) {
        hp_fail(r, 413, "payload_too_large", "request body is larger than the limit");
        return -1;
    }
    if (r->body_len + len + 1 > r->body_cap) {
        size_t cap = r->body_cap ? r->body_cap : 1024;
        while (cap < r->body_len + len + 1)
            cap *= 2;
        if (r->content_length > 0 && cap > (size_t)r->content_length + 1)
            cap = (size_t)r->content_length + 1;
        r->body = xrealloc(r->body, cap);
        r->body_cap = cap;
    }
    memcpy(r->body + r->body_len, at, len);
    r->body_len += len;
    r->body[r->body_len] = '\0';
    return 0;
}

static int cb_message_complete(http_parser *p)
{
    struct hp_request *r = req_of(p);
    r->state = HP_COMPLETE;
    http_parser_pause(p, 1);
    return 0;
}

static const http_parser_settings settings = {
    .on_message_begin = cb_message_begin,
    .on_url = cb_url,
    .on_header_field = cb_header_field,
    .on_header_value = cb_header_value,
    .on_headers_complete = cb_headers_complete,
    .on_body = cb_body,
    .on_message_complete = cb_message_complete,
};

void hp_init(struct hp_request *r, const struct hp_limits *lim)
{
    memset(r, 0, sizeof *r);
    r->lim = *lim;
    hp_reset(r);
}

static void clear(struct hp_request *r)
{
    for (int i = 0; i < r->nheaders; i++) {
        free(r->headers[i].name);
        free(r->headers[i].value);
    }
    free(r->url);
    free(r->path);
    free(r->query);
    free(r->body);
}

void hp_reset(struct hp_request *r)
{
    struct hp_limits lim = r->lim;
    int (*on_headers)(struct hp_request *, void *) = r->on_headers;
    void *arg = r->arg;
    clear(r);
    memset(r, 0, sizeof *r);
    r->lim = lim;
    r->on_headers = on_headers;
    r->arg = arg;
    r->content_length = -1;
    r->state = HP_IDLE;
    http_parser_init(&r->parser, HTTP_REQUEST);
    r->parser.data = r;
}

void hp_free(struct hp_request *r)
{
    clear(r);
    memset(r, 0, sizeof *r);
}

size_t hp_feed(struct hp_request *r, const char *data, size_t len)
{
    if (r->state == HP_COMPLETE || r->state == HP_ERROR || len == 0)
        return 0;
    size_t n = http_parser_execute(&r->parser, &settings, data, len);
    enum http_errno e = HTTP_PARSER_ERRNO(&r->parser);
    if (r->state == HP_COMPLETE)
        return n;
    if (r->state != HP_ERROR && e != HPE_OK) {
        if (e == HPE_HEADER_OVERFLOW)
            hp_fail(r, 431, "invalid_request", "request headers too large");
        else if (e == HPE_UNEXPECTED_CONTENT_LENGTH)
            hp_fail(r, 400, "invalid_request", "conflicting Content-Length / Transfer-Encoding");
        else if (e == HPE_INVALID_METHOD)
            hp_fail(r, 400, "invalid_request", "malformed request line (method)");
        else
            hp_fail(r, 400, "invalid_request", http_errno_description(e));
    }
    return n;
}

const char *hp_header(const struct hp_request *r, const char *name)
{
    for (int i = 0; i < r->nheaders; i++)
        if (r->headers[i].name && !strcmp(r->headers[i].name, name))
            return r->headers[i].value;
    return NULL;
}
