/*
 * http.c — see http.h.
 *
 * A connection's life: accepted (cap checks) → TLS handshake → requests, one at a time →
 * closed. One timer per connection enforces whichever deadline applies in its state:
 *   handshake + first headers  header_timeout from accept
 *   headers of a later request header_timeout from its first byte
 *   body                       body_timeout from the end of the headers
 *   keep-alive idle            idle_timeout from the last answer
 *   handling                   none (the application answers; the database has its own)
 * Closing never frees inside a callback of the same object: conn_close frees the
 * bufferevent (closing the socket), marks the connection, and puts it on the reap list,
 * which an event drains at the end of the loop turn. A connection whose request is still
 * with the application is kept until http_reply, which then frees it.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/listener.h>
#include <openssl/err.h>
#include <openssl/ssl.h>

#include "server/http.h"
#include "server/log.h"
#include "server/metrics.h"
#include "server/tls.h"

#define IP_BUCKETS 4096

struct ip_count {
    unsigned char addr[16];
    int family;
    int count;
    struct ip_count *next;
};

enum conn_phase { PH_HANDSHAKE, PH_READING, PH_HANDLING, PH_CLOSING, PH_CLOSED };

struct http_conn {
    struct http_server *srv;
    struct bufferevent *bev;
    uint64_t id;
    enum conn_phase phase;
    struct hp_request hp;
    struct http_req req;
    struct event *timer;
    struct ip_count *ip;
    int in_process;                /* inside process_input */
    int sent_continue;             /* 100 Continue already written for this request */
    int linger;                    /* closing with a body unread: drain it for a moment first */
    int out_paused;                /* not reading: OUT_CAP of answers wait to be written */
    char allow[40];                /* a 405 found before the body: the methods the path takes */
    size_t lingered;               /* bytes discarded while lingering */
    struct http_conn *prev, *next; /* all open connections */
    struct http_conn *reap_next;
};

struct http_server {
    struct event_base *base;
    struct http_limits lim;
    http_precheck_fn precheck;
    http_handler_fn handler;
    void *arg;
    struct evconnlistener *listener;
    struct event *reap_ev;
    struct http_conn *conns; /* open */
    struct http_conn *reap;  /* closed, to free */
    int nconns;
    int draining;
    uint64_t next_conn_id, next_req_id;
    struct ip_count *ips[IP_BUCKETS];
};

static void process_input(struct http_conn *c);
static void conn_close(struct http_conn *c, const char *why);

double http_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

const char *http_status_text(int s)
{
    switch (s) {
    case 100:
        return "Continue";
    case 200:
        return "OK";
    case 201:
        return "Created";
    case 204:
        return "No Content";
    case 400:
        return "Bad Request";
    case 401:
        return "Unauthorized";
    case 402:
        return "Payment Required";
    case 403:
        return "Forbidden";
    case 404:
        return "Not Found";
    case 405:
        return "Method Not Allowed";
    case 408:
        return "Request Timeout";
    case 409:
        return "Conflict";
    case 413:
        return "Content Too Large";
    case 414:
        return "URI Too Long";
    case 415:
        return "Unsupported Media Type";
    case 417:
        return "Expectation Failed";
    case 422:
        return "Unprocessable Content";
    case 429:
        return "Too Many Requests";
    case 431:
        return "Request Header Fields Too Large";
    case 500:
        return "Internal Server Error";
    case 503:
        return "Service Unavailable";
    case 505:
        return "HTTP Version Not Supported";
    default:
        return "Unknown";
    }
}

/* ---- per-address counts ---- */

static unsigned ip_hash(const unsigned char *a, int n)
{
    unsigned h = 2166136261u;
    for (int i = 0; i < n; i++)
        h = (h ^ a[i]) * 16777619u;
    return h % IP_BUCKETS;
}

static struct ip_count *ip_get(struct http_server *s, const struct sockaddr *sa)
{
    unsigned char a[16] = {0};
    int n;
    if (sa->sa_family == AF_INET6) {
        memcpy(a, &((const struct sockaddr_in6 *)sa)->sin6_addr, 16);
        n = 16;
    } else {
        memcpy(a, &((const struct sockaddr_in *)sa)->sin_addr, 4);
        n = 4;
    }
    unsigned b = ip_hash(a, n);
    for (struct ip_count *e = s->ips[b]; e; e = e->next)
        if (e->family == sa->sa_family && !memcmp(e->addr, a, 16))
            return e;
    struct ip_count *e = xcalloc(1, sizeof *e);
    memcpy(e->addr, a, 16);
    e->family = sa->sa_family;
    e->next = s->ips[b];
    s->ips[b] = e;
    return e;
}

static void ip_release(struct http_server *s, struct ip_count *ip)
{
    if (--ip->count > 0)
        return;
    unsigned b = ip_hash(ip->addr, ip->family == AF_INET6 ? 16 : 4);
    for (struct ip_count **pp = &s->ips[b]; *pp; pp = &(*pp)->next)
        if (*pp == ip) {
            *pp = ip->next;
            free(ip);
            return;
        }
}

/* ---- timers ---- */

static void arm(struct http_conn *c, int ms)
{
    struct timeval tv = {ms / 1000, (ms % 1000) * 1000};
    evtimer_add(c->timer, &tv);
}

static void on_deadline(evutil_socket_t fd, short what, void *arg)
{
    struct http_conn *c = arg;
    UNUSED(fd);
    UNUSED(what);
    if (c->phase == PH_HANDLING)
        return;
    log_debug("msg=\"deadline passed, closing\" conn=%llu state=%d", (unsigned long long)c->id,
              (int)c->hp.state);
    conn_close(c, "deadline");
}

/* ---- closing and reaping ---- */

static void conn_free(struct http_conn *c)
{
    if (c->req.app && c->req.app_free)
        c->req.app_free(c->req.app);
    c->req.app = NULL;
    hp_free(&c->hp);
    event_free(c->timer);
    free(c);
}

static void on_reap(evutil_socket_t fd, short what, void *arg)
{
    struct http_server *s = arg;
    UNUSED(fd);
    UNUSED(what);
    while (s->reap) {
        struct http_conn *c = s->reap;
        s->reap = c->reap_next;
        conn_free(c);
    }
}

static void conn_close(struct http_conn *c, const char *why)
{
    struct http_server *s = c->srv;
    if (c->phase == PH_CLOSED)
        return;
    int handling = c->phase == PH_HANDLING;
    c->phase = PH_CLOSED;
    log_debug("msg=\"connection closed\" conn=%llu reason=%s", (unsigned long long)c->id, why);
    evtimer_del(c->timer);
    if (c->bev) {
        bufferevent_free(c->bev);
        c->bev = NULL;
    }
    if (c->ip) {
        ip_release(s, c->ip);
        c->ip = NULL;
    }
    if (c->prev)
        c->prev->next = c->next;
    else
        s->conns = c->next;
    if (c->next)
        c->next->prev = c->prev;
    s->nconns--;
    if (handling)
        return; /* http_reply frees it */
    c->reap_next = s->reap;
    s->reap = c;
    event_active(s->reap_ev, EV_TIMEOUT, 0);
}

/* ---- writing answers ---- */

#define LINGER_MS    1000
#define LINGER_BYTES (8u << 20)
/* Answers waiting to be written beyond which a connection's next requests wait: a client that
   pipelines requests and never reads must not make capxd queue answers without end. */
#define OUT_CAP (256u << 10)

/*
 * Once the last answer is flushed the connection closes — except when the client may still
 * be sending a body we refused (413, or a refusal decided from the headers): closing with
 * unread input would make the kernel reset the connection and the client could lose our
 * answer, so the input is read and thrown away for up to LINGER_MS first.
 */
static void process_input(struct http_conn *c);

static void on_write(struct bufferevent *bev, void *arg)
{
    struct http_conn *c = arg;
    if (c->phase == PH_READING && c->out_paused) { /* the answers are out: read on */
        c->out_paused = 0;
        bufferevent_enable(bev, EV_READ);
        if (!c->in_process)
            process_input(c);
        return;
    }
    if (c->phase != PH_CLOSING || evbuffer_get_length(bufferevent_get_output(bev)) != 0)
        return;
    if (c->linger == 1) {
        c->linger = 2;
        arm(c, LINGER_MS);
        return;
    }
    if (c->linger == 0)
        conn_close(c, "answered, closing");
}

char *http_error_body(const struct api_error *err, size_t *len)
{
    json_t *e = json_object();
    json_object_set_new(e, "code", json_string(err->code ? err->code : "internal"));
    json_object_set_new(e, "message", json_string(err->message));
    if (err->field[0])
        json_object_set_new(e, "field", json_string(err->field));
    json_t *o = json_pack("{s:o}", "error", e);
    char *s = json_dumps(o, JSON_COMPACT);
    json_decref(o);
    if (!s)
        capx_fatal("json_dumps failed");
    *len = strlen(s);
    return s;
}

/* Headers and body go out as ONE contiguous piece, so TLS sends them in one record and one
   write() instead of one per evbuffer chunk. */
static void write_answer(struct http_conn *c, int status, const char *ctype, const char *body,
                         size_t len, const char *extra, int close_after, int head)
{
    struct evbuffer *out = bufferevent_get_output(c->bev);
    char hdr[1024];
    int n = snprintf(hdr, sizeof hdr,
                     "HTTP/1.1 %d %s\r\n"
                     "Content-Type: %s\r\n"
                     "Content-Length: %zu\r\n"
                     "X-Request-Id: %llu\r\n"
                     "%s%s\r\n",
                     status, http_status_text(status), ctype, len, (unsigned long long)c->req.id,
                     extra ? extra : "", close_after ? "Connection: close\r\n" : "");
    CAPX_ASSERT(n > 0 && (size_t)n < sizeof hdr);
    size_t blen = (len && !head) ? len : 0;
    struct evbuffer_iovec v;
    if (evbuffer_reserve_space(out, (ev_ssize_t)((size_t)n + blen), &v, 1) == 1 &&
        v.iov_len >= (size_t)n + blen) {
        memcpy(v.iov_base, hdr, (size_t)n);
        if (blen)
            memcpy((char *)v.iov_base + n, body, blen);
        v.iov_len = (size_t)n + blen;
        evbuffer_commit_space(out, &v, 1);
        return;
    }
    evbuffer_add(out, hdr, (size_t)n);
    if (blen)
        evbuffer_add(out, body, blen);
}

void http_reply(struct http_req *req, int status, const char *content_type, const char *body,
                size_t len, const char *extra_headers)
{
    struct http_conn *c = req->conn;
    struct http_server *s = c->srv;
    double took = http_now() - req->t_start;
    metrics_observe(req->route, status, took);
    req->route = -1;
    log_info("msg=request conn=%llu req=%llu method=%s path=\"%.200s\" status=%d ms=%.3f",
             (unsigned long long)c->id, (unsigned long long)req->id,
             c->hp.method_name ? c->hp.method_name : "-", c->hp.path ? c->hp.path : "-", status,
             took * 1000.0);
    if (req->app && req->app_free)
        req->app_free(req->app);
    req->app = NULL;
    req->app_free = NULL;
    if (c->phase == PH_CLOSED) {
        /* The connection was closed while the application worked: nobody to answer. */
        conn_free(c);
        return;
    }
    int close_after = !c->hp.keep_alive || s->draining || c->hp.state == HP_ERROR ||
                      status == 413 || status == 431 || status == 414;
    write_answer(c, status, content_type, body, len, extra_headers, close_after,
                 c->hp.method == HP_HEAD);
    if (close_after) {
        c->phase = PH_CLOSING;
        arm(c, s->lim.write_timeout_ms);
        if (c->hp.state != HP_COMPLETE && (c->hp.content_length > 0 || c->hp.chunked)) {
            c->linger = 1;
            bufferevent_enable(c->bev, EV_READ);
        } else {
            bufferevent_disable(c->bev, EV_READ);
        }
        on_write(c->bev, c); /* already flushed? */
        return;
    }
    c->phase = PH_READING;
    c->sent_continue = 0;
    hp_reset(&c->hp);
    arm(c, s->lim.idle_timeout_ms);
    if (!c->out_paused)
        bufferevent_enable(c->bev, EV_READ);
    if (!c->in_process)
        process_input(c);
}

void http_reply_json(struct http_req *req, int status, json_t *body, const char *extra_headers)
{
    char *s = json_dumps(body, JSON_COMPACT);
    json_decref(body);
    if (!s)
        capx_fatal("json_dumps failed");
    http_reply(req, status, "application/json", s, strlen(s), extra_headers);
    free(s);
}

void http_reply_error(struct http_req *req, const struct api_error *err, const char *extra_headers)
{
    size_t len;
    char *s = http_error_body(err, &len), hdr[256];
    if (err->status == 405 && err->allow[0]) { /* RFC 9110 15.5.6: a 405 says what is allowed */
        snprintf(hdr, sizeof hdr, "Allow: %s\r\n%s", err->allow,
                 extra_headers ? extra_headers : "");
        extra_headers = hdr;
    }
    http_reply(req, err->status, "application/json", s, len, extra_headers);
    free(s);
}

/* ---- reading requests ---- */

static int on_headers(struct hp_request *hp, void *arg)
{
    struct http_conn *c = arg;
    struct http_server *s = c->srv;
    struct api_error err = {0};
    c->allow[0] = '\0';
    if (hp->content_length <= 0 && !hp->chunked)
        return 0; /* no body: the application judges the whole request at once */
    c->req.t_start = http_now();
    if (s->precheck && s->precheck(&c->req, &err, s->arg) < 0) {
        snprintf(c->allow, sizeof c->allow, "%s", err.allow);
        hp_fail(hp, err.status, err.code, err.message);
        return -1;
    }
    return 0;
}

static void answer_parse_error(struct http_conn *c)
{
    struct api_error err = {0};
    api_error_set(&err, c->hp.err_status ? c->hp.err_status : 400,
                  c->hp.err_code ? c->hp.err_code : "invalid_request", NULL, "%s",
                  c->hp.err_message ? c->hp.err_message : "malformed request");
    snprintf(err.allow, sizeof err.allow, "%s", c->allow);
    c->req.id = ++c->srv->next_req_id;
    c->req.t_start = http_now();
    c->phase = PH_HANDLING;
    http_reply_error(&c->req, &err, NULL);
}

static void process_input(struct http_conn *c)
{
    struct http_server *s = c->srv;
    c->in_process = 1;
    while (c->phase == PH_READING) {
        struct evbuffer *in = bufferevent_get_input(c->bev);
        if (evbuffer_get_length(in) == 0)
            break;
        if (evbuffer_get_length(bufferevent_get_output(c->bev)) > OUT_CAP) {
            c->out_paused = 1; /* on_write reads on once they are written */
            bufferevent_disable(c->bev, EV_READ);
            break;
        }
        struct evbuffer_iovec v;
        if (evbuffer_peek(in, -1, NULL, &v, 1) < 1)
            break;
        enum hp_state before = c->hp.state;
        size_t n = hp_feed(&c->hp, v.iov_base, v.iov_len);
        evbuffer_drain(in, n);
        /* A later request's headers get the header deadline from their first byte; the
           first request's run from the accept (handshake and headers: one total). */
        if (before == HP_IDLE && c->hp.state == HP_HEADERS && c->req.id != 0)
            arm(c, s->lim.header_timeout_ms);
        if (c->hp.state == HP_ERROR) {
            answer_parse_error(c);
            break;
        }
        if (before != HP_BODY && c->hp.state == HP_BODY) {
            arm(c, s->lim.body_timeout_ms);
            if (c->hp.expect_continue && !c->sent_continue) {
                c->sent_continue = 1;
                evbuffer_add_printf(bufferevent_get_output(c->bev),
                                    "HTTP/1.1 100 Continue\r\n\r\n");
            }
        }
        if (c->hp.state == HP_COMPLETE) {
            evtimer_del(c->timer);
            c->phase = PH_HANDLING;
            c->req.id = ++s->next_req_id;
            c->req.t_start = http_now();
            bufferevent_disable(c->bev, EV_READ);
            s->handler(&c->req, s->arg);
            continue; /* a synchronous answer may have left pipelined bytes to parse */
        }
        if (n == 0)
            break;
    }
    c->in_process = 0;
}

static void on_read(struct bufferevent *bev, void *arg)
{
    struct http_conn *c = arg;
    if (c->phase == PH_CLOSING) {
        struct evbuffer *in = bufferevent_get_input(bev);
        c->lingered += evbuffer_get_length(in);
        evbuffer_drain(in, evbuffer_get_length(in));
        if (c->lingered > LINGER_BYTES)
            conn_close(c, "lingered enough");
        return;
    }
    process_input(c);
}

static void on_event(struct bufferevent *bev, short what, void *arg)
{
    struct http_conn *c = arg;
    if (what & BEV_EVENT_CONNECTED) {
        if (c->phase == PH_HANDSHAKE)
            c->phase = PH_READING;
        process_input(c);
        return;
    }
    if (what & (BEV_EVENT_EOF | BEV_EVENT_ERROR | BEV_EVENT_TIMEOUT)) {
        unsigned long e;
        while ((e = bufferevent_get_openssl_error(bev)) != 0) {
            char buf[160];
            ERR_error_string_n(e, buf, sizeof buf);
            log_debug("msg=\"tls error\" conn=%llu err=\"%s\"", (unsigned long long)c->id, buf);
        }
        conn_close(c, (what & BEV_EVENT_EOF) ? "eof" : "error");
    }
}

static void on_accept(struct evconnlistener *l, evutil_socket_t fd, struct sockaddr *sa, int slen,
                      void *arg)
{
    struct http_server *s = arg;
    UNUSED(l);
    UNUSED(slen);
    if (s->draining || s->nconns >= s->lim.max_conns) {
        evutil_closesocket(fd);
        return;
    }
    struct ip_count *ip = ip_get(s, sa);
    if (ip->count >= s->lim.max_conns_per_ip) {
        evutil_closesocket(fd);
        log_debug("msg=\"per-address connection cap reached\"");
        return;
    }
    SSL *ssl = SSL_new(tls_ctx());
    if (!ssl) {
        evutil_closesocket(fd);
        return;
    }
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    struct http_conn *c = xcalloc(1, sizeof *c);
    c->srv = s;
    c->id = ++s->next_conn_id;
    c->ip = ip;
    ip->count++;
    c->bev = bufferevent_openssl_socket_new(s->base, fd, ssl, BUFFEREVENT_SSL_ACCEPTING,
                                            BEV_OPT_CLOSE_ON_FREE);
    if (!c->bev) {
        SSL_free(ssl);
        evutil_closesocket(fd);
        ip_release(s, ip);
        free(c);
        return;
    }
    bufferevent_openssl_set_allow_dirty_shutdown(c->bev, 1);
    c->timer = evtimer_new(s->base, on_deadline, c);
    hp_init(&c->hp,
            &(struct hp_limits){s->lim.max_url, s->lim.max_header_bytes, s->lim.body_limit});
    c->hp.on_headers = on_headers;
    c->hp.arg = c;
    c->req.conn = c;
    c->req.hp = &c->hp;
    c->req.conn_id = c->id;
    c->req.route = -1;
    if (sa->sa_family == AF_INET6)
        inet_ntop(AF_INET6, &((struct sockaddr_in6 *)sa)->sin6_addr, c->req.peer,
                  sizeof c->req.peer);
    else
        inet_ntop(AF_INET, &((struct sockaddr_in *)sa)->sin_addr, c->req.peer, sizeof c->req.peer);
    c->phase = PH_HANDSHAKE;
    c->next = s->conns;
    if (s->conns)
        s->conns->prev = c;
    s->conns = c;
    s->nconns++;
    struct timeval wt = {s->lim.write_timeout_ms / 1000, (s->lim.write_timeout_ms % 1000) * 1000};
    bufferevent_set_timeouts(c->bev, NULL, &wt);
    bufferevent_setcb(c->bev, on_read, on_write, on_event, c);
    bufferevent_enable(c->bev, EV_READ | EV_WRITE);
    arm(c, s->lim.header_timeout_ms);
}

static void on_accept_error(struct evconnlistener *l, void *arg)
{
    UNUSED(l);
    UNUSED(arg);
    log_warn("msg=\"accept failed\" err=\"%s\"", strerror(errno));
}

struct http_server *http_server_new(struct event_base *base, const struct http_limits *lim,
                                    http_precheck_fn precheck, http_handler_fn handler, void *arg)
{
    struct http_server *s = xcalloc(1, sizeof *s);
    s->base = base;
    s->lim = *lim;
    s->precheck = precheck;
    s->handler = handler;
    s->arg = arg;
    s->reap_ev = event_new(base, -1, 0, on_reap, s);
    return s;
}

int http_server_listen(struct http_server *s, const char *addr, int port, char *err, size_t errlen)
{
    struct sockaddr_storage ss;
    int sslen = sizeof ss;
    char spec[128];
    if (strchr(addr, ':'))
        snprintf(spec, sizeof spec, "[%s]:%d", addr, port);
    else
        snprintf(spec, sizeof spec, "%s:%d", addr, port);
    memset(&ss, 0, sizeof ss);
    if (evutil_parse_sockaddr_port(spec, (struct sockaddr *)&ss, &sslen) < 0) {
        snprintf(err, errlen, "cannot parse listen address %s", spec);
        return -1;
    }
    s->listener = evconnlistener_new_bind(
        s->base, on_accept, s, LEV_OPT_CLOSE_ON_FREE | LEV_OPT_REUSEABLE | LEV_OPT_CLOSE_ON_EXEC,
        4096, (struct sockaddr *)&ss, sslen);
    if (!s->listener) {
        snprintf(err, errlen, "cannot listen on %s: %s", spec, strerror(errno));
        return -1;
    }
    evconnlistener_set_error_cb(s->listener, on_accept_error);
    return 0;
}

void http_server_drain(struct http_server *s)
{
    s->draining = 1;
    if (s->listener) {
        evconnlistener_free(s->listener);
        s->listener = NULL;
    }
    struct http_conn *c = s->conns;
    while (c) {
        struct http_conn *next = c->next;
        /* Idle keep-alive connections and ones still in their handshake go now; a request
           being read or handled finishes and its answer says Connection: close. */
        if (c->phase == PH_HANDSHAKE || (c->phase == PH_READING && c->hp.state == HP_IDLE))
            conn_close(c, "shutting down");
        c = next;
    }
}

int http_server_conns(const struct http_server *s)
{
    return s->nconns;
}

void http_server_free(struct http_server *s)
{
    if (s->listener)
        evconnlistener_free(s->listener);
    while (s->conns) {
        struct http_conn *c = s->conns;
        int handling = c->phase == PH_HANDLING;
        conn_close(c, "server stopping");
        if (handling)
            conn_free(c); /* the application will not answer any more */
    }
    on_reap(-1, 0, s);
    event_free(s->reap_ev);
    for (int b = 0; b < IP_BUCKETS; b++)
        while (s->ips[b]) {
            struct ip_count *e = s->ips[b];
            s->ips[b] = e->next;
            free(e);
        }
    free(s);
}
