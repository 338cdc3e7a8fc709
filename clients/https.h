/*
 * https.h — a small blocking HTTPS/1.1 client for the command-line tools.
 *
 * One request per connection (Connection: close): a CLI makes a handful of calls, so
 * keep-alive would buy nothing and cost a state machine. OpenSSL directly: TLS 1.2 or 1.3
 * only, the server certificate verified against --cacert (or the system's trust store) and
 * its name or IP address checked against the URL's host. Every wait (connect, handshake,
 * each read and write) is bounded by the configured timeout.
 */
#ifndef CAPX_CLIENTS_HTTPS_H
#define CAPX_CLIENTS_HTTPS_H

#include <stddef.h>

#include "common/capx.h"

#define HTTPS_MAX_BODY (64u << 20) /* a response body larger than this is refused */

/* Where to connect, from a URL "https://host[:port][/prefix]". */
struct https_target {
    char host[256];   /* name or IP address (IPv6 without brackets) */
    char port[8];     /* decimal, default 443 */
    char prefix[512]; /* path prefix without a trailing '/', often "" */
};

struct https_conf {
    struct https_target target;
    const char *cacert; /* PEM file of trusted CAs; NULL or "" for the system's */
    int timeout_ms;     /* bound on each blocking step */
};

struct https_request {
    const char *method;          /* "GET", "POST", "DELETE" */
    const char *path;            /* "/v1/..." with query, already percent-encoded */
    const char *api_key;         /* sent as "Authorization: Bearer"; NULL for none */
    const char *body;            /* JSON text, or NULL for none */
    const char *idempotency_key; /* NULL for none */
};

struct https_response {
    int status;          /* HTTP status code */
    char *body;          /* NUL-terminated, malloc'd (may be empty) */
    size_t body_len;     /* bytes in body, excluding the NUL */
    int replayed;        /* the server sent "Idempotent-Replayed: true" */
    char request_id[64]; /* X-Request-Id, or "" */
};

/* Parses an https URL. 0 ok, -1 with the reason in err (a plain http:// URL is refused). */
MUSTCHECK int https_parse_url(const char *url, struct https_target *t, char *err, size_t errlen);

/*
 * Sends one request and reads the whole response. 0 with resp filled (whatever the status),
 * or -1 with the reason in err when the server could not be reached, TLS failed (including
 * an unverifiable certificate) or the answer was not HTTP. Header values are checked for
 * CR/LF before anything is sent (-1). Release resp with https_response_free.
 */
MUSTCHECK int https_do(const struct https_conf *conf, const struct https_request *req,
                       struct https_response *resp, char *err, size_t errlen);
void https_response_free(struct https_response *resp);

#endif
