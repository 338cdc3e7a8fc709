/*
 * http.h — capxd's HTTP/1.1 server over TLS, on libevent's evconnlistener and
 * bufferevent_openssl, with httpparse.c doing the parsing.
 *
 * Why not evhttp: in libevent 2.1 its timeouts are idle-only, it answers smuggling cases
 * with 200, truncates header values at NUL, writes its own HTML error bodies and has no
 * connection cap (docs/architecture.md has the measurements). Here every connection has a
 * total deadline for its headers and another for its body, a cap on open connections
 * overall and per client address, and every error answer carries the contract's JSON body.
 *
 * One request per connection is handled at a time (pipelined requests wait in the input
 * buffer). The application's handler receives a complete request and must eventually call
 * http_reply exactly once, now or later (after a database commit).
 */
#ifndef CAPX_SERVER_HTTP_H
#define CAPX_SERVER_HTTP_H

#include <stddef.h>
#include <stdint.h>

#include <event2/event.h>
#include <jansson.h>

#include "common/capx.h"
#include "server/httpparse.h"
#include "server/reqjson.h"

struct http_server;
struct http_conn;

struct http_limits {
    size_t body_limit;       /* bytes; larger bodies get 413 before they are read */
    size_t max_header_bytes; /* names + values */
    size_t max_url;          /* request target bytes */
    int header_timeout_ms;   /* TLS handshake + request line + headers, total */
    int body_timeout_ms;     /* the whole body, total */
    int idle_timeout_ms;     /* keep-alive wait between requests */
    int write_timeout_ms;    /* a client that does not read its answer */
    int max_conns;           /* open connections overall */
    int max_conns_per_ip;    /* open connections per client address */
};

/* One request, valid from the handler call until http_reply. */
struct http_req {
    struct http_conn *conn;
    struct hp_request *hp; /* method, path, query, headers, body */
    uint64_t id;           /* request id, in every log line about it */
    uint64_t conn_id;
    char peer[64];  /* client address */
    double t_start; /* monotonic seconds when the request was complete */
    int route;      /* metrics route index, set by the application */
    void *app;      /* the application's per-request state */
    void (*app_free)(void *app);
};

/*
 * Called when headers are complete and a body will follow: the application may refuse the
 * request before the body is read (unknown route, auth, role, content type) by filling err
 * and returning -1. Called with the request not yet complete (hp->body empty).
 */
typedef int (*http_precheck_fn)(struct http_req *req, struct api_error *err, void *arg);
/* Called with a complete request. Must eventually call http_reply* once. */
typedef void (*http_handler_fn)(struct http_req *req, void *arg);

struct http_server *http_server_new(struct event_base *base, const struct http_limits *lim,
                                    http_precheck_fn precheck, http_handler_fn handler, void *arg);
MUSTCHECK int http_server_listen(struct http_server *s, const char *addr, int port, char *err,
                                 size_t errlen);
/* Stop accepting; close idle connections; answer in-flight ones with Connection: close. */
void http_server_drain(struct http_server *s);
int http_server_conns(const struct http_server *s);
/* Closes every connection and frees the server. */
void http_server_free(struct http_server *s);

/* Answer. extra_headers: "Name: value\r\n"… or NULL. Takes nothing over from the caller. */
void http_reply(struct http_req *req, int status, const char *content_type, const char *body,
                size_t len, const char *extra_headers);
/* JSON answer; steals the reference to body. */
void http_reply_json(struct http_req *req, int status, json_t *body, const char *extra_headers);
/* The contract's error body. */
void http_reply_error(struct http_req *req, const struct api_error *err, const char *extra_headers);
/* Serialize the error body (malloc'd, caller frees). */
char *http_error_body(const struct api_error *err, size_t *len);

const char *http_status_text(int status);
double http_now(void);

#endif
