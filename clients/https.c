/*
 * https.c — see https.h. The flow of https_do: resolve and connect (non-blocking connect
 * bounded by poll, then a blocking socket with send/receive timeouts), TLS handshake with
 * verification, write the request, read the status line and headers, then the body by
 * Content-Length, chunked encoding or until the server closes. Everything is torn down
 * before returning; nothing is kept between calls.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include "clients/https.h"

#define LINE_MAX_BYTES 8192 /* status line, one header, one chunk-size line */
#define HEADERS_MAX    200  /* header lines in one response */

/* ---- URL ---- */

static int bad_url_byte(char c)
{
    return (unsigned char)c <= ' ' || c == 0x7f || c == '@' || c == '?' || c == '#' || c == '\\';
}

int https_parse_url(const char *url, struct https_target *t, char *err, size_t errlen)
{
    memset(t, 0, sizeof *t);
    if (!url || !*url) {
        snprintf(err, errlen, "no server URL");
        return -1;
    }
    if (strncasecmp(url, "https://", 8) != 0) {
        snprintf(err, errlen, "server URL \"%s\" must start with https:// (capx speaks only TLS)",
                 url);
        return -1;
    }
    const char *p = url + 8, *h, *he;
    if (*p == '[') {
        h = p + 1;
        he = strchr(h, ']');
        if (!he)
            goto bad;
        p = he + 1;
    } else {
        h = p;
        while (*p && *p != ':' && *p != '/')
            p++;
        he = p;
    }
    size_t hl = (size_t)(he - h);
    if (hl == 0 || hl >= sizeof t->host)
        goto bad;
    for (const char *q = h; q < he; q++)
        if (bad_url_byte(*q) || *q == '/' || *q == '[' || *q == ']')
            goto bad;
    memcpy(t->host, h, hl);
    t->host[hl] = '\0';
    snprintf(t->port, sizeof t->port, "443");
    if (*p == ':') {
        p++;
        long port = 0;
        int nd = 0;
        while (*p >= '0' && *p <= '9' && nd < 6) {
            port = port * 10 + (*p++ - '0');
            nd++;
        }
        if (nd == 0 || port < 1 || port > 65535)
            goto bad;
        snprintf(t->port, sizeof t->port, "%ld", port);
    }
    if (*p && *p != '/')
        goto bad;
    size_t pl = strlen(p);
    while (pl && p[pl - 1] == '/')
        pl--;
    if (pl >= sizeof t->prefix)
        goto bad;
    for (size_t i = 0; i < pl; i++)
        if (bad_url_byte(p[i]))
            goto bad;
    memcpy(t->prefix, p, pl);
    t->prefix[pl] = '\0';
    return 0;
bad:
    snprintf(err, errlen, "malformed server URL \"%s\" (expected https://HOST[:PORT])", url);
    return -1;
}

/* ---- growing buffer ---- */

struct buf {
    char *p;
    size_t len, cap;
};

static void buf_add(struct buf *b, const void *data, size_t n)
{
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 1024;
        while (cap < b->len + n + 1)
            cap *= 2;
        b->p = xrealloc(b->p, cap);
        b->cap = cap;
    }
    memcpy(b->p + b->len, data, n);
    b->len += n;
    b->p[b->len] = '\0';
}

static void buf_str(struct buf *b, const char *s)
{
    buf_add(b, s, strlen(s));
}

/* ---- connection ---- */

static int connect_tcp(const struct https_target *t, int timeout_ms, char *err, size_t errlen)
{
    struct addrinfo hints = {0}, *res = NULL;
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    int g = getaddrinfo(t->host, t->port, &hints, &res);
    if (g != 0) {
        snprintf(err, errlen, "cannot resolve %s: %s", t->host, gai_strerror(g));
        return -1;
    }
    int fd = -1, last = 0;
    for (struct addrinfo *ai = res; ai; ai = ai->ai_next) {
        fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC, ai->ai_protocol);
        if (fd < 0) {
            last = errno;
            continue;
        }
        int fl = fcntl(fd, F_GETFL);
        if (fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0) {
            last = errno;
            goto next;
        }
        if (connect(fd, ai->ai_addr, ai->ai_addrlen) < 0) {
            if (errno != EINPROGRESS) {
                last = errno;
                goto next;
            }
            struct pollfd pfd = {.fd = fd, .events = POLLOUT};
            int pr;
            do
                pr = poll(&pfd, 1, timeout_ms);
            while (pr < 0 && errno == EINTR);
            if (pr <= 0) {
                last = pr == 0 ? ETIMEDOUT : errno;
                goto next;
            }
            int soerr = 0;
            socklen_t sl = sizeof soerr;
            if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &sl) < 0 || soerr) {
                last = soerr ? soerr : errno;
                goto next;
            }
        }
        struct timeval tv = {.tv_sec = timeout_ms / 1000, .tv_usec = (timeout_ms % 1000) * 1000};
        if (fcntl(fd, F_SETFL, fl) < 0 || setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv) ||
            setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv)) {
            last = errno;
            goto next;
        }
        break;
    next:
        close(fd);
        fd = -1;
    }
    freeaddrinfo(res);
    if (fd < 0)
        snprintf(err, errlen, "cannot connect to %s port %s: %s", t->host, t->port,
                 strerror(last ? last : ECONNREFUSED));
    return fd;
}

/* The reason for the last failed TLS call: OpenSSL's error queue, else errno. */
static void tls_reason(SSL *ssl, int ret, char *out, size_t outlen)
{
    int e = SSL_get_error(ssl, ret);
    unsigned long q = ERR_peek_last_error();
    if (q) {
        ERR_error_string_n(q, out, outlen);
    } else if (e == SSL_ERROR_SYSCALL && (errno == EAGAIN || errno == EWOULDBLOCK)) {
        snprintf(out, outlen, "timed out");
    } else if (e == SSL_ERROR_SYSCALL && errno) {
        snprintf(out, outlen, "%s", strerror(errno));
    } else if (e == SSL_ERROR_SYSCALL || e == SSL_ERROR_ZERO_RETURN) {
        snprintf(out, outlen, "the server closed the connection");
    } else {
        snprintf(out, outlen, "TLS error %d", e);
    }
    ERR_clear_error();
}

static int is_ip_literal(const char *host)
{
    unsigned char a[16];
    return inet_pton(AF_INET, host, a) == 1 || inet_pton(AF_INET6, host, a) == 1;
}

static SSL_CTX *make_ctx(const char *cacert, char *err, size_t errlen)
{
    SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
    if (!ctx) {
        snprintf(err, errlen, "cannot create a TLS context");
        return NULL;
    }
    SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
    SSL_CTX_set_options(ctx, SSL_OP_NO_COMPRESSION | SSL_OP_NO_RENEGOTIATION |
                                 SSL_OP_IGNORE_UNEXPECTED_EOF);
    SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
    int ok = cacert && *cacert ? SSL_CTX_load_verify_locations(ctx, cacert, NULL)
                               : SSL_CTX_set_default_verify_paths(ctx);
    if (ok != 1) {
        char why[256] = "";
        unsigned long q = ERR_peek_last_error();
        if (q)
            ERR_error_string_n(q, why, sizeof why);
        ERR_clear_error();
        snprintf(err, errlen, "cannot load CA certificates from %s: %s",
                 cacert && *cacert ? cacert : "the system's store", why);
        SSL_CTX_free(ctx);
        return NULL;
    }
    return ctx;
}

static int tls_open(SSL_CTX *ctx, int fd, const struct https_conf *conf, SSL **out, char *err,
                    size_t errlen)
{
    const char *host = conf->target.host;
    SSL *ssl = SSL_new(ctx);
    if (!ssl || SSL_set_fd(ssl, fd) != 1) {
        snprintf(err, errlen, "cannot create a TLS connection");
        SSL_free(ssl);
        return -1;
    }
    /* The certificate must name what the user typed: an IP address or a DNS name. */
    int set = is_ip_literal(host)
                  ? X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl), host)
                  : SSL_set_tlsext_host_name(ssl, host) == 1 && SSL_set1_host(ssl, host) == 1;
    if (set != 1) {
        snprintf(err, errlen, "cannot set the TLS peer name %s", host);
        SSL_free(ssl);
        return -1;
    }
    SSL_set_hostflags(ssl, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
    ERR_clear_error();
    errno = 0;
    int r = SSL_connect(ssl);
    if (r != 1) {
        long vr = SSL_get_verify_result(ssl);
        if (vr != X509_V_OK) {
            snprintf(err, errlen, "TLS: the certificate of %s is not trusted: %s%s", host,
                     X509_verify_cert_error_string(vr),
                     conf->cacert && *conf->cacert
                         ? ""
                         : " (for the self-signed development certificate pass --cacert)");
            ERR_clear_error();
        } else {
            char why[256];
            tls_reason(ssl, r, why, sizeof why);
            snprintf(err, errlen, "TLS handshake with %s port %s failed: %s", host,
                     conf->target.port, why);
        }
        SSL_free(ssl);
        return -1;
    }
    *out = ssl;
    return 0;
}

/* ---- reading the response ---- */

struct reader {
    SSL *ssl;
    char buf[16384];
    size_t pos, len;
    int eof;
};

/* Refills r->buf. 0 ok (or eof set), -1 with err. */
static int fill(struct reader *r, char *err, size_t errlen)
{
    ERR_clear_error();
    errno = 0;
    int n = SSL_read(r->ssl, r->buf, (int)sizeof r->buf);
    if (n > 0) {
        r->pos = 0;
        r->len = (size_t)n;
        return 0;
    }
    int e = SSL_get_error(r->ssl, n);
    if (e == SSL_ERROR_ZERO_RETURN ||
        (e == SSL_ERROR_SYSCALL && errno == 0 && ERR_peek_last_error() == 0)) {
        r->eof = 1;
        return 0;
    }
    char why[256];
    tls_reason(r->ssl, n, why, sizeof why);
    snprintf(err, errlen, "reading the answer: %s", why);
    return -1;
}

/* One line without its CR LF into out (NUL-terminated). -1 on error, EOF or a long line. */
static int read_line(struct reader *r, char *out, size_t outlen, char *err, size_t errlen)
{
    size_t n = 0;
    for (;;) {
        if (r->pos == r->len) {
            if (fill(r, err, errlen) < 0)
                return -1;
            if (r->eof) {
                snprintf(err, errlen, "the server closed the connection mid-answer");
                return -1;
            }
        }
        char c = r->buf[r->pos++];
        if (c == '\n')
            break;
        if (n + 1 >= outlen) {
            snprintf(err, errlen, "the server sent an over-long line");
            return -1;
        }
        out[n++] = c;
    }
    if (n && out[n - 1] == '\r')
        n--;
    out[n] = '\0';
    return 0;
}

/* Appends n bytes (or, with n == SIZE_MAX, everything until EOF) to b. */
static int read_body(struct reader *r, size_t n, struct buf *b, char *err, size_t errlen)
{
    size_t want = n;
    while (want) {
        if (r->pos == r->len) {
            if (fill(r, err, errlen) < 0)
                return -1;
            if (r->eof) {
                if (n == SIZE_MAX)
                    return 0;
                snprintf(err, errlen, "the server closed the connection mid-answer");
                return -1;
            }
        }
        size_t k = r->len - r->pos;
        if (k > want)
            k = want;
        if (b->len + k > HTTPS_MAX_BODY) {
            snprintf(err, errlen, "the answer is larger than %u bytes", HTTPS_MAX_BODY);
            return -1;
        }
        buf_add(b, r->buf + r->pos, k);
        r->pos += k;
        if (n != SIZE_MAX)
            want -= k;
    }
    return 0;
}

static int read_chunked(struct reader *r, struct buf *b, char *err, size_t errlen)
{
    char line[LINE_MAX_BYTES];
    for (;;) {
        if (read_line(r, line, sizeof line, err, errlen) < 0)
            return -1;
        char *end;
        errno = 0;
        unsigned long long size = strtoull(line, &end, 16);
        if (end == line || errno || (*end && *end != ';' && *end != ' ') || size > HTTPS_MAX_BODY) {
            snprintf(err, errlen, "malformed chunk size in the answer");
            return -1;
        }
        if (size == 0)
            break;
        if (read_body(r, (size_t)size, b, err, errlen) < 0 ||
            read_line(r, line, sizeof line, err, errlen) < 0)
            return -1;
        if (line[0]) {
            snprintf(err, errlen, "malformed chunk in the answer");
            return -1;
        }
    }
    /* Trailers, up to the empty line. */
    for (int i = 0; i < HEADERS_MAX; i++) {
        if (read_line(r, line, sizeof line, err, errlen) < 0)
            return -1;
        if (!line[0])
            return 0;
    }
    snprintf(err, errlen, "too many trailers in the answer");
    return -1;
}

static int read_response(struct reader *r, const char *method, struct https_response *resp,
                         char *err, size_t errlen)
{
    char line[LINE_MAX_BYTES];
    long long clen = -1;
    int chunked = 0;
    /* Skip interim 1xx answers. */
    do {
        if (read_line(r, line, sizeof line, err, errlen) < 0)
            return -1;
        int st = 0;
        if (strlen(line) < 12 || strncmp(line, "HTTP/1.", 7) != 0 ||
            sscanf(line + 8, " %3d", &st) != 1 || st < 100 || st > 599) {
            snprintf(err, errlen, "the server did not answer in HTTP");
            return -1;
        }
        resp->status = st;
        clen = -1;
        chunked = 0;
        int nh = 0;
        for (;;) {
            if (read_line(r, line, sizeof line, err, errlen) < 0)
                return -1;
            if (!line[0])
                break;
            if (++nh > HEADERS_MAX) {
                snprintf(err, errlen, "too many headers in the answer");
                return -1;
            }
            char *colon = strchr(line, ':');
            if (!colon)
                continue;
            *colon = '\0';
            char *v = colon + 1;
            while (*v == ' ' || *v == '\t')
                v++;
            size_t vl = strlen(v);
            while (vl && (v[vl - 1] == ' ' || v[vl - 1] == '\t'))
                v[--vl] = '\0';
            if (!strcasecmp(line, "Content-Length")) {
                char *end;
                errno = 0;
                clen = strtoll(v, &end, 10);
                if (errno || end == v || *end || clen < 0) {
                    snprintf(err, errlen, "malformed Content-Length in the answer");
                    return -1;
                }
            } else if (!strcasecmp(line, "Transfer-Encoding")) {
                chunked = strcasestr(v, "chunked") != NULL;
            } else if (!strcasecmp(line, "Idempotent-Replayed")) {
                resp->replayed = !strcasecmp(v, "true");
            } else if (!strcasecmp(line, "X-Request-Id")) {
                snprintf(resp->request_id, sizeof resp->request_id, "%s", v);
            }
        }
    } while (resp->status < 200 && resp->status != 101);
    struct buf b = {0};
    buf_add(&b, "", 0);
    int rc = 0;
    if (!strcmp(method, "HEAD") || resp->status == 204 || resp->status == 304)
        rc = 0;
    else if (chunked)
        rc = read_chunked(r, &b, err, errlen);
    else if (clen >= 0) {
        if ((unsigned long long)clen > HTTPS_MAX_BODY) {
            snprintf(err, errlen, "the answer is larger than %u bytes", HTTPS_MAX_BODY);
            rc = -1;
        } else {
            rc = read_body(r, (size_t)clen, &b, err, errlen);
        }
    } else
        rc = read_body(r, SIZE_MAX, &b, err, errlen);
    if (rc < 0) {
        free(b.p);
        return -1;
    }
    resp->body = b.p;
    resp->body_len = b.len;
    return 0;
}

/* ---- the request ---- */

/* 1 when s may go into a request line or header value as it is. */
static int header_safe(const char *s)
{
    for (; *s; s++)
        if ((unsigned char)*s < 0x20 || *s == 0x7f)
            return 0;
    return 1;
}

static int write_all(SSL *ssl, const char *p, size_t n, char *err, size_t errlen)
{
    while (n) {
        ERR_clear_error();
        errno = 0;
        int k = SSL_write(ssl, p, n > (1u << 30) ? (1 << 30) : (int)n);
        if (k <= 0) {
            char why[256];
            tls_reason(ssl, k, why, sizeof why);
            snprintf(err, errlen, "sending the request: %s", why);
            return -1;
        }
        p += k;
        n -= (size_t)k;
    }
    return 0;
}

int https_do(const struct https_conf *conf, const struct https_request *req,
             struct https_response *resp, char *err, size_t errlen)
{
    const struct https_target *t = &conf->target;
    SSL_CTX *ctx = NULL;
    SSL *ssl = NULL;
    int fd = -1, rc = -1;
    struct buf rq = {0};
    struct reader *rd = NULL;
    memset(resp, 0, sizeof *resp);
    if (!header_safe(req->path) || strchr(req->path, ' ') ||
        (req->api_key && !header_safe(req->api_key)) ||
        (req->idempotency_key && !header_safe(req->idempotency_key))) {
        snprintf(err, errlen, "control characters in the request path or a header value");
        return -1;
    }
    /* A CLI never wants to die of SIGPIPE when the server hangs up mid-write. */
    signal(SIGPIPE, SIG_IGN);

    /* The request, whole, before any connection is made. */
    int v6 = strchr(t->host, ':') != NULL;
    char len[32];
    buf_str(&rq, req->method);
    buf_str(&rq, " ");
    buf_str(&rq, t->prefix);
    buf_str(&rq, req->path);
    buf_str(&rq, " HTTP/1.1\r\nHost: ");
    buf_str(&rq, v6 ? "[" : "");
    buf_str(&rq, t->host);
    buf_str(&rq, v6 ? "]" : "");
    if (strcmp(t->port, "443") != 0) {
        buf_str(&rq, ":");
        buf_str(&rq, t->port);
    }
    buf_str(&rq, "\r\nUser-Agent: capx-cli/1\r\nAccept: application/json\r\nConnection: close\r\n");
    if (req->api_key) {
        buf_str(&rq, "Authorization: Bearer ");
        buf_str(&rq, req->api_key);
        buf_str(&rq, "\r\n");
    }
    if (req->idempotency_key) {
        buf_str(&rq, "Idempotency-Key: ");
        buf_str(&rq, req->idempotency_key);
        buf_str(&rq, "\r\n");
    }
    if (req->body) {
        snprintf(len, sizeof len, "%zu", strlen(req->body));
        buf_str(&rq, "Content-Type: application/json\r\nContent-Length: ");
        buf_str(&rq, len);
        buf_str(&rq, "\r\n");
    } else if (strcmp(req->method, "GET") != 0 && strcmp(req->method, "HEAD") != 0) {
        buf_str(&rq, "Content-Length: 0\r\n");
    }
    buf_str(&rq, "\r\n");
    if (req->body)
        buf_str(&rq, req->body);

    if (!(ctx = make_ctx(conf->cacert, err, errlen)))
        goto done;
    if ((fd = connect_tcp(t, conf->timeout_ms, err, errlen)) < 0)
        goto done;
    if (tls_open(ctx, fd, conf, &ssl, err, errlen) < 0)
        goto done;
    if (write_all(ssl, rq.p, rq.len, err, errlen) < 0)
        goto done;
    rd = xcalloc(1, sizeof *rd);
    rd->ssl = ssl;
    if (read_response(rd, req->method, resp, err, errlen) < 0)
        goto done;
    rc = 0;
done:
    free(rd);
    free(rq.p);
    if (ssl) {
        if (rc == 0)
            SSL_shutdown(ssl);
        SSL_free(ssl);
    }
    if (fd >= 0)
        close(fd);
    SSL_CTX_free(ctx);
    ERR_clear_error();
    if (rc < 0)
        https_response_free(resp);
    return rc;
}

void https_response_free(struct https_response *resp)
{
    free(resp->body);
    resp->body = NULL;
    resp->body_len = 0;
}
