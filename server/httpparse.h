/*
 * httpparse.h — one HTTP/1.1 request at a time, parsed from bytes with Debian's
 * http_parser and checked the way capx needs: bounded URL, header bytes and header
 * count; request smuggling refused (two Content-Length headers, Content-Length with
 * Transfer-Encoding, a Transfer-Encoding other than chunked, no Host on HTTP/1.1, a NUL or
 * control byte in a header); the body bounded before it is read.
 *
 * No I/O and no clock: http.c feeds it what arrives on a connection, and the fuzz harness
 * feeds it arbitrary bytes. A parse stops after each complete request (pipelined requests
 * stay in the caller's buffer until the caller resumes).
 */
#ifndef CAPX_SERVER_HTTPPARSE_H
#define CAPX_SERVER_HTTPPARSE_H

#include <stddef.h>
#include <stdint.h>

#include <http_parser.h>

#include "common/capx.h"

#define HP_MAX_HEADERS 64

enum hp_method {
    HP_OTHER = 0,
    HP_GET,
    HP_HEAD,
    HP_POST,
    HP_PUT,
    HP_DELETE,
    HP_PATCH,
    HP_OPTIONS,
};

struct hp_header {
    char *name; /* lower-cased */
    char *value;
    size_t value_len;
};

/* Limits, set by the owner before feeding. */
struct hp_limits {
    size_t max_url;          /* bytes of request target */
    size_t max_header_bytes; /* all names and values together */
    size_t max_body;         /* bytes of body (decoded, for chunked) */
};

enum hp_state {
    HP_IDLE,     /* no byte of a request yet */
    HP_HEADERS,  /* inside the request line or headers */
    HP_BODY,     /* headers done, reading the body */
    HP_COMPLETE, /* a whole request is here; hp_reset before the next */
    HP_ERROR,    /* the connection must answer err_status and close */
};

struct hp_request {
    enum hp_state state;
    http_parser parser;
    struct hp_limits lim;
    /* The request. */
    enum hp_method method;
    const char *method_name;
    char *url; /* raw request target */
    size_t url_len;
    char *path;  /* url up to '?', NUL-terminated copy */
    char *query; /* after '?', or "" */
    int http_major, http_minor;
    int keep_alive;
    struct hp_header headers[HP_MAX_HEADERS];
    int nheaders;
    size_t header_bytes;
    int64_t content_length; /* -1 when absent */
    int chunked;
    int expect_continue; /* Expect: 100-continue was sent */
    char *body;
    size_t body_len, body_cap;
    /* Parsing state of the header being read. */
    int in_value;     /* the last callback was a header value */
    int headers_done; /* later header callbacks are a chunked body's trailer fields: dropped */
    int ncontent_length, ntransfer_encoding, has_host;
    /* On HP_ERROR: what to answer. */
    int err_status;
    const char *err_code;
    const char *err_message;
    char err_buf[256]; /* err_message points here */
    /* Set by the owner from on_headers; the body is refused (413) or the owner chose an
       early answer. Returning non-zero from on_headers stops the parse with HP_ERROR. */
    int (*on_headers)(struct hp_request *r, void *arg);
    void *arg;
};

void hp_init(struct hp_request *r, const struct hp_limits *lim);
/* Forget the previous request (keeps limits and hooks). */
void hp_reset(struct hp_request *r);
void hp_free(struct hp_request *r);
/*
 * Feed bytes. Returns how many were consumed; stops early when a request completed
 * (state HP_COMPLETE) or on error (HP_ERROR). Bytes after a complete request belong to the
 * next one: feed them again after hp_reset.
 */
size_t hp_feed(struct hp_request *r, const char *data, size_t len);
/* The value of a header (name lower case), NULL if absent. */
const char *hp_header(const struct hp_request *r, const char *name);
/* Sets HP_ERROR with an answer. */
void hp_fail(struct hp_request *r, int status, const char *code, const char *message);

#endif
